// EngineConfig: the engine's settings (stores, shards, queue tunables,
// expiry, maintenance), read by runqueued from the environment and flags
// (Sources/RunQueueServer/ServerConfig.swift, documented in README.md).
import RunQueueStorage

public struct EngineConfig: Sendable {
    public var redisURL = "redis://127.0.0.1:6379"
    public var databaseURL = "postgres://postgres@127.0.0.1:5432/postgres"
    /// Queue shards (RUN_ENGINE_RUN_QUEUE_SHARD_COUNT, named as in trigger.dev).
    public var shardCount = 16
    /// The queue's tunables (limits, leases, backoff, message format, fairness).
    public var queue = QueueConfig()
    /// RUN_ENGINE_DEFAULT_MAX_TTL: clamps longer TTLs and applies to runs without one.
    public var defaultMaxTTLMs: Int64?
    /// How often every shard's lapses are applied and empty-shard hints dropped.
    public var housekeepingIntervalMs: UInt64 = 1000
    /// Longest a Dequeue is held while Redis is checked against PostgreSQL or
    /// rebuilt from it; past it the Dequeue is served from what Redis holds.
    public var rebuildHoldMs: UInt64 = 5000
    /// How long a DEQUEUED change waits in the outbox for a later change of
    /// its run (an ack or nack supersedes it, and it is never written).
    public var dequeuedWriteLagMs: UInt64 = 400
    /// Finished runs (COMPLETED, EXPIRED, DEAD_LETTERED) are deleted after this long.
    public var runRetentionMs: Int64 = 7 * 86_400_000
    /// How often the reconciler re-adds recent QUEUED rows missing from Redis.
    public var reconcileIntervalMs: UInt64 = 10_000
    /// RUN_ENGINE_TTL_SYSTEM_DISABLED: no expiry at all (TTLs are parsed and
    /// recorded but not armed in Redis; runs with a deadline dequeue normally).
    public var ttlSystemDisabled = false
    /// RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS: upper bound of each shard's expiry timer.
    public var ttlPollIntervalMs: UInt64 = 1000
    /// RUN_ENGINE_TTL_SYSTEM_BATCH_SIZE: runs expired per script call.
    public var ttlBatchSize = 100
    /// RUN_ENGINE_TTL_CONSUMERS_DISABLED: this instance arms TTLs but runs no expiry timers.
    public var ttlConsumersDisabled = false
    /// RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT: if set, must equal the queue shard count.
    public var ttlShardCount: Int?
    /// RUNQUEUE_EVENT_RETENTION (the protocol's name): expiry events older than this are pruned.
    public var expiryEventRetentionMs: Int64 = 7 * 86_400_000
    /// RUNQUEUE_BENCHMARK_DISCARD_RECORDS, for benchmarks only: run records
    /// are neither created nor updated in PostgreSQL (creations answer as
    /// created, outbox entries are drained unapplied), so a benchmark can
    /// measure the Redis-only path through the same server. Runs are not
    /// durable; the server says so in its log at start.
    public var benchmarkDiscardRecords = false
    /// RUNQUEUE_BENCHMARK_DISCARD_RECORDS=applier, for benchmarks only: rows
    /// are created first as always, but the outbox applier writes nothing
    /// (the applier-discard baseline of bench/cycle); the
    /// reconciler is off, since every row stays QUEUED. Not durable either.
    public var benchmarkDiscardApplier = false
    /// RUNQUEUE_BENCHMARK_REBUILD=per-shard, for benchmarks only: every shard
    /// a claim finds lost is rebuilt by a pass of its own over all active
    /// rows, as before one pass served every lost shard (the baseline of
    /// bench/rebuild).
    public var benchmarkPerShardRebuild = false

    public init() {}
}
