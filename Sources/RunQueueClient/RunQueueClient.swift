// RunQueueClient: the Swift client library's front door.
//
// What: a small pool of pipelined connections (`configuration.connections`,
// default 2) used round-robin, with one async method per protocol method
// (RunQueueClient+Methods.swift) taking and returning RunQueueCore values,
// and `subscribeExpiry` for the expiry stream (ExpirySubscription.swift).
//
// Failure model:
// - Every failed call throws `RunQueueError` with the status code and message
//   (the server's, or UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED from here).
// - A connection that drops fails the calls in flight on it with UNAVAILABLE
//   (never retried here: only the caller knows whether a call is safe to
//   repeat; docs/protocol.md makes retries with the same run id safe). Later
//   calls use another live connection, or reconnect with backoff
//   (ConnectionSlot).
// - Deadlines: a call's `timeout` (else `defaultTimeout`) covers waiting for
//   a connection and the answer; on expiry the call is cancelled on the server.
//   Cancelling the calling task cancels the call on the server too.
//
// Connections are made lazily: creating a client does no I/O; `connect()`
// (or the static `connect`) checks the server right away.
import RunQueueCore
import Synchronization
import UVLoop

public final class RunQueueClient: Sendable {
    public let configuration: RunQueueClientConfiguration
    private let slots: [ConnectionSlot]
    private let nextSlot = Atomic<Int>(0)
    private let serverHello = LatestHello()

    /// A client for `configuration.server`; connects on first use.
    public init(_ configuration: RunQueueClientConfiguration) {
        self.configuration = configuration
        let count = max(configuration.connections, 1)
        let connector = Self.connector(configuration)
        let hello = serverHello
        slots = (0..<count).map { _ in
            ConnectionSlot(policy: configuration.reconnectPolicy) { () throws(RunQueueError) -> RunQueueConnection in
                let (connection, answer) = try await connector()
                hello.record(answer)
                return connection
            }
        }
    }

    /// A client for `host:port`; connects on first use.
    public convenience init(server hostPort: String) throws(RunQueueError) {
        self.init(try RunQueueClientConfiguration(server: hostPort))
    }

    /// A client whose first connection is already up (and has had its `Hello`).
    public static func connect(_ configuration: RunQueueClientConfiguration) async throws(RunQueueError) -> RunQueueClient {
        let client = RunQueueClient(configuration)
        try await client.connect()
        return client
    }

    /// Makes sure one connection is up now; throws what prevents it.
    public func connect() async throws(RunQueueError) {
        _ = try await connection(deadline: deadline(for: nil))
    }

    /// What the server said in its latest `Hello` (nil before the first connect).
    public var serverInfo: HelloResponse? { serverHello.value }

    /// The server's frame limit as learnt from Hello; the protocol default before.
    var maxFrameBytes: Int {
        let learnt = serverHello.value?.maxFrameBytes ?? 0
        return learnt > 0 ? Int(learnt) : 1 << 20
    }

    /// Closes every connection; calls in flight fail with UNAVAILABLE and
    /// later calls too. Subscriptions have their own connections and end
    /// when their iteration ends.
    public func close() async {
        for slot in slots { await slot.close() }
    }

    /// Sends any call and returns its result; a non-OK status throws. The
    /// typed methods are built on this; it is public for methods a newer
    /// server offers before this library wraps them.
    public func call(_ call: Call, timeout: Duration? = nil) async throws(RunQueueError) -> ResponseResult? {
        try await perform(call, deadline: deadline(for: timeout))
    }

    // MARK: - Internals shared by the methods

    /// The instant a call must be answered by, from its own timeout or the default.
    func deadline(for timeout: Duration?, extra: Duration = .zero) -> ContinuousClock.Instant? {
        if let timeout { return .now + timeout }
        if let base = configuration.defaultTimeout { return .now + base + extra }
        return nil
    }

    func perform(_ call: Call, deadline: ContinuousClock.Instant?) async throws(RunQueueError) -> ResponseResult? {
        var response: Response
        var tries = 0
        repeat {
            tries += 1
            let connection = try await connection(deadline: deadline)
            var timeoutMs: UInt64 = 0
            if let deadline {
                timeoutMs = (deadline - .now).wholeMilliseconds
                guard timeoutMs > 0 else {
                    throw RunQueueError(.deadlineExceeded, "the deadline passed before \(call.methodName) could be sent")
                }
            }
            response = await connection.send(call, timeoutMs: timeoutMs)
            // Call id 0 with UNAVAILABLE: the connection was found dead before
            // the call was written, so the server never saw it; one more try
            // on a fresh connection is safe for any method.
        } while response.callID == 0 && response.status.code == .unavailable && tries < 2
        guard response.status.code == .ok else { throw RunQueueError(response.status.code, response.status.message) }
        return response.result
    }

    /// A connection for the next call: the next slot round-robin if it is up,
    /// else any slot that is up (the down one starts reconnecting), else the
    /// next slot once it reconnects.
    private func connection(deadline: ContinuousClock.Instant?) async throws(RunQueueError) -> RunQueueConnection {
        let first = nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue
        let index = (first % slots.count + slots.count) % slots.count
        if let live = slots[index].liveConnection { return live }
        for offset in 1..<max(slots.count, 1) {
            if let live = slots[(index + offset) % slots.count].liveConnection {
                slots[index].reconnectSoon()
                return live
            }
        }
        var limit = ContinuousClock.now + configuration.reconnectWait
        var limitedByDeadline = false
        if let deadline, deadline < limit {
            limit = deadline
            limitedByDeadline = true
        }
        do {
            return try await slots[index].acquire(until: limit)
        } catch {
            // The call gave up waiting for a reconnect because of its own deadline.
            if limitedByDeadline, error.code == .unavailable || error.code == .deadlineExceeded {
                throw RunQueueError(.deadlineExceeded, "no connection to \(configuration.server) within the call's deadline: \(error.message)")
            }
            throw error
        }
    }

    /// Connect + Hello, within the connect timeout.
    static func connector(_ configuration: RunQueueClientConfiguration)
        -> @Sendable () async throws(RunQueueError) -> (RunQueueConnection, HelloResponse) {
        { () throws(RunQueueError) -> (RunQueueConnection, HelloResponse) in
            let started = ContinuousClock.now
            let connectMs = configuration.connectTimeout.wholeMilliseconds
            let connection = try await RunQueueConnection.connect(
                to: configuration.server, loop: configuration.loop, connectTimeoutMs: connectMs)
            let leftMs = connectMs == 0 ? 0 : max((started + configuration.connectTimeout - .now).wholeMilliseconds, 1)
            do throws(RunQueueError) {
                let request = HelloRequest(token: configuration.token, clientName: configuration.clientName)
                guard case .hello(let hello)? = try await connection.call(.hello(request), timeoutMs: leftMs) else {
                    throw RunQueueError(.internal, "Hello answered with another method's result")
                }
                return (connection, hello)
            } catch {
                await connection.close()
                throw error
            }
        }
    }
}

/// The latest `Hello` answer any of a client's connections received.
final class LatestHello: Sendable {
    private let state = Mutex<HelloResponse?>(nil)
    var value: HelloResponse? { state.withLock { $0 } }
    func record(_ hello: HelloResponse) { state.withLock { $0 = hello } }
}
