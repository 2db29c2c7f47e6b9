// MethodRouter: maps each protocol method to its handler. Methods whose
// engine arrives in later issues answer UNIMPLEMENTED naming the method.
import RunQueueCore
import UVLoop

final class MethodRouter {
    static let serverVersion = "runqueued 0.1.0"
    private let config: ServerConfig
    /// Nil until the stores are wired (in-process tests without Redis).
    var engine: QueueEngine?
    /// SubscribeExpiry streams; nil until the stores are wired.
    var expiryStreams: ExpiryStreams?

    init(config: ServerConfig) {
        self.config = config
    }

    func route(_ call: Call, context: CallContext, connection: ServerConnection) {
        switch call {
        case .hello:
            context.reply(.hello(HelloResponse(serverVersion: Self.serverVersion,
                                               maxFrameBytes: UInt32(config.maxFrameBytes),
                                               shardCount: UInt32(config.shardCount))))
        case .ping(let request):
            guard request.payload.count + 16 <= config.maxFrameBytes else {
                context.fail(.invalidArgument, "payload of \(request.payload.count) bytes cannot be echoed within max_frame_bytes")
                return
            }
            context.reply(.ping(PingResponse(payload: request.payload)))
        case .cancel(let request):
            let cancelled = request.targetCallID != context.callID && connection.cancel(callID: request.targetCallID)
            context.reply(.cancel(CancelResponse(cancelled: cancelled)))
        case .enqueue(let request): withEngine(context) { $0.enqueue(request, context) }
        case .enqueueBatch(let request): withEngine(context) { $0.enqueueBatch(request, context) }
        case .dequeue(let request): withEngine(context) { $0.dequeue(request, context) }
        case .ack(let request): withEngine(context) { $0.ack(request, context) }
        case .nack(let request): withEngine(context) { $0.nack(request, context) }
        case .heartbeat(let request): withEngine(context) { $0.heartbeat(request, context) }
        case .readMessage(let request): withEngine(context) { $0.readMessage(request, context) }
        case .queueStats(let request): withEngine(context) { $0.queueStats(request, context) }
        case .setConcurrencyLimit(let request): withEngine(context) { $0.setConcurrencyLimit(request, context) }
        case .redrive(let request): withEngine(context) { $0.redrive(request, context) }
        case .getRun(let request): withEngine(context) { $0.getRun(request, context) }
        case .subscribeExpiry(let request):
            guard let expiryStreams else {
                // Protocol-only server (no stores): there is no expiry log to stream.
                context.fail(.unimplemented, "\(call.methodName) is not implemented by this server: it runs without PostgreSQL")
                return
            }
            expiryStreams.subscribe(request, context)
        }
    }

    private func withEngine(_ context: CallContext, _ body: (QueueEngine) -> Void) {
        guard let engine else {
            context.fail(.unavailable, "\(context.method) needs the queue engine, which is not running on this server")
            return
        }
        body(engine)
    }

    /// Shutdown began: waiting calls answer now (long polls with nothing).
    func drain() {
        engine?.dequeue.drain()
        expiryStreams?.drain()
    }

    /// Releases what the handlers hold (timers, waiting calls).
    func close() {
        expiryStreams?.close()
        engine?.dequeue.close()
        engine?.applier.close()
    }
}
