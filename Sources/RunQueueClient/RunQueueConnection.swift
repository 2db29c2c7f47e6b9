// RunQueueConnection: one pipelined connection to runqueued.
//
// Any number of calls may be in flight; each gets a fresh call id and its
// answer is matched by id, in whatever order the server answers. Loop work
// (socket, framing, the pending-call table) happens on an EventLoop thread;
// the async API can be used from any task.
import RunQueueCore
import RunQueueEncoding
import UVLoop

public final class RunQueueConnection: Sendable {
    /// The loop shared by connections that are not given one.
    public static let sharedLoop: EventLoop = {
        do { return try EventLoop(name: "runqueue-client") } catch { fatalError("cannot start the client event loop: \(error)") }
    }()

    private let loop: EventLoop
    private let core: ClientCore

    private init(loop: EventLoop, core: ClientCore) {
        self.loop = loop
        self.core = core
    }

    deinit {
        let core = self.core
        loop.execute { core.close {} }
    }

    /// Connects to runqueued at `address` (numeric host).
    public static func connect(to address: SocketAddress, maxFrameBytes: Int = 64 << 20,
                               loop: EventLoop? = nil) async throws(RunQueueError) -> RunQueueConnection {
        let loop = loop ?? sharedLoop
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<ClientCore, RunQueueError>, Never>) in
            loop.execute {
                TCPConnection.connect(loop: loop, to: address) { result in
                    switch result {
                    case .success(let tcp):
                        continuation.resume(returning: .success(ClientCore(tcp: tcp, maxFrameBytes: maxFrameBytes)))
                    case .failure(let error):
                        continuation.resume(returning: .failure(RunQueueError(.unavailable, "cannot connect to \(address): \(error)")))
                    }
                }
            }
        }
        return RunQueueConnection(loop: loop, core: try result.get())
    }

    /// Connects to `host:port`.
    public static func connect(_ hostPort: String, loop: EventLoop? = nil) async throws(RunQueueError) -> RunQueueConnection {
        guard let address = SocketAddress(parsing: hostPort) else {
            throw RunQueueError(.invalidArgument, "server address must be host:port with a numeric host, got \"\(hostPort)\"")
        }
        return try await connect(to: address, loop: loop)
    }

    /// Sends one unary call and returns its result; a non-OK status throws.
    /// `timeoutMs` bounds the wait (the call is abandoned client-side, not cancelled).
    public func call(_ call: Call, timeoutMs: UInt64 = 0) async throws(RunQueueError) -> ResponseResult? {
        let core = self.core
        let response = await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
            loop.execute { core.send(call, timeoutMs: timeoutMs) { continuation.resume(returning: $0) } }
        }
        guard response.status.code == .ok else { throw RunQueueError(response.status.code, response.status.message) }
        return response.result
    }

    public func hello(token: String = "", clientName: String = "swift-client") async throws(RunQueueError) -> HelloResponse {
        guard case .hello(let hello)? = try await call(.hello(HelloRequest(token: token, clientName: clientName))) else {
            throw RunQueueError(.internal, "Hello answered with another method's result")
        }
        return hello
    }

    public func ping(_ payload: [UInt8] = []) async throws(RunQueueError) -> [UInt8] {
        guard case .ping(let pong)? = try await call(.ping(PingRequest(payload: payload))) else {
            throw RunQueueError(.internal, "Ping answered with another method's result")
        }
        return pong.payload
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        let core = self.core
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute { core.close { continuation.resume() } }
        }
    }
}

/// The loop-confined half of a connection.
final class ClientCore: @unchecked Sendable {
    private let tcp: TCPConnection
    private var decoder: FrameDecoder
    private var pending: [UInt64: (Response) -> Void] = [:]
    private var timers: [UInt64: LoopTimer] = [:]
    private var nextCallID: UInt64 = 1
    private var failure: RunQueueError?
    /// The last call-id-0 error the server sent; it explains a close that follows.
    private var connectionError: RunQueueError?
    private var closeWaiters: [() -> Void] = []

    init(tcp: TCPConnection, maxFrameBytes: Int) {
        self.tcp = tcp
        decoder = FrameDecoder(maxFrameBytes: maxFrameBytes)
        // The socket's callbacks hold this core until the socket has closed
        // (TCPConnection drops them in its close callback), so a connection
        // object released without close() still fails its calls cleanly.
        tcp.onRead = { [self] bytes in didRead(bytes) }
        tcp.onReadEnd = { [self] error in
            fail(RunQueueError(.unavailable, error.map { "connection lost: \($0)" } ?? "the server closed the connection"))
        }
        tcp.onClose = { [self] in
            fail(RunQueueError(.unavailable, "connection closed"))
            let waiters = closeWaiters
            closeWaiters.removeAll()
            for waiter in waiters { waiter() }
        }
        tcp.startReading()
    }

    func send(_ call: Call, timeoutMs: UInt64, _ completion: @escaping (Response) -> Void) {
        if let failure {
            completion(Response.error(callID: 0, failure.code, failure.message))
            return
        }
        let callID = nextCallID
        nextCallID += 1
        pending[callID] = completion
        if timeoutMs > 0 {
            timers[callID] = tcp.loop.schedule(afterMs: timeoutMs) { [unowned self] in
                timers[callID] = nil
                pending.removeValue(forKey: callID)?(
                    Response.error(callID: callID, .deadlineExceeded, "no answer within \(timeoutMs) ms"))
            }
        }
        tcp.write(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: callID, call: call))))
    }

    private func didRead(_ bytes: UnsafeRawBufferPointer) {
        do {
            try decoder.feed(bytes) { body in
                guard let response = try? WireCodec.decodeResponse(body) else {
                    fail(RunQueueError(.internal, "the server sent a frame that is not a runqueue.v1.Response"))
                    tcp.close()
                    return
                }
                deliver(response)
            }
        } catch {
            fail(RunQueueError(.resourceExhausted, "the server sent an invalid frame: \(error)"))
            tcp.close()
        }
    }

    private func deliver(_ response: Response) {
        if response.callID == 0 {
            // A connection-level error (e.g. the server refused a frame): it
            // concerns no single call; if the server closes next, every
            // pending call fails with this status.
            connectionError = RunQueueError(response.status.code, response.status.message)
            return
        }
        timers.removeValue(forKey: response.callID)?.close()
        pending.removeValue(forKey: response.callID)?(response)
    }

    private func fail(_ error: RunQueueError) {
        let reason = failure ?? connectionError ?? error
        failure = reason
        let calls = pending
        pending.removeAll()
        for timer in timers.values { timer.close() }
        timers.removeAll()
        for (callID, completion) in calls {
            completion(Response.error(callID: callID, reason.code, reason.message))
        }
    }

    func close(_ done: @escaping () -> Void) {
        if tcp.isClosing {
            done()
            return
        }
        closeWaiters.append(done)
        tcp.close()
    }
}
