/// Reconnect delays: `minMs` after the first failure, doubling per further
/// failure, capped at `maxMs`; `reset()` after a successful connect. No jitter:
/// a process has a handful of Redis connections, not a thundering herd.
struct RedisBackoff: Sendable, Equatable {
    let minMs: UInt64
    let maxMs: UInt64
    private(set) var failures = 0

    init(minMs: UInt64, maxMs: UInt64) {
        self.minMs = max(minMs, 1)
        self.maxMs = max(maxMs, self.minMs)
    }

    /// The delay before the next attempt; counts one more failure.
    mutating func next() -> UInt64 {
        let shift = UInt64(min(failures, 32))
        failures += 1
        let (scaled, overflow) = minMs.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? maxMs : min(scaled, maxMs)
    }

    mutating func reset() { failures = 0 }
}
