internal import CLibUV

/// Delivers a Unix signal on the loop thread. Loop thread only.
public final class SignalWatcher: OwnedHandle {
    var handle: UnsafeMutablePointer<uv_signal_t> { raw.assumingMemoryBound(to: uv_signal_t.self) }

    private var callback: ((Int32) -> Void)?

    public init(loop: EventLoop, signal: Int32, _ callback: @escaping (Int32) -> Void) throws {
        super.init(loop: loop, size: MemoryLayout<uv_signal_t>.size)
        // uv_signal_init fails only if the loop's signal pipe cannot be created.
        let rc = uv_signal_init(loop.loop, handle)
        if rc < 0 { discard(); throw UVError(code: rc, operation: "uv_signal_init") }
        adopt()
        self.callback = callback
        try UVError.check(uv_signal_start(handle, { h, signum in
            guard let data = h?.pointee.data else { return }
            Unmanaged<SignalWatcher>.fromOpaque(data).takeUnretainedValue().callback?(signum)
        }, signal), "uv_signal_start")
    }

    override func didClose() {
        callback = nil
    }
}
