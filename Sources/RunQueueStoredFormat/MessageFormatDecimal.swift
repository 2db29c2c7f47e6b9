/// Decimal integers as the stored formats spell them: ASCII digits, no sign
/// (the formats carry only non-negative numbers), no leading zero except "0"
/// itself, so every number has exactly one spelling and a decode + encode
/// round trip is byte-exact.
///
/// Digit strings are checked BEFORE converting: at most
/// `maxDigits` digits, so the value is bounded without overflow arithmetic
/// and, at 15 digits or fewer (< 10^15 < 2^53), exact in a Lua number.
enum MessageFormatDecimal {
    /// At most 15 digits: below 10^15, exact as a double (Lua, Redis scores).
    static let maxTimestampDigits = 15
    /// UInt32.max has 10 digits.
    static let maxAttemptDigits = 10

    /// Appends `value` in decimal, with a leading `-` when negative.
    static func append(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            append(unsigned: 0 &- UInt64(bitPattern: value), to: &out)
        } else {
            append(unsigned: UInt64(value), to: &out)
        }
    }

    static func append(unsigned value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value))
            return
        }
        // UInt64.max has 20 digits; write them backwards on the stack, append once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var i = 20
            var v = value
            while v > 0 {
                i -= 1
                digits[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i..<20]))
        }
    }

    /// The value of a canonical digit string of 1...`maxDigits` digits (at
    /// most 19, so the result fits UInt64), or nil for anything else: empty,
    /// signs, spaces, a leading zero, a non-digit, too many digits.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDigits: Int) -> UInt64? {
        precondition(maxDigits >= 1 && maxDigits <= 19, "maxDigits out of range: \(maxDigits)")
        guard bytes.count >= 1, bytes.count <= maxDigits else { return nil }
        if bytes.count > 1, bytes[0] == UInt8(ascii: "0") { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
