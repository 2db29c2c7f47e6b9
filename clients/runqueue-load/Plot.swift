import Foundation
import Histogram

/// The latency-percentile chart of a report as a standalone SVG: x is the
/// percentile on HdrHistogram's log scale (0%, 90%, 99%, 99.9%, ...: the
/// distance to 100% shrinks tenfold per step), y the latency in ms, one line
/// per call type and measure.
enum Plot {
    static let width = 1000.0
    static let height = 560.0
    static let left = 80.0
    static let right = 270.0
    static let top = 56.0
    static let bottom = 64.0
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    struct Line {
        let name: String
        let meaning: String
        let count: UInt64
        /// (x in decades, latency ms)
        let points: [(Double, Double)]
        let p99: Double
        let max: Double
    }

    /// x of a percentile: log10(1 / (1 - p)); 100% is drawn at 1 - 1/count.
    static func decades(_ percentile: Double, count: UInt64) -> Double {
        let last = log10(Double(Swift.max(count, 10)))
        guard percentile < 100 else { return last }
        return Swift.min(log10(100 / (100 - percentile)), last)
    }

    static func lines(_ report: Report) -> [Line] {
        report.plan.series.compactMap { series -> Line? in
            guard let s = report.stats[series], s.histogram.totalCount > 0 else { return nil }
            var points: [(Double, Double)] = []
            for step in s.histogram.percentiles(ticksPerHalfDistance: 5) {
                points.append((decades(step.percentileLevelIteratedTo, count: s.histogram.totalCount), Double(step.value) / 1000))
            }
            return Line(name: series.name, meaning: series.meaning, count: s.histogram.totalCount, points: points,
                        p99: s.percentileMs(99), max: s.maxMs)
        }
    }

    /// A round axis maximum and its tick step for values up to `value`.
    static func niceScale(_ value: Double) -> (max: Double, step: Double) {
        let target = Swift.max(value, 0.001)
        let raw = target / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        return (ceil(target / step) * step, step)
    }

    static func percentileLabel(_ decade: Int) -> String {
        switch decade {
        case 0: return "0%"
        case 1: return "90%"
        case 2: return "99%"
        default: return "99." + String(repeating: "9", count: decade - 2) + "%"
        }
    }

    static func svg(_ report: Report) -> String {
        let lines = lines(report)
        let plotW = width - left - right
        let plotH = height - top - bottom
        let maxDecade = Swift.max(2, Int(ceil(lines.map { log10(Double(Swift.max($0.count, 10))) }.max() ?? 2)))
        let (yMax, yStep) = niceScale(lines.map(\.max).max() ?? 1)
        func x(_ d: Double) -> Double { left + d / Double(maxDecade) * plotW }
        func y(_ v: Double) -> Double { top + plotH - Swift.min(v, yMax) / yMax * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
            font-family="Helvetica, Arial, sans-serif" font-size="12">

            """
        let plan = report.plan
        let mode = plan.openLoop ? "open loop, \(compact(plan.rate ?? 0)) runs/s" : "closed loop, \(plan.connections) x \(plan.window) in flight"
        let title = "runqueue-load \(plan.kind.rawValue): latency by percentile (\(mode))"
        let formatter = ISO8601DateFormatter()
        let subtitle = "\(plan.server), \(String(format: "%.1f", report.elapsed)) s, started \(formatter.string(from: report.startedAt)), ids \(report.prefix)"
        out += "<title>\(escape(title))</title>\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(f(left))\" y=\"24\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
        out += "<text x=\"\(f(left))\" y=\"42\" fill=\"#555\">\(escape(subtitle))</text>\n"

        // Grid and axes.
        var tick = 0.0
        while tick <= yMax + yStep / 2 {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(y(tick)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(tick)))\" stroke=\"#e5e5e5\"/>\n"
            let label = yStep >= 1 ? String(format: "%.0f", tick) : yStep >= 0.1 ? String(format: "%.1f", tick) : String(format: "%.2f", tick)
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(y(tick) + 4))\" text-anchor=\"end\">\(label)</text>\n"
            tick += yStep
        }
        for decade in 0...maxDecade {
            let px = x(Double(decade))
            out += "<line x1=\"\(f(px))\" y1=\"\(f(top))\" x2=\"\(f(px))\" y2=\"\(f(top + plotH))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(px))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(percentileLabel(decade))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\">percentile (log scale of 1/(1 - p))</text>\n"
        out += "<text transform=\"translate(20 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">latency (ms)</text>\n"

        // One line per series, and the legend.
        for (i, line) in lines.enumerated() {
            let color = colors[i % colors.count]
            let points = line.points.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"><title>\(escape(line.name))</title></polyline>\n"
            let ly = top + 10 + Double(i) * 44
            let lx = left + plotW + 16
            out += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
            out += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 4))\" font-weight=\"bold\">\(escape(line.name))</text>\n"
            out += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 19))\" fill=\"#555\" font-size=\"11\">\(escape(line.meaning))</text>\n"
            out += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 33))\" fill=\"#555\" font-size=\"11\">"
                + "\(escape("n \(grouped(Int(line.count))), p99 \(ms(line.p99)) ms, max \(ms(line.max)) ms"))</text>\n"
        }
        if lines.isEmpty {
            out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" fill=\"#999\">no samples</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
