// runqueue-bench-expiry: how late expiry events reach a subscriber, and how
// fast a mass expiry drains, through a real runqueued; and trigger.dev's
// 1 s TTL poller measured in the same run.
//
// What it does:
// 1. Starts its own redis-server on a free port (`--save '' --appendonly no`),
//    creates a fresh PostgreSQL database next to RUNQUEUE_DATABASE_URL (dropped
//    at the end) and a release `runqueued` on them (next to this binary unless
//    --runqueued). Every environment gets concurrency limit 0 and nobody
//    dequeues, so every run expires.
// 2. Lateness: one SubscribeExpiry subscriber (started first), then N runs
//    (--lateness-runs, 100,000) enqueued with `timestamp_ms` spread uniformly
//    over --spread seconds starting a few seconds ahead and ttl "1s", so their
//    deadlines (`timestamp_ms + 1 s`, a delayed run's TTL starts when it comes
//    due) are spread uniformly over the window and every enqueue is done
//    before the first deadline. Lateness = wall clock when the event reached
//    the subscriber - the event's expires_at_ms (same host, same clock).
//    Checks that every run got exactly one event, in increasing cursor order.
// 3. Drain: another subscriber, then M runs (--drain-runs, 200,000) whose
//    deadlines are all the same instant. Measures the time from that instant
//    until PostgreSQL shows all M EXPIRED (count query every 50 ms) and until
//    the subscriber had all M events; prints runs/s of each.
// 4. Baseline: trigger.dev's TTL poller as its run queue implements it:
//    4 TTL shards (its default), one loop per shard ticking every
//    1000 ms, each tick expiring at most 100 members with score <= now (ZREM
//    plus the worker job it writes), against the same redis-server. It gets
//    the same N deadlines over the same window and runs until the window plus
//    --baseline-grace seconds; runs still unexpired then count with the
//    lateness they had reached (a lower bound, marked ">="). A light run
//    (--baseline-light-runs, 3,000: under its 400 runs/s capacity) shows its
//    lateness when it keeps up. Its drain rate is printed from the same run
//    and as the theoretical 4 x 100 per second.
//
// usage: runqueue-bench-expiry [--lateness-runs N] [--spread SECONDS] [--drain-runs N] [--envs N]
//          [--baseline-light-runs N] [--baseline-grace SECONDS] [--runqueued PATH] [--skip-baseline]
//          [--ttl-batch-size N]
import BenchSupport
import Foundation
import RedisDriver
import RunQueueClient
import RunQueueCore
import Synchronization
import UVLoop

// MARK: runqueued

struct Workload {
    let port: UInt16
    let prefix = randomName(8)
    let environments: [String]

    init(port: UInt16, envCount: Int) {
        self.port = port
        environments = (0..<envCount).map { [prefix] in "env_bx_\(prefix)_\($0)" }
    }

    func org(_ phase: String) -> String { "org_bx_\(prefix)_\(phase)" }

    /// Enqueues `deadlines.count` runs of `phase`, run i delayed until
    /// `dueMs[i]` with ttl "1s"; returns their ids after checking each
    /// answer's expires_at.
    func enqueue(phase: String, dueMs: [Int64], client: RunQueueClient) async throws -> [String] {
        let org = org(phase)
        let runs = dueMs.enumerated().map { i, due in
            RunDescriptor(runID: "run_bx_\(prefix)_\(phase)_\(i)", orgID: org, projectID: "proj_bx_\(prefix)",
                          environmentID: environments[i % environments.count], environmentType: .production,
                          queue: "task/expiring", taskIdentifier: "expiring", workerQueue: "wq_bx_\(prefix)",
                          timestampMs: due, ttl: "1s")
        }
        var start = 0
        while start < runs.count {
            let chunk = Array(runs[start..<min(runs.count, start + 20_000)])
            let results = try await client.enqueueBatch(chunk, timeout: .seconds(120))
            for (run, result) in zip(chunk, results) {
                guard result.status.code == .ok, result.created else {
                    throw BenchError("enqueue \(run.runID): \(result.status.code) \(result.status.message) created=\(result.created)")
                }
                guard result.expiresAtMs == run.timestampMs + 1000 else {
                    throw BenchError("enqueue \(run.runID): expires_at \(result.expiresAtMs), wanted \(run.timestampMs + 1000)")
                }
            }
            start += chunk.count
        }
        return runs.map(\.runID)
    }
}

// MARK: trigger.dev's poller

struct BaselineResult {
    var lateness: LatencyHistogram
    /// Runs not expired when the run stopped (their lateness is a lower bound).
    var censored: Int
    var expired: Int
    var firstDeadlineMs: Double
    var stoppedMs: Double
}

/// trigger.dev's TTL consumers: one loop per TTL shard, ticking every
/// `pollMs`, each tick expiring up to `batch` members due by now.
func referencePoller(redisPort: UInt16, runs: Int, spreadMs: Int64, shards: Int = 4, pollMs: Int64 = 1000, batch: Int = 100,
                     graceMs: Int64) async throws -> BaselineResult {
    let loop = try EventLoop(name: "bench-expiry-reference")
    defer { loop.shutdown() }
    let redis = try await loop.submit { RedisConnection(loop: loop, config: RedisConfig(host: "127.0.0.1", port: redisPort, commandTimeoutMs: 60_000)) }
    loop.execute { redis.connect() }
    try await redis.waitUntilConnected(timeoutMs: 5_000)
    defer { loop.execute { redis.close() } }
    // trigger.dev's expire script, reduced to its Redis work: read
    // the due members, ZREM each, DEL its message, write the worker job.
    let script = RedisScript(source: """
        local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
        for _, m in ipairs(members) do
          redis.call('ZREM', KEYS[1], m)
          local runId = string.match(m, '|([^|]+)|')
          redis.call('DEL', KEYS[1] .. ':message:' .. runId)
          redis.call('ZADD', KEYS[2], ARGV[1], runId)
          redis.call('HSET', KEYS[3], runId, '{"job":"expireTtlRun","item":{"runId":"' .. runId .. '"},"attempt":0}')
        end
        return members
        """)
    try await redis.loadScript(script)
    let tag = randomName(6)
    let start = wallMs() + 2000
    let deadlines = (0..<runs).map { Int64(start) + 1000 + Int64($0) * spreadMs / Int64(runs) }
    for shard in 0..<shards {
        var args = ["ZADD", "ref\(tag):ttl:shard:\(shard)"]
        for i in stride(from: shard, to: runs, by: shards) {
            args += [String(deadlines[i]), "{org:o\(tag)}:proj:p:env:e\(i % 16):queue:task/expiring|\(i)|o\(tag)"]
            if args.count >= 2002 {
                _ = try await redis.command(args.map { Array($0.utf8) })
                args = ["ZADD", "ref\(tag):ttl:shard:\(shard)"]
            }
        }
        if args.count > 2 { _ = try await redis.command(args.map { Array($0.utf8) }) }
    }
    let stopAt = Double(deadlines.last ?? Int64(start)) + Double(graceMs)
    // The shards' loops tick independently; one task runs the ticks in time
    // order (a tick is a few ms of Redis work, far less than the interval).
    var ticks = (0..<shards).map { _ in start + Double.random(in: 0..<Double(pollMs)) }
    var lateness = LatencyHistogram()
    var expired = 0
    while let next = ticks.min(), next < stopAt, let shard = ticks.firstIndex(of: next) {
        let wait = next - wallMs()
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int64(wait))) }
        let reply = try await redis.evalScript(script, keys: ["ref\(tag):ttl:shard:\(shard)", "ref\(tag):worker", "ref\(tag):items"].map { Array($0.utf8) },
                                               args: [String(Int64(wallMs())), String(batch)].map { Array($0.utf8) })
        let now = wallMs()
        for member in reply.array ?? [] {
            if let text = member.string, let i = Int(text.split(separator: "|")[1]) {
                lateness.record(milliseconds: now - Double(deadlines[i]))
                expired += 1
            }
        }
        ticks[shard] += Double(pollMs)
    }
    let stopped = wallMs()
    var censored = 0
    for shard in 0..<shards {
        let reply = try await redis.command("ZRANGE", "ref\(tag):ttl:shard:\(shard)", "0", "-1", "WITHSCORES")
        let items = reply.array ?? []
        for j in stride(from: 1, to: items.count, by: 2) {
            if let score = items[j].string.flatMap(Double.init), score <= stopped {
                lateness.record(milliseconds: stopped - score)
                censored += 1
            }
        }
        _ = try await redis.command("DEL", "ref\(tag):ttl:shard:\(shard)")
    }
    _ = try await redis.command("DEL", "ref\(tag):worker", "ref\(tag):items")
    return BaselineResult(lateness: lateness, censored: censored, expired: expired,
                          firstDeadlineMs: Double(deadlines.first ?? 0), stoppedMs: stopped)
}

// MARK: main

func main() async throws {
    let latenessRuns = intOption("--lateness-runs", 100_000)
    let spreadMs = Int64(intOption("--spread", 10)) * 1000
    let drainRuns = intOption("--drain-runs", 200_000)
    let envCount = intOption("--envs", 64)
    let lightRuns = intOption("--baseline-light-runs", 3_000)
    let graceMs = Int64(intOption("--baseline-grace", 10)) * 1000
    let skipBaseline = CommandLine.arguments.contains("--skip-baseline")
    guard let admin = ProcessInfo.processInfo.environment["RUNQUEUE_DATABASE_URL"] else {
        fail("set RUNQUEUE_DATABASE_URL (eval \"$(scripts/services env)\"), or run `make bench-expiry`")
    }
    let selfPath = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let runqueued = option("--runqueued") ?? selfPath.deletingLastPathComponent().appendingPathComponent("runqueued").path
    guard FileManager.default.isExecutableFile(atPath: runqueued) else { fail("no runqueued at \(runqueued) (build it: swift build -c release)") }
    var settings: [String: String] = [:]
    if let batch = option("--ttl-batch-size") { settings["RUN_ENGINE_TTL_SYSTEM_BATCH_SIZE"] = batch }

    let redis = try PrivateRedis()
    defer { redis.stop() }
    let database = Database(admin: admin)
    try database.create()
    defer { database.drop() }
    let (server, port) = try await startServer(redis: redis, database: database, runqueued: runqueued, settings: settings)
    defer { stop(server) }
    say("TTL expiry through runqueued (\(runqueued)); \(ProcessInfo.processInfo.activeProcessorCount) cores, private redis-server "
          + "\(redis.version()) on port \(redis.port), fresh database \(database.name)")
    say("server settings: \(settings.isEmpty ? "defaults" : settings.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")); "
          + "\(envCount) environments with concurrency limit 0, nobody dequeues")

    let workload = Workload(port: port, envCount: envCount)
    let client = RunQueueClient(RunQueueClientConfiguration(server: SocketAddress(host: "127.0.0.1", port: port)))
    for environment in workload.environments {
        try await client.setConcurrencyLimit(environmentID: environment, .limit(0))
    }

    // 2. Lateness.
    let latenessSubscriber = try await Subscriber(port: port, filter: ExpiryFilter(orgID: workload.org("lat")))
    var lead = 6000.0
    let firstDue = Int64(wallMs() + lead)
    let enqueueStart = wallMs()
    let latenessIDs = try await workload.enqueue(phase: "lat", dueMs: (0..<latenessRuns).map { firstDue + Int64($0) * spreadMs / Int64(latenessRuns) },
                                                 client: client)
    let enqueueMs = wallMs() - enqueueStart
    let enqueueRate = Double(latenessRuns) / (enqueueMs / 1000)
    say("")
    say(String(format: "lateness: %d runs, deadlines spread uniformly over %.0f s (timestamp_ms spread, ttl 1s); enqueued in %.2f s (%.0f runs/s), "
                 + "%.2f s before the first deadline", latenessRuns, Double(spreadMs) / 1000, enqueueMs / 1000, enqueueRate,
               (Double(firstDue + 1000) - wallMs()) / 1000))
    try await latenessSubscriber.wait(for: latenessRuns, until: .now + .seconds(Int64(lead / 1000) + spreadMs / 1000 + 60))
    await latenessSubscriber.cancel()
    let latenessSamples = latenessSubscriber.samples.withLock { $0 }
    let ours = LatencyHistogram(milliseconds: latenessSamples.map { $0.receivedMs - Double($0.expiresAtMs) })
    say(line("  lateness (received at the subscriber - expires_at)", ours))
    let latenessCheck = latenessSubscriber.check(expected: Set(latenessIDs))
    say("  exactly-once: \(latenessCheck.text)")
    say("  target p99 <= 50 ms: \(!ours.isEmpty && ours.p99 <= 50 ? "met" : "NOT met")")

    // 3. Drain.
    let drainSubscriber = try await Subscriber(port: port, filter: ExpiryFilter(orgID: workload.org("drain")))
    lead = max(3000, 1.5 * Double(drainRuns) / enqueueRate * 1000 + 2000)
    let due = Int64(wallMs() + lead)
    let instant = Double(due + 1000)
    let drainIDs = try await workload.enqueue(phase: "drain", dueMs: Array(repeating: due, count: drainRuns), client: client)
    say("")
    say(String(format: "drain: %d runs expiring at the same instant; enqueued %.2f s before it", drainRuns, (instant - wallMs()) / 1000))
    if wallMs() >= instant { say("  warning: the enqueue ended after the instant; the figures include enqueue time") }
    let org = workload.org("drain")
    var pgDoneMs: Double?
    let pgLimit = ContinuousClock.now + .seconds(Int64(lead / 1000) + 120)
    while pgDoneMs == nil && ContinuousClock.now < pgLimit {
        let wait = instant - wallMs()
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int64(wait))) }
        if try database.scalar("SELECT count(*) FROM runs WHERE org_id = '\(org)' AND status = 'EXPIRED'") >= drainRuns {
            pgDoneMs = wallMs() - instant
        } else {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
    try await drainSubscriber.wait(for: drainRuns, until: .now + .seconds(60))
    await drainSubscriber.cancel()
    let drainSamples = drainSubscriber.samples.withLock { $0 }
    let deliveredMs = (drainSamples.map(\.receivedMs).max() ?? .infinity) - instant
    let storedEvents = try database.scalar("SELECT count(DISTINCT run_id) FROM expiry_events WHERE org_id = '\(org)'")
    if let pgDoneMs {
        say(String(format: "  all %d EXPIRED in PostgreSQL after %.2f s: %.0f runs/s", drainRuns, pgDoneMs / 1000, Double(drainRuns) / (pgDoneMs / 1000)))
    } else {
        say("  NOT all EXPIRED in PostgreSQL within the time limit")
    }
    say(String(format: "  all events delivered to the subscriber after %.2f s: %.0f runs/s", deliveredMs / 1000, Double(drainSamples.count) / (deliveredMs / 1000)))
    let drainCheck = drainSubscriber.check(expected: Set(drainIDs))
    say("  exactly-once: \(drainCheck.text); \(storedEvents) runs with events in the log")
    let drainRate = pgDoneMs.map { Double(drainRuns) / (max($0, deliveredMs) / 1000) } ?? 0
    say(String(format: "  target >= 20,000 runs/s (slower of PostgreSQL and delivery, %.0f runs/s): %@", drainRate, drainRate >= 20_000 ? "met" : "NOT met"))
    await client.close()
    stop(server)

    // 4. Baseline.
    if !skipBaseline {
        say("")
        say("baseline: the reference's TTL poller (4 shards, one tick per shard every 1000 ms, at most 100 runs per tick) on the same redis-server")
        let heavy = try await referencePoller(redisPort: redis.port, runs: latenessRuns, spreadMs: spreadMs, graceMs: graceMs)
        say(line(String(format: "  same %d deadlines, stopped %.0f s after the last", latenessRuns, Double(graceMs) / 1000), heavy.lateness,
                 censored: heavy.censored))
        say(String(format: "    expired %d, still waiting %d when stopped; measured drain %.0f runs/s while backlogged", heavy.expired, heavy.censored,
                   Double(heavy.expired) / ((heavy.stoppedMs - heavy.firstDeadlineMs) / 1000)))
        let light = try await referencePoller(redisPort: redis.port, runs: lightRuns, spreadMs: spreadMs, graceMs: 3000)
        say(line(String(format: "  light load, %d deadlines over the same window", lightRuns), light.lateness, censored: light.censored))
        if !ours.isEmpty && !heavy.lateness.isEmpty && !light.lateness.isEmpty {
            say(String(format: "ratio ours / reference lateness, same load: p50 %.4f p99 %.4f (reference values are lower bounds)",
                       ours.p50 / heavy.lateness.p50, ours.p99 / heavy.lateness.p99))
            say(String(format: "ratio ours (at %d runs) / reference at light load (%d runs): p50 %.3f p99 %.3f",
                       latenessRuns, lightRuns, ours.p50 / light.lateness.p50, ours.p99 / light.lateness.p99))
        }
        say(String(format: "drain: ours %.0f runs/s; reference theoretical 4 shards x 100 runs per 1 s poll = 400 runs/s (ratio %.1f); "
                     + "with our 16 shards it would be 1,600 runs/s (ratio %.1f)", drainRate, drainRate / 400, drainRate / 1600))
    }
    if !latenessCheck.ok || !drainCheck.ok || pgDoneMs == nil || storedEvents != drainRuns { exit(1) }
}

try await main()
