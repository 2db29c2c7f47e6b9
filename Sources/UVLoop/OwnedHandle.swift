internal import CLibUV

/// Base of every wrapper that owns one libuv handle.
///
/// The handle is heap-allocated, its `data` points at the wrapper, and the
/// loop's registry keeps the wrapper alive until the close callback, which
/// frees the handle. Loop thread only.
public class OwnedHandle: LoopHandleOwner {
    public let loop: EventLoop
    /// The handle's memory, sized for its concrete type by the subclass.
    let raw: UnsafeMutableRawPointer
    public private(set) var isClosing = false

    init(loop: EventLoop, size: Int) {
        self.loop = loop
        raw = .allocate(byteCount: size, alignment: 16)
        // libuv init functions fill the struct, but the data field is ours: set it after init.
    }

    var uvHandle: UnsafeMutablePointer<uv_handle_t> { raw.assumingMemoryBound(to: uv_handle_t.self) }

    /// Call right after the `uv_*_init` succeeded.
    func adopt() {
        uvHandle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        loop.register(raw, owner: self)
    }

    /// Call when the `uv_*_init` failed: the handle was never registered with libuv.
    func discard() {
        raw.deallocate()
    }

    /// Closes the handle; `didClose` runs from the close callback. Idempotent.
    public func close() {
        guard !isClosing else { return }
        isClosing = true
        willClose()
        uv_close(uvHandle) { raw in
            guard let raw, let data = raw.pointee.data else { return }
            let owner = Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue() as! OwnedHandleCloser
            owner.closed(raw)
        }
    }

    func forceClose() { close() }

    /// Hooks for subclasses.
    func willClose() {}
    func didClose() {}
}

protocol OwnedHandleCloser: AnyObject {
    func closed(_ raw: UnsafeMutablePointer<uv_handle_t>)
}

extension OwnedHandle: OwnedHandleCloser {
    func closed(_ raw: UnsafeMutablePointer<uv_handle_t>) {
        didClose()
        loop.unregister(UnsafeMutableRawPointer(raw))  // may release self: last statement touching self
        UnsafeMutableRawPointer(raw).deallocate()
    }
}
