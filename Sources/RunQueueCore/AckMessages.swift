/// The `Ack` call.
public struct AckRequest: Sendable, Equatable {
    public var runID: String
    public var environmentID: String
    /// The optional fence: nil = not sent; 0 is a real value.
    public var attempt: UInt32?

    public init(
        runID: String = "",
        environmentID: String = "",
        attempt: UInt32? = nil
    ) {
        self.runID = runID
        self.environmentID = environmentID
        self.attempt = attempt
    }
}

/// The answer to `Ack`.
public struct AckResponse: Sendable, Equatable {
    /// False: the run was not in flight.
    public var acked: Bool

    public init(acked: Bool = false) {
        self.acked = acked
    }
}
