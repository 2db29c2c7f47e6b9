// runqueue-bench-rebuild: how fast runqueued restores Redis from PostgreSQL
// after Redis lost everything while the server ran, with the rebuild of
// Sources/RunQueueEngine/Maintenance.swift (one pass over the active rows
// for every lost shard, the next page read while the last is written)
// beside the baseline it replaced, a pass of its own for each shard a claim
// finds lost (RUNQUEUE_BENCHMARK_REBUILD=per-shard), both in this run on the
// same rows.
//
// One private redis-server and one new database (next to
// RUNQUEUE_DATABASE_URL, dropped at the end) hold --runs runs (1,000,000)
// over 64 environments, enqueued through a release runqueued. Then, for each
// policy, a runqueued with that policy starts on them, Redis is flushed
// (FLUSHALL), and a Dequeue of worker queue "wq" (wait 0) is sent every
// 20 ms: the first one meets the lost Redis and starts the rebuild. Figures:
// the time from the flush to the first Dequeue that answers a run, and to
// QueueStats of every environment adding up to --runs again; restored runs/s
// is --runs over the latter.
//
// Then the reconciler's catch-up: --orphans rows (200,000) are written to
// PostgreSQL directly, created an hour ago and never added to Redis (as
// after a crash between the commit and Redis and a long outage), the
// watermark set back to before them, and a server started: the time until
// every one is queued gives the rows/s its start-up pass re-adds.
//
// usage: runqueue-bench-rebuild [--runs N] [--orphans N] [--runqueued PATH]
import BenchSupport
import Foundation
import RunQueueClient
import RunQueueCore

let runs = intOption("--runs", 1_000_000)
let orphans = intOption("--orphans", 200_000)
let environments = 64
let runqueued = option("--runqueued") ?? ".build/release/runqueued"
guard let admin = ProcessInfo.processInfo.environment["RUNQUEUE_DATABASE_URL"] else {
    fail("RUNQUEUE_DATABASE_URL must name the local PostgreSQL (make bench-rebuild sets it)")
}
let tag = randomName(6)

func environment(_ i: Int) -> String { "e\(tag)_\(i % environments)" }

func descriptor(_ i: Int) -> RunDescriptor {
    RunDescriptor(runID: "r\(tag)_\(i)", orgID: "org", projectID: "proj", environmentID: environment(i),
                  environmentType: .production, queue: "q", concurrencyKey: "", taskIdentifier: "task",
                  workerQueue: "wq", timestampMs: 0, priorityMs: 0, ttl: "")
}

/// Enqueues every run: batches of 1000, 8 in flight.
func load(_ connection: RunQueueConnection) async throws {
    var next = 0
    while next < runs {
        var calls: [Call] = []
        while calls.count < 8 && next < runs {
            let end = min(runs, next + 1000)
            calls.append(.enqueueBatch(EnqueueBatchRequest(runs: (next..<end).map(descriptor))))
            next = end
        }
        for answer in await connection.pipeline(calls) {
            guard case .success(.enqueueBatch(let r)?) = answer.result, r.results.allSatisfy({ $0.status.code == .ok }) else {
                throw BenchError("an EnqueueBatch failed: \(answer.result)")
            }
        }
    }
}

func queuedTotal(_ connection: RunQueueConnection) async -> Int {
    var total = 0
    for e in 0..<environments {
        if case .queueStats(let stats)? = try? await connection.call(.queueStats(QueueStatsRequest(environmentID: environment(e)))) {
            total += Int(stats.length)
        }
    }
    return total
}

struct Outcome {
    let firstRun: Double
    let allBack: Double
}

/// Flushes Redis under a running server and times what comes back.
func measure(_ redis: PrivateRedis, _ database: Database, settings: [String: String]) async throws -> Outcome {
    let (server, port) = try await startServer(redis: redis, database: database, runqueued: runqueued, settings: settings)
    defer { stop(server) }
    let probe = try await connectWithRetry(port: port)
    let stats = try await connectWithRetry(port: port)
    guard await queuedTotal(stats) == runs else { throw BenchError("Redis does not hold all \(runs) runs before the flush") }
    _ = try run("redis-cli", ["-p", String(redis.port), "FLUSHALL"])
    let flushed = ContinuousClock.now
    var firstRun: Double?
    while firstRun == nil {
        if case .dequeue(let answer)? = try? await probe.call(.dequeue(DequeueRequest(workerQueue: "wq", maxRuns: 1, waitMs: 0, leaseMs: 0))),
           let message = answer.messages.first {
            firstRun = seconds(ContinuousClock.now - flushed)
            // Given back: the count below is of every run.
            _ = try? await probe.call(.nack(NackRequest(runID: message.runID, environmentID: message.environmentID, retryAtMs: 0,
                                                        keepAttempt: true, attempt: message.attempt)))
        } else {
            try await Task.sleep(for: .milliseconds(20))
        }
        if ContinuousClock.now - flushed > .seconds(1800) { throw BenchError("no run came back within 30 minutes") }
    }
    while await queuedTotal(stats) < runs {
        try await Task.sleep(for: .milliseconds(100))
        if ContinuousClock.now - flushed > .seconds(1800) { throw BenchError("not every run came back within 30 minutes") }
    }
    let allBack = seconds(ContinuousClock.now - flushed)
    await probe.close()
    await stats.close()
    return Outcome(firstRun: firstRun ?? 0, allBack: allBack)
}

let redis = try PrivateRedis()
let database = Database(admin: admin)
try database.create()
defer {
    redis.stop()
    database.drop()
}
say("runqueue-bench-rebuild: \(runs) runs over \(environments) environments; redis \(redis.version()); \(ProcessInfo.processInfo.activeProcessorCount) cores")
let settings = ["RUNQUEUE_DEFAULT_ENV_CONCURRENCY_LIMIT": "1000000", "RUNQUEUE_REBUILD_HOLD_MS": "600000",
                "RUNQUEUE_RECONCILE_INTERVAL_MS": "3600000", "RUN_ENGINE_TTL_SYSTEM_DISABLED": "true"]
do {
    let (server, port) = try await startServer(redis: redis, database: database, runqueued: runqueued, settings: settings)
    let connection = try await connectWithRetry(port: port)
    let start = ContinuousClock.now
    try await load(connection)
    say(String(format: "loaded %d runs in %.1f s", runs, seconds(ContinuousClock.now - start)))
    await connection.close()
    stop(server)
}
let baseline = try await measure(redis, database, settings: settings.merging(["RUNQUEUE_BENCHMARK_REBUILD": "per-shard"]) { $1 })
say(String(format: "baseline (a pass per lost shard): first run after %.2f s, all runs back after %.2f s: %.0f runs/s restored",
           baseline.firstRun, baseline.allBack, Double(runs) / baseline.allBack))
let ours = try await measure(redis, database, settings: settings)
say(String(format: "ours (one pass for every lost shard): first run after %.2f s, all runs back after %.2f s: %.0f runs/s restored",
           ours.firstRun, ours.allBack, Double(runs) / ours.allBack))
say(String(format: "ratio ours / baseline, runs/s restored: %.2f; target >= 50,000 runs/s: %@",
           baseline.allBack / ours.allBack, Double(runs) / ours.allBack >= 50_000 ? "met" : "NOT met"))

// The reconciler's catch-up from its watermark.
let hourAgo = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
_ = try run("psql", [database.url, "-qc", """
    UPDATE runqueue_meta SET value = lpad('\(hourAgo - 10_000)', 16, '0') || ' ' WHERE key = 'reconcile_watermark';
    INSERT INTO runs (id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                      task_identifier, worker_queue, queue_timestamp, created_at, updated_at)
    SELECT 'o\(tag)_' || i, 'org', 'proj', 'e\(tag)_' || (i % \(environments)), 4, 'q', '', 'task', 'wq',
           \(hourAgo), \(hourAgo) + i / 100, \(hourAgo) + i / 100
    FROM generate_series(1, \(orphans)) AS i;
    """])
/// Starts a server and times its start-up pass until every orphan is queued.
func catchUp(_ redis: PrivateRedis, _ database: Database) async throws -> Double {
    let started = ContinuousClock.now
    let (server, port) = try await startServer(redis: redis, database: database, runqueued: runqueued, settings: settings)
    defer { stop(server) }
    let stats = try await connectWithRetry(port: port)
    while await queuedTotal(stats) < runs + orphans {
        try await Task.sleep(for: .milliseconds(100))
        if ContinuousClock.now - started > .seconds(1800) { throw BenchError("the orphans were not all queued within 30 minutes") }
    }
    await stats.close()
    return seconds(ContinuousClock.now - started)
}
let caughtUp = try await catchUp(redis, database)
say(String(format: "reconciler catch-up: %d rows an hour old, never in Redis, all queued %.2f s after the server started: %.0f rows/s (target >= 10,000)",
           orphans, caughtUp, Double(orphans) / caughtUp))
