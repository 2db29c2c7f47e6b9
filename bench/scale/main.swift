// runqueue-bench-scale: how the cost of Enqueue and Dequeue grows with the
// backlog. Against a running runqueued (--server), for each backlog level
// (default 10,000 then 1,000,000 pending runs in ONE queue of one
// environment, every run with a TTL and a 29-byte id):
// 1. tops the backlog up to the level with EnqueueBatch (1,000 runs per call,
//    --preload-window calls in flight): only the difference is loaded, so
//    1,000,000 after 10,000 costs 990,000 runs;
// 2. times --samples Enqueue calls of one run each, one call at a time (the
//    cost of one enqueue into that queue, not a throughput figure);
// 3. times --samples Dequeue calls (max_runs 1, wait_ms 0), one at a time,
//    each followed by an Ack of the run it got (Ack timed separately). The
//    dequeued runs are the oldest of the backlog, so the level stays put.
// The first level is the baseline: the last lines give each figure at the
// higher level divided by the same figure at the first.
//
// The environment's concurrency limit is raised to 1,000,000 for the run and
// cleared at the end. The runs are left in the queue: the caller owns the
// Redis and the database (make bench-compare drops both).
//
// usage: runqueue-bench-scale --server host:port [--levels 10000,1000000] [--samples 2000]
//          [--preload-window 8] [--ttl 1h] [--json]
import BenchSupport
import Foundation
import RunQueueClient
import RunQueueCore
import Synchronization
import UVLoop

extension LatencyHistogram {
    /// p50 and p99 in ms, as `--json` prints them.
    var json: String { String(format: "{\"p50_ms\": %.3f, \"p99_ms\": %.3f}", p50, p99) }
}

struct Level {
    let backlog: Int
    let preloadSeconds: Double
    let enqueue: LatencyHistogram
    let dequeue: LatencyHistogram
    let ack: LatencyHistogram
}

struct Bench: Sendable {
    let connection: RunQueueConnection
    let org: String
    let project: String
    let environment: String
    let workerQueue: String
    let prefix: String
    let ttl: String

    /// "run_" + 25 characters, like trigger.dev's cuid-style ids: 29 bytes.
    func runID(_ n: Int) -> String {
        let digits = String(n)
        return "run_c" + prefix + String(repeating: "0", count: 16 - digits.count) + digits
    }

    func descriptor(_ n: Int) -> RunDescriptor {
        RunDescriptor(runID: runID(n), orgID: org, projectID: project, environmentID: environment,
                      environmentType: .production, queue: "task/my-background-task",
                      taskIdentifier: "my-background-task", workerQueue: workerQueue, ttl: ttl)
    }

    /// Enqueues runs `range` in batches of 1,000 with `window` calls in flight.
    func preload(_ range: Range<Int>, window: Int) async throws {
        let batches = stride(from: range.lowerBound, to: range.upperBound, by: 1000).map { $0..<min(range.upperBound, $0 + 1000) }
        let next = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<window {
                group.addTask {
                    while true {
                        let b = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        if b >= batches.count { return }
                        let result = try await connection.call(.enqueueBatch(EnqueueBatchRequest(runs: batches[b].map(descriptor))))
                        guard case .enqueueBatch(let answer)? = result else { throw BenchError("EnqueueBatch answered \(String(describing: result))") }
                        if let bad = answer.results.first(where: { $0.status.code != .ok || !$0.created }) {
                            throw BenchError("preload: run not created: \(bad.status.code) \(bad.status.message)")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func pending() async throws -> Int {
        let result = try await connection.call(.queueStats(QueueStatsRequest(environmentID: environment)))
        guard case .queueStats(let stats)? = result else { throw BenchError("QueueStats answered \(String(describing: result))") }
        return Int(stats.length)
    }
}

/// The next batch to send, shared by the preload's tasks.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

func main() async throws {
    guard let server = option("--server") else { fail("--server host:port is required") }
    let levels = (option("--levels") ?? "10000,1000000").split(separator: ",").map { Int($0) ?? 0 }
    guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }), levels == levels.sorted() else { fail("--levels must be increasing positive counts") }
    let samples = intOption("--samples", 2000)
    let window = intOption("--preload-window", 8)
    let json = CommandLine.arguments.contains("--json")
    let parts = server.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else { fail("--server must be host:port") }

    let connection = try await RunQueueConnection.connect(to: SocketAddress(host: String(parts[0]), port: port))
    let prefix = String((0..<8).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement()! })
    let bench = Bench(connection: connection, org: "org_scale_" + prefix, project: "proj_scale_" + prefix,
                      environment: "env_scale_" + prefix, workerQueue: "wq_scale_" + prefix, prefix: prefix,
                      ttl: option("--ttl") ?? "1h")
    _ = try await connection.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: bench.environment, value: .limit(1_000_000))))
    if !json {
        say("Enqueue / Dequeue cost by backlog: one queue, runs with ttl \"\(bench.ttl)\", 29-byte ids; \(samples) calls of each, one at a time")
    }

    var results: [Level] = []
    var nextRun = 0
    for level in levels {
        let have = try await bench.pending()
        let start = ContinuousClock.now
        if level > have {
            try await bench.preload(nextRun..<(nextRun + level - have), window: window)
            nextRun += level - have
        }
        let preloadSeconds = seconds(ContinuousClock.now - start)
        let loaded = try await bench.pending()
        guard loaded >= level else { throw BenchError("backlog \(loaded) after loading \(level)") }

        var enqueueTimes = LatencyHistogram()
        for _ in 0..<samples {
            let run = bench.descriptor(nextRun)
            nextRun += 1
            let begin = ContinuousClock.now
            let result = try await connection.call(.enqueue(EnqueueRequest(run: run)))
            enqueueTimes.record(ContinuousClock.now - begin)
            guard case .enqueue(let answer)? = result, answer.created else { throw BenchError("Enqueue answered \(String(describing: result))") }
        }

        var dequeueTimes = LatencyHistogram()
        var ackTimes = LatencyHistogram()
        for _ in 0..<samples {
            let begin = ContinuousClock.now
            let result = try await connection.call(.dequeue(DequeueRequest(workerQueue: bench.workerQueue, maxRuns: 1, waitMs: 0)))
            dequeueTimes.record(ContinuousClock.now - begin)
            guard case .dequeue(let answer)? = result, let message = answer.messages.first else {
                throw BenchError("Dequeue answered \(String(describing: result))")
            }
            let ackBegin = ContinuousClock.now
            let acked = try await connection.call(.ack(AckRequest(runID: message.runID, environmentID: message.environmentID, attempt: message.attempt)))
            ackTimes.record(ContinuousClock.now - ackBegin)
            guard case .ack(let ack)? = acked, ack.acked else { throw BenchError("Ack answered \(String(describing: acked))") }
        }
        let result = Level(backlog: loaded, preloadSeconds: preloadSeconds, enqueue: enqueueTimes, dequeue: dequeueTimes, ack: ackTimes)
        results.append(result)
        if !json {
            say(String(format: "backlog %8d: Enqueue p50 %.3f p99 %.3f ms | Dequeue p50 %.3f p99 %.3f ms | Ack p50 %.3f p99 %.3f ms (loaded in %.1f s)",
                       result.backlog, result.enqueue.p50, result.enqueue.p99, result.dequeue.p50, result.dequeue.p99,
                       result.ack.p50, result.ack.p99, result.preloadSeconds))
        }
    }
    _ = try await connection.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: bench.environment, value: .clear)))
    await connection.close()

    if json {
        let items = results.map {
            String(format: "{\"backlog\": %d, \"preload_s\": %.2f, \"enqueue\": %@, \"dequeue\": %@, \"ack\": %@}",
                   $0.backlog, $0.preloadSeconds, $0.enqueue.json, $0.dequeue.json, $0.ack.json)
        }
        say("{\"samples\": \(samples), \"ttl\": \"\(bench.ttl)\", \"levels\": [\(items.joined(separator: ", "))]}")
        return
    }
    guard let base = results.first else { return }
    for level in results.dropFirst() {
        say(String(format: "backlog %d / baseline backlog %d: Enqueue p50 ratio %.2f, p99 %.2f | Dequeue p50 %.2f, p99 %.2f | Ack p50 %.2f, p99 %.2f",
                   level.backlog, base.backlog, level.enqueue.p50 / base.enqueue.p50, level.enqueue.p99 / base.enqueue.p99,
                   level.dequeue.p50 / base.dequeue.p50, level.dequeue.p99 / base.dequeue.p99,
                   level.ack.p50 / base.ack.p50, level.ack.p99 / base.ack.p99))
    }
}

do {
    try await main()
} catch {
    fail("\(error)")
}
