// PostgresConnection: one libpq connection driven by the event loop, in
// pipeline mode, that reconnects by itself until closed.
//
// What it is
//   A loop-thread-confined client for PostgreSQL. `query` / `transaction`
//   queue a request; requests are written at once, back to back (libpq
//   pipeline mode), and their results come back in order. Nothing blocks the
//   loop: the connect runs through PQconnectPoll on a uv_poll watcher, the
//   socket is non-blocking, and a host name is resolved on a helper thread.
//
// Requests and transactions
//   - A request is one or more statements (PQsendQueryParams each) followed by
//     one PQpipelineSync. Everything between two syncs is one implicit
//     transaction on the server: `query` is one statement per sync, so a
//     failing query fails alone; `transaction` puts several statements in one
//     sync, so they commit together or not at all (an error aborts the rest of
//     the segment: libpq answers PGRES_PIPELINE_ABORTED for them and the
//     request fails with the first error).
//   - A statement new to the session (its SQL and parameter types) is
//     prepared first, in a sync segment of its own (PQsendPrepare + sync,
//     tracked as a request of one statement whose completion only forgets
//     the name on failure), then executed by name (PQsendQueryPrepared): no
//     parse per execution. Each execution is still planned for its own
//     parameters (plan_cache_mode, see PostgresConfig.sessionOptions). Its
//     own segment means an abort in the request that uses it cannot undo
//     the prepare. At most
//     `PostgresSession.preparedLimit` per session; names are never reused.
//   - Results arrive as `result..., NULL` per statement, then
//     PGRES_PIPELINE_SYNC per request. The reader only calls PQgetResult while
//     it still expects something (in pipeline mode an idle connection answers
//     NULL forever) and only when PQisBusy says it will not block.
//   - `simpleQuery` is for multi-statement SQL (migration files), which the
//     extended protocol rejects: it waits until the pipeline is empty, leaves
//     pipeline mode, sends the text with PQsendQuery, reads to the final NULL,
//     re-enters pipeline mode and lets the queue move again. Requests behind
//     it wait; they keep their order.
//   - Every completion is called exactly once, on the loop thread, and never
//     from inside the call that queued it (a request refused at once is failed
//     from a later loop turn).
//
// I/O rules (libpq's non-blocking mode under a uv_poll watcher)
//   - Input: on readable, PQconsumeInput, then drain with PQisBusy/PQgetResult
//     right away: data libpq buffered does not wake the poller. The drain also
//     runs after every send, because libpq reads while it waits to write.
//   - Output: PQflush after sending; while it returns 1 the watcher also asks
//     for writable. Writable interest is dropped only when a writable event
//     finds nothing left, so a burst of 10,000 queries does not re-register
//     the socket with epoll 10,000 times.
//   - During connect PQsocket can change (several addresses, SSL fallback):
//     the watcher is replaced when the fd changes and re-armed after every
//     PQconnectPoll step, which registers a new socket that reused the old
//     number. The watcher is always closed before PQfinish.
//
// States:  idle -connect()-> connecting -> connected -> disconnected -> connecting ...
//          any state -close()-> closed (final)
//   - connecting: requests wait in `unsent` and go out when connected; a
//     failed attempt fails them (`.connectFailed`).
//   - disconnected: waiting to retry (ReconnectBackoff); requests fail at once
//     (`.disconnected`). A drop fails everything pending; nothing is retried,
//     since a sent statement may or may not have run.
//   - closed: every pending request fails with `.closed`; all handles closed.
//
// Timeouts
//   One LoopTimer per connection serves the connect deadline, the reconnect
//   delay and request deadlines. It is armed lazily (only moved earlier when a
//   request is queued); when it fires it handles what is due and re-arms for
//   the earliest remaining deadline, a scan that happens about once per
//   timeout period. A request that times out before it was sent just fails;
//   one already on the wire cannot be taken back without PQcancel (which
//   blocks), so the connection is dropped: it fails with `.timeout`, the rest
//   in flight with `.disconnected`, and the connection reconnects.
//
// LISTEN/NOTIFY: notifications are read after every PQconsumeInput and passed
// to `onNotification`. A reconnect loses LISTENs: issue them again on
// `.connected`.
internal import DequeModule
internal import RunQueueCore
import UVLoop

public final class PostgresConnection: @unchecked Sendable {
    // @unchecked Sendable: every property is touched on the loop thread only.
    // The async wrappers (PostgresConnection+Async) hop there with
    // `loop.execute`; the other methods must be called there.

    public enum State: Sendable, CustomStringConvertible {
        /// Created; `connect()` not called yet.
        case idle
        /// An attempt is in progress; requests queue.
        case connecting
        case connected
        /// The last attempt failed or the connection dropped; a retry is
        /// scheduled. Requests fail at once.
        case disconnected(PostgresError)
        /// `close()` was called; final.
        case closed

        public var description: String {
            switch self {
            case .idle: return "idle"
            case .connecting: return "connecting"
            case .connected: return "connected"
            case .disconnected(let error): return "disconnected (\(error))"
            case .closed: return "closed"
            }
        }
    }

    public let loop: EventLoop
    public let config: PostgresConfig
    public private(set) var state: State = .idle
    /// Called on every state change (loop thread).
    public var onStateChange: ((State) -> Void)?
    /// Called for each NOTIFY received (loop thread).
    public var onNotification: ((PostgresNotification) -> Void)?

    private var session: PostgresSession?
    /// Requests queued and not yet written (waiting for the connection, or
    /// behind a simple query).
    private var unsent = Deque<PendingRequest>()
    private var timer: LoopTimer?
    /// When the timer fires next (loop ms), nil when not armed.
    private var timerDue: UInt64?
    private var reconnectAt: UInt64?
    private var connectDeadline: UInt64?
    private var backoff: ReconnectBackoff
    /// Attempts started so far; the current session's generation.
    private var attempts: UInt64 = 0
    /// The attempt waiting for a host name lookup, if any.
    private var resolvingAttempt: UInt64?
    private var connectWaiters: [(Result<Void, PostgresError>) -> Void] = []

    /// Creates the connection; nothing happens until `connect()`. Any thread.
    public init(loop: EventLoop, config: PostgresConfig) {
        self.loop = loop
        self.config = config
        backoff = ReconnectBackoff(initialMs: config.reconnectDelayMs, maxMs: config.reconnectMaxDelayMs)
    }

    public convenience init(loop: EventLoop, url: String) throws {
        try self.init(loop: loop, config: PostgresConfig(url: url))
    }

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    /// The server process id of the current connection (for
    /// `pg_terminate_backend`, `pg_stat_activity`), nil when not connected.
    public var backendPID: Int32? {
        guard let session, session.ready else { return nil }
        return session.backendPID
    }

    /// The generation of the connected session, nil when not connected.
    var connectedSession: UInt64? {
        guard let session, session.ready else { return nil }
        return session.generation
    }

    // MARK: - Public API (loop thread)

    /// Starts connecting; after a failure or a drop it keeps reconnecting with
    /// backoff until `close()`. Watch `onStateChange`. No effect unless idle.
    public func connect() {
        assertOnLoop()
        guard case .idle = state else { return }
        timer = LoopTimer(loop: loop)
        startAttempt()
    }

    /// Runs one statement in its own implicit transaction. Parameters are
    /// `$1`, `$2`, ...; `timeoutMs` overrides the config's query timeout (0 = none).
    public func query(_ sql: String, _ parameters: [PostgresBindable] = [], timeoutMs: UInt64? = nil,
                      _ completion: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        submit([PostgresStatement(sql, parameters)], timeoutMs: timeoutMs, pinnedTo: nil) { outcome in
            completion(outcome.map { $0[0] })
        }
    }

    /// Runs the statements in one implicit transaction (one pipeline sync): all
    /// commit, or the first error fails the whole request and nothing commits.
    /// The results come back in statement order.
    public func transaction(_ statements: [PostgresStatement], timeoutMs: UInt64? = nil,
                            _ completion: @escaping (Result<[PostgresResult], PostgresError>) -> Void) {
        submit(statements, timeoutMs: timeoutMs, pinnedTo: nil, completion)
    }

    /// Runs SQL text that may hold several statements (no parameters) with the
    /// simple query protocol: one implicit transaction unless the text has its
    /// own BEGIN/COMMIT. It waits for the pipeline to empty and holds back
    /// later requests until it is done, so keep it for migrations and setup.
    public func simpleQuery(_ sql: String, timeoutMs: UInt64? = nil,
                            _ completion: @escaping (Result<[PostgresResult], PostgresError>) -> Void) {
        submitSimple(sql, timeoutMs: timeoutMs, pinnedTo: nil, completion)
    }

    /// Closes the connection: fails every pending request with `.closed`,
    /// closes the socket watcher and the timer, then the libpq connection.
    /// Idempotent. `onStateChange` gets `.closed`, then both callbacks are
    /// released.
    public func close() {
        assertOnLoop()
        if case .closed = state { return }
        let current = session
        session = nil
        let inflight = current.map(takeInflight) ?? []
        current?.finish()
        timer?.close()
        timer = nil
        timerDue = nil
        reconnectAt = nil
        connectDeadline = nil
        resolvingAttempt = nil
        let queued = unsent.takeAll()
        state = .closed
        let error = PostgresError(.closed, "connection closed")
        for request in inflight + queued { request.finish(.failure(error)) }
        finishWaiters(.failure(error))
        let callback = onStateChange
        onStateChange = nil
        onNotification = nil
        callback?(.closed)
    }

    /// Double-quotes an identifier for SQL (`"my""table"`).
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// Single-quotes a string literal for SQL (`'it''s'`); prefer parameters.
    public static func quoteLiteral(_ text: String) -> String {
        "'" + text.replacingAll("'", with: "''") + "'"
    }

    // MARK: - Queueing

    func submit(_ statements: [PostgresStatement], timeoutMs: UInt64?, pinnedTo pin: UInt64?,
                _ completion: @escaping (Result<[PostgresResult], PostgresError>) -> Void) {
        assertOnLoop()
        let encoded: [EncodedStatement]
        do {
            encoded = try statements.map { statement throws(PostgresError) in try EncodedStatement(statement) }
        } catch {
            failLater(completion, error)
            return
        }
        enqueue(PendingRequest(body: .pipelined(encoded), deadline: deadline(timeoutMs), pinnedSession: pin,
                               completion: completion))
    }

    func submitSimple(_ sql: String, timeoutMs: UInt64?, pinnedTo pin: UInt64?,
                      _ completion: @escaping (Result<[PostgresResult], PostgresError>) -> Void) {
        assertOnLoop()
        guard !sql.utf8.contains(0) else {
            failLater(completion, PostgresError(.invalidArgument, "SQL text contains a NUL byte"))
            return
        }
        enqueue(PendingRequest(body: .simple(sql), deadline: deadline(timeoutMs), pinnedSession: pin,
                               completion: completion))
    }

    private func deadline(_ timeoutMs: UInt64?) -> UInt64? {
        let timeout = timeoutMs ?? config.queryTimeoutMs
        return timeout == 0 ? nil : loop.nowMs + timeout
    }

    private func enqueue(_ request: PendingRequest) {
        let refusal: PostgresError
        switch state {
        case .connecting, .connected:
            if let pin = request.pinnedSession, pin != connectedSession {
                refusal = PostgresError(.disconnected, "the session this request is bound to has ended")
                break
            }
            unsent.append(request)
            if let deadline = request.deadline { arm(at: deadline) }
            if let session, session.ready { pump(session) }
            return
        case .idle:
            refusal = PostgresError(.disconnected, "not connected (connect() was not called)")
        case .disconnected(let cause):
            refusal = PostgresError(.disconnected, "not connected: \(cause.message)", cause: cause)
        case .closed:
            refusal = PostgresError(.closed, "connection closed")
        }
        let box = LoopBound((request, refusal))
        loop.execute { box.value.0.finish(.failure(box.value.1)) }
    }

    private func failLater<T>(_ completion: @escaping (Result<T, PostgresError>) -> Void, _ error: PostgresError) {
        let box = LoopBound(completion)
        loop.execute { box.value(.failure(error)) }
    }

    // MARK: - Connecting

    private func startAttempt() {
        precondition(session == nil, "connection attempt started with a live session")
        reconnectAt = nil
        attempts += 1
        let attempt = attempts
        connectDeadline = loop.nowMs + config.connectTimeoutMs
        arm(at: connectDeadline!)
        setState(.connecting)
        guard case .connecting = state, attempt == attempts else { return }  // closed from the callback
        if let address = config.literalAddress {
            open(address: address, attempt: attempt)
            return
        }
        resolvingAttempt = attempt
        HostResolver.resolve(config.host, on: loop) { [weak self] outcome in
            guard let self, self.resolvingAttempt == attempt, case .connecting = self.state else { return }
            self.resolvingAttempt = nil
            switch outcome {
            case .success(let address): self.open(address: address, attempt: attempt)
            case .failure(let error): self.attemptFailed(error)
            }
        }
    }

    private func open(address: String, attempt: UInt64) {
        switch PostgresSession.start(parameters: config.connectionParameters(address: address), generation: attempt) {
        case .failure(let error):
            attemptFailed(error)
        case .success(let newSession):
            session = newSession
            // As if PQconnectPoll had answered PGRES_POLLING_WRITING (libpq docs).
            guard attachWatcher(newSession) else { return }
            newSession.setInterest(.writable, force: true)
        }
    }

    /// Makes sure the watcher polls the session's current socket. False (and
    /// the attempt failed) when the watcher cannot be created.
    private func attachWatcher(_ session: PostgresSession) -> Bool {
        let fd = session.socket
        if let watcher = session.watcher, watcher.fd == fd { return true }
        session.watcher?.close()
        session.watcher = nil
        guard fd >= 0 else {
            attemptFailed(PostgresError(.connectFailed, session.errorMessage))
            return false
        }
        do {
            session.watcher = try FDWatcher(loop: loop, fd: fd) { [weak self, weak session] event in
                guard let self, let session else { return }
                self.socketEvent(event, on: session)
            }
            return true
        } catch {
            attemptFailed(PostgresError(.connectFailed, "cannot watch the socket: \(error)"))
            return false
        }
    }

    private func socketEvent(_ event: Result<FDWatcher.Events, UVError>, on session: PostgresSession) {
        guard session === self.session, session.alive else { return }
        if session.ready {
            ioEvent(event, on: session)
        } else {
            // An error event (POLLERR on a refused connect) also goes to
            // PQconnectPoll, which reads the socket error and reports it.
            connectStep(session)
        }
    }

    private func connectStep(_ session: PostgresSession) {
        switch session.connectPoll() {
        case .wantRead:
            guard attachWatcher(session) else { return }
            session.setInterest(.readable, force: true)
        case .wantWrite:
            guard attachWatcher(session) else { return }
            session.setInterest(.writable, force: true)
        case .connected:
            connected(session)
        case .failed(let message):
            attemptFailed(PostgresError(.connectFailed, message))
        }
    }

    private func connected(_ session: PostgresSession) {
        guard attachWatcher(session) else { return }
        guard session.enterPipelineMode() else {
            attemptFailed(PostgresError(.connectFailed, "could not enter pipeline mode: \(session.errorMessage)"))
            return
        }
        session.ready = true
        connectDeadline = nil
        backoff.recordSuccess()
        session.setInterest(.readable, force: true)
        setState(.connected)
        finishWaiters(.success(()))
        guard session === self.session, session.alive else { return }
        pump(session)
    }

    /// The current attempt failed: fail what waited for it, schedule the next.
    private func attemptFailed(_ error: PostgresError) {
        let current = session
        session = nil
        current?.finish()
        connectDeadline = nil
        resolvingAttempt = nil
        backoff.recordFailure()
        let queued = unsent.takeAll()
        state = .disconnected(error)
        for request in queued { request.finish(.failure(error)) }
        finishWaiters(.failure(error))
        onStateChange?(state)
        scheduleReconnect()
    }

    /// The connected session broke (or timed out): fail everything pending.
    /// Requests whose deadline passed fail with `.timeout`, the others with `error`.
    private func lost(_ session: PostgresSession, _ error: PostgresError) {
        guard session === self.session else { return }
        self.session = nil
        let inflight = takeInflight(session)
        session.finish()
        let queued = unsent.takeAll()
        state = .disconnected(error)
        let timeout = PostgresError(.timeout, "request timed out; the connection was reset")
        for request in inflight + queued {
            request.finish(.failure(request.timedOut ? timeout : error))
        }
        onStateChange?(state)
        scheduleReconnect()
    }

    private func takeInflight(_ session: PostgresSession) -> [PendingRequest] {
        var list: [PendingRequest] = []
        if let simple = session.simple { list.append(simple) }
        session.simple = nil
        list += session.inflight.takeAll()
        return list
    }

    private func scheduleReconnect() {
        guard case .disconnected = state else { return }  // closed from a callback
        let at = loop.nowMs + backoff.delayMs
        reconnectAt = at
        arm(at: at)
    }

    private func setState(_ new: State) {
        state = new
        onStateChange?(new)
    }

    private func finishWaiters(_ outcome: Result<Void, PostgresError>) {
        guard !connectWaiters.isEmpty else { return }
        let waiters = connectWaiters
        connectWaiters = []
        for waiter in waiters { waiter(outcome) }
    }

    /// Registers a callback for the outcome of the current or next attempt
    /// (immediately if connected or closed). Used by the async `connect()`.
    func whenConnected(_ callback: @escaping (Result<Void, PostgresError>) -> Void) {
        switch state {
        case .connected: callback(.success(()))
        case .closed: callback(.failure(PostgresError(.closed, "connection closed")))
        case .idle:
            connectWaiters.append(callback)
            connect()
        case .connecting, .disconnected:
            connectWaiters.append(callback)
        }
    }

    // MARK: - I/O on a connected session

    private func ioEvent(_ event: Result<FDWatcher.Events, UVError>, on session: PostgresSession) {
        switch event {
        case .failure(let pollError):
            // libuv stopped the poll (POLLERR): let libpq read what is left
            // for a better message, then give up on this session.
            let message = session.consumeInput() ? pollError.description : session.errorMessage
            lost(session, PostgresError(.disconnected, message))
        case .success(let events):
            if events.contains(.readable), !session.consumeInput() {
                lost(session, PostgresError(.disconnected, session.errorMessage))
                return
            }
            pump(session)
            if session.alive, !session.outputPending, session.interest.contains(.writable) {
                session.setInterest(.readable)
            }
        }
    }

    /// Sends what can be sent, flushes, reads what has arrived; repeats while
    /// a completion queued more. Reentrant calls (from completions) only ask
    /// for another round.
    private func pump(_ session: PostgresSession) {
        guard session.ready, session.alive else { return }
        if session.pumping {
            session.repump = true
            return
        }
        session.pumping = true
        defer { session.pumping = false }
        repeat {
            session.repump = false
            sendUnsent(session)
            guard session.alive else { return }
            switch session.flush() {
            case .failed:
                lost(session, PostgresError(.disconnected, session.errorMessage))
                return
            case .pending:
                session.setInterest([.readable, .writable])
            case .done:
                break
            }
            drain(session)
        } while session.alive && session.repump
    }

    private func sendUnsent(_ session: PostgresSession) {
        while session.alive, session.simple == nil, let request = unsent.first {
            if let pin = request.pinnedSession, pin != session.generation {
                _ = unsent.popFirst()
                request.finish(.failure(PostgresError(.disconnected, "the session this request is bound to has ended")))
                continue
            }
            switch request.body {
            case .pipelined(let statements):
                // Statements new to this session are prepared first, each in
                // a segment of its own, then executed by name.
                var names: [String?] = []
                for statement in statements {
                    if let name = session.preparedName(for: statement) {
                        names.append(name)
                    } else if let (key, name) = session.reservePreparedName(for: statement) {
                        guard session.sendPrepare(name: name, sql: statement.sql, types: statement.types), session.sync() else {
                            lost(session, PostgresError(.disconnected, session.errorMessage))
                            return
                        }
                        session.inflight.append(PendingRequest(body: .pipelined([statement]), deadline: nil, pinnedSession: nil) {
                            [weak session, weak request] result in
                            guard case .failure(let error) = result else { return }
                            session?.forgetPrepared(key)
                            // The request then fails on the missing name; its caller gets why.
                            if request?.error == nil { request?.error = error }
                        })
                        names.append(name)
                    } else {
                        names.append(nil)
                    }
                }
                for (statement, name) in zip(statements, names) where !session.send(statement, prepared: name) {
                    lost(session, PostgresError(.disconnected, session.errorMessage))
                    return
                }
                guard session.sync() else {
                    lost(session, PostgresError(.disconnected, session.errorMessage))
                    return
                }
                _ = unsent.popFirst()
                session.inflight.append(request)
            case .simple(let sql):
                guard session.inflight.isEmpty else { return }
                guard session.exitPipelineMode() else {
                    lost(session, PostgresError(.protocol, "could not leave pipeline mode: \(session.errorMessage)"))
                    return
                }
                guard session.sendSimple(sql) else {
                    lost(session, PostgresError(.disconnected, session.errorMessage))
                    return
                }
                _ = unsent.popFirst()
                session.simple = request
            }
        }
    }

    /// Reads every result that is complete, in order, completing requests.
    private func drain(_ session: PostgresSession) {
        deliverNotifications(session)
        while session.alive {
            if let request = session.simple {
                guard !session.isBusy else { break }
                let fetched = session.nextResult()
                switch fetched {
                case .end:
                    if session.isBad {
                        lost(session, PostgresError(.disconnected, session.errorMessage))
                        return
                    }
                    guard session.enterPipelineMode() else {
                        lost(session, PostgresError(.protocol, "could not re-enter pipeline mode: \(session.errorMessage)"))
                        return
                    }
                    session.simple = nil
                    session.repump = true  // requests held behind it can go now
                    request.finishWithOutcome()
                case .result(let result):
                    request.results.append(result)
                case .error(let error):
                    if request.error == nil { request.error = error }
                case .aborted, .sync, .unexpected:
                    lost(session, PostgresError(.protocol, "unexpected result \(fetched) for a simple query"))
                    return
                }
                continue
            }
            guard let request = session.inflight.first, !session.isBusy else { break }
            let fetched = session.nextResult()
            if request.position < request.statementCount {
                switch fetched {
                case .end:
                    guard request.gotResult else {
                        // NULL before any result: libpq has nothing for this
                        // statement, which only happens on a broken connection.
                        let message = session.isBad ? session.errorMessage : "statement ended without a result"
                        lost(session, PostgresError(session.isBad ? .disconnected : .protocol, message))
                        return
                    }
                    request.position += 1
                    request.gotResult = false
                case .result(let result):
                    request.gotResult = true
                    request.results.append(result)
                case .error(let error):
                    request.gotResult = true
                    if request.error == nil { request.error = error }
                case .aborted:
                    request.gotResult = true
                    if request.error == nil {
                        request.error = PostgresError(.protocol, "statement skipped: the pipeline was aborted")
                    }
                case .sync, .unexpected:
                    lost(session, PostgresError(.protocol, "unexpected result \(fetched) for a pipelined statement"))
                    return
                }
            } else {
                guard case .sync = fetched else {
                    let message = session.isBad ? session.errorMessage : "expected a pipeline sync, got \(fetched)"
                    lost(session, PostgresError(session.isBad ? .disconnected : .protocol, message))
                    return
                }
                _ = session.inflight.popFirst()
                // A simple query may have been waiting for the pipeline to empty.
                if session.inflight.isEmpty, !unsent.isEmpty { session.repump = true }
                request.finishWithOutcome()
            }
        }
        deliverNotifications(session)
    }

    private func deliverNotifications(_ session: PostgresSession) {
        guard session.alive else { return }
        for notification in session.notifications() {
            onNotification?(notification)
        }
    }

    // MARK: - Timer

    /// Makes the timer fire no later than `due` (loop ms).
    private func arm(at due: UInt64) {
        guard let timer else { return }
        if let timerDue, timerDue <= due { return }
        timerDue = due
        let now = loop.nowMs
        timer.start(afterMs: due > now ? due - now : 0) { [weak self] in self?.timerFired() }
    }

    private func timerFired() {
        timerDue = nil
        let now = loop.nowMs
        if let at = reconnectAt, at <= now, case .disconnected = state {
            reconnectAt = nil
            startAttempt()
        }
        if let deadline = connectDeadline, deadline <= now, case .connecting = state {
            attemptFailed(PostgresError(.connectFailed, "connect timed out after \(config.connectTimeoutMs) ms"))
        }
        expireRequests(now: now)
        guard timer != nil else { return }  // closed from a callback
        if let next = nextDue() { arm(at: next) }
    }

    private func expireRequests(now: UInt64) {
        let expired = unsent.take { $0.isExpired(at: now) }
        for request in expired {
            request.finish(.failure(PostgresError(.timeout, "request timed out before it was sent")))
        }
        guard let session, session.ready else { return }
        var anyOnWire = false
        if let simple = session.simple, simple.isExpired(at: now) {
            simple.timedOut = true
            anyOnWire = true
        }
        session.inflight.forEach { request in
            if request.isExpired(at: now) {
                request.timedOut = true
                anyOnWire = true
            }
        }
        if anyOnWire {
            lost(session, PostgresError(.disconnected, "connection reset: a request on it timed out"))
        }
    }

    private func nextDue() -> UInt64? {
        var next: UInt64?
        func consider(_ value: UInt64?) {
            guard let value else { return }
            next = min(next ?? value, value)
        }
        consider(reconnectAt)
        consider(connectDeadline)
        unsent.forEach { consider($0.deadline) }
        if let session {
            consider(session.simple?.deadline)
            session.inflight.forEach { consider($0.deadline) }
        }
        return next
    }

    private func assertOnLoop() {
        assert(loop.inEventLoop, "PostgresConnection used off its loop thread")
    }
}
