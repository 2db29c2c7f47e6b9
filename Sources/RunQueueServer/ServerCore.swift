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
import RunQueueEngine
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
    private var engine: Engine?
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
        let limits = Engine.TransportLimits(maxFrameBytes: config.maxFrameBytes,
                                            streamQueuedBytes: max(1, config.maxQueuedResponseBytes / 2))
        let engine = try Engine(loop: loop, config: config.engine, limits: limits, logger: logger) { [unowned self] message in
            guard fatalError == nil else { return }
            fatalError = message
            logger.critical("fatal configuration conflict", metadata: ["error": "\(message)"])
            beginShutdown()
        }
        router.engine = engine
        engine.start()
        self.engine = engine
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
    var waitingDequeues: Int { engine?.waitingDequeues ?? 0 }

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
        if let engine {
            engine.close { [unowned self] in didStop() }
        } else {
            didStop()
        }
    }

    private func didStop() {
        stopped = true
        logger.notice("runqueued stopped")
        let callbacks = onStopped
        onStopped.removeAll()
        for callback in callbacks { callback() }
    }
}
