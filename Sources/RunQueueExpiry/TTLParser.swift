// TTLParser: the strict parser for TTL strings (`ttl` on Enqueue, and the
// `RUN_ENGINE_DEFAULT_MAX_TTL` setting).
//
// Grammar (docs/expiry.md; docs/protocol.md, "Field rules"):
//     ttl      = "" | seconds | group+
//     seconds  = digit+                       whole seconds, e.g. "3600"
//     group    = digit+ unit
//     unit     = "w" | "d" | "hr" | "h" | "m" | "s"    (m = minutes, hr = h)
// The result is milliseconds (Int64), or nil for "no TTL".
//
// Decisions where the spec is silent (each pinned by a test in TTLTests):
// - Zero: "", "0", "0s" are no TTL as the spec says, and so is every other
//   well-formed duration that totals zero ("00", "0h0m"): a zero TTL would
//   expire a run at the moment it is enqueued, which nobody means. The rules
//   below are checked first, so "0ms" and "0s0s" are still errors.
// - Order is free ("30m1h" = 1h30m), as in trigger.dev's parser: the spec
//   rejects repeats but not order, and clients written for trigger.dev send
//   either order. Repeats are rejected, so order cannot be ambiguous.
// - Units are lowercase only ("1H" is an error), as in trigger.dev's parser.
// - Leading zeros are fine ("01h", "007"); digits are ASCII 0-9 only.
// - The length limit (100) counts UTF-8 bytes; longer input is rejected
//   before any other check and is not echoed in the error message.
// - Maximum: 100 years = 36500 days = 3_153_600_000_000 ms; anything longer is
//   an error rather than a silent clamp (the caller asked for something we
//   would not honour). It also keeps now + ttl far below 2^53, so deadlines
//   stay exact as Lua numbers (doubles) in Redis scores.
//
// Deliberate differences from trigger.dev's run queue: invalid strings are
// errors (trigger.dev ignores them, or silently applies the platform max), and
// repeated units are errors (trigger.dev counts only the first of each unit,
// so "1h1h" was 1 h).

/// Parses TTL strings into milliseconds. Pure: no clock, no configuration.
public enum TTLParser {
    /// Longest accepted input, in UTF-8 bytes (as in trigger.dev's parser).
    public static let maxInputBytes = 100
    /// Longest accepted TTL: 100 years of 365 days, in milliseconds.
    public static let maxMilliseconds: Int64 = 36_500 * 86_400_000

    /// The TTL in `text`, or nil for no TTL ("", "0", "0s", any all-zero duration).
    /// - Parameter field: the name the error message uses (`ttl` on the wire).
    public static func parse(_ text: String, field: String = "ttl") throws(TTLError) -> TTL? {
        guard let ms = try milliseconds(text, field: field) else { return nil }
        return TTL(validatedMilliseconds: ms)
    }

    /// The TTL in `text` in milliseconds (1...maxMilliseconds), or nil for no TTL.
    public static func milliseconds(_ text: String, field: String = "ttl") throws(TTLError) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxInputBytes else {
            throw TTLError(field: field, input: "", reason: .tooLong(bytes: bytes.count))
        }
        func fail(_ reason: TTLError.Reason) -> TTLError { TTLError(field: field, input: text, reason: reason) }

        var total: Int64 = 0
        if bytes.allSatisfy(isDigit) {
            // Whole seconds (also the empty string, which totals 0).
            guard let seconds = number(bytes[...]) else { throw fail(.tooLarge) }
            guard let sum = add(0, seconds, times: TTLUnit.second.milliseconds) else { throw fail(.tooLarge) }
            total = sum
        } else {
            var seen = Set<TTLUnit>()
            var i = 0
            while i < bytes.count {
                let digitsStart = i
                while i < bytes.count, isDigit(bytes[i]) { i += 1 }
                let unitStart = i
                while i < bytes.count, isLetter(bytes[i]) { i += 1 }
                // A group needs digits then a unit; anything else (space, sign,
                // '.', non-ASCII, a unit without digits, digits at the end) stops here.
                guard unitStart > digitsStart, i > unitStart else { throw fail(.notADuration) }
                let unitText = String(decoding: bytes[unitStart..<i], as: UTF8.self)
                guard let unit = TTLUnit(symbol: unitText) else { throw fail(.unknownUnit(unitText)) }
                guard seen.insert(unit).inserted else { throw fail(.repeatedUnit(unit.symbol)) }
                guard let count = number(bytes[digitsStart..<unitStart]) else { throw fail(.tooLarge) }
                guard let sum = add(total, count, times: unit.milliseconds) else { throw fail(.tooLarge) }
                total = sum
            }
        }
        return total == 0 ? nil : total
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// The decimal value of ASCII digits, nil when it does not fit Int64.
    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        for digit in digits {
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = next
        }
        return value
    }

    /// total + count × unitMs, nil past `maxMilliseconds` (or Int64).
    private static func add(_ total: Int64, _ count: Int64, times unitMs: Int64) -> Int64? {
        let (product, o1) = count.multipliedReportingOverflow(by: unitMs)
        let (sum, o2) = total.addingReportingOverflow(product)
        guard !o1, !o2, sum <= maxMilliseconds else { return nil }
        return sum
    }
}
