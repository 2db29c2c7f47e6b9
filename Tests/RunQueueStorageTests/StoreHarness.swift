import Foundation
import RedisDriver
import RunQueueCore
import RunQueueStorage
import TestSupport
import UVLoop

/// A QueueStore on its own loop and Redis connection, with async wrappers,
/// and ids unique to one test so tests share the Redis server safely.
final class StoreHarness: @unchecked Sendable {
    let loop: EventLoop
    let redis: RedisConnection
    let store: QueueStore
    let prefix: String
    /// The store's clock for the test: scripts take `now` as an argument.
    var now: Int64 = 1_800_000_000_000

    /// `prefix`: reuse another harness's keyspace (e.g. a second store with
    /// another message format on the same queues); nil = a fresh one.
    init(config: QueueConfig = QueueConfig(), shardCount: Int = 16, redisURL: String = TestServices.redisURL,
         prefix: String? = nil) async throws {
        let prefix = prefix ?? "t" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.prefix = prefix
        var config = config
        // Each test gets its own keyspace: scripts apply lapses and
        // promotions shard-wide with the test's own clock.
        config.keyPrefix = prefix
        loop = try EventLoop()
        let redisConfig = try RedisConfig(url: redisURL)
        let loop = self.loop
        redis = try await loop.submit { RedisConnection(loop: loop, config: redisConfig) }
        store = QueueStore(redis: redis, shards: ShardMap(shardCount: shardCount), config: config)
        let redis = self.redis
        loop.execute { redis.connect() }
        try await redis.waitUntilConnected(timeoutMs: 5000)
        // The keyspace is built (nothing to rebuild): claims may serve it.
        store.epoch = prefix
        for shard in 0..<shardCount {
            let store = self.store
            let result: Result<Void, QueueStoreError> = await call { _, done in
                store.setEpoch(shard: shard, prefix) { done($0) }
            }
            try result.get()
        }
    }

    func close() -> Int {
        let redis = self.redis
        loop.execute { redis.close() }
        return loop.shutdown()
    }

    func id(_ name: String) -> String { prefix + "_" + name }

    func run(_ runID: String, env: String = "env", queue: String = "q", worker: String = "wq", ck: String = "",
             timestamp: Int64? = nil, priority: Int64 = 0, task: String = "task") -> RunDescriptor {
        RunDescriptor(runID: id(runID), orgID: id("org"), projectID: id("proj"), environmentID: id(env),
                      environmentType: .production, queue: queue, concurrencyKey: ck, taskIdentifier: task,
                      workerQueue: id(worker), timestampMs: timestamp ?? now, priorityMs: priority, ttl: "")
    }

    private func call<T: Sendable>(_ body: @escaping @Sendable (QueueStore, @escaping @Sendable (T) -> Void) -> Void) async -> T {
        let store = self.store
        return await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            loop.execute { body(store) { continuation.resume(returning: $0) } }
        }
    }

    @discardableResult
    func enqueue(_ runs: [RunDescriptor], expiresAt: Int64? = nil) async throws -> [Bool] {
        let now = self.now
        let items = runs.map { QueueStore.EnqueueItem(run: $0, expiresAtMs: expiresAt) }
        let results: [Result<Bool, QueueStoreError>] = await call { store, done in store.enqueue(items, now: now) { done($0) } }
        return try results.map { try $0.get() }
    }

    func claim(_ worker: String = "wq", count: Int, env: String = "env", leaseMs: Int64 = 60_000) async throws -> [RunMessage] {
        let shard = store.shards.shard(forEnvironment: id(env))
        return try await claim(shard: shard, worker: worker, count: count, leaseMs: leaseMs).messages
    }

    func claim(shard: Int, worker: String = "wq", count: Int, leaseMs: Int64 = 60_000) async throws -> QueueStore.ClaimResult {
        let now = self.now
        let workerQueue = id(worker)
        let result: Result<QueueStore.ClaimResult, QueueStoreError> = await call { store, done in
            store.claim(shard: shard, workerQueue: workerQueue, count: count, leaseDeadlineMs: now + leaseMs, now: now,
                        seed: UInt64.random(in: 0...1_000_000)) { done($0) }
        }
        return try result.get()
    }

    func ack(_ runID: String, env: String = "env", fence: UInt32? = nil) async throws -> QueueStore.FencedOutcome<QueueStore.AckResult> {
        let (now, r, e) = (self.now, id(runID), id(env))
        let result: Result<QueueStore.FencedOutcome<QueueStore.AckResult>, QueueStoreError> = await call { store, done in
            store.ack(runID: r, environmentID: e, fence: fence, now: now) { done($0) }
        }
        return try result.get()
    }

    /// Acks many runs in one call (one script call per shard).
    func ack(_ runIDs: [String], env: String = "env") async throws -> [QueueStore.FencedOutcome<QueueStore.AckResult>] {
        let now = self.now
        let items = runIDs.map { QueueStore.AckItem(runID: id($0), environmentID: id(env), fence: nil) }
        let results: [Result<QueueStore.FencedOutcome<QueueStore.AckResult>, QueueStoreError>] = await call { store, done in
            store.ack(items, now: now) { done($0) }
        }
        return try results.map { try $0.get() }
    }

    func nack(_ runID: String, env: String = "env", fence: UInt32? = nil, retryAt: Int64 = 0, keep: Bool = false,
              random: Double = 0) async throws -> QueueStore.FencedOutcome<QueueStore.NackResult> {
        let (now, r, e) = (self.now, id(runID), id(env))
        let result: Result<QueueStore.FencedOutcome<QueueStore.NackResult>, QueueStoreError> = await call { store, done in
            store.nack(runID: r, environmentID: e, fence: fence, retryAtMs: retryAt, keepAttempt: keep, now: now, random: random) { done($0) }
        }
        return try result.get()
    }

    func heartbeat(_ runID: String, env: String = "env", fence: UInt32? = nil, leaseMs: Int64) async throws -> QueueStore.FencedOutcome<Int64> {
        let (now, r, e) = (self.now, id(runID), id(env))
        let result: Result<QueueStore.FencedOutcome<Int64>, QueueStoreError> = await call { store, done in
            store.heartbeat(runID: r, environmentID: e, fence: fence, leaseDeadlineMs: now + leaseMs, now: now) { done($0) }
        }
        return try result.get()
    }

    func read(_ runID: String, env: String = "env") async throws -> QueueStore.FoundRun? {
        let (now, r, e) = (self.now, id(runID), id(env))
        let result: Result<QueueStore.FoundRun?, QueueStoreError> = await call { store, done in
            store.read(runID: r, environmentID: e, now: now) { done($0) }
        }
        return try result.get()
    }

    func stats(env: String = "env", queue: String = "", ck: String = "") async throws -> QueueStatsResponse {
        let (now, e) = (self.now, id(env))
        let result: Result<QueueStatsResponse, QueueStoreError> = await call { store, done in
            store.stats(environmentID: e, queue: queue, concurrencyKey: ck, now: now) { done($0) }
        }
        return try result.get()
    }

    func setLimit(env: String = "env", queue: String = "", _ change: QueueStore.LimitChange) async throws {
        let e = id(env)
        let result: Result<Void, QueueStoreError> = await call { store, done in
            store.setLimit(environmentID: e, queue: queue, change: change) { done($0) }
        }
        try result.get()
    }

    /// The unapplied outbox entries of an environment's shard, oldest first.
    func outbox(env: String = "env") async throws -> [OutboxEntry] {
        let shard = store.shards.shard(forEnvironment: id(env))
        let result: Result<[OutboxEntry], QueueStoreError> = await call { store, done in
            store.readOutbox(shard: shard, count: 10_000) { done($0) }
        }
        return try result.get()
    }

    /// Plays the applier: marks entries applied (deletes them, clears marks).
    func outboxDone(_ entries: [OutboxEntry], env: String = "env") async throws {
        let shard = store.shards.shard(forEnvironment: id(env))
        let result: Result<Void, QueueStoreError> = await call { store, done in
            store.outboxDone(shard: shard, entries: entries) { done($0) }
        }
        try result.get()
    }

    /// Enqueue in redrive mode (PostgreSQL already moved the run back).
    @discardableResult
    func redriveEnqueue(_ runs: [RunDescriptor]) async throws -> [Bool] {
        let now = self.now
        let items = runs.map { QueueStore.EnqueueItem(run: $0, expiresAtMs: nil) }
        let results: [Result<Bool, QueueStoreError>] = await call { store, done in store.enqueue(items, now: now, redrive: true) { done($0) } }
        return try results.map { try $0.get() }
    }

    func release(_ runIDs: [String], env: String = "env") async throws -> Int {
        let now = self.now
        let shard = store.shards.shard(forEnvironment: id(env))
        let ids = runIDs.map { id($0) }
        let result: Result<Int, QueueStoreError> = await call { store, done in
            store.release(shard: shard, runIDs: ids, now: now) { done($0) }
        }
        return try result.get()
    }

    /// Applies due lease lapses on the shard of `env`; returns the shard's next wake time.
    func lapse(env: String = "env") async throws -> Int64? {
        let now = self.now
        let shard = store.shards.shard(forEnvironment: id(env))
        let result: Result<Int64?, QueueStoreError> = await call { store, done in
            store.lapse(shard: shard, now: now) { done($0) }
        }
        return try result.get()
    }

    /// Pauses (or resumes) lease lapses on the shard of `env`.
    func pauseLapses(env: String = "env", on: Bool, ttlMs: Int64 = 60_000) async throws {
        let shard = store.shards.shard(forEnvironment: id(env))
        let result: Result<Void, QueueStoreError> = await call { store, done in
            store.pauseLapses(shard: shard, on: on, ttlMs: ttlMs) { done($0) }
        }
        try result.get()
    }

    /// Run ids without the test prefix.
    func names(_ messages: [RunMessage]) -> [String] {
        messages.map { String($0.runID.dropFirst(prefix.count + 1)) }
    }
}
