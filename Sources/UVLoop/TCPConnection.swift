// TCPConnection: one TCP stream on the loop.
//
// Reads land in the loop's shared read buffer and are handed to `onRead`
// synchronously (the receiver copies what it keeps). Writes are copied and
// coalesced: while one uv_write is in flight, later writes accumulate in
// `pending` and go out together when it completes, so a burst of pipelined
// responses costs one syscall, not one each. `queuedBytes` lets the owner
// apply backpressure (stop reading while the peer does not drain).
internal import CLibUV

public final class TCPConnection: OwnedHandle {
    var handle: UnsafeMutablePointer<uv_tcp_t> { raw.assumingMemoryBound(to: uv_tcp_t.self) }

    public var onRead: ((UnsafeRawBufferPointer) -> Void)?
    /// The peer closed its side (nil) or the stream failed; the connection is
    /// not closed automatically.
    public var onReadEnd: ((UVError?) -> Void)?
    /// Called once all queued bytes were handed to the kernel.
    public var onDrained: (() -> Void)?
    public var onClose: (() -> Void)?

    private var pending: [UInt8] = []
    private var inFlightBytes = 0
    private var reading = false
    private var shutdownRequested = false
    private var corked = 0

    /// Bytes accepted by `write` but not yet written to the socket.
    public var queuedBytes: Int { pending.count + inFlightBytes }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutablePointer(OpaquePointer(handle)) }

    init(loop: EventLoop) {
        super.init(loop: loop, size: MemoryLayout<uv_tcp_t>.size)
    }

    func initialize() -> Bool {
        guard uv_tcp_init(loop.loop, handle) == 0 else { discard(); return false }
        adopt()
        return true
    }

    func configure() {
        uv_tcp_nodelay(handle, 1)  // best effort: latency of small frames matters
    }

    /// Connects to `address`; `completion` gets the connection or the error.
    public static func connect(loop: EventLoop, to address: SocketAddress,
                               _ completion: @escaping (Result<TCPConnection, UVError>) -> Void) {
        let connection = TCPConnection(loop: loop)
        guard connection.initialize() else {
            completion(.failure(UVError(code: UV_ENOMEM.rawValue, operation: "uv_tcp_init")))
            return
        }
        final class Pending {
            let connection: TCPConnection
            let completion: (Result<TCPConnection, UVError>) -> Void
            init(_ c: TCPConnection, _ f: @escaping (Result<TCPConnection, UVError>) -> Void) { connection = c; completion = f }
        }
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(Pending(connection, completion)).toOpaque()
        let rc: Int32
        do {
            rc = try address.withSockaddr { addr in
                uv_tcp_connect(request, connection.handle, addr) { req, status in
                    guard let req else { return }
                    let pending = Unmanaged<Pending>.fromOpaque(req.pointee.data).takeRetainedValue()
                    req.deallocate()
                    if status < 0 {
                        pending.connection.close()
                        pending.completion(.failure(UVError(code: status, operation: "connect")))
                    } else {
                        pending.connection.configure()
                        pending.completion(.success(pending.connection))
                    }
                }
            }
        } catch {
            rc = (error as? UVError)?.code ?? UV_EINVAL.rawValue
        }
        if rc < 0 {
            Unmanaged<Pending>.fromOpaque(request.pointee.data).release()
            request.deallocate()
            connection.close()
            completion(.failure(UVError(code: rc, operation: "connect \(address)")))
        }
    }

    public func startReading() {
        guard !reading, !isClosing else { return }
        reading = true
        let rc = uv_read_start(stream, { handle, _, buf in
            guard let data = handle?.pointee.data, let buf else { return }
            let loop = Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().loop
            buf.pointee = uv_buf_init(loop.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(EventLoop.readBufferSize))
        }, { stream, nread, _ in
            guard let data = stream?.pointee.data else { return }
            let me = Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue()
            me.didRead(nread)
        })
        if rc < 0 { reading = false; onReadEnd?(UVError(code: rc, operation: "uv_read_start")) }
    }

    public func stopReading() {
        guard reading, !isClosing else { return }
        reading = false
        uv_read_stop(stream)
    }

    public var isReading: Bool { reading }

    private func didRead(_ nread: Int) {
        if nread > 0 {
            onRead?(UnsafeRawBufferPointer(start: loop.readBuffer, count: nread))
        } else if nread < 0 {
            reading = false
            uv_read_stop(stream)
            onReadEnd?(nread == Int(UV_EOF.rawValue) ? nil : UVError(code: Int32(nread), operation: "read"))
        }
        // nread == 0: EAGAIN, nothing to do.
    }

    /// Holds writes back until the matching `uncork`, then sends them together.
    public func cork() { corked += 1 }

    public func uncork() {
        corked -= 1
        if corked == 0 { flush() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosing, !shutdownRequested else { return }
        pending.append(contentsOf: bytes)
        flush()
    }

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    private func flush() {
        guard corked == 0, inFlightBytes == 0, !pending.isEmpty, !isClosing else { return }
        let count = pending.count
        let base = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 1)
        pending.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: count) }
        pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
        inFlightBytes = count
        let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        request.pointee.data = base
        var buf = uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(count))
        let rc = uv_write(request, stream, &buf, 1) { req, status in
            guard let req else { return }
            req.pointee.data.deallocate()
            let data = req.pointee.handle.pointee.data
            req.deallocate()
            guard let data else { return }
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().didWrite(status: status)
        }
        if rc < 0 {
            base.deallocate()
            request.deallocate()
            inFlightBytes = 0
            pending.removeAll()
            onReadEnd?(UVError(code: rc, operation: "write"))
        }
    }

    private func didWrite(status: Int32) {
        inFlightBytes = 0
        if status < 0 {
            // ECANCELED (closing) or a socket error: drop what is queued; the
            // read side reports the failure to the owner.
            pending.removeAll()
            return
        }
        flush()
        if queuedBytes == 0 {
            if shutdownRequested { finishShutdown() }
            onDrained?()
        }
    }

    /// Sends what is queued, then closes. Writes after this are dropped.
    public func closeAfterFlush() {
        guard !isClosing, !shutdownRequested else { return }
        shutdownRequested = true
        if queuedBytes == 0 { finishShutdown() }
    }

    private func finishShutdown() {
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        let rc = uv_shutdown(request, stream) { req, _ in
            guard let req else { return }
            let data = req.pointee.handle.pointee.data
            req.deallocate()
            guard let data else { return }
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().close()
        }
        if rc < 0 {
            request.deallocate()
            close()
        }
    }

    override func willClose() {
        reading = false
    }

    override func didClose() {
        let callback = onClose
        onRead = nil
        onReadEnd = nil
        onDrained = nil
        onClose = nil
        callback?()
    }
}
