import CommandLineSupport
import Foundation

/// Where results go: stdout, one line each, flushed at once (so `subscribe`
/// works in a pipe); diagnostics go to stderr.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json(_ value: JSONValue) {
        line(value.rendered)
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A Unix-milliseconds time as ISO 8601 (UTC, milliseconds); "-" for 0.
    static func time(_ ms: Int64) -> String {
        guard ms != 0 else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// `key=value` pairs separated by spaces; values with spaces or quotes are quoted.
    static func fields(_ pairs: [(String, String)]) -> String {
        pairs.map { key, value in
            let needsQuotes = value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
            return needsQuotes ? "\(key)=\(JSONValue.string(value).rendered)" : "\(key)=\(value)"
        }.joined(separator: " ")
    }
}

/// A JSON value that keeps its keys in the order given (stable output).
indirect enum JSONValue {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    var rendered: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .string(let text): JSONText.quote(text, into: &out)
        case .int(let value): out += String(value)
        case .uint(let value): out += String(value)
        case .double(let value): out += value.isFinite ? String(value) : "null"
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
