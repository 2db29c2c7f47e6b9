/// The `Dequeue` call.
public struct DequeueRequest: Sendable, Equatable {
    public var workerQueue: String
    /// 1...1000.
    public var maxRuns: UInt32
    /// Long-poll time, 0...30000 ms.
    public var waitMs: UInt32
    /// 0 = server default, else 1000...86400000 ms.
    public var leaseMs: UInt32

    public init(
        workerQueue: String = "",
        maxRuns: UInt32 = 0,
        waitMs: UInt32 = 0,
        leaseMs: UInt32 = 0
    ) {
        self.workerQueue = workerQueue
        self.maxRuns = maxRuns
        self.waitMs = waitMs
        self.leaseMs = leaseMs
    }
}

/// The answer to `Dequeue`.
public struct DequeueResponse: Sendable, Equatable {
    public var messages: [RunMessage]

    public init(messages: [RunMessage] = []) {
        self.messages = messages
    }
}
