// runqueue-bench-cycle: full-cycle throughput (EnqueueBatch -> Dequeue -> Ack)
// through the real server, and the raw Redis script ceiling in the same run.
//
// What it does:
// 1. Baseline: SCRIPT LOAD a small claim-like script (ZADD + HSET on one hash
//    tag) into the Redis the server uses, and run
//    `redis-benchmark -n 200000 -P 16 -q -r 100000 evalsha <sha> 1 {rqbench}:z __rand_int__`.
//    Its requests/s is the raw ceiling of one small script on this Redis.
// 2. Runs the cycle below `--rounds` times (default 2) in each of three modes,
//    alternating, each time through a fresh `runqueued` (next to this binary
//    unless --runqueued) on a free port with RUNQUEUE_REDIS_URL /
//    RUNQUEUE_DATABASE_URL from the environment:
//    - PostgreSQL on: the server as deployed (rows created first, every
//      change written through the outbox applier, Ack answered once applied);
//    - applier discarded: the same server with
//      RUNQUEUE_BENCHMARK_DISCARD_RECORDS=applier (rows created first as
//      always; the outbox applier writes nothing, so an Ack answers once its
//      script ran): the primary baseline for the write-through ratio;
//    - Redis-only: the same server with RUNQUEUE_BENCHMARK_DISCARD_RECORDS=1,
//      a benchmark-only setting under which no run record is written
//      (creations answer as created, outbox entries are drained unapplied).
//    Every id (environments, worker queue, runs) carries a random per-cycle
//    prefix, so data of earlier cycles does not interfere. The environments'
//    concurrency limit is raised (SetConcurrencyLimit 1,000,000) so the
//    default limit of 100 does not cap throughput; it is cleared at the end.
// 3. Producers (connections x batches in flight) EnqueueBatch N runs, 100 per
//    batch, each batch for one environment (round robin). Consumers
//    (connections x dequeues in flight) Dequeue (max_runs 100, wait_ms 1000)
//    and Ack every run it got (all acks of one answer pipelined). With
//    PostgreSQL on, every `--row-sample`th run (default 20) is read from
//    PostgreSQL right after its Ack is answered, until the row shows
//    COMPLETED: the time from the answer to the row, and from the ack in
//    Redis (the row's completed_at) to the answer.
// 4. Prints per cycle runs/s from the first enqueue to the last ack, p50/p99
//    latency of EnqueueBatch, Dequeue and Ack, the scripts Redis ran per run
//    (INFO commandstats, eval + evalsha), the CPU time of Redis, runqueued
//    and this client, and the ratio to the ceiling; then a summary: runs/s
//    of every round, the ratios PostgreSQL on / each baseline (medians;
//    target >= 0.70) and the ack-to-row percentiles.
// 5. Checks exactly-once in every cycle: every run enqueued (created),
//    received once (no duplicate run id), acked once (acked = true), and the
//    queues empty; exits 1 if any cycle fails it.
//
// usage: runqueue-bench-cycle [--runs N] [--batch N] [--producers N] [--producer-window N]
//          [--consumers N] [--consumer-window N] [--max-runs N] [--wait-ms N] [--envs N]
//          [--ttl DURATION|""] [--runqueued PATH] [--timeout SECONDS] [--skip-baseline]
//          [--rounds N] [--row-sample N] [--skip-redis-only]
import BenchSupport
import Foundation
import PostgresDriver
import RunQueueClient
import RunQueueCore
import Synchronization
import UVLoop

// MARK: helpers

/// The Redis the server uses, from RUNQUEUE_REDIS_URL (redis://host:port[/db]).
struct RedisTarget {
    var host = "127.0.0.1"
    var port = "6379"

    init(url: String) {
        var rest = url.dropFirst("redis://".count)
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = String(rest[rest.index(after: colon)...])
        } else if !rest.isEmpty {
            host = String(rest)
        }
        if host == "localhost" { host = "127.0.0.1" }
    }

    func cli(_ args: String...) throws -> String { try run("redis-cli", ["-h", host, "-p", port] + args) }

    func info(_ section: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for line in try cli("INFO", section).split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return out
    }

    /// eval + evalsha calls so far.
    func scriptCalls() throws -> Int {
        let stats = try info("commandstats")
        var total = 0
        for name in ["cmdstat_eval", "cmdstat_evalsha"] {
            guard let value = stats[name], let calls = value.split(separator: ",").first(where: { $0.hasPrefix("calls=") }) else { continue }
            total += Int(calls.dropFirst("calls=".count)) ?? 0
        }
        return total
    }

    func cpuSeconds() throws -> Double {
        let cpu = try info("cpu")
        return (Double(cpu["used_cpu_user"] ?? "") ?? 0) + (Double(cpu["used_cpu_sys"] ?? "") ?? 0)
    }
}

// MARK: shared state

final class Shared: Sendable {
    let total: Int
    let batches: Int
    let nextBatch = Atomic<Int>(0)
    let acked = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    let lastAck = Mutex<ContinuousClock.Instant?>(nil)

    init(total: Int, batch: Int) {
        self.total = total
        batches = (total + batch - 1) / batch
    }
}

struct ProducerReport: Sendable {
    var latencies = LatencyHistogram()
    var created = 0
    var notCreated = 0
    var errors: [String] = []
}

struct ConsumerReport: Sendable {
    var dequeueLatencies = LatencyHistogram()
    var ackLatencies = LatencyHistogram()
    var received: [String] = []
    var ackedTrue = 0
    var ackedFalse = 0
    var emptyDequeues = 0
    var errors: [String] = []
    /// Row reads after sampled acks, run beside the consumer (not on its path).
    var rowSampleReads: [Task<RowSample?, Never>] = []
}

/// When a sampled ack's row shows COMPLETED, read from PostgreSQL right after the answer.
struct RowSample: Sendable {
    var answerToRow: Duration
    var redisToAnswerMs: Int64
    var firstRead: Bool

    /// Reads the row until it shows COMPLETED (every read is one SELECT; gives up after 10 s).
    static func read(_ runID: String, answered: ContinuousClock.Instant, _ postgres: PostgresConnection) async -> RowSample? {
        let answeredWallMs = Int64(Date().timeIntervalSince1970 * 1000)
        var reads = 0
        while ContinuousClock.now - answered < .seconds(10) {
            reads += 1
            guard let rows = try? await postgres.query("SELECT status::text, completed_at FROM runs WHERE id = $1", [.text(runID)]),
                  let row = rows.rows.first else { return nil }
            if row.first == "COMPLETED", let completedAt = row.last.flatMap({ $0 }).flatMap({ Int64($0) }) {
                return RowSample(answerToRow: ContinuousClock.now - answered, redisToAnswerMs: answeredWallMs - completedAt, firstRead: reads == 1)
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }
}

// MARK: main

func main() async throws {
    let total = intOption("--runs", 200_000)
    let batch = intOption("--batch", 100)
    let producers = intOption("--producers", 2)
    let producerWindow = intOption("--producer-window", 4)
    let consumers = intOption("--consumers", 4)
    let consumerWindow = intOption("--consumer-window", 4)
    let maxRuns = intOption("--max-runs", 100)
    let waitMs = intOption("--wait-ms", 1000)
    let envCount = intOption("--envs", 4)
    let timeout = Double(intOption("--timeout", 300))
    let ttl = option("--ttl") ?? "10m"
    let env = ProcessInfo.processInfo.environment
    let rounds = intOption("--rounds", 2)
    guard let redisURL = env["RUNQUEUE_REDIS_URL"], let databaseURL = env["RUNQUEUE_DATABASE_URL"] else {
        fail("set RUNQUEUE_REDIS_URL and RUNQUEUE_DATABASE_URL (eval \"$(scripts/services env)\"), or run `make bench-cycle`")
    }
    let redis = RedisTarget(url: redisURL)
    let selfPath = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let runqueued = option("--runqueued") ?? selfPath.deletingLastPathComponent().appendingPathComponent("runqueued").path
    guard FileManager.default.isExecutableFile(atPath: runqueued) else { fail("no runqueued at \(runqueued) (build it: swift build -c release)") }

    let redisVersion = (try redis.info("server"))["redis_version"] ?? "?"
    say("full cycle EnqueueBatch -> Dequeue -> Ack through runqueued; \(ProcessInfo.processInfo.activeProcessorCount) cores, Redis \(redisVersion) at \(redis.host):\(redis.port)")
    say("\(total) runs, batches of \(batch), \(producers) producer connections x \(producerWindow) batches in flight, "
          + "\(consumers) consumer connections x \(consumerWindow) dequeues in flight (max_runs \(maxRuns), wait_ms \(waitMs)), "
          + "\(envCount) environments, ttl \"\(ttl)\"")

    // 1. Baseline: the raw ceiling of one small script.
    var ceiling: Double?
    var baselineCPUPerScript = 0.0
    if !CommandLine.arguments.contains("--skip-baseline") {
        let script = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1]) redis.call('HSET', KEYS[1] .. ':h', ARGV[1], '1') return 1"
        let sha = try redis.cli("SCRIPT", "LOAD", script).trimmingCharacters(in: .whitespacesAndNewlines)
        let cpuBefore = try redis.cpuSeconds()
        let output = try run("redis-benchmark", ["-h", redis.host, "-p", redis.port, "-n", "200000", "-P", "16", "-q", "-r", "100000",
                                                 "evalsha", sha, "1", "{rqbench}:z", "__rand_int__"])
        _ = try redis.cli("DEL", "{rqbench}:z", "{rqbench}:z:h")
        let line = output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).last { $0.contains("requests per second") } ?? ""
        guard let range = line.range(of: #"[0-9.]+ requests per second"#, options: .regularExpression),
              let value = Double(line[range].split(separator: " ")[0]) else {
            throw BenchError("cannot read redis-benchmark output: \(output)")
        }
        ceiling = value
        baselineCPUPerScript = (try redis.cpuSeconds() - cpuBefore) / 200_000
        say(String(format: "baseline: redis-benchmark -n 200000 -P 16 EVALSHA of a ZADD+HSET script: %.0f scripts/s, Redis CPU %.1f us per script",
                   value, baselineCPUPerScript * 1e6))
    }

    let settings = Settings(total: total, batch: batch, producers: producers, producerWindow: producerWindow, consumers: consumers,
                            consumerWindow: consumerWindow, maxRuns: maxRuns, waitMs: waitMs, envCount: envCount, timeout: timeout,
                            ttl: ttl, env: env, redis: redis, runqueued: runqueued, ceiling: ceiling,
                            baselineCPUPerScript: baselineCPUPerScript, rowSample: intOption("--row-sample", 20))

    // The baselines are the same server with RUNQUEUE_BENCHMARK_DISCARD_RECORDS:
    // "applier" (rows created first as always, no later change written: the
    // applier-discard baseline) and "1" (no PostgreSQL work at all: the
    // Redis-only path).
    let loop = try EventLoop(name: "bench-cycle-pg")
    let postgres = try PostgresConnection(loop: loop, url: databaseURL)
    try await postgres.connect()
    var results: [(mode: Mode, result: CycleResult)] = []
    let modes = Mode.allCases.filter { $0 == .writeThrough || !CommandLine.arguments.contains("--skip-redis-only") }
    for round in 0..<rounds {
        for mode in modes {
            say("")
            say("== round \(round + 1) of \(rounds): \(mode.label)")
            results.append((mode, try await cycle(settings, mode: mode, postgres: mode == .writeThrough ? postgres : nil)))
        }
    }
    await postgres.close()
    _ = loop.shutdown()

    say("")
    say("summary (runs/s per round; the machine is shared, so compare rounds, not single figures)")
    let on = results.filter { $0.mode == .writeThrough }.map(\.result)
    for mode in modes {
        say(mode.label.padding(toLength: 42, withPad: " ", startingAt: 0)
              + results.filter { $0.mode == mode }.map { String(format: "%.0f", $0.result.rate) }.joined(separator: ", "))
    }
    for baseline in modes where baseline != .writeThrough {
        let off = results.filter { $0.mode == baseline }.map(\.result)
        let onBest = on.map(\.rate).max() ?? 0, offBest = off.map(\.rate).max() ?? 1
        let onMedian = median(on.map(\.rate)), offMedian = median(off.map(\.rate))
        say(String(format: "ratio write-through / %@: %.2f (medians %.0f / %.0f), %.2f (best rounds %.0f / %.0f); target >= 0.70: %@",
                   baseline.short, onMedian / offMedian, onMedian, offMedian, onBest / offBest, onBest, offBest,
                   onMedian / offMedian >= 0.7 ? "met" : "NOT met"))
        let ackOn = median(on.map(\.ackP50)), ackOff = median(off.map(\.ackP50))
        say(String(format: "Ack p50 ms: %.2f write-through, %.2f %@ (%.2f ms more)", ackOn, ackOff, baseline.short, ackOn - ackOff))
    }
    let firstRead = on.reduce(0) { $0 + $1.rowOnFirstRead }
    let r = LatencyHistogram(merging: on.map(\.answerToRow)), l = LatencyHistogram(merging: on.map(\.redisToAnswer))
    say(String(format: "Ack answered -> row shows COMPLETED (sampled 1 in %d acks, %d samples, one SELECT per read): p50 %.2f ms, p99 %.2f ms; "
                 + "COMPLETED on the first read in %d of %d", settings.rowSample, r.count, r.p50, r.p99, firstRead, r.count))
    say(String(format: "ack in Redis (the row's completed_at) -> answer at the client: p50 %.0f ms, p99 %.0f ms (ms clocks)", l.p50, l.p99))
    if results.contains(where: { !$0.result.ok }) { exit(1) }
}

/// What the server writes to PostgreSQL in a cycle.
enum Mode: CaseIterable {
    case writeThrough, applierDiscarded, redisOnly

    var label: String {
        switch self {
        case .writeThrough: "PostgreSQL on (write-through)"
        case .applierDiscarded: "rows created, applier's writes discarded"
        case .redisOnly: "Redis-only (records discarded)"
        }
    }

    var short: String {
        switch self {
        case .writeThrough: "write-through"
        case .applierDiscarded: "applier discarded"
        case .redisOnly: "Redis-only"
        }
    }

    /// RUNQUEUE_BENCHMARK_DISCARD_RECORDS for the server.
    var discardSetting: String {
        switch self {
        case .writeThrough: "0"
        case .applierDiscarded: "applier"
        case .redisOnly: "1"
        }
    }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

struct Settings: Sendable {
    let total, batch, producers, producerWindow, consumers, consumerWindow, maxRuns, waitMs, envCount: Int
    let timeout: Double
    let ttl: String
    let env: [String: String]
    let redis: RedisTarget
    let runqueued: String
    let ceiling: Double?
    let baselineCPUPerScript: Double
    let rowSample: Int
}

struct CycleResult: Sendable {
    var rate: Double
    var ok: Bool
    var ackP50: Double
    /// Sampled acks: from the answer to a read showing the row COMPLETED.
    var answerToRow: LatencyHistogram
    /// Sampled acks: answer wall clock ms - the row's completed_at (the server's clock when the ack ran in Redis).
    var redisToAnswer: LatencyHistogram
    var rowOnFirstRead: Int
}

/// One full cycle through a fresh runqueued; prints its figures.
func cycle(_ settings: Settings, mode: Mode, postgres: PostgresConnection?) async throws -> CycleResult {
    let (total, batch, producers, producerWindow) = (settings.total, settings.batch, settings.producers, settings.producerWindow)
    let (consumers, consumerWindow, maxRuns, waitMs) = (settings.consumers, settings.consumerWindow, settings.maxRuns, settings.waitMs)
    let (envCount, timeout, ttl, env, redis) = (settings.envCount, settings.timeout, settings.ttl, settings.env, settings.redis)
    let (runqueued, ceiling, baselineCPUPerScript, rowSample) = (settings.runqueued, settings.ceiling, settings.baselineCPUPerScript, settings.rowSample)

    // 2. The server.
    let port = freePort()
    let server = Process()
    server.executableURL = URL(fileURLWithPath: runqueued)
    server.environment = env.merging(["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": env["RUNQUEUE_LOG_LEVEL"] ?? "error",
                                      "RUNQUEUE_BENCHMARK_DISCARD_RECORDS": mode.discardSetting]) { $1 }
    try spawn(server)
    defer { stop(server) }
    let control = try await connectWithRetry(port: port)

    let prefix = String((0..<8).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement()! })
    let org = "org_bench_" + prefix
    let project = "proj_bench_" + prefix
    let workerQueue = "wq_bench_" + prefix
    let environments = (0..<envCount).map { "env_bench_\(prefix)_\($0)" }
    for environment in environments {
        _ = try await control.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: environment, value: .limit(1_000_000))))
    }
    // "run_" + 25 characters, like trigger.dev's cuid-style ids: 29 bytes.
    let runID: @Sendable (Int) -> String = { n in
        let digits = String(n)
        return "run_c" + prefix + String(repeating: "0", count: 16 - digits.count) + digits
    }

    var connections: [RunQueueConnection] = []
    for _ in 0..<(producers + consumers) { connections.append(try await connectWithRetry(port: port)) }
    let producerConnections = Array(connections.prefix(producers))
    let consumerConnections = Array(connections.suffix(consumers))

    let shared = Shared(total: total, batch: batch)
    let scriptsBefore = try redis.scriptCalls()
    let redisCPUBefore = try redis.cpuSeconds()
    let serverCPUBefore = processCPU(pid: server.processIdentifier)
    let selfCPUBefore = selfCPU()
    let machineBefore = machineCPU()
    let start = ContinuousClock.now
    let deadline = start + .seconds(timeout)

    // 3. Producers and consumers.
    let enqueueDone = Mutex<ContinuousClock.Instant?>(nil)
    let producerTask = Task { () -> [ProducerReport] in
      let reports = await withTaskGroup(of: ProducerReport.self) { group in
        for connection in producerConnections {
            for _ in 0..<producerWindow {
                group.addTask {
                    var report = ProducerReport()
                    while true {
                        let b = shared.nextBatch.wrappingAdd(1, ordering: .relaxed).oldValue
                        if b >= shared.batches || shared.stop.load(ordering: .relaxed) { break }
                        let environment = environments[b % environments.count]
                        let runs = (b * batch..<min(total, (b + 1) * batch)).map { n in
                            RunDescriptor(runID: runID(n), orgID: org, projectID: project, environmentID: environment,
                                          environmentType: .production, queue: "task/my-background-task",
                                          taskIdentifier: "my-background-task", workerQueue: workerQueue, ttl: ttl)
                        }
                        let begin = ContinuousClock.now
                        do {
                            let result = try await connection.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
                            report.latencies.record(ContinuousClock.now - begin)
                            guard case .enqueueBatch(let answer)? = result else { report.errors.append("EnqueueBatch answered \(String(describing: result))"); continue }
                            for item in answer.results {
                                if item.status.code != .ok {
                                    report.errors.append("enqueue: \(item.status.message)")
                                } else if item.created {
                                    report.created += 1
                                } else {
                                    report.notCreated += 1
                                }
                            }
                        } catch {
                            report.errors.append("EnqueueBatch: \(error)")
                        }
                    }
                    return report
                }
            }
        }
        var reports: [ProducerReport] = []
        for await report in group { reports.append(report) }
        return reports
      }
      enqueueDone.withLock { $0 = ContinuousClock.now }
      return reports
    }

    let consumerReports: [ConsumerReport] = await withTaskGroup(of: ConsumerReport.self) { group in
        for connection in consumerConnections {
            for _ in 0..<consumerWindow {
                group.addTask {
                    var report = ConsumerReport()
                    while shared.acked.load(ordering: .relaxed) < total && !shared.stop.load(ordering: .relaxed) {
                        if ContinuousClock.now > deadline {
                            shared.stop.store(true, ordering: .relaxed)
                            report.errors.append("timed out after \(Int(timeout)) s")
                            break
                        }
                        let begin = ContinuousClock.now
                        let messages: [RunMessage]
                        do {
                            let result = try await connection.call(.dequeue(DequeueRequest(workerQueue: workerQueue, maxRuns: UInt32(maxRuns),
                                                                                           waitMs: UInt32(waitMs))))
                            guard case .dequeue(let answer)? = result else {
                                report.errors.append("Dequeue answered \(String(describing: result))")
                                continue
                            }
                            messages = answer.messages
                        } catch {
                            report.errors.append("Dequeue: \(error)")
                            try? await Task.sleep(for: .milliseconds(10))
                            continue
                        }
                        // Empty answers are long polls that ran out (the end of the run): counted, not timed.
                        if messages.isEmpty { report.emptyDequeues += 1; continue }
                        report.dequeueLatencies.record(ContinuousClock.now - begin)
                        report.received.append(contentsOf: messages.map(\.runID))
                        let acksSent = ContinuousClock.now
                        let answers = await connection.pipeline(messages.map {
                            .ack(AckRequest(runID: $0.runID, environmentID: $0.environmentID, attempt: $0.attempt))
                        })
                        var outcomes: [(Duration, Result<Bool, RunQueueError>)] = []
                        for (message, answer) in zip(messages, answers) {
                            let outcome = answer.result.map { if case .ack(let ack)? = $0 { ack.acked } else { false } }
                            if case .success(true) = outcome, let postgres, (Int(message.runID.suffix(16)) ?? 1) % rowSample == 0 {
                                let (runID, answered) = (message.runID, acksSent + answer.elapsed)
                                report.rowSampleReads.append(Task { await RowSample.read(runID, answered: answered, postgres) })
                            }
                            outcomes.append((answer.elapsed, outcome))
                        }
                        var acked = 0
                        for (latency, outcome) in outcomes {
                            report.ackLatencies.record(latency)
                            switch outcome {
                            case .success(true): acked += 1
                            case .success(false): report.ackedFalse += 1
                            case .failure(let error): report.errors.append("Ack: \(error)")
                            }
                        }
                        report.ackedTrue += acked
                        if shared.acked.wrappingAdd(acked, ordering: .relaxed).newValue >= total {
                            shared.lastAck.withLock { if $0 == nil { $0 = ContinuousClock.now } }
                        }
                    }
                    return report
                }
            }
        }
        var reports: [ConsumerReport] = []
        for await report in group { reports.append(report) }
        return reports
    }
    shared.stop.store(true, ordering: .relaxed)
    let producerResults = await producerTask.value

    let end = shared.lastAck.withLock { $0 } ?? ContinuousClock.now
    let redisCPU = try redis.cpuSeconds() - redisCPUBefore
    let serverCPU = processCPU(pid: server.processIdentifier) - serverCPUBefore
    let clientCPU = selfCPU() - selfCPUBefore
    let machineAfter = machineCPU()
    let machineBusy = machineAfter.busy - machineBefore.busy
    let scripts = try redis.scriptCalls() - scriptsBefore

    // 4. Checks: the queues are empty, every run seen and acked once.
    var leftovers: [String] = []
    for environment in environments {
        if case .queueStats(let stats)? = try await control.call(.queueStats(QueueStatsRequest(environmentID: environment))),
           stats.length != 0 || stats.inFlight != 0 {
            leftovers.append("\(environment): length \(stats.length), in flight \(stats.inFlight)")
        }
        _ = try await control.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: environment, value: .clear)))
    }
    for connection in producerConnections + consumerConnections { await connection.close() }
    await control.close()
    stop(server)

    let elapsed = seconds(end - start)
    let enqueueElapsed = seconds((enqueueDone.withLock { $0 } ?? end) - start)
    let received = consumerReports.flatMap(\.received)
    let distinct = Set(received).count
    let created = producerResults.reduce(0) { $0 + $1.created }
    let notCreated = producerResults.reduce(0) { $0 + $1.notCreated }
    let ackedTrue = consumerReports.reduce(0) { $0 + $1.ackedTrue }
    let ackedFalse = consumerReports.reduce(0) { $0 + $1.ackedFalse }
    let errors = producerResults.flatMap(\.errors) + consumerReports.flatMap(\.errors)
    let enqueueLatency = LatencyHistogram(merging: producerResults.map(\.latencies))
    let dequeueLatency = LatencyHistogram(merging: consumerReports.map(\.dequeueLatencies))
    let ackLatency = LatencyHistogram(merging: consumerReports.map(\.ackLatencies))
    let emptyDequeues = consumerReports.reduce(0) { $0 + $1.emptyDequeues }
    let rate = Double(ackedTrue) / elapsed

    say("")
    say(String(format: "full cycle: %d runs in %.2f s = %.0f runs/s (enqueue side alone finished after %.2f s = %.0f runs/s)",
                 ackedTrue, elapsed, rate, enqueueElapsed, Double(created) / enqueueElapsed))
    say(String(format: "latency ms      p50      p99   calls"))
    say(String(format: "EnqueueBatch %8.2f %8.2f %7d  (%d runs each)", enqueueLatency.p50, enqueueLatency.p99, enqueueLatency.count, batch))
    say(String(format: "Dequeue      %8.2f %8.2f %7d  (answers with runs; %.1f runs each; %d empty long polls not timed)", dequeueLatency.p50,
                 dequeueLatency.p99, dequeueLatency.count, Double(received.count) / Double(max(1, dequeueLatency.count)), emptyDequeues))
    say(String(format: "Ack          %8.2f %8.2f %7d", ackLatency.p50, ackLatency.p99, ackLatency.count))
    say(String(format: "CPU during the cycle (s, %% of one core): redis %.1f (%.0f%%), runqueued %.1f (%.0f%%), this client %.1f (%.0f%%); %d cores",
                 redisCPU, 100 * redisCPU / elapsed, serverCPU, 100 * serverCPU / elapsed, clientCPU, 100 * clientCPU / elapsed,
                 ProcessInfo.processInfo.activeProcessorCount))
    let others = max(0, machineBusy - redisCPU - serverCPU - clientCPU)
    say(String(format: "machine CPU busy %.1f s of %.1f s available (%.0f%%); other processes (not Redis, runqueued or this client) %.1f s",
               machineBusy, machineAfter.total - machineBefore.total,
               100 * machineBusy / max(0.001, machineAfter.total - machineBefore.total), others))
    let perRun = Double(scripts) / Double(max(1, ackedTrue))
    let nominal = 1.0 + 1.0 / Double(batch) + 1.0 / Double(maxRuns)
    say(String(format: "Redis scripts per run: %.3f measured (%d eval/evalsha during the cycle, INFO commandstats; includes "
                 + "housekeeping and any other client of this Redis); nominal %.2f = 1 ack + 1/%d enqueue + 1/%d claim",
                 perRun, scripts, nominal, batch, maxRuns))
    let redisPerRun = redisCPU / Double(max(1, ackedTrue))
    say(String(format: "Redis CPU per run: %.1f us (all scripts of one cycle) -> at most %.0f runs/s with Redis on one full core",
               redisPerRun * 1e6, 1 / redisPerRun))
    if baselineCPUPerScript > 0 {
        say(String(format: "  vs the baseline script: %.1f us x %.3f scripts per run = %.1f us; ours costs %.1fx that (CPU ratio, robust to machine noise)",
                   baselineCPUPerScript * 1e6, perRun, baselineCPUPerScript * perRun * 1e6, redisPerRun / (baselineCPUPerScript * perRun)))
    }
    if let ceiling {
        let bound = ceiling / perRun
        say(String(format: "raw ceiling %.0f scripts/s / %.3f scripts per run = %.0f runs/s; ours %.0f runs/s = ratio %.2f of that bound",
                     ceiling, perRun, bound, rate, rate / bound))
        say(String(format: "targets: >= 25,000 runs/s: %@; >= half the raw ceiling per run (%.0f runs/s): %@",
                     rate >= 25_000 ? "met" : "NOT met", bound / 2, rate >= bound / 2 ? "met" : "NOT met"))
    }

    let ok = created == total && notCreated == 0 && received.count == total && distinct == total && ackedTrue == total
        && ackedFalse == 0 && errors.isEmpty && leftovers.isEmpty
    say("exactly-once check: \(ok ? "ok" : "FAILED"): \(created) created (\(notCreated) not), \(received.count) received, "
          + "\(distinct) distinct run ids, \(ackedTrue) acked (\(ackedFalse) acked=false), \(errors.count) errors, queues \(leftovers.isEmpty ? "empty" : "NOT empty")")
    for error in errors.prefix(10) { print("  error: \(error)") }
    for leftover in leftovers { print("  left: \(leftover)") }
    if !ok { say("exactly-once check FAILED in this round") }
    var answerToRow = LatencyHistogram(), redisToAnswer = LatencyHistogram()
    var rowOnFirstRead = 0
    for read in consumerReports.flatMap(\.rowSampleReads) {
        guard let sample = await read.value else { continue }
        answerToRow.record(sample.answerToRow)
        redisToAnswer.record(milliseconds: Double(sample.redisToAnswerMs))
        if sample.firstRead { rowOnFirstRead += 1 }
    }
    return CycleResult(rate: rate, ok: ok, ackP50: ackLatency.p50, answerToRow: answerToRow, redisToAnswer: redisToAnswer,
                       rowOnFirstRead: rowOnFirstRead)
}

try await main()
