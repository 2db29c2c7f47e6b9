internal import CLibUV

/// A listening TCP socket; hands each accepted connection to `onConnection`.
/// Loop thread only.
public final class TCPListener: OwnedHandle {
    var handle: UnsafeMutablePointer<uv_tcp_t> { raw.assumingMemoryBound(to: uv_tcp_t.self) }

    private var onConnection: ((TCPConnection) -> Void)?

    public init(loop: EventLoop, address: SocketAddress, backlog: Int32 = 1024,
                onConnection: @escaping (TCPConnection) -> Void) throws {
        super.init(loop: loop, size: MemoryLayout<uv_tcp_t>.size)
        let rc = uv_tcp_init(loop.loop, handle)
        if rc < 0 { discard(); throw UVError(code: rc, operation: "uv_tcp_init") }
        adopt()
        self.onConnection = onConnection
        do {
            try address.withSockaddr { addr in
                try UVError.check(uv_tcp_bind(handle, addr, 0), "bind \(address)")
            }
            let stream = UnsafeMutablePointer<uv_stream_t>(OpaquePointer(handle))
            try UVError.check(uv_listen(stream, backlog) { server, status in
                guard let data = server?.pointee.data else { return }
                Unmanaged<TCPListener>.fromOpaque(data).takeUnretainedValue().accept(status: status)
            }, "listen \(address)")
        } catch {
            close()
            throw error
        }
    }

    /// The bound port (useful with port 0).
    public var localPort: UInt16 {
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { raw -> UInt16 in
            let addr = raw.baseAddress!.assumingMemoryBound(to: sockaddr.self)
            guard uv_tcp_getsockname(handle, addr, &len) == 0 else { return 0 }
            let port = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port
            return UInt16(bigEndian: port)  // sin6_port sits at the same offset
        }
    }

    private func accept(status: Int32) {
        // status < 0: a transient accept error (EMFILE, ENOBUFS); the listener keeps going.
        guard status == 0, !isClosing else { return }
        let connection = TCPConnection(loop: loop)
        guard connection.initialize() else { return }
        let stream = UnsafeMutablePointer<uv_stream_t>(OpaquePointer(handle))
        if uv_accept(stream, connection.stream) == 0 {
            connection.configure()
            onConnection?(connection)
        } else {
            connection.close()
        }
    }

    override func didClose() {
        onConnection = nil
    }
}
