/// The `Heartbeat` call.
public struct HeartbeatRequest: Sendable, Equatable {
    public var runID: String
    public var environmentID: String
    /// 0 = server default.
    public var leaseMs: UInt32
    /// The optional fence: nil = not sent; 0 is a real value.
    public var attempt: UInt32?

    public init(
        runID: String = "",
        environmentID: String = "",
        leaseMs: UInt32 = 0,
        attempt: UInt32? = nil
    ) {
        self.runID = runID
        self.environmentID = environmentID
        self.leaseMs = leaseMs
        self.attempt = attempt
    }
}

/// The answer to `Heartbeat`.
public struct HeartbeatResponse: Sendable, Equatable {
    public var leaseExpiresAtMs: Int64

    public init(leaseExpiresAtMs: Int64 = 0) {
        self.leaseExpiresAtMs = leaseExpiresAtMs
    }
}
