/// What a migration run did.
public struct MigrationReport: Sendable, Equatable {
    /// Versions this run applied, in order.
    public let applied: [Int]
    /// Versions already recorded before this run.
    public let alreadyApplied: [Int]
    /// Recorded versions this build does not know (a newer build migrated).
    public let unknownInDatabase: [Int]
}
