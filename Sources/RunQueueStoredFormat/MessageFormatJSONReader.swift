// MessageFormatJSONReader: a small strict JSON (RFC 8259) cursor for the V2
// decoder.
//
// What: pull-style reading of one JSON text held in a buffer: strings,
// non-negative integers, null, and skipping any other value. The caller (the
// V2 decoder) drives it key by key, so a message is read in one pass and only
// the values we keep become Strings.
//
// Invariants:
// - The whole input is checked to be valid UTF-8 once, up front (no
//   overlongs, no surrogates, nothing above U+10FFFF); after that a string
//   without escapes is materialised with no further checks.
// - Grammar is RFC 8259 exactly: no comments, no trailing commas, no NaN or
//   Infinity, no leading zeros, no raw control bytes inside strings, escapes
//   limited to the nine the RFC lists; a `\u` escape that produces a lone
//   surrogate is an error when the string is materialised.
// - Skipped values nest at most `maxDepth` deep, so a hostile value cannot
//   exhaust the stack.
// - The cursor never reads outside the buffer; every failure is a
//   `MessageFormatError` (`.malformed` for syntax), never a trap.
// Why our own: Foundation's JSONSerialization turns integers into doubles
// (losing the "no fraction, at most 15 digits" distinction) and allocates a
// dictionary for every message; this reader allocates only the kept strings.

struct MessageFormatJSONReader {
    /// How deep a skipped (unknown) value may nest.
    static let maxDepth = 64

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { index >= bytes.count }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Consumes `byte` or fails naming what was expected.
    mutating func expect(_ byte: UInt8, _ what: StaticString) throws(MessageFormatError) {
        guard index < bytes.count, bytes[index] == byte else { throw syntax("expected \(what)") }
        index += 1
    }

    /// Consumes `byte` if it is next.
    mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    func syntax(_ what: String) -> MessageFormatError {
        MessageFormatError(.malformed, field: nil, "not valid JSON at byte \(index): \(what)")
    }

    // MARK: Strings

    /// A scanned string: its contents' range (quotes excluded) and whether it
    /// has any escape.
    struct StringToken {
        var start: Int
        var end: Int
        var hasEscapes: Bool
    }

    /// Scans a string at the cursor (which must be at `"`), checking its syntax.
    mutating func scanString() throws(MessageFormatError) -> StringToken {
        try expect(UInt8(ascii: "\""), "a string")
        let start = index
        var hasEscapes = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let token = StringToken(start: start, end: index, hasEscapes: hasEscapes)
                index += 1
                return token
            }
            if byte < 0x20 { throw syntax("control byte 0x\(String(byte, radix: 16)) inside a string must be escaped") }
            if byte == UInt8(ascii: "\\") {
                hasEscapes = true
                index += 1
                guard index < bytes.count else { break }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    index += 1
                    guard bytes.count - index >= 4 else { throw syntax("\\u must be followed by 4 hex digits") }
                    for _ in 0..<4 {
                        guard Self.hexValue(bytes[index]) != nil else { throw syntax("\\u must be followed by 4 hex digits") }
                        index += 1
                    }
                default:
                    throw syntax("unknown escape")
                }
                continue
            }
            index += 1
        }
        throw syntax("unterminated string")
    }

    /// The bytes of a scanned string, escapes decoded (UTF-8).
    func contents(of token: StringToken) throws(MessageFormatError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.end - token.start)
        var i = token.start
        while i < token.end {
            let byte = bytes[i]
            guard byte == UInt8(ascii: "\\") else { out.append(byte); i += 1; continue }
            let escape = bytes[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(at: i)
                i += 4
                if scalar >= 0xD800, scalar <= 0xDBFF {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard i + 6 <= token.end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw MessageFormatError(.malformed, field: nil, "not valid JSON: unpaired surrogate escape")
                    }
                    let low = hex4(at: i + 2)
                    guard low >= 0xDC00, low <= 0xDFFF else {
                        throw MessageFormatError(.malformed, field: nil, "not valid JSON: unpaired surrogate escape")
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if scalar >= 0xDC00, scalar <= 0xDFFF {
                    throw MessageFormatError(.malformed, field: nil, "not valid JSON: unpaired surrogate escape")
                }
                // Not a surrogate and at most 0x10FFFF, so always a scalar.
                for unit in UTF8.encode(Unicode.Scalar(scalar)!)! { out.append(unit) }
            default:
                out.append(escape)  // `"`, `\` and `/` stand for themselves
            }
        }
        return out
    }

    /// The string at the cursor, escapes decoded.
    mutating func readString() throws(MessageFormatError) -> String {
        let token = try scanString()
        if !token.hasEscapes {
            // The input was validated as UTF-8 as a whole, and a string's
            // contents end at an ASCII quote, so the slice is valid UTF-8.
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[token.start..<token.end]), as: UTF8.self)
        }
        return String(decoding: try contents(of: token), as: UTF8.self)
    }

    private func hex4(at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in 0..<4 { value = value << 4 | UInt32(Self.hexValue(bytes[offset + k])!) }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: Numbers and literals

    /// The outcome of reading a value where a non-negative integer is expected.
    enum IntegerRead {
        case value(UInt64)
        /// A JSON value that is not a number (string, object, literal...); the cursor has not moved.
        case notANumber
        /// A valid JSON number that is not a canonical non-negative integer of
        /// at most the allowed digits: negative, fraction, exponent, too long.
        case outOfRules
    }

    /// Reads a number at the cursor if there is one. Syntax errors throw; a
    /// well-formed number outside the rules is consumed and reported.
    mutating func readInteger(maxDigits: Int) throws(MessageFormatError) -> IntegerRead {
        guard let first = peek, first == UInt8(ascii: "-") || Self.isDigit(first) else { return .notANumber }
        let start = index
        let negative = consume(UInt8(ascii: "-"))
        let digitsStart = index
        try scanNumberRest()
        // scanNumberRest accepted the full JSON grammar; find where the integer part stops.
        var digitsEnd = digitsStart
        while digitsEnd < index, Self.isDigit(bytes[digitsEnd]) { digitsEnd += 1 }
        guard !negative, digitsEnd == index, index > start else { return .outOfRules }
        guard let value = MessageFormatDecimal.parse(
            UnsafeBufferPointer(rebasing: bytes[digitsStart..<digitsEnd]), maxDigits: maxDigits
        ) else { return .outOfRules }
        return .value(value)
    }

    /// After an optional `-`: int frac? exp? per RFC 8259.
    private mutating func scanNumberRest() throws(MessageFormatError) {
        guard let first = peek, Self.isDigit(first) else { throw syntax("expected a digit") }
        index += 1
        if first != UInt8(ascii: "0") {
            while let b = peek, Self.isDigit(b) { index += 1 }
        } else if let b = peek, Self.isDigit(b) {
            throw syntax("leading zero in a number")
        }
        if consume(UInt8(ascii: ".")) {
            guard let b = peek, Self.isDigit(b) else { throw syntax("expected a digit after '.'") }
            while let b = peek, Self.isDigit(b) { index += 1 }
        }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            guard let b = peek, Self.isDigit(b) else { throw syntax("expected a digit in the exponent") }
            while let b = peek, Self.isDigit(b) { index += 1 }
        }
    }

    /// Consumes `null` if it is next.
    mutating func readNull() throws(MessageFormatError) -> Bool {
        guard peek == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func literal(_ word: StaticString) throws(MessageFormatError) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw syntax("expected \(word)") }
        for k in 0..<count where bytes[index + k] != word.utf8Start[k] { throw syntax("expected \(word)") }
        index += count
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    // MARK: Skipping

    /// Skips any JSON value at the cursor (whitespace before it already skipped).
    mutating func skipValue(depth: Int = 0) throws(MessageFormatError) {
        guard depth < Self.maxDepth else { throw syntax("values nest deeper than \(Self.maxDepth) levels") }
        guard let first = peek else { throw syntax("expected a value") }
        switch first {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return }
            while true {
                _ = try scanString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if consume(UInt8(ascii: ",")) { skipWhitespace(); continue }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return
            }
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "]")) { return }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if consume(UInt8(ascii: ",")) { skipWhitespace(); continue }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"):
            index += 1
            try scanNumberRest()
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            try scanNumberRest()
        default:
            throw syntax("expected a value")
        }
    }

    // MARK: UTF-8

    /// Whether `bytes` is well-formed UTF-8 (Unicode Table 3-7).
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        while i < n {
            // ASCII fast path: 8 bytes at a time while none has the top bit set.
            if n - i >= 8, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            func continuation(_ k: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
                i + k < n && bytes[i + k] >= low && bytes[i + k] <= high
            }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(1) else { return false }
                i += 2
            case 0xE0:
                guard continuation(1, 0xA0), continuation(2) else { return false }
                i += 3
            case 0xE1...0xEC, 0xEE...0xEF:
                guard continuation(1), continuation(2) else { return false }
                i += 3
            case 0xED:
                guard continuation(1, 0x80, 0x9F), continuation(2) else { return false }
                i += 3
            case 0xF0:
                guard continuation(1, 0x90), continuation(2), continuation(3) else { return false }
                i += 4
            case 0xF1...0xF3:
                guard continuation(1), continuation(2), continuation(3) else { return false }
                i += 4
            case 0xF4:
                guard continuation(1, 0x80, 0x8F), continuation(2), continuation(3) else { return false }
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
