// LatencyHistogram: the percentiles every benchmark prints, from the same
// kind of HdrHistogram as runqueue-load's report (clients/runqueue-load/Stats.swift).
import Histogram

/// Latency samples in an HdrHistogram of microseconds with 3 significant
/// digits (each figure within 0.1% of a recorded sample; below 2.048 ms, to the
/// microsecond), read back in milliseconds. A sample below 0 (two clocks that
/// disagree) counts as 0, one above an hour as an hour. Without samples every
/// figure is 0.
public struct LatencyHistogram: Sendable {
    private static let highestMicros: UInt64 = 3_600_000_000
    private var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: LatencyHistogram.highestMicros,
                                              numberOfSignificantValueDigits: .three)

    public init() {}

    /// The samples of all `histograms` together.
    public init(merging histograms: some Sequence<LatencyHistogram>) {
        for other in histograms { histogram.add(other.histogram) }
    }

    /// A histogram of samples given in milliseconds.
    public init(milliseconds samples: some Sequence<Double>) {
        for sample in samples { record(milliseconds: sample) }
    }

    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        record(micros: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    public mutating func record(milliseconds: Double) {
        record(micros: Int64((milliseconds * 1000).rounded()))
    }

    private mutating func record(micros: Int64) {
        histogram.record(UInt64(clamping: Swift.min(Swift.max(micros, 0), Int64(Self.highestMicros))))
    }

    public var count: Int { Int(histogram.totalCount) }
    public var isEmpty: Bool { histogram.totalCount == 0 }

    /// The value at `percentile` (0...100) in ms.
    public func percentile(_ percentile: Double) -> Double {
        Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    public var p50: Double { percentile(50) }
    public var p90: Double { percentile(90) }
    public var p99: Double { percentile(99) }
    /// The largest sample in ms.
    public var max: Double { Double(histogram.maxRecorded) / 1000 }
}
