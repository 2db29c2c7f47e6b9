/// The `SubscribeExpiry` call: opens a stream of `ExpiryEvent`s.
public struct SubscribeExpiryRequest: Sendable, Equatable {
    public var filter: ExpiryFilter
    /// Cursor; 0 = live (unless `replay`).
    public var resumeAfter: UInt64
    /// Start at the oldest retained event.
    public var replay: Bool

    public init(
        filter: ExpiryFilter = ExpiryFilter(),
        resumeAfter: UInt64 = 0,
        replay: Bool = false
    ) {
        self.filter = filter
        self.resumeAfter = resumeAfter
        self.replay = replay
    }
}

/// The first response of a `SubscribeExpiry` stream.
public struct SubscribeExpiryResponse: Sendable, Equatable {
    /// The newest cursor when the subscription started.
    public var liveFromCursor: UInt64

    public init(liveFromCursor: UInt64 = 0) {
        self.liveFromCursor = liveFromCursor
    }
}
