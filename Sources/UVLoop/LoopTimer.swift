internal import CLibUV

/// A libuv timer on the loop's monotonic clock. Loop thread only.
public final class LoopTimer: OwnedHandle {
    var handle: UnsafeMutablePointer<uv_timer_t> { raw.assumingMemoryBound(to: uv_timer_t.self) }

    private var callback: (() -> Void)?

    public init(loop: EventLoop) {
        super.init(loop: loop, size: MemoryLayout<uv_timer_t>.size)
        // uv_timer_init cannot fail (it only fills the struct).
        uv_timer_init(loop.loop, handle)
        adopt()
    }

    /// Fires `callback` after `afterMs`, then every `repeatMs` if non-zero.
    public func start(afterMs: UInt64, repeatMs: UInt64 = 0, _ callback: @escaping () -> Void) {
        guard !isClosing else { return }
        self.callback = callback
        // uv_timer_start fails only with UV_EINVAL for a NULL callback.
        uv_timer_start(handle, { timer in
            guard let data = timer?.pointee.data else { return }
            let me = Unmanaged<LoopTimer>.fromOpaque(data).takeUnretainedValue()
            me.callback?()
        }, afterMs, repeatMs)
    }

    public func stop() {
        uv_timer_stop(handle)
    }

    override func didClose() {
        callback = nil
    }
}

extension EventLoop {
    /// Runs `body` once after `afterMs` on the loop thread (call on the loop
    /// thread). The returned timer can be closed to cancel it; it closes itself
    /// after firing.
    @discardableResult
    public func schedule(afterMs: UInt64, _ body: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(loop: self)
        timer.start(afterMs: afterMs) { [unowned timer] in
            timer.close()
            body()
        }
        return timer
    }
}
