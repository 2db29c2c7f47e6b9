/// The `Redrive` call: requeues a dead-lettered run with attempt 0.
public struct RedriveRequest: Sendable, Equatable {
    public var runID: String
    public var environmentID: String

    public init(
        runID: String = "",
        environmentID: String = ""
    ) {
        self.runID = runID
        self.environmentID = environmentID
    }
}

/// The answer to `Redrive`.
public struct RedriveResponse: Sendable, Equatable {
    public var requeued: Bool

    public init(requeued: Bool = false) {
        self.requeued = requeued
    }
}
