// CommandLineSupport: what the runqueue CLI and runqueue-load share: the
// duration arguments they both take, and the ordered JSON of their --json
// output.
import ArgumentParser
import Foundation

/// A duration argument: `250ms`, `5s`, `2m`, `1h`, or a bare number of
/// seconds; `0` means none (nil).
public struct DurationArgument: ExpressibleByArgument, Sendable {
    /// nil = none (no deadline, no limit).
    public let value: Duration?

    public init(_ value: Duration?) {
        self.value = value
    }

    public init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Duration)] = [("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600))]
        var number = Substring(text)
        var unit: Duration = .seconds(1)
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            unit = scale
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let amount = Double(number), amount.isFinite, amount >= 0 else {
            return nil
        }
        value = amount == 0 ? nil : unit * amount
    }

    public var defaultValueDescription: String {
        guard let value else { return "0" }
        let ms = value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}

/// JSON text helpers.
public enum JSONText {
    /// Appends `text` as a JSON string literal: quotes, backslashes and
    /// control characters escaped, everything else as is.
    public static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// A JSON value that keeps its keys in the order given (stable output).
public indirect enum OrderedJSON: Sendable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    /// Whole values below 10^15 print without a fraction; NaN and infinities as null.
    case double(Double)
    case bool(Bool)
    case null
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    public static func int(_ value: Int) -> OrderedJSON { .int(Int64(value)) }

    /// A double rounded to `places` decimals.
    public static func number(_ value: Double, places: Int = 3) -> OrderedJSON {
        guard value.isFinite else { return .null }
        let scale = pow(10.0, Double(places))
        return .double((value * scale).rounded() / scale)
    }

    public var rendered: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .string(let text): JSONText.quote(text, into: &out)
        case .int(let value): out += String(value)
        case .uint(let value): out += String(value)
        case .double(let value):
            if !value.isFinite {
                out += "null"
            } else if value == value.rounded(), abs(value) < 1e15 {
                out += String(Int64(value))
            } else {
                out += String(value)
            }
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                JSONText.quote(key, into: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }
}
