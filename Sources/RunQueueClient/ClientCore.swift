// ClientCore: the loop-confined half of a RunQueueConnection.
//
// What: the table of calls in progress on one socket, keyed by call id. A
// unary call ends with its first response; a streaming call (SubscribeExpiry)
// gets every response with its id until one ends it: `end_of_stream`, a
// non-OK status, or the connection failing.
//
// Invariants:
// - Loop thread only (the `@unchecked Sendable` is for handing the object to
//   loop jobs; nothing touches it elsewhere).
// - Every handler is called, exactly once for a unary call and once with an
//   ending response for a stream, unless the caller withdrew it (`cancel`
//   of a stream). When the connection fails every handler still waiting gets
//   the failure (`UNAVAILABLE`, or the call-id-0 status the server sent just
//   before closing), with `end_of_stream` set.
// - Call ids are never reused on a connection, so a late answer to a call the
//   client gave up on (deadline, cancelled stream) finds no entry and is dropped.
// - A deadline or a task cancellation sends `Cancel` for the call, so a long
//   poll the client no longer waits for leases nothing on the server.
import RunQueueCore
import RunQueueWire
import UVLoop

final class ClientCore: @unchecked Sendable {
    private struct PendingCall {
        let streaming: Bool
        let handler: (Response) -> Void
        var timer: LoopTimer?
    }

    private let tcp: TCPConnection
    private let status: ConnectionStatus
    private var decoder: FrameDecoder
    private var calls: [UInt64: PendingCall] = [:]
    private var nextCallID: UInt64 = 1
    private var failure: RunQueueError?
    /// The last call-id-0 error the server sent; it explains a close that follows.
    private var connectionError: RunQueueError?
    private var closeWaiters: [() -> Void] = []
    private var readingPaused = false

    init(tcp: TCPConnection, maxFrameBytes: Int, status: ConnectionStatus) {
        self.tcp = tcp
        self.status = status
        decoder = FrameDecoder(maxFrameBytes: maxFrameBytes)
        // The socket's callbacks hold this core until the socket has closed
        // (TCPConnection drops them in its close callback), so a connection
        // object released without close() still fails its calls cleanly.
        tcp.onRead = { [self] bytes in didRead(bytes) }
        tcp.onReadEnd = { [self] error in
            fail(RunQueueError(.unavailable, error.map { "connection lost: \($0)" } ?? "the server closed the connection"))
            tcp.close()
        }
        tcp.onClose = { [self] in
            fail(RunQueueError(.unavailable, "connection closed"))
            let waiters = closeWaiters
            closeWaiters.removeAll()
            for waiter in waiters { waiter() }
        }
        tcp.startReading()
    }

    /// Sends `call`. `handler` gets the answer (unary) or every response of
    /// the stream until the ending one (`streaming`). `timeoutMs` > 0 bounds
    /// the wait for the (first) answer; on expiry the call is cancelled on the
    /// server and the handler gets `DEADLINE_EXCEEDED`. A `token` cancelled
    /// before this runs makes the call fail with `CANCELLED` unsent.
    func start(_ call: Call, streaming: Bool = false, timeoutMs: UInt64 = 0, token: CallToken? = nil,
               _ handler: @escaping (Response) -> Void) {
        if let token, token.cancelled {
            handler(Response.error(callID: 0, .cancelled, "the call was cancelled before it was sent", endOfStream: true))
            return
        }
        if let failure {
            handler(Response.error(callID: 0, failure.code, failure.message, endOfStream: true))
            return
        }
        let callID = nextCallID
        nextCallID += 1
        var pending = PendingCall(streaming: streaming, handler: handler, timer: nil)
        if timeoutMs > 0 {
            pending.timer = tcp.loop.schedule(afterMs: timeoutMs) { [unowned self] in
                guard let expired = calls.removeValue(forKey: callID) else { return }
                sendCancel(target: callID)
                expired.handler(Response.error(callID: callID, .deadlineExceeded,
                                               "no answer within \(timeoutMs) ms", endOfStream: true))
            }
        }
        calls[callID] = pending
        token?.callID = callID
        tcp.write(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: callID, call: call))))
    }

    /// How long a cancelled unary call waits for the server's answer before
    /// it ends as `CANCELLED` anyway (a server answers a Cancel at once; this
    /// only bounds a server that stopped answering), in milliseconds.
    static let cancelGraceMs: UInt64 = 2000

    /// The caller gave up on the call behind `token` (its task was cancelled
    /// or the stream's consumer stopped). The server is asked to cancel it.
    /// A unary call keeps waiting for the server's answer (`CANCELLED`, or the
    /// result if it was already on its way: a dequeue that already leased
    /// runs still hands them over), for `cancelGraceMs` at most. A stream's
    /// handler is withdrawn at once and gets one last `CANCELLED` response from here.
    func cancel(_ token: CallToken) {
        token.cancelled = true
        let callID = token.callID
        guard callID != 0, let pending = calls[callID] else { return }
        sendCancel(target: callID)
        pending.timer?.close()
        if pending.streaming {
            calls.removeValue(forKey: callID)
            pending.handler(Response.error(callID: callID, .cancelled, "the stream was cancelled by the client", endOfStream: true))
            return
        }
        calls[callID]?.timer = tcp.loop.schedule(afterMs: Self.cancelGraceMs) { [unowned self] in
            guard let unanswered = calls.removeValue(forKey: callID) else { return }
            unanswered.handler(Response.error(callID: callID, .cancelled,
                                              "cancelled by the client; the server did not confirm within \(Self.cancelGraceMs) ms",
                                              endOfStream: true))
        }
    }

    /// Stops (or resumes) reading the socket: a consumer that falls behind a
    /// stream pushes back on the server instead of growing a buffer here.
    func setReadingPaused(_ paused: Bool) {
        guard paused != readingPaused else { return }
        readingPaused = paused
        guard failure == nil else { return }
        if paused { tcp.stopReading() } else { tcp.startReading() }
    }

    private func sendCancel(target: UInt64) {
        guard failure == nil else { return }
        let callID = nextCallID
        nextCallID += 1
        // The answer (`cancelled` true or false) concerns nobody: the target's
        // own answer is what its caller waits for.
        calls[callID] = PendingCall(streaming: false, handler: { _ in }, timer: nil)
        tcp.write(FrameEncoder.frame(WireCodec.encodeRequest(
            Request(callID: callID, call: .cancel(CancelRequest(targetCallID: target))))))
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
        guard let pending = calls[response.callID] else { return }
        let ends = !pending.streaming || response.endOfStream || response.status.code != .ok
        if ends {
            calls.removeValue(forKey: response.callID)
            pending.timer?.close()
        } else if let timer = pending.timer {
            // A stream's deadline bounds its first answer only.
            timer.close()
            calls[response.callID]?.timer = nil
        }
        pending.handler(response)
    }

    private func fail(_ error: RunQueueError) {
        let reason = failure ?? connectionError ?? error
        if failure == nil { status.markFailed(reason) }
        failure = reason
        let pending = calls
        calls.removeAll()
        for (callID, call) in pending.sorted(by: { $0.key < $1.key }) {
            call.timer?.close()
            call.handler(Response.error(callID: callID, reason.code, reason.message, endOfStream: true))
        }
    }

    /// Closes the socket (after sending what is queued when `flushing`);
    /// calls in flight fail with `UNAVAILABLE`. `done` runs once it is closed.
    func close(flushing: Bool = false, _ done: @escaping () -> Void) {
        if tcp.isClosing {
            done()
            return
        }
        closeWaiters.append(done)
        status.markFailed(RunQueueError(.unavailable, "the connection was closed by the client"))
        if flushing { tcp.closeAfterFlush() } else { tcp.close() }
    }
}
