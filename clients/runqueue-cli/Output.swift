import CommandLineSupport
import Foundation

/// Where results go: stdout, one line each, flushed at once (so `subscribe`
/// works in a pipe); diagnostics go to stderr.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json(_ value: OrderedJSON) {
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
            return needsQuotes ? "\(key)=\(OrderedJSON.string(value).rendered)" : "\(key)=\(value)"
        }.joined(separator: " ")
    }
}

