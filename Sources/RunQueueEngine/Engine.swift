// Engine: the queue service without its transport. It connects to Redis and
// PostgreSQL (Stores), wires the parts that keep runs moving (QueueEngine,
// DequeueCoordinator, OutboxApplier, Maintenance, ExpiryScheduler) and the
// expiry event stream (ExpiryLogReader, ExpiryStreams), and answers every
// queue method through an `EngineCall`. The server feeds it calls from its
// connections (Sources/RunQueueServer/MethodRouter.swift); anything else on
// the same loop can do the same without sockets.
//
// Life cycle: init (nothing connects), `start()`, any number of `handle`,
// `drain()` when shutdown begins (waiting calls answer now), then
// `close(_:)`, which gives the expiry leases back while Redis is still
// connected, closes the stores and calls back. A fatal configuration
// conflict found in a store (another shard count) calls `onFatal` once.
// Loop thread only.
import Logging
import RunQueueCore
import RunQueueStorage
import UVLoop

public final class Engine {
    /// What the transport lets the engine send.
    public struct TransportLimits: Sendable {
        /// Largest answer frame, in bytes (Dequeue sizes its claims to fit).
        public var maxFrameBytes: Int
        /// Above this many queued answer bytes on a caller a stream pauses.
        public var streamQueuedBytes: Int

        public init(maxFrameBytes: Int, streamQueuedBytes: Int) {
            self.maxFrameBytes = maxFrameBytes
            self.streamQueuedBytes = streamQueuedBytes
        }
    }

    private let loop: EventLoop
    private let logger: Logger
    private let stores: Stores
    private let clock = ServiceClock()
    private let queue: QueueEngine
    private let maintenance: Maintenance
    private let expiry: ExpiryScheduler?
    private let logReader: ExpiryLogReader
    private let streams: ExpiryStreams

    public init(loop: EventLoop, config: EngineConfig, limits: TransportLimits, logger: Logger,
                onFatal: @escaping (String) -> Void) throws {
        self.loop = loop
        self.logger = logger
        let stores = try Stores(loop: loop, config: config, logger: logger, onFatal: onFatal)
        self.stores = stores
        let clock = self.clock
        let store = QueueStore(redis: stores.redis, shards: ShardMap(shardCount: config.shardCount), config: config.queue)
        let dequeue = DequeueCoordinator(loop: loop, store: store, clock: clock, logger: logger,
                                         maxFrameBytes: limits.maxFrameBytes, housekeepingMs: config.housekeepingIntervalMs,
                                         gateMs: config.rebuildHoldMs)
        let records = RunRecords(loop: loop, writer: stores.postgres, reader: stores.postgresReader, applier: stores.postgresApplier)
        if config.benchmarkDiscardRecords {
            records.discardWrites = true
            logger.error("RUNQUEUE_BENCHMARK_DISCARD_RECORDS is set: run records are NOT written to PostgreSQL and runs are NOT durable; for benchmarks only")
        } else if config.benchmarkDiscardApplier {
            records.discardApplies = true
            logger.error("RUNQUEUE_BENCHMARK_DISCARD_RECORDS=applier: changes after creation are NOT written to PostgreSQL and runs are NOT durable; for benchmarks only")
        }
        let applierStore = QueueStore(redis: stores.redisApplier, shards: store.shards, config: config.queue)
        let applier = OutboxApplier(loop: loop, store: applierStore, records: records, logger: logger,
                                    dequeuedLagMs: config.dequeuedWriteLagMs)
        dequeue.applier = applier
        let maintenance = Maintenance(loop: loop, store: store, records: records, clock: clock, logger: logger,
                                      retentionMs: config.runRetentionMs, reconcileIntervalMs: config.reconcileIntervalMs,
                                      reconciles: !config.benchmarkDiscardApplier)
        maintenance.perShardRebuild = config.benchmarkPerShardRebuild
        if config.benchmarkPerShardRebuild {
            logger.error("RUNQUEUE_BENCHMARK_REBUILD=per-shard: each lost shard is rebuilt by a full pass of its own; for benchmarks only")
        }
        maintenance.onRebuilt = { shards in dequeue.shardsRebuilt(shards) }
        maintenance.onRunsAdded = { shards in dequeue.runsAdded(shards: shards) }
        maintenance.onRebuildStarted = { shards in dequeue.rebuildStarted(shards) }
        maintenance.onRedisChecked = { dequeue.openGate() }
        maintenance.onCheckStarted = { dequeue.closeGate() }
        stores.onRedisReconnect = { maintenance.redisReconnected() }
        dequeue.onEpochMismatch = { shard in maintenance.epochMismatch(shard: shard) }
        stores.onPostgresReady = { maintenance.postgresReady() }
        self.maintenance = maintenance
        stores.onAnnouncement = { payload in dequeue.announcement(payload) }
        stores.onWakeReconnect = { dequeue.forgetHints() }
        let queue = QueueEngine(store: store, records: records, applier: applier, clock: clock, config: config,
                                dequeue: dequeue, recordsReady: { [unowned stores] in stores.postgresReady })
        queue.armsTTLs = !config.ttlSystemDisabled
        if !config.ttlSystemDisabled && !config.ttlConsumersDisabled {
            var settings = ExpiryScheduler.Settings()
            settings.pollIntervalMs = config.ttlPollIntervalMs
            settings.batchSize = config.ttlBatchSize
            settings.leaseMs = max(5000, 3 * Int64(config.ttlPollIntervalMs))
            settings.eventRetentionMs = config.expiryEventRetentionMs
            let expiry = ExpiryScheduler(loop: loop, store: store, records: records, clock: clock, logger: logger, settings: settings)
            expiry.applier = applier
            queue.onTTLArmed = { [unowned expiry] environment, deadline in expiry.deadlineArmed(environmentID: environment, atMs: deadline) }
            dequeue.onTTLArmed = { [unowned expiry] shard, deadline in expiry.deadlineArmed(shard: shard, atMs: deadline) }
            self.expiry = expiry
        } else {
            expiry = nil
        }
        self.queue = queue
        var readerSettings = ExpiryLogReader.Settings()
        if let capacity = ExpiryTuning.bufferCapacity { readerSettings.capacity = capacity }
        logReader = ExpiryLogReader(loop: loop, connection: stores.postgresListener, records: records, logger: logger,
                                    settings: readerSettings)
        var streamSettings = ExpiryStreams.Settings()
        streamSettings.maxQueuedBytes = min(streamSettings.maxQueuedBytes, max(1, limits.streamQueuedBytes))
        if let pageSize = ExpiryTuning.pageSize { streamSettings.pageSize = pageSize }
        streams = ExpiryStreams(loop: loop, records: records, reader: logReader, logger: logger, settings: streamSettings)
    }

    /// Connects the stores and starts the timers.
    public func start() {
        stores.start()
        logReader.start()
        clock.start(loop: loop, redis: stores.redis)
        expiry?.start()
    }

    /// Answers one queue method (every method but Hello, Ping and Cancel,
    /// which belong to the transport).
    public func handle(_ call: Call, _ context: any EngineCall) {
        switch call {
        case .enqueue(let request): queue.enqueue(request, context)
        case .enqueueBatch(let request): queue.enqueueBatch(request, context)
        case .dequeue(let request): queue.dequeue(request, context)
        case .ack(let request): queue.ack(request, context)
        case .nack(let request): queue.nack(request, context)
        case .heartbeat(let request): queue.heartbeat(request, context)
        case .readMessage(let request): queue.readMessage(request, context)
        case .queueStats(let request): queue.queueStats(request, context)
        case .setConcurrencyLimit(let request): queue.setConcurrencyLimit(request, context)
        case .redrive(let request): queue.redrive(request, context)
        case .getRun(let request): queue.getRun(request, context)
        case .subscribeExpiry(let request): streams.subscribe(request, context)
        case .hello, .ping, .cancel:
            context.fail(.unimplemented, "\(call.methodName) is answered by the transport, not the engine")
        }
    }

    /// Dequeue calls waiting in a long poll now.
    public var waitingDequeues: Int { queue.dequeue.waitingCount }

    /// Shutdown began: waiting calls answer now (long polls with nothing,
    /// streams with UNAVAILABLE).
    public func drain() {
        queue.dequeue.drain()
        streams.drain()
    }

    /// Releases what the handlers hold, gives the expiry leases back, closes
    /// the stores, then calls `done`.
    public func close(_ done: @escaping () -> Void) {
        streams.close()
        queue.dequeue.close()
        queue.applier.close()
        maintenance.close()
        guard let expiry else {
            closeStores(done)
            return
        }
        // Leases are given back while Redis is still connected.
        expiry.close { [self] in closeStores(done) }
    }

    private func closeStores(_ done: () -> Void) {
        clock.close()
        stores.close()
        done()
    }
}
