/// The `Nack` call.
public struct NackRequest: Sendable, Equatable {
    public var runID: String
    public var environmentID: String
    /// Unix milliseconds; 0 = backoff.
    public var retryAtMs: Int64
    public var keepAttempt: Bool
    /// The optional fence: nil = not sent; 0 is a real value.
    public var attempt: UInt32?

    public init(
        runID: String = "",
        environmentID: String = "",
        retryAtMs: Int64 = 0,
        keepAttempt: Bool = false,
        attempt: UInt32? = nil
    ) {
        self.runID = runID
        self.environmentID = environmentID
        self.retryAtMs = retryAtMs
        self.keepAttempt = keepAttempt
        self.attempt = attempt
    }
}

/// The answer to `Nack`.
public struct NackResponse: Sendable, Equatable {
    public var requeued: Bool
    /// The attempt the run now has.
    public var attempt: UInt32
    public var deadLettered: Bool

    public init(
        requeued: Bool = false,
        attempt: UInt32 = 0,
        deadLettered: Bool = false
    ) {
        self.requeued = requeued
        self.attempt = attempt
        self.deadLettered = deadLettered
    }
}
