// CommandLineSupport: what the runqueue CLI and runqueue-load share: the
// duration arguments they both take, and JSON string quoting for their
// --json output.
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
