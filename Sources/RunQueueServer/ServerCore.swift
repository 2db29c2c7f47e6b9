// ServerCore: the loop-confined heart of runqueued: the listener, the
// connections, the idle sweep, signal handling, the method router, and the
// graceful shutdown sequence.
//
// Shutdown (SIGTERM, SIGINT or `Server.stop()`): stop accepting; every
// connection stops reading and closes once its calls in progress have been
// answered; after `shutdownGraceMs` whatever is left is closed; then the
// stores and timers close and the loop has no handle left.
import Glibc
import Logging
import RunQueueCore
import RunQueueStorage
import UVLoop

final class ServerCore {
    let loop: EventLoop
    let config: ServerConfig
    let logger: Logger
    let router: MethodRouter
    private var listener: TCPListener?
    private var connections: [UInt64: ServerConnection] = [:]
    private var nextConnectionID: UInt64 = 1
    private var sweeper: LoopTimer?
    private var signals: [SignalWatcher] = []
    private var graceTimer: LoopTimer?
    private var stopping = false
    private var stopped = false
    private var stores: Stores?
    private var clock: ServiceClock?
    private var maintenance: Maintenance?
    private var expiry: ExpiryScheduler?
    /// Set when a fatal configuration conflict stopped the server (exit code 2).
    private(set) var fatalError: String?
    private var onStopped: [() -> Void] = []

    init(loop: EventLoop, config: ServerConfig, logger: Logger) {
        self.loop = loop
        self.config = config
        self.logger = logger
        router = MethodRouter(config: config)
    }

    /// Binds and starts serving; returns the bound port.
    func start(handleSignals: Bool) throws -> UInt16 {
        if config.storesEnabled { try startEngine() }
        let listener = try TCPListener(loop: loop, address: config.listen) { [unowned self] tcp in
            accept(tcp)
        }
        self.listener = listener
        if config.idleTimeoutMs > 0 {
            let sweeper = LoopTimer(loop: loop)
            let period = max(10, min(1000, config.idleTimeoutMs / 2))
            sweeper.start(afterMs: period, repeatMs: period) { [unowned self] in closeIdleConnections() }
            self.sweeper = sweeper
        }
        if handleSignals {
            for signal in [SIGTERM, SIGINT] {
                signals.append(try SignalWatcher(loop: loop, signal: signal) { [unowned self] number in
                    logger.notice("signal received; shutting down", metadata: ["signal": "\(number)"])
                    beginShutdown()
                })
            }
        }
        let port = listener.localPort
        logger.notice("runqueued listening", metadata: ["listen": "\(config.listen.host):\(port)"])
        return port
    }

    private func startEngine() throws {
        let stores = try Stores(loop: loop, config: config, logger: logger) { [unowned self] message in
            guard fatalError == nil else { return }
            fatalError = message
            logger.critical("fatal configuration conflict", metadata: ["error": "\(message)"])
            beginShutdown()
        }
        let clock = ServiceClock()
        let store = QueueStore(redis: stores.redis, shards: ShardMap(shardCount: config.shardCount), config: config.queue)
        let dequeue = DequeueCoordinator(loop: loop, store: store, clock: clock, logger: logger,
                                         maxFrameBytes: config.maxFrameBytes, housekeepingMs: config.housekeepingIntervalMs,
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
        let applier = OutboxApplier(loop: loop, store: applierStore, records: records, logger: logger)
        dequeue.applier = applier
        let maintenance = Maintenance(loop: loop, store: store, records: records, clock: clock, logger: logger,
                                      retentionMs: config.runRetentionMs, reconcileIntervalMs: config.reconcileIntervalMs,
                                      reconciles: !config.benchmarkDiscardApplier)
        maintenance.onRebuilt = { shards in dequeue.shardsRebuilt(shards) }
        maintenance.onRebuildStarted = { dequeue.closeGate() }
        maintenance.onRedisChecked = { dequeue.openGate() }
        dequeue.onEpochMismatch = { shard in maintenance.epochMismatch(shard: shard) }
        stores.onPostgresReady = { maintenance.postgresReady() }
        self.maintenance = maintenance
        stores.onAnnouncement = { payload in dequeue.announcement(payload) }
        stores.onWakeReconnect = { dequeue.forgetHints() }
        let engine = QueueEngine(store: store, records: records, applier: applier, clock: clock, config: config,
                                 dequeue: dequeue, recordsReady: { [unowned stores] in stores.postgresReady })
        engine.armsTTLs = !config.ttlSystemDisabled
        if !config.ttlSystemDisabled && !config.ttlConsumersDisabled {
            var settings = ExpiryScheduler.Settings()
            settings.pollIntervalMs = config.ttlPollIntervalMs
            settings.batchSize = config.ttlBatchSize
            settings.leaseMs = max(5000, 3 * Int64(config.ttlPollIntervalMs))
            settings.eventRetentionMs = config.expiryEventRetentionMs
            let expiry = ExpiryScheduler(loop: loop, store: store, records: records, clock: clock, logger: logger, settings: settings)
            expiry.applier = applier
            engine.onTTLArmed = { [unowned expiry] environment, deadline in expiry.deadlineArmed(environmentID: environment, atMs: deadline) }
            dequeue.onTTLArmed = { [unowned expiry] shard, deadline in expiry.deadlineArmed(shard: shard, atMs: deadline) }
            self.expiry = expiry
        }
        router.engine = engine
        var readerSettings = ExpiryLogReader.Settings()
        if let capacity = ExpiryTuning.bufferCapacity { readerSettings.capacity = capacity }
        let logReader = ExpiryLogReader(loop: loop, connection: stores.postgresListener, records: records, logger: logger,
                                        settings: readerSettings)
        var streamSettings = ExpiryStreams.Settings()
        streamSettings.maxQueuedBytes = min(streamSettings.maxQueuedBytes, max(1, config.maxQueuedResponseBytes / 2))
        if let pageSize = ExpiryTuning.pageSize { streamSettings.pageSize = pageSize }
        router.expiryStreams = ExpiryStreams(loop: loop, records: records, reader: logReader, logger: logger, settings: streamSettings)
        stores.start()
        logReader.start()
        clock.start(loop: loop, redis: stores.redis)
        expiry?.start()
        self.stores = stores
        self.clock = clock
    }

    private func accept(_ tcp: TCPConnection) {
        guard !stopping else { tcp.close(); return }
        let id = nextConnectionID
        nextConnectionID += 1
        connections[id] = ServerConnection(id: id, tcp: tcp, server: self)
    }

    func dispatch(_ call: Call, context: CallContext, connection: ServerConnection) {
        router.route(call, context: context, connection: connection)
    }

    func connectionClosed(_ connection: ServerConnection) {
        connections[connection.id] = nil
        if stopping && connections.isEmpty { finishShutdown() }
    }

    private func closeIdleConnections() {
        let now = loop.nowMs
        for connection in connections.values where connection.isIdle && now - connection.lastActivityMs >= config.idleTimeoutMs {
            logger.debug("closing idle connection", metadata: ["conn.id": "\(connection.id)"])
            connection.close()
        }
    }

    var connectionCount: Int { connections.count }

    /// Runs `done` once the server has stopped (at once if it already has).
    func onStoppedOrNow(_ done: @escaping () -> Void) {
        if stopped { done() } else { onStopped.append(done) }
    }

    /// Starts the graceful shutdown.
    func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        listener?.close()
        listener = nil
        router.drain()
        for connection in connections.values { connection.beginDrain() }
        if connections.isEmpty {
            finishShutdown()
            return
        }
        graceTimer = loop.schedule(afterMs: config.shutdownGraceMs) { [unowned self] in
            graceTimer = nil
            logger.warning("shutdown grace period over; closing connections with calls in progress",
                           metadata: ["connections": "\(connections.count)"])
            for connection in connections.values { connection.close() }
        }
    }

    private func finishShutdown() {
        graceTimer?.close()
        graceTimer = nil
        sweeper?.close()
        sweeper = nil
        for signal in signals { signal.close() }
        signals.removeAll()
        router.close()
        maintenance?.close()
        if let expiry {
            // Leases are given back while Redis is still connected.
            expiry.close { [unowned self] in closeStores() }
        } else {
            closeStores()
        }
    }

    private func closeStores() {
        clock?.close()
        stores?.close()
        stopped = true
        logger.notice("runqueued stopped")
        let callbacks = onStopped
        onStopped.removeAll()
        for callback in callbacks { callback() }
    }
}
