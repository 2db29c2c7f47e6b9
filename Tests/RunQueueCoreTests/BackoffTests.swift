import RunQueueCore
import Testing

@Suite struct BackoffTests {
    private let backoff = NackBackoff()

    @Test func defaultsMatchTheSpec() {
        #expect(backoff.factor == 2)
        #expect(backoff.minMs == 1000)
        #expect(backoff.maxMs == 3_600_000)
        #expect(backoff.maxAttempts == 12)
    }

    @Test(arguments: [
        // (attempt, random, delay ms): r × 1000 × 2^(attempt-1), r = 1 + random
        (UInt32(1), 0.0, Int64(1000)), (1, 0.5, 1500), (2, 0.0, 2000), (2, 0.25, 2500),
        (3, 0.0, 4000), (5, 0.5, 24_000), (11, 0.0, 1_024_000), (12, 0.0, 2_048_000),
        (12, 0.75, 3_584_000), (13, 0.0, 3_600_000), (12, 0.9, 3_600_000),
    ])
    func growsExponentiallyWithJitter(attempt: UInt32, random: Double, delay: Int64) {
        #expect(backoff.delayMs(attempt: attempt, random: random) == delay)
    }

    @Test func jitterStaysBelowTwiceTheStep() {
        let almostOne = 1.0.nextDown
        #expect(backoff.delayMs(attempt: 1, random: almostOne) == 1999)
        #expect(backoff.delayMs(attempt: 3, random: almostOne) == 7999)
    }

    @Test func clampsOutOfRangeRandomValues() {
        #expect(backoff.delayMs(attempt: 1, random: -3) == 1000)
        #expect(backoff.delayMs(attempt: 1, random: .nan) == 1000)
        #expect(backoff.delayMs(attempt: 1, random: 1) == 1999)
        #expect(backoff.delayMs(attempt: 1, random: .infinity) == 1999)
    }

    @Test func treatsAttemptZeroAsTheFirstAttempt() {
        #expect(backoff.delayMs(attempt: 0, random: 0) == 1000)
    }

    @Test func capsHugeAttemptsAtTheMaximumWithoutOverflow() {
        for attempt: UInt32 in [40, 64, 1024, 1_000_000, .max - 1, .max] {
            #expect(backoff.delayMs(attempt: attempt, random: 0.999) == 3_600_000, "attempt \(attempt)")
        }
        let wide = NackBackoff(factor: 10, minMs: 1, maxMs: .max)
        #expect(wide.delayMs(attempt: .max, random: 0.5) == .max)
    }

    @Test func neverLeavesTheConfiguredBounds() {
        let configs = [NackBackoff(), NackBackoff(factor: 1, minMs: 500, maxMs: 500), NackBackoff(factor: 3.5, minMs: 7, maxMs: 10_000)]
        for config in configs {
            for attempt: UInt32 in 0...80 {
                for random in stride(from: 0.0, to: 1.0, by: 0.125) {
                    let delay = config.delayMs(attempt: attempt, random: random)
                    #expect(delay >= config.minMs && delay <= config.maxMs)
                }
            }
        }
    }

    @Test func isMonotonicInTheAttemptForAFixedRandom() {
        var previous: Int64 = 0
        for attempt: UInt32 in 1...40 {
            let delay = backoff.delayMs(attempt: attempt, random: 0.3)
            #expect(delay >= previous)
            previous = delay
        }
    }

    @Test func factorOneIsAConstantDelay() {
        let constant = NackBackoff(factor: 1, minMs: 250, maxMs: 10_000)
        #expect(constant.delayMs(attempt: 1, random: 0) == 250)
        #expect(constant.delayMs(attempt: 1000, random: 0) == 250)
    }

    @Test func zeroMinimumMeansNoDelay() {
        let none = NackBackoff(factor: 2, minMs: 0, maxMs: 1000)
        #expect(none.delayMs(attempt: .max, random: 0.5) == 0)
    }

    @Test func maximumBelowMinimumGivesTheMaximumEveryTime() {
        let inverted = NackBackoff(factor: 2, minMs: 10_000, maxMs: 500)
        #expect(inverted.delayMs(attempt: 1, random: 0) == 500)
        #expect(inverted.delayMs(attempt: 30, random: 0.9) == 500)
    }

    @Test func deadLettersTheFailureThatReachesMaxAttempts() {
        #expect(!backoff.deadLetters(attempt: 11))
        #expect(backoff.deadLetters(attempt: 12))
        #expect(backoff.deadLetters(attempt: 13))
    }

    @Test func reconnectsStartImmediateThenDoubleToTheCapAndStartOverAfterASuccess() {
        var backoff = ReconnectBackoff(initialMs: 100, maxMs: 1000)
        #expect(backoff.delayMs == 0)
        var delays: [UInt64] = []
        for _ in 0..<6 {
            backoff.recordFailure()
            delays.append(backoff.delayMs)
        }
        #expect(delays == [100, 200, 400, 800, 1000, 1000])
        for _ in 0..<100 { backoff.recordFailure() }
        #expect(backoff.delayMs == 1000)
        backoff.recordSuccess()
        #expect(backoff.delayMs == 0)
    }

    @Test func exponentialGrowthSaturatesAtItsCapForAnyStepAndBound() {
        let huge = ExponentialBackoff(initialMs: UInt64.max / 2, maxMs: UInt64.max)
        #expect(huge.delayMs(step: 70) == UInt64.max)
        #expect(huge.delayMs(step: .max) == UInt64.max)
        let inverted = ExponentialBackoff(initialMs: 500, maxMs: 10)
        #expect(inverted.delayMs(step: 1) == 500 && inverted.delayMs(step: 9) == 500)
        let flat = ExponentialBackoff(initialMs: 250, maxMs: 10_000, factor: .nan)
        #expect(flat.delayMs(step: 1_000) == 250)
        #expect(ExponentialBackoff(initialMs: 7, maxMs: 100).delayMs(step: 0) == 0)
    }

    @Test func equalJitterStaysInTheUpperHalfOfTheCeiling() {
        let schedule = ExponentialBackoff(initialMs: 50, maxMs: 1000)
        #expect(schedule.delayMs(step: 1, random: 0) == 25)
        #expect(schedule.delayMs(step: 1, random: 0.999) == 49)
        #expect(schedule.delayMs(step: 10, random: 0) == 500)
        #expect(schedule.delayMs(step: 2, random: .nan) == 50)
        #expect(schedule.delayMs(step: 2, random: 7) < 100)
    }
}
