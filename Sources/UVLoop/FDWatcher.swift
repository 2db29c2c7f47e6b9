internal import CLibUV

/// Watches a socket file descriptor for readability / writability (uv_poll).
/// libuv allows one poll handle per fd: close this watcher before the fd is
/// closed or replaced. Loop thread only.
public final class FDWatcher: OwnedHandle {
    var handle: UnsafeMutablePointer<uv_poll_t> { raw.assumingMemoryBound(to: uv_poll_t.self) }

    public struct Events: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int32(UV_READABLE.rawValue))
        public static let writable = Events(rawValue: Int32(UV_WRITABLE.rawValue))
    }

    /// Called with the ready events, or with an error (the poll stopped).
    private var callback: ((Result<Events, UVError>) -> Void)?
    public let fd: Int32

    public init(loop: EventLoop, fd: Int32, _ callback: @escaping (Result<Events, UVError>) -> Void) throws {
        self.fd = fd
        super.init(loop: loop, size: MemoryLayout<uv_poll_t>.size)
        let rc = uv_poll_init_socket(loop.loop, handle, fd)
        if rc < 0 { discard(); throw UVError(code: rc, operation: "uv_poll_init_socket") }
        adopt()
        self.callback = callback
    }

    /// Watches exactly `events` from now on (an empty set stops watching).
    public func watch(_ events: Events) {
        guard !isClosing else { return }
        if events.isEmpty { uv_poll_stop(handle); return }
        let rc = uv_poll_start(handle, events.rawValue) { h, status, events in
            guard let data = h?.pointee.data else { return }
            let me = Unmanaged<FDWatcher>.fromOpaque(data).takeUnretainedValue()
            if status < 0 {
                me.callback?(.failure(UVError(code: status, operation: "uv_poll")))
            } else {
                me.callback?(.success(Events(rawValue: events)))
            }
        }
        if rc < 0 { callback?(.failure(UVError(code: rc, operation: "uv_poll_start"))) }
    }

    override func didClose() {
        callback = nil
    }
}
