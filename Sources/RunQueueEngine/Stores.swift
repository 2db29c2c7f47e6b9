// Stores: the engine's connections to Redis and PostgreSQL and their start-up.
//
// Neither store has to be up when the engine starts: each connects in the
// background, logs once per state change (so an unreachable store gives one
// clear line per retry cycle, not a crash), and keeps retrying with backoff.
// On each PostgreSQL connect the migrations run (idempotent, serialised by an
// advisory lock); on each Redis and PostgreSQL connect the stored shard count
// is checked against ours (Sources/RunQueueStorage/StoredShardCount.swift).
// A mismatch is fatal (`onFatal`: runqueued stops with exit code 2), since
// claims and keys would silently map environments to the wrong shards.
import Logging
import PostgresDriver
import RedisDriver
import RunQueueCore
import RunQueueStorage
import UVLoop

final class Stores {
    let redis: RedisConnection
    /// The outbox applier's reads and acknowledgements: on a connection of
    /// their own they do not queue behind the claims, acks and enqueues.
    let redisApplier: RedisConnection
    let wake: RedisSubscriber
    let postgres: PostgresConnection
    /// Reads (GetRun, the run data fallback) never wait behind writes.
    let postgresReader: PostgresConnection
    /// The outbox applier's writes, beside creation inserts on `postgres`.
    let postgresApplier: PostgresConnection
    /// Dedicated to the expiry log reader: LISTEN runqueue_expiry and its
    /// tail reads (the reader connects it and re-issues LISTEN on reconnect).
    let postgresListener: PostgresConnection
    private let logger: Logger
    private let shardCount: Int
    private let migrator: Migrator?
    private let onFatal: (String) -> Void
    /// Called when the wake channel (re)connects: announcements may have been missed.
    var onWakeReconnect: (() -> Void)?
    /// The main Redis connection is back after a disconnect.
    var onRedisReconnect: (() -> Void)?
    private var redisWasConnected = false
    var onAnnouncement: (([UInt8]) -> Void)?
    /// PostgreSQL became ready (connected, migrated, shard count agreed).
    var onPostgresReady: (() -> Void)?
    private(set) var postgresReady = false

    init(loop: EventLoop, config: EngineConfig, logger: Logger, onFatal: @escaping (String) -> Void) throws {
        let redisConfig = try RedisConfig(url: config.redisURL)
        redis = RedisConnection(loop: loop, config: redisConfig)
        redisApplier = RedisConnection(loop: loop, config: redisConfig)
        wake = RedisSubscriber(loop: loop, config: redisConfig, channels: [QueueConfig.wakeChannel])
        postgres = try PostgresConnection(loop: loop, url: config.databaseURL)
        postgresReader = try PostgresConnection(loop: loop, url: config.databaseURL)
        postgresApplier = try PostgresConnection(loop: loop, url: config.databaseURL)
        postgresListener = try PostgresConnection(loop: loop, url: config.databaseURL)
        self.logger = logger
        shardCount = config.shardCount
        self.onFatal = onFatal
        if let directory = RunRecords.migrationsDirectory {
            migrator = try Migrator(directory: directory)
        } else {
            migrator = nil
        }
    }

    func start() {
        redis.onStateChange = { [unowned self] state in
            switch state {
            case .connected:
                logger.info("redis connected", metadata: ["redis": "\(redis.config.host):\(redis.config.port)"])
                checkRedisShardCount()
                if redisWasConnected { onRedisReconnect?() }
                redisWasConnected = true
            case .disconnected(let error):
                logger.warning("redis unreachable; retrying", metadata: ["error": "\(error.message)"])
            default:
                break
            }
        }
        wake.onStateChange = { [unowned self] state in
            if case .connected = state { onWakeReconnect?() }
        }
        wake.onMessage = { [unowned self] _, payload in onAnnouncement?(payload) }
        postgres.onStateChange = { [unowned self] state in
            switch state {
            case .connected:
                logger.info("postgres connected")
                migrate()
            case .disconnected(let error):
                postgresReady = false
                logger.warning("postgres unreachable; retrying", metadata: ["error": "\(error.message)"])
            default:
                break
            }
        }
        redis.connect()
        redisApplier.connect()
        wake.connect()
        postgres.connect()
        postgresReader.connect()
        postgresApplier.connect()
    }

    private func checkRedisShardCount() {
        QueueStore.storedShardCount(proposing: shardCount, on: redis) { [unowned self] result in
            guard case .success(let stored?) = result, stored != String(shardCount) else { return }
            onFatal("Redis holds queues for \(stored) shards but RUN_ENGINE_RUN_QUEUE_SHARD_COUNT is \(shardCount); refusing to start")
        }
    }

    private func migrate() {
        guard let migrator else { return }
        migrator.run(on: postgres) { [unowned self] result in
            switch result {
            case .success(let report):
                logger.info("migrations applied", metadata: ["applied": "\(report.applied.count)"])
                checkPostgresShardCount()
            case .failure(let error):
                logger.error("migrations failed; retrying on the next connect", metadata: ["error": "\(error)"])
            }
        }
    }

    private func checkPostgresShardCount() {
        RunRecords.storedShardCount(proposing: shardCount, on: postgres) { [unowned self] result in
            switch result {
            case .success(let stored?) where stored != String(shardCount):
                onFatal("PostgreSQL records \(stored) shards but RUN_ENGINE_RUN_QUEUE_SHARD_COUNT is \(shardCount); refusing to start")
            case .success:
                postgresReady = true
                onPostgresReady?()
            case .failure(let error):
                logger.error("cannot read the stored shard count", metadata: ["error": "\(error)"])
            }
        }
    }

    func close() {
        redis.close()
        redisApplier.close()
        wake.close()
        postgres.close()
        postgresReader.close()
        postgresApplier.close()
        postgresListener.close()
    }
}

