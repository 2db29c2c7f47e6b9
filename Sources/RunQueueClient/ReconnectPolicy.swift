// ReconnectPolicy: how long a client waits before its next connection attempt.
//
// After a connection that was up drops, the first attempt is immediate (the
// usual cause is a server restart, and a restarted server answers at once).
// Each failed attempt then doubles the wait from `initialMs` up to `maxMs`,
// with "equal jitter": the delay is drawn from [d/2, d), so the many clients
// of one restarted server do not retry in lockstep. A successful connect
// starts over. The random value is injected, so the policy is a pure function.

import RunQueueCore

/// Reconnect backoff with jitter; pure (the random value is a parameter).
public struct ReconnectPolicy: Sendable, Equatable {
    /// The wait after the first failed attempt, in milliseconds.
    public var initialMs: UInt64
    /// The longest wait between attempts, in milliseconds.
    public var maxMs: UInt64

    public init(initialMs: UInt64 = 50, maxMs: UInt64 = 5_000) {
        self.initialMs = max(initialMs, 1)
        self.maxMs = max(maxMs, self.initialMs)
    }

    /// The wait before the next attempt after `failures` failed attempts in a
    /// row (0 = none: attempt now). `random` in [0, 1) picks within the jitter
    /// window; values outside it are clamped.
    public func delayMs(failures: Int, random: Double) -> UInt64 {
        ExponentialBackoff(initialMs: initialMs, maxMs: maxMs).delayMs(step: UInt32(clamping: max(0, failures)), random: random)
    }
}
