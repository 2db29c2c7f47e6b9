// RedisSubscriber: one Redis pub/sub connection (SUBSCRIBE to a fixed set of
// channels) on the event loop, kept subscribed until close(). The server uses
// it to receive "wake" notifications that other instances PUBLISH.
//
// What: `onMessage` runs on the loop thread for every message, in the order
// Redis sent them, with the channel and the payload bytes (binary safe). After
// a failed connect, a lost socket or a failed health check it reconnects by
// itself with exponential backoff and subscribes again.
//
// Delivery is at most once, and messages published while the subscriber is
// not subscribed are lost (Redis pub/sub does not store them): between a
// disconnect and the next `.connected` anything may have been missed.
// Callers must treat every `.connected` (the first one included) as "anything
// may have happened" and re-check the state they wait on, e.g. poll their
// queues once, instead of relying on a wake having arrived.
//
// Invariants:
// - Loop thread only (asserted in debug builds). `@unchecked Sendable` only
//   so it can be created inside `EventLoop.submit` and handed back.
// - A separate connection type, not a mode of RedisConnection: a subscribed
//   hiredis context accepts no ordinary commands, and its callbacks fire
//   repeatedly (see HiredisSession's pub/sub note) rather than once per command.
// - `.connected` means every channel's SUBSCRIBE was confirmed on the current
//   context; from then on no message published to them is missed until the
//   state changes. The connect timeout covers TCP, AUTH and all confirmations.
// - At most one hiredis context (HiredisSession) at a time; ending it detaches
//   it before user code (onStateChange) runs, so nothing from the old context
//   reaches the owner afterwards.
// - Health check: Redis sends nothing on an idle subscription, so a dead peer
//   that never sent a FIN/RST (a partition, a stopped server) would go
//   unnoticed and silently drop every wake. While connected, every
//   `healthCheckIntervalMs` the first channel is SUBSCRIBEd again (a no-op for
//   Redis that just confirms it) and the confirmation must arrive within
//   `config.commandTimeoutMs`, or the connection is reset and re-established.
//   Not PING: in subscribed mode Redis answers it with a ["pong", ""] array
//   that hiredis 0.14.1 looks up as a pub/sub reply, so the PING's own
//   callback only ever gets the NULL at teardown (checked with a C probe).
// - Two LoopTimers: the deadline timer (connect timeout, then health check)
//   and the reconnect backoff timer; close() closes both and frees the
//   context, so the loop can close with no handle left.
internal import RunQueueCore
import UVLoop

public final class RedisSubscriber: @unchecked Sendable {
    public let loop: EventLoop
    public let config: RedisConfig
    /// The channels subscribed to, without duplicates, in the given order.
    public let channels: [String]
    /// Called for every message (loop thread), in order. The channel is one of
    /// `channels`. Runs inside hiredis' reply callback; calling `close()` from
    /// it is fine. Cleared by `close()`.
    public var onMessage: ((_ channel: String, _ payload: [UInt8]) -> Void)?
    /// Called on every state change (loop thread). `.connected` only once
    /// SUBSCRIBE was confirmed for all channels; see the note on missed
    /// messages at the top. Cleared by `close()`.
    public var onStateChange: ((RedisConnection.State) -> Void)?
    public private(set) var state: RedisConnection.State = .idle
    /// How often a connected subscriber checks that Redis still answers
    /// (0 = never). Takes effect from the next `.connected`.
    public var healthCheckIntervalMs: UInt64 = 10_000

    public var isConnected: Bool { state == .connected }

    private let channelBytes: [[UInt8]]
    private var session: HiredisSession?
    /// Channels of the current session whose SUBSCRIBE is not confirmed yet.
    private var unconfirmed: Set<[UInt8]> = []
    /// A health-check SUBSCRIBE was sent and not confirmed yet.
    private var probeOutstanding = false
    private var backoff: ReconnectBackoff
    private var deadlineTimer: LoopTimer?
    private var reconnectTimer: LoopTimer?

    /// `channels` must not be empty; duplicates are ignored.
    public init(loop: EventLoop, config: RedisConfig, channels: [String]) {
        precondition(!channels.isEmpty, "RedisSubscriber needs at least one channel")
        var seen = Set<String>()
        self.channels = channels.filter { seen.insert($0).inserted }
        self.loop = loop
        self.config = config
        channelBytes = self.channels.map { Array($0.utf8) }
        backoff = ReconnectBackoff(initialMs: config.reconnectMinMs, maxMs: config.reconnectMaxMs)
    }

    /// Starts connecting and subscribing; from then on it reconnects and
    /// re-subscribes by itself (with backoff) whenever it is down, until
    /// `close()`. Calling it again is a no-op.
    public func connect() {
        assertOnLoop()
        guard state == .idle else { return }
        deadlineTimer = LoopTimer(loop: loop)
        reconnectTimer = LoopTimer(loop: loop)
        startSession()
    }

    /// Stops for good: frees the hiredis context (no message is delivered
    /// after this returns) and closes the timers, so the loop can then close
    /// with no handle left. Idempotent.
    public func close() {
        assertOnLoop()
        guard state != .closed else { return }
        let current = session
        session = nil
        deadlineTimer?.close()
        reconnectTimer?.close()
        deadlineTimer = nil
        reconnectTimer = nil
        onMessage = nil
        transition(to: .closed)
        current?.free()
        onStateChange = nil
    }

    // MARK: Connection lifecycle

    private func startSession() {
        guard state != .closed else { return }
        transition(to: .connecting)
        guard state == .connecting else { return }  // the observer closed it
        guard config.hasNumericHost else {
            connectionLost(RedisError(.connectFailed, "host \(config.host) is not an IP literal (names would need a blocking DNS lookup)"))
            return
        }
        switch HiredisSession.open(host: config.host, port: config.port, loop: loop, owner: self) {
        case .failure(let error):
            connectionLost(error)
        case .success(let opened):
            session = opened
            unconfirmed = Set(channelBytes)
            probeOutstanding = false
            startDeadline(afterMs: config.connectTimeoutMs)
            if let password = config.password {
                authenticate(opened, password: password)
            } else {
                subscribe(on: opened)
            }
        }
    }

    /// AUTH on the ordinary reply path, then SUBSCRIBE once it succeeded (a
    /// SUBSCRIBE pipelined behind a failed AUTH would only add a NOAUTH error).
    /// No SELECT: channels are not per database.
    private func authenticate(_ session: HiredisSession, password: String) {
        let args = config.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
        // Its deadline is unused: the connect timeout covers the handshake.
        let command = PendingCommand(deadlineMs: .max) { [weak self] result in
            // Failures caused by the session ending find it detached already.
            guard let self, self.session === session else { return }
            switch result {
            case .failure(let error):
                self.connectionLost(RedisError(.connectFailed, "AUTH failed: \(error.message)"))
            case .success:
                self.subscribe(on: session)
            }
        }
        if !session.send(args.map { Array($0.utf8) }, command) {
            connectionLost(RedisError(.connectFailed, "hiredis refused AUTH (connection being torn down)"))
        }
    }

    private func subscribe(on session: HiredisSession) {
        if !session.subscribe(channelBytes) {
            connectionLost(RedisError(.connectFailed, "hiredis refused SUBSCRIBE (connection being torn down)"))
        }
    }

    /// The session reports that its context is gone (failed connect, lost socket).
    func sessionEnded(_ ended: HiredisSession, _ error: RedisError) {
        guard ended === session else { return }
        connectionLost(error)
    }

    /// A confirmation or a message on the current session.
    func sessionReceivedPubSub(_ from: HiredisSession, _ reply: Result<RedisValue, RedisError>) {
        guard from === session, case .success(.array(let parts)) = reply, parts.count == 3,
              let kind = parts[0].bytes, let channel = parts[1].bytes else { return }
        switch kind {
        case Self.messageKind:
            guard let payload = parts[2].bytes else { return }
            onMessage?(String(decoding: channel, as: UTF8.self), payload)
        case Self.subscribeKind:
            subscribeConfirmed(channel)
        default:
            break  // never sent by Redis for a plain SUBSCRIBE; ignored
        }
    }

    private static let messageKind = Array("message".utf8)
    private static let subscribeKind = Array("subscribe".utf8)

    private func subscribeConfirmed(_ channel: [UInt8]) {
        switch state {
        case .connecting:
            unconfirmed.remove(channel)
            guard unconfirmed.isEmpty else { return }
            backoff.recordSuccess()
            scheduleHealthCheck()
            transition(to: .connected)
        case .connected where probeOutstanding:
            probeOutstanding = false
            scheduleHealthCheck()
        default:
            break
        }
    }

    /// Ends the current session (if any) and schedules a reconnect. The
    /// session is freed before `onStateChange` runs.
    private func connectionLost(_ error: RedisError) {
        guard state != .closed else { return }
        // Losing the socket before every SUBSCRIBE was confirmed is a failed connect.
        let error = state == .connecting && error.code == .disconnected ? RedisError(.connectFailed, error.message) : error
        let ended = session
        session = nil
        unconfirmed = []
        probeOutstanding = false
        deadlineTimer?.stop()
        ended?.free()
        transition(to: .disconnected(error))
        // The observer may have closed it.
        guard case .disconnected = state, session == nil, let reconnectTimer else { return }
        backoff.recordFailure()
        reconnectTimer.start(afterMs: backoff.delayMs) { [weak self] in self?.startSession() }
    }

    // MARK: Deadlines and health check

    private func startDeadline(afterMs: UInt64) {
        deadlineTimer?.start(afterMs: afterMs) { [weak self] in self?.deadlineFired() }
    }

    private func scheduleHealthCheck() {
        deadlineTimer?.stop()
        if healthCheckIntervalMs > 0 { startDeadline(afterMs: healthCheckIntervalMs) }
    }

    private func deadlineFired() {
        switch state {
        case .connecting:
            connectionLost(RedisError(.connectFailed,
                                      "connect and subscribe to \(config.host):\(config.port) timed out after \(config.connectTimeoutMs) ms"))
        case .connected where probeOutstanding:
            connectionLost(RedisError(.timeout, "connection reset: no health-check reply within \(config.commandTimeoutMs) ms"))
        case .connected:
            guard let session else { return }
            probeOutstanding = true
            guard session.subscribe([channelBytes[0]]) else {
                connectionLost(RedisError(.disconnected, "hiredis refused the health check (connection being torn down)"))
                return
            }
            startDeadline(afterMs: config.commandTimeoutMs)
        default:
            break
        }
    }

    // MARK: State

    private func transition(to next: RedisConnection.State) {
        state = next
        onStateChange?(next)
    }

    @inline(__always)
    private func assertOnLoop() {
        assert(loop.inEventLoop, "RedisSubscriber used off its loop thread")
    }
}

extension RedisSubscriber: HiredisSessionOwner {}
