import RunQueueCore
import RunQueueExpiry
import Testing

private let second: Int64 = 1000
private let minute: Int64 = 60 * second
private let hour: Int64 = 60 * minute
private let day: Int64 = 24 * hour
private let week: Int64 = 7 * day

@Suite struct TTLParserTests {
    private static let accepted: [(text: String, ms: Int64)] = [
        ("90s", 90 * second),
        ("1s", second),
        ("5m", 5 * minute),
        ("1h", hour),
        ("1hr", hour),
        ("2d", 2 * day),
        ("1w", week),
        ("1h30m", hour + 30 * minute),
        ("1hr30m", hour + 30 * minute),
        ("10m", 10 * minute),
        ("14d", 14 * day),
        ("1w2d3h4m5s", week + 2 * day + 3 * hour + 4 * minute + 5 * second),
        ("1w2d3hr4m5s", week + 2 * day + 3 * hour + 4 * minute + 5 * second),
        ("30m1h", hour + 30 * minute),  // order is free
        ("5s4m3h2d1w", week + 2 * day + 3 * hour + 4 * minute + 5 * second),
        ("0h30m", 30 * minute),  // a zero group is fine when the total is not zero
        ("01h", hour),  // leading zeros
        ("3600", 3600 * second),  // whole seconds
        ("1", second),
        ("007", 7 * second),
        ("120m", 120 * minute),  // no carrying limit per unit
        ("5200w", 5200 * week),  // ~99.7 years: under the maximum
        ("36500d", 36_500 * day),  // exactly the maximum
        ("3153600000", 36_500 * day),  // the maximum in seconds
    ]

    @Test(arguments: accepted)
    func acceptsDurations(text: String, ms: Int64) throws {
        #expect(try TTLParser.milliseconds(text) == ms)
        #expect(try TTLParser.parse(text)?.milliseconds == ms)
    }

    @Test(arguments: ["", "0", "0s", "00", "0m", "0h0m", "0w0d0h0m0s", "000000"])
    func readsEmptyAndAllZeroDurationsAsNoTTL(text: String) throws {
        #expect(try TTLParser.milliseconds(text) == nil)
        #expect(try TTLParser.parse(text) == nil)
    }

    @Test(arguments: [
        // spaces
        " 1h", "1h ", "1 h", "1h 30m", "10 m", "\t5s", "5s\n",
        // signs
        "-5s", "+5s", "-1", "+60", "1h-30m",
        // fractions and other punctuation
        "1.5h", "0.5", "1,5h", "1_000s", "1h,30m",
        // a group without digits, a group without a unit
        "h", "s", "hr", "1h30", "30m1", "h1",
        // non-ASCII digits and letters
        "٣s", "1ｈ", "5秒",
    ])
    func rejectsMalformedStrings(text: String) {
        #expect(throws: TTLError.self) { try TTLParser.milliseconds(text) }
        #expect(reason(text) == .notADuration, "\(text)")
    }

    @Test(arguments: [
        ("5ms", "ms"), ("1y", "y"), ("10min", "min"), ("2hrs", "hrs"), ("1H", "H"), ("1M", "M"),
        ("3D", "D"), ("1W", "W"), ("5S", "S"), ("1Hr", "Hr"), ("1h5sec", "sec"), ("0ms", "ms"), ("2x", "x"),
        ("1mo", "mo"), ("1hh", "hh"),
    ])
    func rejectsUnknownAndUppercaseUnits(text: String, unit: String) {
        #expect(reason(text) == .unknownUnit(unit), "\(text)")
    }

    @Test(arguments: [
        ("1h1hr", "h"), ("1hr1h", "h"), ("1h1h", "h"), ("1m1m", "m"), ("1s2s", "s"), ("0s0s", "s"),
        ("1d2h3d", "d"), ("1w1w", "w"), ("1h30m1h", "h"),
    ])
    func rejectsRepeatedUnits(text: String, unit: String) {
        #expect(reason(text) == .repeatedUnit(unit), "\(text)")
    }

    @Test(arguments: [
        "36500d1s", "5215w", "3153600001", "99999999999999999999", "99999999999999999999s",
        "9223372036854775807s", "9223372036854775807", "1000000000000w", "5214w3d",
    ])
    func rejectsDurationsOverOneHundredYears(text: String) {
        #expect(reason(text) == .tooLarge, "\(text)")
    }

    @Test func rejectsStringsLongerThanOneHundredBytes() throws {
        let exactly100 = String(repeating: "0", count: 99) + "s"
        #expect(try TTLParser.milliseconds(exactly100) == nil)
        let padded100 = String(repeating: "0", count: 97) + "1h"  // 99 bytes, still fine
        #expect(try TTLParser.milliseconds(padded100) == hour)
        let long = String(repeating: "0", count: 100) + "s"
        #expect(reason(long) == .tooLong(bytes: 101))
        // The limit counts UTF-8 bytes, not characters: 34 × 3-byte characters.
        #expect(reason(String(repeating: "秒", count: 34)) == .tooLong(bytes: 102))
    }

    @Test func namesTheFieldAndSaysWhatIsAccepted() {
        #expect(message("10 m") == #"ttl "10 m" is not a duration: use groups like 90s, 1h30m, 2d (units w d h hr m s) or whole seconds"#)
        #expect(message("5ms") == #"ttl "5ms" uses unit "ms": units w d h hr m s (lowercase) are allowed"#)
        #expect(message("1h1hr") == #"ttl "1h1hr" gives the unit h more than once (h and hr are the same unit); give each unit once"#)
        #expect(message("1m1m") == #"ttl "1m1m" gives the unit m more than once; give each unit once"#)
        #expect(message("5215w") == #"ttl "5215w" is longer than the maximum of 36500d (100 years)"#)
        #expect(message(String(repeating: "1", count: 120)) == "ttl is 120 bytes long; at most 100 are allowed")
    }

    @Test func escapesControlCharactersAndQuotesInMessages() {
        #expect(message("1\u{1}h") == #"ttl "1\u{1}h" is not a duration: use groups like 90s, 1h30m, 2d (units w d h hr m s) or whole seconds"#)
        #expect(message("\"1h\"")?.hasPrefix(#"ttl "\"1h\"" is not"#) == true)
    }

    @Test func mapsToInvalidArgumentAndUsesTheGivenFieldName() throws {
        do {
            _ = try TTLParser.milliseconds("soon", field: "RUN_ENGINE_DEFAULT_MAX_TTL")
            Issue.record("parsed")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.field == "RUN_ENGINE_DEFAULT_MAX_TTL")
            #expect(error.message.hasPrefix(#"RUN_ENGINE_DEFAULT_MAX_TTL "soon" is not a duration"#))
        }
    }

    private func reason(_ text: String) -> TTLError.Reason? {
        do {
            _ = try TTLParser.milliseconds(text)
            return nil
        } catch {
            return error.reason
        }
    }

    private func message(_ text: String) -> String? {
        do {
            _ = try TTLParser.milliseconds(text)
            return nil
        } catch {
            #expect(error.field == "ttl")
            return error.message
        }
    }
}

@Suite struct TTLValueTests {
    @Test(arguments: [
        ("90s", "1m30s"), ("1h30m", "1h30m"), ("30m1hr", "1h30m"), ("3600", "1h"), ("1w2d3h4m5s", "1w2d3h4m5s"),
        ("8d", "1w1d"), ("36500d", "5214w2d"), ("1", "1s"),
    ])
    func printsACanonicalFormThatParsesBack(text: String, canonical: String) throws {
        let ttl = try #require(try TTL.parse(text))
        #expect(ttl.description == canonical)
        #expect(try TTL.parse(ttl.description) == ttl)
    }

    @Test func buildsFromWholeSecondsInRange() {
        #expect(TTL(seconds: 90)?.milliseconds == 90_000)
        #expect(TTL(seconds: 0) == nil)
        #expect(TTL(seconds: -1) == nil)
        #expect(TTL(seconds: TTLParser.maxMilliseconds / 1000)?.milliseconds == TTLParser.maxMilliseconds)
        #expect(TTL(seconds: TTLParser.maxMilliseconds / 1000 + 1) == nil)
        #expect(TTL(seconds: .max) == nil)
    }

    @Test func ordersByDuration() throws {
        let short = try #require(try TTL.parse("59m"))
        let long = try #require(try TTL.parse("1h"))
        #expect(short < long)
    }
}

@Suite struct ExpiryPolicyTests {
    private let now: Int64 = 1_764_000_000_000

    @Test func deadlineIsEnqueueTimePlusTTL() {
        let policy = ExpiryPolicy()
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: 10 * minute) == now + 10 * minute)
        // A timestamp in the past does not shorten the TTL.
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: now - hour, ttlMs: 10 * minute) == now + 10 * minute)
    }

    @Test func delayedRunsTTLStartsWhenItComesDue() {
        let policy = ExpiryPolicy()
        let due = now + 2 * hour
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: due, ttlMs: 10 * minute) == due + 10 * minute)
    }

    @Test func runWithoutTTLNeverExpiresWithoutAMaximum() {
        let policy = ExpiryPolicy()
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: nil) == nil)
        #expect(policy.effectiveTTLMs(nil) == nil)
    }

    @Test func maximumClampsLongerTTLs() throws {
        let policy = try ExpiryPolicy(defaultMaxTTL: "14d")
        #expect(policy.defaultMaxTTLMs == 14 * day)
        #expect(policy.effectiveTTLMs(30 * day) == 14 * day)
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: 30 * day) == now + 14 * day)
    }

    @Test func maximumLeavesShorterTTLsAlone() throws {
        let policy = try ExpiryPolicy(defaultMaxTTL: "14d")
        #expect(policy.effectiveTTLMs(hour) == hour)
        #expect(policy.effectiveTTLMs(14 * day) == 14 * day)
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: hour) == now + hour)
    }

    @Test func maximumAppliesToRunsWithoutTTL() throws {
        let policy = try ExpiryPolicy(defaultMaxTTL: "14d")
        #expect(policy.effectiveTTLMs(nil) == 14 * day)
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: nil) == now + 14 * day)
        let due = now + day
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: due, ttlMs: nil) == due + 14 * day)
    }

    @Test func emptyOrZeroMaximumMeansNone() throws {
        #expect(try ExpiryPolicy(defaultMaxTTL: nil).defaultMaxTTLMs == nil)
        #expect(try ExpiryPolicy(defaultMaxTTL: "").defaultMaxTTLMs == nil)
        #expect(try ExpiryPolicy(defaultMaxTTL: "0").defaultMaxTTLMs == nil)
        #expect(ExpiryPolicy(defaultMaxTTLMs: 0).defaultMaxTTLMs == nil)
        #expect(ExpiryPolicy(defaultMaxTTLMs: -5).defaultMaxTTLMs == nil)
    }

    @Test func unparsableMaximumIsAnErrorNamingTheSetting() {
        #expect(throws: TTLError.self) { try ExpiryPolicy(defaultMaxTTL: "14 days") }
        do {
            _ = try ExpiryPolicy(defaultMaxTTL: "2y")
        } catch {
            #expect(error.field == "RUN_ENGINE_DEFAULT_MAX_TTL")
            #expect(error.reason == .unknownUnit("y"))
        }
    }

    @Test func nonPositiveTTLMeansNone() {
        let policy = ExpiryPolicy(defaultMaxTTLMs: hour)
        #expect(policy.effectiveTTLMs(0) == hour)
        #expect(ExpiryPolicy().effectiveTTLMs(-1) == nil)
    }

    @Test func saturatesInsteadOfOverflowing() {
        let policy = ExpiryPolicy()
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: .max - 5, ttlMs: hour) == .max)
    }

    @Test func parsedStringFeedsThePolicy() throws {
        let policy = try ExpiryPolicy(defaultMaxTTL: "1d")
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: try TTLParser.milliseconds("1h30m")) == now + hour + 30 * minute)
        #expect(policy.expiresAt(enqueueTimeMs: now, timestampMs: 0, ttlMs: try TTLParser.milliseconds("0")) == now + day)
    }
}
