import Foundation
import RunQueueClient
import RunQueueCore
import Synchronization

enum ScenarioKind: String, Sendable {
    case enqueue, cycle, expiry, subscribe
}

/// Everything a scenario run needs to know, from the command line.
struct ScenarioPlan: Sendable {
    let kind: ScenarioKind
    var server: String
    var token: String
    var connections: Int
    var window: Int
    var rate: Double?
    var produceFor: Duration?
    var count: Int?
    var batchSize: Int
    var environments: Int
    var timeout: Duration?
    var drainTimeout: Duration
    var json: Bool
    var plot: String?
    var quiet: Bool

    var ttl = ""
    /// Raise each environment's limit to this for the run (0 = leave it).
    var concurrencyLimit: UInt32 = 0
    /// enqueue: drain the runs afterwards.
    var cleanup = false
    var consumers = 0
    var consumerWindow = 0
    var maxRuns: UInt32 = 100
    var waitMs: UInt32 = 500
    var subscribers = 0

    init(kind: ScenarioKind, options: LoadOptions) {
        self.kind = kind
        server = options.serverAddress
        token = options.tokenValue
        connections = options.connections
        window = options.window
        rate = options.rate
        produceFor = options.produceFor
        count = options.count
        batchSize = options.batchSize
        environments = options.environments
        timeout = options.timeout.value
        drainTimeout = options.drainTimeout.value ?? .zero
        json = options.json
        plot = options.plot
        quiet = options.quiet
    }

    var openLoop: Bool { rate != nil }
    var modeName: String { openLoop ? "open-loop" : "closed-loop" }
    var enqueueSeries: Series { batchSize == 1 ? .enqueue : .enqueueBatch }
    var expiryScenario: Bool { kind == .expiry || kind == .subscribe }

    /// The series this scenario reports, in report order.
    var series: [Series] {
        switch kind {
        case .enqueue: [enqueueSeries]
        case .cycle: [enqueueSeries, .dequeue, .ack, .runLatency]
        case .expiry, .subscribe: [enqueueSeries, .subscribeExpiry, .expiryLateness, .expiryDelivery]
        }
    }

    /// The client configuration of one load connection.
    func clientConfiguration() throws(RunQueueError) -> RunQueueClientConfiguration {
        var configuration = try RunQueueClientConfiguration(server: server)
        configuration.connections = 1
        configuration.clientName = "runqueue-load"
        configuration.token = token
        configuration.defaultTimeout = timeout
        if let timeout, timeout < configuration.connectTimeout { configuration.connectTimeout = timeout }
        return configuration
    }
}

/// The ids of one load run: a random prefix keeps them apart from any other data.
struct RunIDs: Sendable {
    let prefix: String

    init() {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        prefix = "lt" + String((0..<8).map { _ in alphabet.randomElement()! })
    }

    var org: String { "org_\(prefix)" }
    var project: String { "proj_\(prefix)" }
    var workerQueue: String { "wq_\(prefix)" }
    let queue = "load/task"
    let task = "load-task"
    func environment(_ index: Int) -> String { "env_\(prefix)_\(index)" }

    /// `run_<prefix>_<seq>_<µs after the start it was (meant to be) sent>`:
    /// the ack or the expiry event can tell when the run was enqueued.
    func runID(_ seq: Int, sentAtMicros: Int64) -> String { "run_\(prefix)_\(seq)_\(sentAtMicros)" }

    var runPrefix: String { "run_\(prefix)_" }

    /// The send offset encoded in a run id of this run (nil for another run's id).
    func sentAtMicros(_ runID: String) -> Int64? {
        guard runID.hasPrefix(runPrefix), let last = runID.split(separator: "_").last else { return nil }
        return Int64(last)
    }
}

/// Hands out the producers' calls: which runs, and (open loop) when each
/// call is meant to be sent. Closed loop: as fast as the workers ask.
final class Pacer: Sendable {
    struct Ticket: Sendable {
        let index: Int
        let firstRun: Int
        let runs: Int
        /// Open loop: the scheduled send time; latency counts from it.
        let intended: ContinuousClock.Instant?
    }

    let start: ContinuousClock.Instant
    private let intervalNanos: Double?
    private let endAt: ContinuousClock.Instant?
    private let totalRuns: Int?
    private let batch: Int
    private let next = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    init(start: ContinuousClock.Instant, plan: ScenarioPlan) {
        self.start = start
        batch = plan.batchSize
        totalRuns = plan.count
        endAt = plan.produceFor.map { start + $0 }
        intervalNanos = plan.rate.map { Double(plan.batchSize) / $0 * 1e9 }
    }

    /// No more tickets (Ctrl-C).
    func stop() { stopped.store(true, ordering: .relaxed) }

    func take() -> Ticket? {
        if stopped.load(ordering: .relaxed) { return nil }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let first = index * batch
        var runs = batch
        if let totalRuns {
            guard first < totalRuns else { return nil }
            runs = min(batch, totalRuns - first)
        }
        if let intervalNanos {
            let intended = start + .nanoseconds(Int64(Double(index) * intervalNanos))
            if let endAt, intended >= endAt { return nil }
            return Ticket(index: index, firstRun: first, runs: runs, intended: intended)
        }
        if let endAt, ContinuousClock.now >= endAt { return nil }
        return Ticket(index: index, firstRun: first, runs: runs, intended: nil)
    }
}
