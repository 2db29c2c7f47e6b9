// MethodRouter: maps each protocol method to its handler. Hello, Ping and
// Cancel are the transport's; every other method goes to the engine
// (Sources/RunQueueEngine/Engine.swift), or answers UNAVAILABLE on a
// protocol-only server (SubscribeExpiry: UNIMPLEMENTED, there is no log).
import RunQueueCore
import RunQueueEngine
import UVLoop

final class MethodRouter {
    static let serverVersion = "runqueued 0.1.0"
    private let config: ServerConfig
    /// Nil until the stores are wired (in-process tests without Redis).
    var engine: Engine?

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
        case .subscribeExpiry where engine == nil:
            // Protocol-only server (no stores): there is no expiry log to stream.
            context.fail(.unimplemented, "\(call.methodName) is not implemented by this server: it runs without PostgreSQL")
        default:
            guard let engine else {
                context.fail(.unavailable, "\(context.method) needs the queue engine, which is not running on this server")
                return
            }
            engine.handle(call, context)
        }
    }

    /// Shutdown began: waiting calls answer now (long polls with nothing).
    func drain() {
        engine?.drain()
    }
}
