// RunQueueConnection: one pipelined connection to runqueued.
//
// Any number of calls may be in flight; each gets a fresh call id and its
// answer is matched by id, in whatever order the server answers. Loop work
// (socket, framing, the pending-call table) happens on an EventLoop thread
// (ClientCore); the async API can be used from any task. A connection does
// not reconnect: once `isConnected` is false it stays so. `RunQueueClient`
// pools connections and replaces dropped ones.
import RunQueueCore
import RunQueueWire
import UVLoop

public final class RunQueueConnection: Sendable {
    /// The loop shared by connections that are not given one.
    public static let sharedLoop: EventLoop = {
        do { return try EventLoop(name: "runqueue-client") } catch { fatalError("cannot start the client event loop: \(error)") }
    }()

    private let loop: EventLoop
    private let core: ClientCore
    private let status: ConnectionStatus
    /// Where this connection goes.
    public let address: SocketAddress

    private init(loop: EventLoop, core: ClientCore, status: ConnectionStatus, address: SocketAddress) {
        self.loop = loop
        self.core = core
        self.status = status
        self.address = address
    }

    deinit {
        let core = self.core
        loop.execute { core.close {} }
    }

    /// Connects to runqueued at `address` (numeric host). `connectTimeoutMs`
    /// > 0 bounds the TCP connect (`DEADLINE_EXCEEDED` after it).
    public static func connect(to address: SocketAddress, maxFrameBytes: Int = 64 << 20,
                               loop: EventLoop? = nil, connectTimeoutMs: UInt64 = 0) async throws(RunQueueError) -> RunQueueConnection {
        let loop = loop ?? sharedLoop
        let status = ConnectionStatus()
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<ClientCore, RunQueueError>, Never>) in
            loop.execute {
                let outcome = ConnectOutcome(continuation)
                var timer: LoopTimer?
                if connectTimeoutMs > 0 {
                    timer = loop.schedule(afterMs: connectTimeoutMs) {
                        outcome.resume(.failure(RunQueueError(.deadlineExceeded, "cannot connect to \(address) within \(connectTimeoutMs) ms")))
                    }
                }
                TCPConnection.connect(loop: loop, to: address) { result in
                    timer?.close()
                    switch result {
                    case .success(let tcp):
                        guard !outcome.resumed else {
                            tcp.close()  // connected after the caller gave up
                            return
                        }
                        outcome.resume(.success(ClientCore(tcp: tcp, maxFrameBytes: maxFrameBytes, status: status)))
                    case .failure(let error):
                        outcome.resume(.failure(RunQueueError(.unavailable, "cannot connect to \(address): \(error)")))
                    }
                }
            }
        }
        return RunQueueConnection(loop: loop, core: try result.get(), status: status, address: address)
    }

    /// Connects to `host:port`.
    public static func connect(_ hostPort: String, loop: EventLoop? = nil) async throws(RunQueueError) -> RunQueueConnection {
        guard let address = SocketAddress(parsing: hostPort) else {
            throw RunQueueError(.invalidArgument, "server address must be host:port with a numeric host, got \"\(hostPort)\"")
        }
        return try await connect(to: address, loop: loop)
    }

    /// False once the connection failed or was closed; it never comes back.
    public var isConnected: Bool { status.failure == nil }

    /// Why the connection is gone (nil while connected).
    public var failure: RunQueueError? { status.failure }

    /// Sends one unary call and returns its result; a non-OK status throws.
    /// `timeoutMs` > 0 bounds the wait: the call is then cancelled on the
    /// server and throws `DEADLINE_EXCEEDED`. Cancelling the calling task
    /// sends `Cancel` too; the call then ends with the server's answer
    /// (`CANCELLED`, or the result if it was already on its way).
    public func call(_ call: Call, timeoutMs: UInt64 = 0) async throws(RunQueueError) -> ResponseResult? {
        let response = await send(call, timeoutMs: timeoutMs)
        guard response.status.code == .ok else { throw RunQueueError(response.status.code, response.status.message) }
        return response.result
    }

    /// One answer of `pipeline`: the call's result (a non-OK status is a
    /// failure) and how long after the batch was handed to the loop it came.
    public struct PipelinedAnswer: Sendable {
        public let result: Result<ResponseResult?, RunQueueError>
        public let elapsed: Duration
    }

    /// Sends unary calls back to back in one write and waits for all their
    /// answers, which come back in the order of `calls`. One task wait for
    /// the whole batch instead of one per call: for acking every run of a
    /// Dequeue answer this saves the client most of its CPU per run.
    /// `timeoutMs` and cancellation apply to each call as in `call`.
    public func pipeline(_ calls: [Call], timeoutMs: UInt64 = 0) async -> [PipelinedAnswer] {
        guard !calls.isEmpty else { return [] }
        let core = self.core
        let loop = self.loop
        let tokens = calls.map { _ in CallToken() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[PipelinedAnswer], Never>) in
                loop.execute {
                    let batch = PipelineBatch(count: calls.count, continuation)
                    for (index, call) in calls.enumerated() {
                        core.start(call, timeoutMs: timeoutMs, token: tokens[index]) { batch.answer(index, $0) }
                    }
                }
            }
        } onCancel: {
            loop.execute { for token in tokens { core.cancel(token) } }
        }
    }

    /// `call`'s answer as a response. A failure with call id 0 means the call
    /// was never sent (the connection was already gone, or the task was cancelled).
    func send(_ call: Call, timeoutMs: UInt64) async -> Response {
        let core = self.core
        let loop = self.loop
        let token = CallToken()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
                loop.execute { core.start(call, timeoutMs: timeoutMs, token: token) { continuation.resume(returning: $0) } }
            }
        } onCancel: {
            loop.execute { core.cancel(token) }
        }
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

    /// Asks the server to cancel call `callID` of this connection; false when
    /// no such call was in progress.
    public func cancel(callID: UInt64) async throws(RunQueueError) -> Bool {
        guard case .cancel(let answer)? = try await call(.cancel(CancelRequest(targetCallID: callID))) else {
            throw RunQueueError(.internal, "Cancel answered with another method's result")
        }
        return answer.cancelled
    }

    /// Opens a streaming call. `onResponse` runs on the loop thread for every
    /// response with the call's id, the last one ending the stream
    /// (`end_of_stream`, a non-OK status, the connection failing, or
    /// `cancelStream(token)`). `timeoutMs` > 0 bounds the wait for the first response.
    func openStream(_ call: Call, token: CallToken, timeoutMs: UInt64 = 0,
                    _ onResponse: @escaping @Sendable (Response) -> Void) {
        let core = self.core
        loop.execute { core.start(call, streaming: true, timeoutMs: timeoutMs, token: token, onResponse) }
    }

    /// Withdraws the stream behind `token` and sends `Cancel` for it.
    func cancelStream(_ token: CallToken) {
        let core = self.core
        loop.execute { core.cancel(token) }
    }

    /// Pauses or resumes reading the socket (flow control for a stream's consumer).
    func setReadingPaused(_ paused: Bool) {
        let core = self.core
        loop.execute { core.setReadingPaused(paused) }
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        await close(flushing: false)
    }

    /// Closes the connection, sending what is queued first when `flushing`
    /// (a `Cancel` just written still reaches the server).
    func close(flushing: Bool) async {
        let core = self.core
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute { core.close(flushing: flushing) { continuation.resume() } }
        }
    }
}

/// Resumes a connect continuation once: with the connection or the timeout,
/// whichever comes first. Loop thread only.
private final class ConnectOutcome: @unchecked Sendable {
    private var continuation: CheckedContinuation<Result<ClientCore, RunQueueError>, Never>?

    init(_ continuation: CheckedContinuation<Result<ClientCore, RunQueueError>, Never>) {
        self.continuation = continuation
    }

    var resumed: Bool { continuation == nil }

    func resume(_ result: Result<ClientCore, RunQueueError>) {
        continuation?.resume(returning: result)
        continuation = nil
    }
}

/// The answers of one `pipeline` call, filled on the loop thread as they come.
private final class PipelineBatch {
    private var answers: [RunQueueConnection.PipelinedAnswer?]
    private var remaining: Int
    private let started = ContinuousClock.now
    private let continuation: CheckedContinuation<[RunQueueConnection.PipelinedAnswer], Never>

    init(count: Int, _ continuation: CheckedContinuation<[RunQueueConnection.PipelinedAnswer], Never>) {
        answers = Array(repeating: nil, count: count)
        remaining = count
        self.continuation = continuation
    }

    func answer(_ index: Int, _ response: Response) {
        let result: Result<ResponseResult?, RunQueueError> = response.status.code == .ok
            ? .success(response.result) : .failure(RunQueueError(response.status.code, response.status.message))
        answers[index] = RunQueueConnection.PipelinedAnswer(result: result, elapsed: ContinuousClock.now - started)
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: answers.compactMap { $0 }) }
    }
}
