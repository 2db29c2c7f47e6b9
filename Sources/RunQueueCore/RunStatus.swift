/// Where a run is in its life (`runqueue.v1.RunStatus`), as recorded in PostgreSQL.
public enum RunStatus: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case unspecified = 0
    case queued = 1
    case dequeued = 2
    case completed = 3
    case expired = 4
    case deadLettered = 5

    /// The proto enum name, e.g. `"DEAD_LETTERED"` or `"RUN_STATUS_UNSPECIFIED"`.
    public var name: String {
        switch self {
        case .unspecified: "RUN_STATUS_UNSPECIFIED"
        case .queued: "QUEUED"
        case .dequeued: "DEQUEUED"
        case .completed: "COMPLETED"
        case .expired: "EXPIRED"
        case .deadLettered: "DEAD_LETTERED"
        }
    }

    /// Parses a proto enum name; exact, case-sensitive.
    public init?(name: String) {
        guard let value = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = value
    }

    /// A number received on the wire; unknown numbers (proto3 enums are open) map
    /// to `.unspecified`.
    public init(wireValue: Int32) {
        self = RunStatus(rawValue: wireValue) ?? .unspecified
    }

    public var description: String { name }
}
