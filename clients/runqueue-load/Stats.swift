import Histogram
import RunQueueCore
import Synchronization

/// What the report has figures for: the calls the scenario makes, and the
/// measures that are not one call (a run's enqueue-to-ack time, expiry lateness).
enum Series: Int, CaseIterable, Sendable {
    case enqueue, enqueueBatch, dequeue, ack, subscribeExpiry
    case runLatency, expiryLateness, expiryDelivery

    /// The key in the report: the method name for calls.
    var name: String {
        switch self {
        case .enqueue: "Enqueue"
        case .enqueueBatch: "EnqueueBatch"
        case .dequeue: "Dequeue"
        case .ack: "Ack"
        case .subscribeExpiry: "SubscribeExpiry"
        case .runLatency: "run_latency"
        case .expiryLateness: "expiry_lateness"
        case .expiryDelivery: "expiry_delivery"
        }
    }

    var isCall: Bool { rawValue <= Series.subscribeExpiry.rawValue }

    /// What a measure is, for the human report and the chart's legend.
    var meaning: String {
        switch self {
        case .enqueue, .enqueueBatch, .dequeue, .ack: "\(name) call"
        case .subscribeExpiry: "SubscribeExpiry until the stream started"
        case .runLatency: "run: enqueue to ack"
        case .expiryLateness: "expiry: received - expires_at"
        case .expiryDelivery: "expiry: received - expired_at"
        }
    }
}

/// The figures of one series.
struct SeriesStats: Sendable {
    /// Latency of OK calls (or the measure's samples), in microseconds.
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: SeriesStats.highestMicros,
                                      numberOfSignificantValueDigits: .three)
    /// OK calls (measures: samples).
    var ok = 0
    /// Failed calls by status name.
    var errors: [String: Int] = [:]
    /// EnqueueBatch: failed runs inside OK calls, by status name.
    var itemErrors: [String: Int] = [:]
    /// Dequeue: OK answers without runs (long polls that ran out); not timed.
    var empty = 0
    /// Runs carried by OK calls (runs enqueued, runs received).
    var runs = 0
    /// Measures: samples below zero (the clocks disagree), recorded as 0.
    var negative = 0

    static let highestMicros: UInt64 = 3_600_000_000

    var errorCount: Int { errors.values.reduce(0, +) }
    var itemErrorCount: Int { itemErrors.values.reduce(0, +) }

    /// A percentile in milliseconds (0 without samples).
    func percentileMs(_ percentile: Double) -> Double {
        histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    var maxMs: Double { histogram.totalCount == 0 ? 0 : Double(histogram.max) / 1000 }
    var minMs: Double { histogram.totalCount == 0 ? 0 : Double(histogram.min) / 1000 }
    var meanMs: Double { histogram.totalCount == 0 ? 0 : histogram.mean / 1000 }
}

/// All series, shared by every worker task; one lock per series.
final class Recorder: Sendable {
    private final class Cell: Sendable {
        let state = Mutex(SeriesStats())
    }

    private let cells = Series.allCases.map { _ in Cell() }

    /// An OK call (or a measure's sample) that took `micros`.
    func record(_ series: Series, micros: Int64, runs: Int = 0) {
        let value = UInt64(clamping: min(max(micros, 0), Int64(SeriesStats.highestMicros)))
        cells[series.rawValue].state.withLock { s in
            s.histogram.record(value)
            s.ok += 1
            s.runs += runs
            if micros < 0 { s.negative += 1 }
        }
    }

    /// A call that failed with `code`.
    func fail(_ series: Series, _ code: StatusCode) {
        cells[series.rawValue].state.withLock { $0.errors[code.name, default: 0] += 1 }
    }

    /// `count` runs of an OK EnqueueBatch that failed with `code`.
    func itemFail(_ series: Series, _ code: StatusCode, count: Int = 1) {
        cells[series.rawValue].state.withLock { $0.itemErrors[code.name, default: 0] += count }
    }

    /// A Dequeue that answered no runs.
    func empty(_ series: Series) {
        cells[series.rawValue].state.withLock { $0.empty += 1 }
    }

    func snapshot(_ series: Series) -> SeriesStats {
        cells[series.rawValue].state.withLock { $0 }
    }

    /// OK count, error count (calls and items) and p99 in ms so far, without copying the histogram.
    func glance(_ series: Series) -> (ok: Int, errors: Int, p99Ms: Double) {
        cells[series.rawValue].state.withLock { s in
            (s.ok, s.errorCount + s.itemErrorCount, s.percentileMs(99))
        }
    }
}

/// Run counts of the scenario, updated by every worker.
final class Counters: Sendable {
    /// Enqueued and created (a new run).
    let created = Atomic<Int>(0)
    /// Answered OK with created = false (the run id existed: never expected here).
    let notCreated = Atomic<Int>(0)
    /// Runs whose enqueue failed (the whole call, or the run's own status).
    let enqueueFailed = Atomic<Int>(0)
    /// Runs received from Dequeue (redeliveries included).
    let dequeued = Atomic<Int>(0)
    /// Ack answered acked = true.
    let acked = Atomic<Int>(0)
    /// Ack answered acked = false (the run was not in flight any more).
    let ackedFalse = Atomic<Int>(0)
    /// Created runs with a TTL: one expiry event each is expected per subscriber.
    let expiring = Atomic<Int>(0)
    /// Expiry events received, over all subscribers.
    let events = Atomic<Int>(0)
    /// Events for runs this run did not enqueue (should stay 0: the filter is this run's org).
    let foreignEvents = Atomic<Int>(0)
    /// Open loop: producer calls sent more than 1 ms after their scheduled
    /// time because every slot (--connections x --window) was busy.
    let lateSends = Atomic<Int>(0)
    /// enqueue: runs dequeued and acked after the measurement (--keep skips it).
    let cleanedUp = Atomic<Int>(0)
    /// enqueue's cleanup: acks that answered acked = false or failed (the run
    /// comes back when its lease lapses and is dequeued again).
    let cleanupMissed = Atomic<Int>(0)
    /// The latest expires_at_ms of the runs enqueued.
    let lastExpiresAtMs = Atomic<Int64>(0)

    func noteExpiry(_ ms: Int64) {
        guard ms > 0 else { return }
        expiring.bump()
        var current = lastExpiresAtMs.load(ordering: .relaxed)
        while ms > current {
            let (exchanged, original) = lastExpiresAtMs.compareExchange(expected: current, desired: ms, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }
}

extension Atomic where Value == Int {
    func bump(_ amount: Int = 1) {
        _ = wrappingAdd(amount, ordering: .relaxed)
    }

    var value: Int { load(ordering: .relaxed) }
}
