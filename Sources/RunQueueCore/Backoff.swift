// NackBackoff: how long a nacked run waits before it is due again.
//
// What (docs/queue-design.md, "Leases, failures, dead letters"; used when
// `retry_at_ms` is 0):
//     delay = min(maxMs, r × minMs × factor^(attempt - 1)),  r = 1 + random, r in [1, 2)
// with defaults factor 2, min 1 s, max 1 h, max_attempts 12. `attempt` is the
// run's attempt after the failure is counted (the first failure is attempt 1).
// A lapsed lease is not backed off (it is due again at once); only nacks are.
//
// Invariants:
// - min(minMs, maxMs) <= delayMs(...) <= maxMs for every attempt and random
//   value, never negative. maxMs below minMs is not an error: the formula
//   then gives maxMs every time (so a configuration read key by key never
//   passes through a state that traps).
// - No overflow for any attempt up to UInt32.max: the growth is computed in
//   Double, where factor^(attempt - 1) becomes +infinity at worst, and the
//   min() with maxMs happens before converting back to Int64.
// - The randomness is injected (`random` in [0, 1)), so the function is pure
//   and tests are deterministic; out-of-range or NaN randoms are clamped, so a
//   bad random source cannot produce a delay outside [minMs, maxMs].
// Why jitter multiplies by [1, 2) instead of "full jitter" [0, 1): the delay
// never drops below the configured step, and runs nacked together still spread
// over a window as wide as the step itself.

/// Exponential nack backoff with multiplicative jitter, and the dead-letter threshold.
public struct NackBackoff: Sendable, Equatable {
    /// Growth per attempt (>= 1).
    public let factor: Double
    /// Delay step of the first attempt, in milliseconds (>= 0).
    public let minMs: Int64
    /// Upper bound of every delay, in milliseconds (>= 0; below minMs every delay is maxMs).
    public let maxMs: Int64
    /// The failure that brings a run's attempt to this value dead-letters it (>= 1).
    public let maxAttempts: UInt32

    /// Defaults (README.md "Configuration"): factor 2, 1 s, 1 h, 12 attempts.
    /// The values are configuration (range-checked where they are read), so a
    /// NaN or shrinking factor, a negative bound or zero attempts is a
    /// programming error and traps.
    public init(factor: Double = 2, minMs: Int64 = 1000, maxMs: Int64 = 3_600_000, maxAttempts: UInt32 = 12) {
        precondition(factor.isFinite && factor >= 1, "backoff factor must be finite and >= 1: \(factor)")
        precondition(minMs >= 0 && maxMs >= 0, "backoff bounds must not be negative: \(minMs), \(maxMs)")
        precondition(maxAttempts >= 1, "max attempts must be at least 1")
        self.factor = factor
        self.minMs = minMs
        self.maxMs = maxMs
        self.maxAttempts = maxAttempts
    }

    /// The delay in milliseconds before a run nacked at `attempt` is due again.
    ///
    /// - Parameters:
    ///   - attempt: the run's attempt counting this failure, 1 for the first;
    ///     0 is treated as 1 (a nack with `keep_attempt` on a never-failed run).
    ///   - random: a uniform value in [0, 1); the jitter is r = 1 + random.
    ///     Values outside [0, 1) are clamped into it, NaN counts as 0.
    public func delayMs(attempt: UInt32, random: Double) -> Int64 {
        guard minMs > 0 else { return 0 }  // 0 × infinity would be NaN below
        // 1 + random can round up to 2.0 for random just below 1; keep r < 2.
        let jitter = min(1 + Self.clampUnit(random), 2.0.nextDown)
        // May be +infinity for huge attempts; the comparison below caps it.
        let raw = jitter * ExponentialBackoff.growth(Double(minMs), factor: factor, step: max(attempt, 1))
        // Double(maxMs) may round up (Int64.max becomes 2^63), so compare in
        // Double and return maxMs itself: the conversion below then only sees
        // values < 2^63. raw is never NaN (factor finite >= 1, jitter in [1, 2),
        // minMs > 0).
        guard raw < Double(maxMs) else { return maxMs }
        return min(maxMs, max(minMs, Int64(raw.rounded(.down))))
    }

    /// Whether a failure that brings the run's attempt to `attempt` dead-letters it
    /// instead of requeueing it.
    public func deadLetters(attempt: UInt32) -> Bool {
        attempt >= maxAttempts
    }

    /// Clamps a random value into [0, 1); NaN becomes 0.
    private static func clampUnit(_ value: Double) -> Double {
        guard value > 0 else { return 0 }  // also catches NaN
        return min(value, 1.0.nextDown)
    }
}

/// Capped exponential growth: `initialMs × factor^(step - 1)`, at most
/// `maxMs`; step 0 (nothing failed yet) is 0. The one formula behind every
/// wait of the project: the drivers' reconnects (`ReconnectBackoff`), the
/// client's (`ReconnectPolicy`, with jitter) and nacks (`NackBackoff`).
/// Computed in Double and capped before converting back, so no step, factor
/// or bound traps.
public struct ExponentialBackoff: Sendable, Equatable {
    public let initialMs: UInt64
    public let maxMs: UInt64
    /// Growth per step (>= 1).
    public let factor: Double

    /// `maxMs` below `initialMs` is raised to it; a factor below 1 (or NaN) counts as 1.
    public init(initialMs: UInt64, maxMs: UInt64, factor: Double = 2) {
        self.initialMs = initialMs
        self.maxMs = max(maxMs, initialMs)
        self.factor = factor.isFinite && factor >= 1 ? factor : 1
    }

    /// The wait at `step` (1 = after the first failure).
    public func delayMs(step: UInt32) -> UInt64 {
        guard step > 0 else { return 0 }
        let raw = Self.growth(Double(initialMs), factor: factor, step: step)
        // Double(maxMs) may round up (UInt64.max becomes 2^64): compare in Double, return maxMs itself.
        guard raw < Double(maxMs) else { return maxMs }
        return min(maxMs, UInt64(raw.rounded(.down)))
    }

    /// The wait at `step` with "equal jitter": drawn from [d/2, d) by
    /// `random` in [0, 1) (clamped; NaN counts as 0), so many clients of one
    /// restarted server do not retry in lockstep.
    public func delayMs(step: UInt32, random: Double) -> UInt64 {
        let ceiling = delayMs(step: step)
        let unit = random > 0 ? min(random, 1.0.nextDown) : 0
        let half = ceiling / 2
        return half + UInt64(Double(ceiling - half) * unit)
    }

    /// `initial × factor^(step - 1)` for step >= 1, by squaring (no
    /// Foundation `pow`); +infinity once it overflows.
    static func growth(_ initial: Double, factor: Double, step: UInt32) -> Double {
        var result = initial
        var square = factor
        var remaining = step - 1
        while remaining > 0 {
            if remaining & 1 == 1 { result *= square }
            remaining >>= 1
            if remaining > 0 { square *= square }
            if result == .infinity { return .infinity }
        }
        return result
    }
}

/// A reconnecting connection's backoff: after a connection that was up
/// drops, the first attempt is immediate (the usual cause is a restart, and
/// a restarted server answers at once); each failed attempt then doubles the
/// wait from `initialMs` up to `maxMs`; a successful connect starts over. No
/// jitter: a process holds a handful of connections, not a herd.
public struct ReconnectBackoff: Sendable, Equatable {
    public let schedule: ExponentialBackoff
    /// Failed attempts since the last successful connect.
    public private(set) var failures: UInt32 = 0

    public init(initialMs: UInt64, maxMs: UInt64) {
        schedule = ExponentialBackoff(initialMs: initialMs, maxMs: maxMs)
    }

    /// The wait before the next attempt.
    public var delayMs: UInt64 { schedule.delayMs(step: failures) }

    public mutating func recordFailure() { failures = failures == .max ? .max : failures + 1 }
    public mutating func recordSuccess() { failures = 0 }
}
