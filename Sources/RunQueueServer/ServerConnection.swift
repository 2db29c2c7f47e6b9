// ServerConnection: one client connection's protocol state machine.
//
// Bytes -> FrameDecoder -> Request -> handler; responses are framed and
// written in completion order (pipelining: responses may overtake each other).
//
// Invariants:
// - A framing violation (length 0 or over the limit) answers
//   RESOURCE_EXHAUSTED with call id 0 and closes after flushing; the body is
//   never buffered.
// - A body that is not a Request answers INVALID_ARGUMENT (call id 0) and the
//   connection stays usable. call_id 0 or a call_id already in progress is a
//   client bug: INVALID_ARGUMENT (call id 0), then close.
// - Memory per connection is bounded: the server stops reading while
//   `maxCallsPerConnection` calls are in progress or more than
//   `maxQueuedResponseBytes` of responses wait for the peer to read them, so
//   a client that stops reading stops being served rather than growing the
//   server (bound: the queued-bytes cap plus one response per call in progress).
import Logging
import RunQueueCore
import RunQueueWire
import UVLoop

final class ServerConnection {
    let id: UInt64
    private let tcp: TCPConnection
    private var decoder: FrameDecoder
    private unowned let server: ServerCore
    private var calls: [UInt64: CallContext] = [:]
    private(set) var lastActivityMs: UInt64
    private(set) var isClosed = false
    private var closing = false
    private var draining = false
    let logger: Logger

    init(id: UInt64, tcp: TCPConnection, server: ServerCore) {
        self.id = id
        self.tcp = tcp
        self.server = server
        decoder = FrameDecoder(maxFrameBytes: server.config.maxFrameBytes)
        lastActivityMs = tcp.loop.nowMs
        var logger = server.logger
        logger[metadataKey: "conn.id"] = "\(id)"
        self.logger = logger
        tcp.onRead = { [unowned self] bytes in didRead(bytes) }
        tcp.onReadEnd = { [unowned self] error in
            if let error, !error.isConnectionLost {
                self.logger.debug("connection read failed", metadata: ["error": "\(error)"])
            }
            // The peer finished sending: calls that are only waiting (long
            // polls) end now and take nothing; the others are answered; then close.
            beginDrain(cancellingWaits: true)
        }
        tcp.onDrained = { [unowned self] in
            updateReading()
            let waiters = drainWaiters
            drainWaiters.removeAll()
            for waiter in waiters { waiter() }
        }
        tcp.onClose = { [unowned self] in didClose() }
        tcp.startReading()
    }

    var callsInProgress: Int { calls.count }

    /// Callbacks waiting for every queued response byte to reach the socket.
    private var drainWaiters: [() -> Void] = []

    /// Response bytes written but not yet taken by the peer (stream flow control).
    var queuedResponseBytes: Int { tcp.queuedBytes }

    /// Runs `callback` once the queued responses have all been written
    /// (dropped if the connection closes first). Use while bytes are queued.
    func whenDrained(_ callback: @escaping () -> Void) {
        guard !isClosed else { return }
        drainWaiters.append(callback)
    }
    var isIdle: Bool { calls.isEmpty && tcp.queuedBytes == 0 }

    private func didRead(_ bytes: UnsafeRawBufferPointer) {
        guard !closing else { return }
        lastActivityMs = tcp.loop.nowMs
        tcp.cork()
        defer {
            tcp.uncork()
            updateReading()
        }
        do {
            try decoder.feed(bytes) { body in handleFrame(body) }
        } catch let error as FrameError {
            logger.debug("framing violation; closing", metadata: ["error": "\(error)"])
            write(Response.error(callID: 0, .resourceExhausted, error.description))
            closeAfterFlush()
        } catch {
            preconditionFailure("frame handler threw \(error)")
        }
    }

    private func handleFrame(_ body: UnsafeRawBufferPointer) {
        guard !closing else { return }
        let request: Request
        do {
            request = try WireCodec.decodeRequest(body)
        } catch {
            write(Response.error(callID: error.callID, .invalidArgument, "\(error.message); the frame was skipped"))
            return
        }
        guard request.callID != 0 else {
            write(Response.error(callID: 0, .invalidArgument, "call_id must be non-zero; closing the connection"))
            closeAfterFlush()
            return
        }
        guard calls[request.callID] == nil else {
            write(Response.error(callID: 0, .invalidArgument,
                                 "call_id \(request.callID) is already in progress on this connection; closing the connection"))
            closeAfterFlush()
            return
        }
        guard let call = request.call else {
            write(Response.error(callID: request.callID, .unimplemented, "the request's call is unset or names a method this server does not know"))
            return
        }
        let context = CallContext(callID: request.callID, method: call.methodName, connection: self)
        calls[request.callID] = context
        server.dispatch(call, context: context, connection: self)
    }

    /// Cancels a call in progress on this connection; false if there is none.
    func cancel(callID: UInt64) -> Bool {
        guard let context = calls[callID] else { return false }
        context.cancel()
        return true
    }

    func finish(_ context: CallContext, with response: Response) {
        guard calls.removeValue(forKey: context.callID) != nil else { return }
        write(response)
        if draining && calls.isEmpty { closeAfterFlush() }
        updateReading()
    }

    func write(_ response: Response) {
        guard !isClosed else { return }
        var body = WireCodec.encodeResponse(response)
        if body.count > server.config.maxFrameBytes {
            // A handler built a response over the limit: never send it.
            server.logger.error("response over max frame bytes; replaced by an error",
                                metadata: ["call.id": "\(response.callID)", "bytes": "\(body.count)"])
            body = WireCodec.encodeResponse(Response.error(callID: response.callID, .internal,
                                                           "the response exceeded max_frame_bytes"))
        }
        var frame: [UInt8] = []
        frame.reserveCapacity(body.count + 4)
        FrameEncoder.append(body: body, to: &frame)
        tcp.write(frame)
        lastActivityMs = tcp.loop.nowMs
    }

    private func updateReading() {
        guard !closing, !draining else { return }
        let overloaded = calls.count >= server.config.maxCallsPerConnection
            || tcp.queuedBytes >= server.config.maxQueuedResponseBytes
        if overloaded { tcp.stopReading() } else { tcp.startReading() }
    }

    /// Stops reading, answers the calls in progress, then closes (graceful
    /// shutdown, or the peer closed its side). With `cancellingWaits`, calls
    /// that can be cancelled (long polls) are cancelled first.
    func beginDrain(cancellingWaits: Bool = false) {
        guard !closing else { return }
        draining = true
        tcp.stopReading()
        if cancellingWaits {
            for context in Array(calls.values) where context.onCancel != nil { context.cancel() }
        }
        if calls.isEmpty { closeAfterFlush() }
    }

    private func closeAfterFlush() {
        guard !closing else { return }
        closing = true
        tcp.stopReading()
        cancelAll()
        tcp.closeAfterFlush()
    }

    /// Closes at once (idle timeout, shutdown grace expired).
    func close() {
        closing = true
        cancelAll()
        tcp.close()
    }

    private func cancelAll() {
        // Calls still running when the connection goes: their handlers release
        // what they hold; the answers are dropped.
        let pending = Array(calls.values)
        for context in pending { context.cancel() }
        calls.removeAll()
    }

    private func didClose() {
        isClosed = true
        drainWaiters.removeAll()
        cancelAll()
        server.connectionClosed(self)
    }
}
