/// The `QueueStats` call.
public struct QueueStatsRequest: Sendable, Equatable {
    public var environmentID: String
    /// Empty = the whole environment.
    public var queue: String
    /// Empty = all keys.
    public var concurrencyKey: String

    public init(
        environmentID: String = "",
        queue: String = "",
        concurrencyKey: String = ""
    ) {
        self.environmentID = environmentID
        self.queue = queue
        self.concurrencyKey = concurrencyKey
    }
}

/// The answer to `QueueStats`.
public struct QueueStatsResponse: Sendable, Equatable {
    /// Queued, not in flight.
    public var length: UInt64
    /// Queued and due.
    public var due: UInt64
    /// Leased.
    public var inFlight: UInt64
    /// Now minus the oldest due time among queued runs; 0 if none.
    public var oldestAgeMs: Int64
    /// The effective cap.
    public var concurrencyLimit: UInt32

    public init(
        length: UInt64 = 0,
        due: UInt64 = 0,
        inFlight: UInt64 = 0,
        oldestAgeMs: Int64 = 0,
        concurrencyLimit: UInt32 = 0
    ) {
        self.length = length
        self.due = due
        self.inFlight = inFlight
        self.oldestAgeMs = oldestAgeMs
        self.concurrencyLimit = concurrencyLimit
    }
}
