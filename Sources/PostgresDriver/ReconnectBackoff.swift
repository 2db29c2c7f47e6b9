/// How long to wait before the next connection attempt.
///
/// After a connection that was up drops, the first attempt is immediate (the
/// usual cause is a server restart or a killed backend, and a working server
/// answers at once). Each failed attempt then doubles the wait, from `initialMs`
/// up to `maxMs`. A successful connect starts over. No jitter: each server
/// holds a handful of connections, so a synchronised retry is a few dozen
/// connects, not a storm.
public struct ReconnectBackoff: Sendable, Equatable {
    public let initialMs: UInt64
    public let maxMs: UInt64
    /// Failed attempts since the last successful connect.
    public private(set) var failures = 0

    public init(initialMs: UInt64, maxMs: UInt64) {
        self.initialMs = initialMs
        self.maxMs = max(maxMs, initialMs)
    }

    /// The wait before the next attempt.
    public var delayMs: UInt64 {
        guard failures > 0 else { return 0 }
        let shift = min(failures - 1, 32)
        let (scaled, overflow) = initialMs.multipliedReportingOverflow(by: 1 << UInt64(shift))
        return overflow ? maxMs : min(scaled, maxMs)
    }

    public mutating func recordFailure() { failures += 1 }
    public mutating func recordSuccess() { failures = 0 }
}
