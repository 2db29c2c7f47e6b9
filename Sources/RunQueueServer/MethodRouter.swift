// MethodRouter: maps each protocol method to its handler. Methods whose
// engine arrives in later issues answer UNIMPLEMENTED naming the method.
import RunQueueCore
import UVLoop

final class MethodRouter {
    static let serverVersion = "runqueued 0.1.0"
    private let config: ServerConfig

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
        default:
            context.fail(.unimplemented, "\(call.methodName) is not implemented by this server yet")
        }
    }

    /// Releases what the handlers hold (store connections, timers).
    func close() {}
}
