// TTL: a parsed, positive time-to-live.
//
// What: how long a queued run may wait, counted from when it is due
// (docs/expiry.md). Built by `TTLParser` from the `ttl` string, or from a
// whole number of seconds. "No TTL" is `nil`, never a zero TTL.
//
// Invariants:
// - 1 s <= milliseconds <= TTLParser.maxMilliseconds (100 years), and a whole
//   number of seconds (no TTL unit is finer than a second).
// - `description` is canonical (largest unit first, zero units left out, `h`
//   for hours) and parses back to the same value: `TTLParser.parse(t.description) == t`.

/// A time-to-live of at least one second and at most 100 years, in whole seconds.
public struct TTL: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The duration in milliseconds (a multiple of 1000).
    public let milliseconds: Int64

    /// A TTL of `seconds`; nil when not in 1...(100 years).
    public init?(seconds: Int64) {
        guard seconds >= 1, seconds <= TTLParser.maxMilliseconds / 1000 else { return nil }
        self.milliseconds = seconds * 1000
    }

    /// For the parser, which has already checked the range.
    init(validatedMilliseconds: Int64) {
        precondition(validatedMilliseconds > 0 && validatedMilliseconds <= TTLParser.maxMilliseconds
            && validatedMilliseconds % 1000 == 0, "TTL out of range: \(validatedMilliseconds) ms")
        self.milliseconds = validatedMilliseconds
    }

    /// Parses a TTL string; nil for no TTL. Same as `TTLParser.parse`.
    public static func parse(_ text: String, field: String = "ttl") throws(TTLError) -> TTL? {
        try TTLParser.parse(text, field: field)
    }

    public static func < (lhs: TTL, rhs: TTL) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// Canonical form, e.g. `1w2d3h4m5s`, `90s` becomes `1m30s`.
    public var description: String {
        var rest = milliseconds
        var out = ""
        for unit in TTLUnit.descending {
            let count = rest / unit.milliseconds
            rest %= unit.milliseconds
            if count > 0 { out += "\(count)\(unit.symbol)" }
        }
        return out
    }
}
