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
        let raw = jitter * Double(minMs) * Self.power(factor, max(attempt, 1) - 1)
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

    /// base^exponent for base >= 1 and a whole exponent >= 0, by squaring
    /// (no Foundation `pow`). Saturates to +infinity.
    private static func power(_ base: Double, _ exponent: UInt32) -> Double {
        var result = 1.0
        var square = base
        var remaining = exponent
        while remaining > 0 {
            if remaining & 1 == 1 { result *= square }
            remaining >>= 1
            if remaining > 0 { square *= square }
            if result == .infinity { return .infinity }
        }
        return result
    }
}
