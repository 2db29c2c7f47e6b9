// runqueue-bench-churn: how late expiry events reach a subscriber that joins
// after other subscribers came and went, beside a subscriber on a fresh
// server, both measured in the same run.
//
// Two servers, each a release `runqueued` on its own redis-server and a new
// database (next to RUNQUEUE_DATABASE_URL, dropped at the end):
// - fresh: subscriber S joins, then the workload W runs.
// - after churn: first subscriber A (one environment) sees 20 single Enqueue
//   calls with ttl "1s" expire (each call after the previous run's event, so
//   each expiry is applied on its own), then A's and the
//   producer's connections close without Cancel; then, while --churn-runs
//   runs (20,000) with TTLs of 1..10 s expire, subscribers with four
//   filters join, read, stop reading, resume and leave (Cancel, orderly
//   close, reset); then S joins and W runs.
// W: --runs runs (20,000) in a new project over 8 environments, ttl
// (i % 10 + 1) s, enqueued as EnqueueBatch calls of 40 runs every 10 ms.
// Lateness = wall clock when S received an event - its expires_at_ms (same
// host, same clock). S must get every run's event once, in cursor order.
//
// usage: runqueue-bench-churn [--runs N] [--churn-runs N] [--runqueued PATH]
import BenchSupport
import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueWire
import Synchronization
import TestSupport
import UVLoop

/// One SubscribeExpiry stream on a blocking socket (call id 1), for the
/// subscribers that come and go: they must be able to stop reading and to
/// leave without a Cancel, which the client library never does.
final class RawStream: @unchecked Sendable {
    /// Released (closing the connection) by `close()`.
    private var socket: RawSocket!

    /// Subscribes; a server still connecting to its stores answers
    /// UNAVAILABLE at first, so this retries for up to 30 s.
    init(port: UInt16, filter: ExpiryFilter) throws {
        let limit = ContinuousClock.now + .seconds(30)
        var answer = "no answer"
        repeat {
            socket = try RawSocket(port: port, timeoutSeconds: 60)
            try send(1, .subscribeExpiry(SubscribeExpiryRequest(filter: filter)))
            guard let first = next() else { break }
            if first.status.code == .ok, case .subscribeExpiry? = first.result { return }
            answer = "\(first.status.code): \(first.status.message)"
            usleep(100_000)
        } while ContinuousClock.now < limit
        throw BenchError("SubscribeExpiry did not start: \(answer)")
    }

    func send(_ callID: UInt64, _ call: Call) throws {
        try socket.send(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: callID, call: call))))
    }

    /// The next response; nil after 60 s without one, or when the server closed.
    func next() -> Response? {
        socket.readFrame().flatMap { try? WireCodec.decodeResponse($0) }
    }

    /// Reads up to `count` events; stops early at the stream's end or after 60 s without one.
    func read(_ count: Int) {
        var read = 0
        while read < count, let response = next(), !response.endOfStream {
            if case .expiryEvent? = response.result { read += 1 }
        }
    }

    /// Sends Cancel for the stream and reads until its end; the end's status.
    func cancel() throws -> StatusCode? {
        try send(2, .cancel(CancelRequest(targetCallID: 1)))
        while let response = next() {
            if response.callID == 1 && response.endOfStream { return response.status.code }
        }
        return nil
    }

    /// Closes the connection without a Cancel: an orderly close, or with
    /// `reset` an abortive one (unread data discarded, the server gets a reset).
    func close(reset: Bool = false) {
        if reset {
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        }
        socket = nil
    }
}

/// Runs blocking work on a thread of its own and awaits it.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// Runs of one phase: `count` runs in project `project` over 8 environments, ttl (i % 10 + 1) s.
func runs(_ prefix: String, project: String, count: Int) -> [RunDescriptor] {
    (0..<count).map { i in
        RunDescriptor(runID: "run_bc_\(prefix)_\(i)", orgID: "org_bc_\(prefix)_\(i % 2)", projectID: project,
                      environmentID: "env_bc_\(prefix)_\(i % 8)", environmentType: .production,
                      queue: "q\(i % 2)", taskIdentifier: "expiring", workerQueue: "wq_bc_\(prefix)", ttl: "\(i % 10 + 1)s")
    }
}

func enqueueBatch(_ client: RunQueueConnection, _ batch: [RunDescriptor]) async throws {
    guard case .enqueueBatch(let answer)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: batch))),
          answer.results.allSatisfy({ $0.status.code == .ok && $0.created }) else {
        throw BenchError("EnqueueBatch did not create every run")
    }
}

/// The sequence before S joins on the churned server; the lateness seen
/// during the churn by a subscriber that reads throughout.
func churn(port: UInt16, database: Database, churnRuns: Int) async throws -> LatencyHistogram {
    let prefix = randomName(6)
    // A watches 20 single runs expire, then A and the producer go without Cancel.
    let a = try RawStream(port: port, filter: ExpiryFilter(environmentID: "env_bc_\(prefix)_a"))
    let producer = try await connectWithRetry(port: port)
    for i in 0..<20 {
        var run = runs(prefix + "a", project: "proj_bc_\(prefix)_a", count: 1)[0]
        run.runID += "_\(i)"
        run.environmentID = "env_bc_\(prefix)_a"
        run.ttl = "1s"
        guard case .enqueue? = try await producer.call(.enqueue(EnqueueRequest(run: run))) else { throw BenchError("Enqueue failed") }
        // Its event before the next call: each expiry is applied on its own.
        try await onThread { a.read(1) }
    }
    a.close()
    await producer.close()

    // Subscribers come and go while `churnRuns` runs expire.
    let project = "proj_bc_\(prefix)_c"
    let watcher = try await Subscriber(port: port, filter: ExpiryFilter(projectID: project))
    let client = try await connectWithRetry(port: port)
    let churned = runs(prefix + "c", project: project, count: churnRuns)
    for start in stride(from: 0, to: churned.count, by: 1000) {
        try await enqueueBatch(client, Array(churned[start..<min(churned.count, start + 1000)]))
    }
    await client.close()
    let logged: @Sendable () -> Int = { (try? database.scalar("SELECT count(*) FROM expiry_events WHERE project_id = '\(project)'")) ?? 0 }
    let filters = [ExpiryFilter(), ExpiryFilter(orgID: churned[0].orgID), ExpiryFilter(projectID: project),
                   ExpiryFilter(environmentID: churned[5].environmentID)]
    // One stays for the whole time: it reads, stops reading for half the runs, then reads on and cancels.
    let stayer = Thread {
        guard let stream = try? RawStream(port: port, filter: filters[2]) else { return }
        stream.read(100)
        while logged() < churnRuns / 2 { usleep(100_000) }
        stream.read(churnRuns)
        _ = try? stream.cancel()
        stream.close()
    }
    stayer.start()
    let rounds = try await onThread { () -> Int in
        var round = 0
        while logged() < churnRuns {
            let stream = try RawStream(port: port, filter: filters[round % filters.count])
            switch round % 4 {
            case 0:
                stream.read(50)
                _ = try stream.cancel()
                stream.close()
            case 1:
                stream.read(50)
                stream.close()
            case 2:
                let before = logged()
                while logged() < min(churnRuns, before + 1000) { usleep(50_000) }
                stream.close(reset: true)
            default:
                stream.read(10)
                stream.close()
            }
            round += 1
        }
        return round
    }
    say("  churn: \(rounds) subscribers came and went while \(churnRuns) runs expired")
    try await watcher.wait(for: churnRuns, until: .now + .seconds(60))
    await watcher.cancel()
    return LatencyHistogram(milliseconds: watcher.samples.withLock { $0 }.map { $0.receivedMs - Double($0.expiresAtMs) })
}

/// S joins, then W runs; S's lateness per event.
func measure(port: UInt16, runCount: Int) async throws -> (lateness: LatencyHistogram, check: String, ok: Bool) {
    let prefix = randomName(6)
    let project = "proj_bc_\(prefix)_w"
    let subscriber = try await Subscriber(port: port, filter: ExpiryFilter(projectID: project))
    let workload = runs(prefix + "w", project: project, count: runCount)
    let client = try await connectWithRetry(port: port)
    let start = ContinuousClock.now
    for (index, first) in stride(from: 0, to: workload.count, by: 40).enumerated() {
        try await Task.sleep(until: start + .milliseconds(10 * index))
        try await enqueueBatch(client, Array(workload[first..<min(workload.count, first + 40)]))
    }
    await client.close()
    try await subscriber.wait(for: runCount, until: .now + .seconds(60))
    await subscriber.cancel()
    let samples = subscriber.samples.withLock { $0 }
    let check = subscriber.check(expected: Set(workload.map(\.runID)))
    return (LatencyHistogram(milliseconds: samples.map { $0.receivedMs - Double($0.expiresAtMs) }), check.text, check.ok)
}

/// A server on its own redis-server and new database, for `body`.
func withServer<T>(runqueued: String, admin: String, _ body: (UInt16, Database) async throws -> T) async throws -> T {
    let redis = try PrivateRedis()
    defer { redis.stop() }
    let database = Database(admin: admin)
    try database.create()
    defer { database.drop() }
    let (server, port) = try await startServer(redis: redis, database: database, runqueued: runqueued, settings: [:])
    defer { stop(server) }
    return try await body(port, database)
}

func main() async throws {
    let runCount = intOption("--runs", 20_000)
    let churnRuns = intOption("--churn-runs", 20_000)
    guard let admin = ProcessInfo.processInfo.environment["RUNQUEUE_DATABASE_URL"] else {
        fail("set RUNQUEUE_DATABASE_URL (eval \"$(scripts/services env)\"), or run `make bench-churn`")
    }
    let selfPath = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let runqueued = option("--runqueued") ?? selfPath.deletingLastPathComponent().appendingPathComponent("runqueued").path
    guard FileManager.default.isExecutableFile(atPath: runqueued) else { fail("no runqueued at \(runqueued) (build it: swift build -c release)") }
    say("expiry lateness after subscriber churn through runqueued (\(runqueued)); \(ProcessInfo.processInfo.activeProcessorCount) cores; "
          + "each server on its own redis-server and a new database")
    say("W: \(runCount) runs, ttl 1..10 s, EnqueueBatch of 40 every 10 ms; lateness = received at S - expires_at")

    say("")
    say("fresh server: S joins, then W")
    let fresh = try await withServer(runqueued: runqueued, admin: admin) { port, _ in try await measure(port: port, runCount: runCount) }
    say(line("  lateness at S", fresh.lateness))
    say("  exactly-once: \(fresh.check)")

    say("")
    say("after churn: 20 single runs expire for a subscriber that then leaves without Cancel, subscribers come and go, then S joins, then W")
    let churned = try await withServer(runqueued: runqueued, admin: admin) { port, database in
        let during = try await churn(port: port, database: database, churnRuns: churnRuns)
        say(line("  lateness during the churn, at a subscriber reading throughout", during))
        return try await measure(port: port, runCount: runCount)
    }
    say(line("  lateness at S", churned.lateness))
    say("  exactly-once: \(churned.check)")

    say("")
    if !fresh.lateness.isEmpty && !churned.lateness.isEmpty {
        let (a, b) = (fresh.lateness, churned.lateness)
        say(String(format: "ratio after churn / fresh: p50 %.2f  p99 %.2f", b.p50 / a.p50, b.p99 / a.p99))
        say("target both p99 < 50 ms: \(a.p99 < 50 && b.p99 < 50 ? "met" : "NOT met")")
    }
    if !fresh.ok || !churned.ok { exit(1) }
}

try await main()
