// ExpiryPolicy: when a run's TTL deadline falls, given the platform maximum.
//
// What (docs/expiry.md; docs/protocol.md, "Field rules"):
//     expires_at = max(enqueue time, timestamp_ms) + effective ttl
// so a delayed run's TTL starts when it comes due. `RUN_ENGINE_DEFAULT_MAX_TTL`
// (a TTL string, optional) is both a cap and a default: a longer TTL is
// clamped to it, and a run without a TTL gets it. The clamp shows in
// `expires_at_ms`, so a caller can see it.
//
// Invariants and decisions:
// - Pure: the caller passes the enqueue time (the server clock at the run's
//   first enqueue; the deadline is armed once, never re-armed on nack/lapse).
// - A TTL of 0 or less and a max of 0 or less mean "none" (the parser never
//   returns them; this keeps a hand-built value from arming an instant expiry).
// - An unparsable RUN_ENGINE_DEFAULT_MAX_TTL is a startup error
//   (`init(defaultMaxTTL:)` throws, naming the setting), not "keep the run's
//   TTL" as in trigger.dev's run queue; "" and "0" mean no maximum.
// - The sum saturates at Int64.max instead of trapping: timestamp_ms comes
//   from a peer, and nothing a peer sends may stop the process. (A deadline
//   that far out is never reached; the TTL itself is at most 100 years.)

/// The platform TTL maximum/default and the deadline computation.
public struct ExpiryPolicy: Sendable, Equatable {
    /// The setting that configures `defaultMaxTTLMs`.
    public static let defaultMaxTTLSetting = "RUN_ENGINE_DEFAULT_MAX_TTL"

    /// Platform maximum and default TTL in milliseconds; nil for none.
    public let defaultMaxTTLMs: Int64?

    /// - Parameter defaultMaxTTLMs: the maximum/default TTL; nil, 0 or less for none.
    public init(defaultMaxTTLMs: Int64? = nil) {
        if let ms = defaultMaxTTLMs, ms > 0 { self.defaultMaxTTLMs = ms } else { self.defaultMaxTTLMs = nil }
    }

    /// From the `RUN_ENGINE_DEFAULT_MAX_TTL` string (nil, "" or "0" for none).
    /// Throws a `TTLError` naming the setting when the string does not parse.
    public init(defaultMaxTTL: String?) throws(TTLError) {
        let ms = try defaultMaxTTL.flatMap { text throws(TTLError) in
            try TTLParser.milliseconds(text, field: Self.defaultMaxTTLSetting)
        }
        self.init(defaultMaxTTLMs: ms)
    }

    /// The TTL a run gets: its own, clamped to the maximum; the maximum when it
    /// has none; nil when neither is set.
    public func effectiveTTLMs(_ ttlMs: Int64?) -> Int64? {
        let own = ttlMs.flatMap { $0 > 0 ? $0 : nil }
        switch (own, defaultMaxTTLMs) {
        case let (own?, max?): return min(own, max)
        case let (own?, nil): return own
        case let (nil, max?): return max
        case (nil, nil): return nil
        }
    }

    /// The run's TTL deadline in ms since the epoch, or nil when it never expires.
    /// - Parameters:
    ///   - enqueueTimeMs: the server clock when the run is first enqueued.
    ///   - timestampMs: the run's `timestamp_ms` (its due time; 0 or past = now).
    ///   - ttlMs: the parsed TTL of the request, nil for none.
    public func expiresAt(enqueueTimeMs: Int64, timestampMs: Int64, ttlMs: Int64?) -> Int64? {
        guard let ttl = effectiveTTLMs(ttlMs) else { return nil }
        let start = max(enqueueTimeMs, timestampMs)
        let (deadline, overflow) = start.addingReportingOverflow(ttl)
        return overflow ? Int64.max : deadline
    }
}
