import ArgumentParser
import Foundation

/// A duration argument: `250ms`, `5s`, `2m`, `1h`, or a bare number of
/// seconds; `0` means none.
struct CLIDuration: ExpressibleByArgument, Sendable {
    /// nil = no deadline.
    let value: Duration?

    init(_ value: Duration?) {
        self.value = value
    }

    init?(argument: String) {
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

    var defaultValueDescription: String {
        guard let value else { return "0" }
        let ms = value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}
