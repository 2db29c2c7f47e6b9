import RunQueueCore
import RunQueueEngine

/// One call in progress on one connection, handed to the method handler
/// (the engine's view of it is `EngineCall`, Sources/RunQueueEngine/EngineCall.swift).
///
/// A unary call ends with exactly one `reply` or `fail`; a stream sends any
/// number of `send` items and ends with `finish`. Everything after the end,
/// or after the connection went away, is dropped, and `isCancelled` tells the
/// handler to stop (and to release anything it took for this call). Loop
/// thread only.
public final class CallContext: EngineCall {
    public let callID: UInt64
    public let method: String
    weak var connection: ServerConnection?
    public private(set) var isFinished = false
    /// Set by a handler whose call can be cancelled (a long poll, a stream):
    /// it must end the call (answer `CANCELLED`) and release what it holds.
    public var onCancel: (() -> Void)?

    init(callID: UInt64, method: String, connection: ServerConnection) {
        self.callID = callID
        self.method = method
        self.connection = connection
    }

    /// True once the call ended or its connection is gone.
    public var isCancelled: Bool { isFinished || connection == nil || connection?.isClosed == true }

    public func reply(_ result: ResponseResult) {
        end(Response(callID: callID, status: .ok, endOfStream: false, result: result))
    }

    public func fail(_ code: StatusCode, _ message: String) {
        end(Response.error(callID: callID, code, message))
    }

    /// A stream item; the call stays open.
    public func send(_ result: ResponseResult) {
        guard !isFinished else { return }
        connection?.write(Response(callID: callID, status: .ok, endOfStream: false, result: result))
    }

    /// Response bytes queued on this call's connection, not yet taken by
    /// the peer (a stream stops sending above its threshold).
    public var queuedBytes: Int { connection?.queuedResponseBytes ?? 0 }

    /// Runs `callback` once the connection's queued responses are written
    /// (never, if the connection closes first; the call is then cancelled).
    public func whenDrained(_ callback: @escaping () -> Void) {
        connection?.whenDrained(callback)
    }

    /// Ends a stream with `end_of_stream = true` and `status`.
    public func finish(_ status: Status) {
        end(Response(callID: callID, status: status, endOfStream: true, result: nil))
    }

    /// Cancels the call on behalf of a `Cancel` or a closing connection.
    func cancel() {
        guard !isFinished else { return }
        if let onCancel {
            self.onCancel = nil
            onCancel()
        }
        if !isFinished { fail(.cancelled, "call \(callID) (\(method)) was cancelled") }
    }

    private func end(_ response: Response) {
        guard !isFinished else { return }
        isFinished = true
        onCancel = nil
        connection?.finish(self, with: response)
    }
}
