// HiredisSession: one hiredis async context (one TCP connection attempt) on
// the event loop. All of the driver's hiredis calls are in this file and in
// RedisValue+C.swift.
//
// Lifetime (hiredis 0.14.1 frees the context itself, in exactly these cases):
// - connect failed: the connect callback gets REDIS_ERR, then hiredis fails
//   the queued commands with NULL replies and frees the context (no
//   disconnect callback);
// - the connection was up: the disconnect callback is the last call, after
//   the NULL replies, whether the socket failed or we called redisAsyncFree;
// - we call redisAsyncFree before the connect finished: hiredis frees it
//   synchronously, with NULL replies and no callback at all.
// `ac->data` holds a retain of the session (passRetained) that is released at
// exactly those points, so hiredis never calls into a freed object, and the
// release also nils `ac->data` so the NULL-reply callbacks that follow a
// failed connect do not touch the released session.
//
// Re-entrancy: user code runs inside these callbacks (via the owner). hiredis
// defers redisAsyncFree called inside a reply callback until the callback
// returns (REDIS_IN_CALLBACK), but not inside the connect callback, so the
// successful connect callback runs no user code at all: the connection is
// reported up only when the handshake PING replies.
//
// Pub/sub (RedisSubscriber): hiredis keeps a SUBSCRIBE's callback per channel
// and calls it for every confirmation and message, then once more per channel
// with a NULL reply when the context is torn down (before the disconnect
// callback). A retained privdata cannot be released at a single "last" call
// there, so `subscribe` passes no privdata at all: its callback finds the
// session through `ac->data`, whose retain covers every call hiredis can make.
internal import CHiredis
internal import CRedisUV
import UVLoop

/// What a session reports to: a RedisConnection or a RedisSubscriber (loop thread).
protocol HiredisSessionOwner: AnyObject {
    /// The context is gone (failed connect, lost socket); see `free()`.
    func sessionEnded(_ session: HiredisSession, _ error: RedisError)
    /// A reply on the pub/sub path of `subscribe`: a subscribe confirmation or
    /// a message (`["message", channel, payload]`), copied out of hiredis.
    func sessionReceivedPubSub(_ session: HiredisSession, _ reply: Result<RedisValue, RedisError>)
}

extension HiredisSessionOwner {
    func sessionReceivedPubSub(_ session: HiredisSession, _ reply: Result<RedisValue, RedisError>) {}
}

extension RedisConnection: HiredisSessionOwner {}

final class HiredisSession {
    /// The connection or subscriber this session reports to. `free()` detaches it, after
    /// which callbacks only complete commands.
    weak var owner: (any HiredisSessionOwner)?
    /// nil once hiredis freed the context (or it was handed back to hiredis).
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var freeRequested = false

    private init(context: UnsafeMutablePointer<redisAsyncContext>) {
        self.context = context
    }

    /// Starts a non-blocking connect to `host` (an IP literal: hiredis would
    /// resolve a name with a blocking getaddrinfo) and attaches it to `loop`.
    static func open(host: String, port: UInt16, loop: EventLoop, owner: any HiredisSessionOwner) -> Result<HiredisSession, RedisError> {
        // NULL only when out of memory. Otherwise ac->err is set when connect(2)
        // failed at once (ECONNREFUSED on loopback is often immediate).
        guard let ac = redisAsyncConnect(host, Int32(port)) else {
            return .failure(RedisError(.connectFailed, "redisAsyncConnect: out of memory"))
        }
        if ac.pointee.err != 0 {
            let message = errorText(UnsafePointer(ac))
            redisAsyncFree(ac)  // not attached, not connected: freed at once, no callbacks
            return .failure(RedisError(.connectFailed, message))
        }
        // REDIS_ERR: out of memory or uv_poll_init failed; nothing was attached.
        guard redis_uv_attach(ac, loop.rawLoop) == REDIS_OK else {
            redisAsyncFree(ac)
            return .failure(RedisError(.connectFailed, "could not watch the Redis socket on the loop"))
        }
        let session = HiredisSession(context: ac)
        session.owner = owner
        ac.pointee.data = Unmanaged.passRetained(session).toOpaque()
        // Both setters return REDIS_ERR only when a callback is already set.
        // The connect callback must come after attaching: setting it arms the
        // first write event, which is how hiredis notices the connect finished.
        _ = redisAsyncSetConnectCallback(ac) { ac, status in HiredisSession.didConnect(ac, status) }
        _ = redisAsyncSetDisconnectCallback(ac) { ac, status in HiredisSession.didDisconnect(ac, status) }
        return .success(session)
    }

    /// Queues `args` (binary safe; hiredis copies them). On true, `command` is
    /// completed exactly once from the reply callback (or earlier by its owner);
    /// on false hiredis refused the command (context being torn down) and it was not sent.
    func send(_ args: [[UInt8]], _ command: PendingCommand) -> Bool {
        let privdata = Unmanaged.passRetained(command).toOpaque()
        // On false the callback will never run, so take the retain back.
        guard submit(args, privdata: privdata, { ac, reply, privdata in HiredisSession.didReply(ac, reply, privdata) }) else {
            Unmanaged<PendingCommand>.fromOpaque(privdata).release()
            return false
        }
        return true
    }

    /// Sends `SUBSCRIBE channels...` on the pub/sub path: every confirmation
    /// and message goes to `owner.sessionReceivedPubSub`, for as long as the
    /// context lives (see the pub/sub note at the top). Re-subscribing a
    /// channel already subscribed is allowed (Redis just confirms it again).
    /// False when hiredis refused it (context being torn down); nothing was sent.
    func subscribe(_ channels: [[UInt8]]) -> Bool {
        guard !channels.isEmpty else { return false }
        return submit([Array("SUBSCRIBE".utf8)] + channels, privdata: nil) { ac, reply, privdata in
            HiredisSession.didPubSub(ac, reply, privdata)
        }
    }

    private typealias ReplyCallback = @convention(c) (
        UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

    /// redisAsyncCommandArgv with binary-safe arguments; false when hiredis
    /// refused the command (then `callback` never runs for it).
    private func submit(_ args: [[UInt8]], privdata: UnsafeMutableRawPointer?, _ callback: ReplyCallback) -> Bool {
        guard let ac = context, !freeRequested, !args.isEmpty else { return false }
        let argc = args.count
        var total = 0
        for arg in args { total += arg.count }
        return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: argc) { argv in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: argc) { lengths in
                // One contiguous copy keeps every argument's pointer valid for the call;
                // at least 1 byte so empty arguments still get a valid pointer.
                withUnsafeTemporaryAllocation(byteCount: max(total, 1), alignment: 1) { bytes in
                    let base = bytes.baseAddress!
                    var offset = 0
                    for (index, arg) in args.enumerated() {
                        arg.withUnsafeBytes { source in
                            if let start = source.baseAddress {
                                (base + offset).copyMemory(from: start, byteCount: source.count)
                            }
                        }
                        argv[index] = UnsafePointer((base + offset).assumingMemoryBound(to: CChar.self))
                        lengths[index] = arg.count
                        offset += arg.count
                    }
                    // REDIS_ERR: the context is disconnecting/freeing, or out of memory.
                    let rc = redisAsyncCommandArgv(ac, callback, privdata, Int32(argc), argv.baseAddress, lengths.baseAddress)
                    return rc == REDIS_OK
                }
            }
        }
    }

    /// Tears the context down and detaches the owner. hiredis fails the queued
    /// commands with NULL replies and closes the socket: at once, or, inside a
    /// reply callback, right after it returns. Idempotent.
    func free() {
        owner = nil
        guard let ac = context, !freeRequested else { return }
        freeRequested = true
        let connected = ac.pointee.c.flags & REDIS_CONNECTED != 0
        redisAsyncFree(ac)
        if !connected {
            // Never connected: no disconnect callback will come, and hiredis
            // freed the context synchronously (a not-yet-connected context can
            // only be inside a callback after its connect failed, when
            // `context` is already nil).
            context = nil
            Unmanaged.passUnretained(self).release()
        }
    }

    // MARK: hiredis callbacks (C function pointers: no captures; context via data / privdata)

    private static func session(of ac: UnsafePointer<redisAsyncContext>?) -> HiredisSession? {
        guard let data = ac?.pointee.data else { return nil }
        return Unmanaged<HiredisSession>.fromOpaque(data).takeUnretainedValue()
    }

    private static func didConnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
        guard let ac, let session = session(of: ac) else { return }
        // Connected at the TCP level: nothing to do; the handshake reply reports it.
        guard status != REDIS_OK else { return }
        // Failed: hiredis fails the queued commands and frees ac after we return.
        let error = RedisError(.connectFailed, errorText(ac))
        session.released(ac)
        session.owner?.sessionEnded(session, error)
        Unmanaged.passUnretained(session).release()
    }

    private static func didDisconnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
        guard let ac, let session = session(of: ac) else { return }
        // Last call for this context; hiredis frees it after we return.
        let error = RedisError(.disconnected, status == REDIS_OK ? "connection closed" : errorText(ac))
        session.released(ac)
        session.owner?.sessionEnded(session, error)
        Unmanaged.passUnretained(session).release()
    }

    private static func didReply(_ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
                                 _ privdata: UnsafeMutableRawPointer?) {
        guard let privdata else { return }
        let command = Unmanaged<PendingCommand>.fromOpaque(privdata).takeRetainedValue()
        if let reply {
            command.complete(RedisValue.result(copying: reply.assumingMemoryBound(to: redisReply.self)))
            return
        }
        // NULL reply: hiredis is tearing the context down (socket error, EOF,
        // or our own free). Report it before completing this command, so any
        // command sent from the completion already sees the connection down.
        let message = ac.map { $0.pointee.c.err != 0 ? errorText(UnsafePointer($0)) : "connection closed" } ?? "connection closed"
        let error = RedisError(.disconnected, message)
        if let session = session(of: ac.map { UnsafePointer($0) }) {
            session.owner?.sessionEnded(session, error)
        }
        command.complete(.failure(error))
    }

    /// The callback of `subscribe`, for every confirmation and message of every
    /// subscribed channel (privdata is always nil). A NULL reply means the
    /// context is being torn down: it comes once per channel, before the
    /// disconnect callback, or after a failed connect (then `ac->data` is nil).
    private static func didPubSub(_ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
                                  _ privdata: UnsafeMutableRawPointer?) {
        guard let ac, let session = session(of: UnsafePointer(ac)) else { return }
        guard let reply else {
            let message = ac.pointee.c.err != 0 ? errorText(UnsafePointer(ac)) : "connection closed"
            session.owner?.sessionEnded(session, RedisError(.disconnected, message))
            return
        }
        session.owner?.sessionReceivedPubSub(session, RedisValue.result(copying: reply.assumingMemoryBound(to: redisReply.self)))
    }

    /// hiredis is about to free `ac`: forget it, and clear `ac->data` so the
    /// NULL-reply callbacks that follow a failed connect find no session.
    private func released(_ ac: UnsafePointer<redisAsyncContext>) {
        UnsafeMutablePointer(mutating: ac).pointee.data = nil
        context = nil
    }

    /// hiredis' error text for the context (its inline `char errstr[128]`).
    private static func errorText(_ ac: UnsafePointer<redisAsyncContext>) -> String {
        let text = withUnsafeBytes(of: ac.pointee.c.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "unknown hiredis error \(ac.pointee.c.err)" : text
    }
}
