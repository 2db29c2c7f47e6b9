// RedisConnection: one Redis connection (hiredis async, RESP2) on the event
// loop, kept up until close().
//
// What: commands are argv byte arrays (binary safe), pipelined without limit
// on one socket; each completion runs exactly once on the loop thread with
// the reply copied into a RedisValue. The connection reconnects by itself with
// exponential backoff after a failed connect, a lost socket or a timeout.
//
// Invariants:
// - Loop thread only (asserted in debug builds). `@unchecked Sendable` only
//   so the async wrappers and `EventLoop.submit` can carry it to the loop.
// - Every completion runs exactly once: a PendingCommand drops its completion
//   when it runs; replies, timeouts, teardown and close() all go through it.
// - Commands are accepted only while `.connected`; otherwise they fail at once
//   with `.notConnected` (never sent, safe to retry). Nothing queues while
//   Redis is away, so callers see an outage immediately instead of hanging.
// - At most one hiredis context (HiredisSession) at a time. Ending it detaches
//   it first, then fails its commands, then frees it, so user code running in
//   a completion already sees the connection down and cannot reach the old context.
// - Timeouts use two LoopTimers per connection, not one per command: the
//   deadline timer is armed for the oldest pending command only (deadlines are
//   in send order), the other one for reconnect backoff. A timed-out command
//   means the ordered reply stream is stuck, so the connection is reset and
//   everything pending fails (`.timeout` for it, `.disconnected` for the rest).
// - "Connected" means the handshake (AUTH, SELECT db, PING) replied, not just
//   that TCP connected: no user command can run on the wrong db or before
//   auth, and the connect timeout covers the whole handshake.
//
// Why hiredis 0.14 and not a Swift RESP client: it is the packaged C client
// the platform notes validated on libuv (with our patched adapter, CRedisUV,
// which forwards poll errors the stock adapter swallows).
internal import RunQueueCore
import UVLoop

public final class RedisConnection: @unchecked Sendable {
    public enum State: Sendable, Equatable {
        /// Created; `connect()` not called yet.
        case idle
        /// A connect attempt (TCP plus handshake) is running.
        case connecting
        /// Commands are accepted.
        case connected
        /// Down, with why; a reconnect is scheduled (backoff).
        case disconnected(RedisError)
        /// `close()` was called; final.
        case closed
    }

    public let loop: EventLoop
    public let config: RedisConfig
    /// Called on every state change (loop thread). Cleared by `close()`.
    public var onStateChange: ((State) -> Void)?
    public private(set) var state: State = .idle

    public var isConnected: Bool { state == .connected }

    private var session: HiredisSession?
    private var pending = PendingQueue()
    private var backoff: ReconnectBackoff
    private var deadlineTimer: LoopTimer?
    /// Loop time the deadline timer fires at; nil when it is not armed.
    private var deadlineTimerDueMs: UInt64?
    private var reconnectTimer: LoopTimer?
    /// One-shot observers of state changes (async waiters); return true to be removed.
    private var stateObservers: [(State) -> Bool] = []

    public init(loop: EventLoop, config: RedisConfig) {
        self.loop = loop
        self.config = config
        backoff = ReconnectBackoff(initialMs: config.reconnectMinMs, maxMs: config.reconnectMaxMs)
    }

    /// Starts connecting; from then on the connection reconnects by itself
    /// (with backoff) whenever it is down, until `close()`. Calling it again is a no-op.
    public func connect() {
        assertOnLoop()
        guard state == .idle else { return }
        deadlineTimer = LoopTimer(loop: loop)
        reconnectTimer = LoopTimer(loop: loop)
        startSession()
    }

    /// Sends one command (argv, binary safe). `completion` runs exactly once on
    /// the loop thread: with the reply, with `.replyError` for an error reply,
    /// or with a failure. When the connection is not up it fails at once with
    /// `.notConnected`, before `send` returns.
    public func send(_ args: [[UInt8]], _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        assertOnLoop()
        guard state == .connected, let session else {
            completion(.failure(notConnectedError()))
            return
        }
        guard !args.isEmpty else {
            completion(.failure(RedisError(.protocolError, "empty command")))
            return
        }
        enqueue(args, on: session, deadlineMs: loop.nowMs + config.commandTimeoutMs, completion)
    }

    /// `send` with UTF-8 string arguments: `send("SET", key, value) { result in ... }`.
    public func send(_ args: String..., completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        send(args.map { Array($0.utf8) }, completion)
    }

    /// Stops for good: fails every pending command with `.closed`, frees the
    /// hiredis context and closes the timers, so the loop can then close with
    /// no handle left. Idempotent.
    public func close() {
        assertOnLoop()
        guard state != .closed else { return }
        let current = session
        session = nil
        deadlineTimer?.close()
        reconnectTimer?.close()
        deadlineTimer = nil
        reconnectTimer = nil
        transition(to: .closed)
        fail(pending.removeAll(), with: RedisError(.closed, "connection closed by the application"))
        current?.free()
        onStateChange = nil
        stateObservers = []
    }

    // MARK: Connection lifecycle

    private func startSession() {
        guard state != .closed else { return }
        transition(to: .connecting)
        guard state == .connecting else { return }  // an observer closed it
        guard config.hasNumericHost else {
            connectionLost(RedisError(.connectFailed, "host \(config.host) is not an IP literal (names would need a blocking DNS lookup)"))
            return
        }
        switch HiredisSession.open(host: config.host, port: config.port, loop: loop, owner: self) {
        case .failure(let error):
            connectionLost(error)
        case .success(let opened):
            session = opened
            sendHandshake(on: opened)
        }
    }

    /// AUTH and SELECT when configured, then PING, queued before TCP connects
    /// (hiredis writes them once it does). The PING reply makes it `.connected`.
    private func sendHandshake(on session: HiredisSession) {
        var steps: [[String]] = []
        if let password = config.password {
            steps.append(config.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if config.db != 0 { steps.append(["SELECT", String(config.db)]) }
        steps.append(["PING"])
        let deadline = loop.nowMs + config.connectTimeoutMs
        for (index, step) in steps.enumerated() {
            let isLast = index == steps.count - 1
            enqueue(step.map { Array($0.utf8) }, on: session, deadlineMs: deadline) { [weak self] result in
                // Failures caused by the session ending find it detached already.
                guard let self, self.session === session else { return }
                switch result {
                case .failure(let error):
                    self.connectionLost(RedisError(.connectFailed, "\(step[0]) failed: \(error.message)"))
                case .success:
                    if isLast {
                        self.backoff.recordSuccess()
                        self.transition(to: .connected)
                    }
                }
            }
        }
    }

    private func enqueue(_ args: [[UInt8]], on session: HiredisSession, deadlineMs: UInt64,
                         _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        let command = PendingCommand(deadlineMs: deadlineMs, completion)
        guard session.send(args, command) else {
            command.complete(.failure(RedisError(.notConnected, "hiredis refused the command (connection being torn down)")))
            return
        }
        pending.append(command)
        armDeadlineTimer()
    }

    /// The session reports that its context is gone (failed connect, lost socket).
    func sessionEnded(_ ended: HiredisSession, _ error: RedisError) {
        guard ended === session else { return }
        connectionLost(error)
    }

    /// Ends the current session (if any) and schedules a reconnect. The
    /// session is detached before any completion runs, so completions that
    /// send again fail fast instead of reaching the dying context.
    private func connectionLost(_ error: RedisError, timedOut: PendingCommand? = nil) {
        guard state != .closed else { return }
        // Losing the socket before the handshake finished is a failed connect.
        let error = state == .connecting && error.code == .disconnected ? RedisError(.connectFailed, error.message) : error
        let ended = session
        session = nil
        deadlineTimer?.stop()
        deadlineTimerDueMs = nil
        let waiting = pending.removeAll()
        transition(to: .disconnected(error))
        timedOut?.complete(.failure(RedisError(.timeout, "no reply within \(config.commandTimeoutMs) ms")))
        fail(waiting, with: error.code == .connectFailed ? error : RedisError(.disconnected, error.message))
        ended?.free()
        // A completion or observer may have closed or restarted the connection.
        guard case .disconnected = state, session == nil, let reconnectTimer else { return }
        backoff.recordFailure()
        reconnectTimer.start(afterMs: backoff.delayMs) { [weak self] in self?.startSession() }
    }

    private func fail(_ commands: [PendingCommand], with error: RedisError) {
        for command in commands { command.complete(.failure(error)) }
    }

    // MARK: Timeouts

    /// Arms the timer for the oldest waiting command, unless it already fires
    /// no later. (It can be due later: the handshake's deadline is the connect
    /// timeout, and the first command after it may have an earlier one.)
    private func armDeadlineTimer() {
        guard let timer = deadlineTimer, let oldest = pending.oldestWaiting() else { return }
        if let due = deadlineTimerDueMs, due <= oldest.deadlineMs { return }
        let now = loop.nowMs
        deadlineTimerDueMs = oldest.deadlineMs
        timer.start(afterMs: oldest.deadlineMs > now ? oldest.deadlineMs - now : 0) { [weak self] in
            self?.deadlineTimerFired()
        }
    }

    private func deadlineTimerFired() {
        deadlineTimerDueMs = nil
        guard let oldest = pending.oldestWaiting() else { return }
        guard oldest.deadlineMs <= loop.nowMs else {
            armDeadlineTimer()
            return
        }
        if state == .connecting {
            connectionLost(RedisError(.connectFailed, "connect to \(config.host):\(config.port) timed out after \(config.connectTimeoutMs) ms"))
        } else {
            connectionLost(RedisError(.disconnected, "connection reset: a command got no reply within \(config.commandTimeoutMs) ms"),
                           timedOut: oldest)
        }
    }

    // MARK: State

    private func transition(to next: State) {
        state = next
        if !stateObservers.isEmpty {
            // Taken out first: an observer may register another one.
            let observers = stateObservers
            stateObservers = []
            stateObservers = observers.filter { !$0(next) } + stateObservers
        }
        onStateChange?(next)
    }

    /// Calls `observer` on each state change until it returns true (loop thread).
    func observeState(_ observer: @escaping (State) -> Bool) {
        stateObservers.append(observer)
    }

    private func notConnectedError() -> RedisError {
        switch state {
        case .idle: RedisError(.notConnected, "connect() was not called")
        case .connecting: RedisError(.notConnected, "still connecting to \(config.host):\(config.port)")
        case .connected: RedisError(.notConnected, "no session")  // unreachable: connected implies a session
        case .disconnected(let why): RedisError(.notConnected, "not connected (\(why.message))")
        case .closed: RedisError(.notConnected, "connection is closed")
        }
    }

    @inline(__always)
    private func assertOnLoop() {
        assert(loop.inEventLoop, "RedisConnection used off its loop thread")
    }
}
