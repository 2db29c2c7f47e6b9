/// The `Cancel` call: ends a call in progress on the same connection.
public struct CancelRequest: Sendable, Equatable {
    public var targetCallID: UInt64

    public init(targetCallID: UInt64 = 0) {
        self.targetCallID = targetCallID
    }
}

/// The answer to `Cancel`.
public struct CancelResponse: Sendable, Equatable {
    /// False: no such call in progress on this connection.
    public var cancelled: Bool

    public init(cancelled: Bool = false) {
        self.cancelled = cancelled
    }
}
