import RunQueueCore

/// One call in progress, as the engine sees it: the engine answers through
/// it and learns through it that the caller went away. The server's
/// connections provide it (Sources/RunQueueServer/CallContext.swift); a
/// program that drives the engine without sockets provides its own.
///
/// A unary call ends with exactly one `reply` or `fail`; a stream sends any
/// number of `send` items and ends with `finish`. Everything after the end
/// is dropped. Loop thread only.
public protocol EngineCall: AnyObject {
    var callID: UInt64 { get }
    /// The protocol's method name, for messages and logs.
    var method: String { get }
    /// True once the call ended or its caller is gone: the handler stops and
    /// releases what it took for this call.
    var isCancelled: Bool { get }
    /// Set by a handler whose call can be cancelled (a long poll, a stream):
    /// it must end the call (answer `CANCELLED`) and release what it holds.
    var onCancel: (() -> Void)? { get set }
    /// Answer bytes queued for the caller, not yet taken (a stream pauses above its threshold).
    var queuedBytes: Int { get }
    func reply(_ result: ResponseResult)
    func fail(_ code: StatusCode, _ message: String)
    /// A stream item; the call stays open.
    func send(_ result: ResponseResult)
    /// Ends a stream with `end_of_stream = true` and `status`.
    func finish(_ status: Status)
    /// Runs `callback` once the queued answers are all written (never, if the
    /// caller goes away first; the call is then cancelled).
    func whenDrained(_ callback: @escaping () -> Void)
}
