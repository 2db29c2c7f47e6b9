import RunQueueCore

/// A TTL string that does not parse. Maps to `INVALID_ARGUMENT`
/// (docs/protocol.md: a bad `ttl` is never silently ignored); `message` names
/// the field and says what is wrong and what would be accepted.
public struct TTLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the string.
    public enum Reason: Sendable, Equatable {
        /// Longer than `TTLParser.maxInputBytes` UTF-8 bytes.
        case tooLong(bytes: Int)
        /// Not `<digits><unit>` groups nor whole seconds: spaces, signs,
        /// fractions, a group without digits or without a unit, non-ASCII.
        case notADuration
        /// A group whose unit is not one of `w d hr h m s` (e.g. `ms`, `y`, `min`, `H`).
        case unknownUnit(String)
        /// The same unit twice; `h` and `hr` count as one unit. Carries the canonical unit.
        case repeatedUnit(String)
        /// The total exceeds `TTLParser.maxMilliseconds` (100 years).
        case tooLarge
    }

    /// The field or setting that held the string (`ttl`, `RUN_ENGINE_DEFAULT_MAX_TTL`).
    public let field: String
    public let reason: Reason
    public let message: String

    /// The wire status for this error.
    public var code: StatusCode { .invalidArgument }

    public var description: String { message }

    init(field: String, input: String, reason: Reason) {
        self.field = field
        self.reason = reason
        let quoted = Self.quote(input)
        let units = "units w d h hr m s"
        switch reason {
        case .tooLong(let bytes):
            message = "\(field) is \(bytes) bytes long; at most \(TTLParser.maxInputBytes) are allowed"
        case .notADuration:
            message = "\(field) \(quoted) is not a duration: use groups like 90s, 1h30m, 2d (\(units)) or whole seconds"
        case .unknownUnit(let unit):
            message = "\(field) \(quoted) uses unit \(Self.quote(unit)): \(units) (lowercase) are allowed"
        case .repeatedUnit(let unit):
            let alias = unit == "h" ? " (h and hr are the same unit)" : ""
            message = "\(field) \(quoted) gives the unit \(unit) more than once\(alias); give each unit once"
        case .tooLarge:
            message = "\(field) \(quoted) is longer than the maximum of 36500d (100 years)"
        }
    }

    /// The input in double quotes with `"`, `\` and anything outside printable
    /// ASCII escaped, so a message never carries control bytes into a log.
    /// Inputs reaching here are at most 100 bytes (longer ones are not echoed).
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case " "..."~": out.unicodeScalars.append(scalar)
            default: out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out + "\""
    }
}
