import CommandLineSupport
import Foundation

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}

/// stdout for results, stderr for progress and diagnostics, each written at once.
enum Console {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func stderrRaw(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static let stderrIsTerminal = isatty(2) != 0
}

/// Unix time in microseconds (wall clock: compared with the server's
/// expires_at_ms / expired_at_ms).
func wallMicros() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
}


/// 12345 -> "12,345"; for human output only.
func grouped(_ value: Int) -> String {
    let digits = String(abs(value))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return value < 0 ? "-" + out : out
}

/// 1234.5 -> "1.23k", for the progress line.
func compact(_ value: Double) -> String {
    if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
    if value >= 1e4 { return String(format: "%.1fk", value / 1e3) }
    if value >= 1e3 { return String(format: "%.2fk", value / 1e3) }
    return String(format: "%.0f", value)
}

/// A latency in ms with 2 to 3 significant decimals.
func ms(_ value: Double) -> String {
    if value >= 100 { return String(format: "%.0f", value) }
    if value >= 10 { return String(format: "%.1f", value) }
    return String(format: "%.2f", value)
}
