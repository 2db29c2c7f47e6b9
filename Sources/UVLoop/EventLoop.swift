// EventLoop: one libuv loop on one dedicated thread.
//
// Invariants:
// - Every handle created through this module is touched only on the loop
//   thread. Other threads reach the loop only through `execute`, which appends
//   to a mutex-guarded job list and calls `uv_async_send`, the one thread-safe
//   libuv call.
// - Handles are heap-allocated and freed in their close callback.
// - `shutdown()` stops the loop, closes the internal async handle, and reports
//   how many handles the users of the loop left open (0 = clean), after
//   force-closing them so `uv_loop_close` always succeeds.
internal import CLibUV
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class EventLoop: @unchecked Sendable {
    let loop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let jobs = Mutex<(open: Bool, list: [@Sendable () -> Void])>((true, []))
    private let threadID = Mutex<pthread_t?>(nil)
    private let thread = Mutex<pthread_t?>(nil)
    private let leftover = Mutex<Int>(0)
    private var stopping = false  // loop thread only
    /// Every handle created by a wrapper in this module, with the wrapper that
    /// owns it; the entry keeps the wrapper alive until the handle's close
    /// callback (loop thread only).
    private var owners: [UnsafeMutableRawPointer: any LoopHandleOwner] = [:]

    /// Scratch buffer for every socket read on this loop; readers copy what they keep.
    static let readBufferSize = 64 * 1024
    let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: EventLoop.readBufferSize, alignment: 16)

    /// A name for log lines and thread names.
    public let name: String

    /// Creates the loop and starts its thread.
    ///
    /// Also sets SIGPIPE to be ignored, for the whole process: libuv and
    /// hiredis write to sockets with write(2), and a write to a socket whose
    /// peer reset it would otherwise end the process (exit 141). A peer,
    /// hostile or not, must never be able to stop whatever hosts a loop.
    public init(name: String = "uv-loop") throws {
        signal(SIGPIPE, SIG_IGN)
        self.name = name
        loop = .allocate(capacity: 1)
        try UVError.check(uv_loop_init(loop), "uv_loop_init")
        wakeup = .allocate(capacity: 1)
        let rc = uv_async_init(loop, wakeup) { handle in
            guard let handle, let data = handle.pointee.data else { return }
            Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().runJobs()
        }
        try UVError.check(rc, "uv_async_init")
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        try startThread()
    }

    /// An opaque pointer to the `uv_loop_t`, for C glue in sibling modules
    /// (the hiredis adapter takes it as `void *`).
    package var rawLoop: UnsafeMutableRawPointer { UnsafeMutableRawPointer(loop) }

    /// True on the loop thread.
    public var inEventLoop: Bool {
        guard let id = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    /// Runs `job` on the loop thread, soon. Safe from any thread.
    /// Jobs posted after `shutdown()` finished are dropped.
    public func execute(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { state in
            guard state.open else { return }
            state.list.append(job)
            // uv_async_send returns 0, or an error only for a handle that is
            // not an async handle; ours always is. Sent under the lock so the
            // handle cannot be closed between the check and the send.
            _ = uv_async_send(wakeup)
        }
    }

    /// Runs `body` on the loop thread and returns its result.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            execute { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Milliseconds of libuv's cached monotonic clock (loop thread).
    public var nowMs: UInt64 { uv_now(loop) }

    /// Stops the loop, waits for its thread, closes the loop. Returns the number
    /// of handles that were still open (other than the loop's own), which were
    /// force-closed; tests assert 0. Idempotent; must not be called on the loop thread.
    @discardableResult
    public func shutdown() -> Int {
        precondition(!inEventLoop, "EventLoop.shutdown() called on its own loop thread")
        execute { [self] in
            stopping = true
            uv_stop(loop)
        }
        if let tid = thread.withLock({ t -> pthread_t? in defer { t = nil }; return t }) {
            pthread_join(tid, nil)
        }
        return leftover.withLock { $0 }
    }

    func register(_ handle: UnsafeMutableRawPointer, owner: any LoopHandleOwner) {
        owners[handle] = owner
    }

    func unregister(_ handle: UnsafeMutableRawPointer) {
        owners[handle] = nil
    }

    private func runJobs() {
        let batch = jobs.withLock { state -> [@Sendable () -> Void] in
            let taken = state.list
            state.list.removeAll(keepingCapacity: true)
            return taken
        }
        for job in batch { job() }
    }

    private func startThread() throws {
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let me = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            me.threadMain()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<EventLoop>.fromOpaque(box).release()
            throw UVError(code: -rc, operation: "pthread_create")
        }
        thread.withLock { $0 = tid }
    }

    private func threadMain() {
        threadID.withLock { $0 = pthread_self() }
        while !stopping {
            // Returns when uv_stop is called or no active handle is left; the
            // async handle is always active, so only uv_stop ends this loop.
            uv_run(loop, UV_RUN_DEFAULT)
        }
        jobs.withLock { $0.open = false }
        runJobs()
        let open = closeAll()
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(wakeup))) { handle in
            handle?.deallocate()
        }
        uv_run(loop, UV_RUN_DEFAULT)
        let rc = uv_loop_close(loop)
        precondition(rc == 0, "uv_loop_close failed after closing every handle: \(rc)")
        loop.deallocate()
        readBuffer.deallocate()
        threadID.withLock { $0 = nil }
        leftover.withLock { $0 = open }
    }

    /// Handles open on the loop, not counting its own wakeup handle or those
    /// already closing: what `shutdown()` would force-close now. Loop thread only.
    public var openHandles: Int { liveHandles().count }

    /// Closes every handle still open except the wakeup handle; returns how many.
    private func closeAll() -> Int {
        let found = liveHandles()
        for handle in found {
            if let owner = owners[UnsafeMutableRawPointer(handle)] {
                owner.forceClose()
            } else {
                // A handle of C glue (the hiredis adapter) whose owner never
                // closed it: close without a callback; its memory is leaked
                // rather than freed under a live owner.
                uv_close(handle, nil)
            }
        }
        return found.count
    }

    private func liveHandles() -> [UnsafeMutablePointer<uv_handle_t>] {
        final class Walk {
            var found: [UnsafeMutablePointer<uv_handle_t>] = []
            let skip: UnsafeMutableRawPointer
            init(skip: UnsafeMutableRawPointer) { self.skip = skip }
        }
        let walk = Walk(skip: UnsafeMutableRawPointer(wakeup))
        uv_walk(loop, { handle, arg in
            let walk = Unmanaged<Walk>.fromOpaque(arg!).takeUnretainedValue()
            guard let handle, UnsafeMutableRawPointer(handle) != walk.skip, uv_is_closing(handle) == 0 else { return }
            walk.found.append(handle)
        }, Unmanaged.passUnretained(walk).toOpaque())
        return walk.found
    }
}

/// Wrappers that own a libuv handle; `forceClose` closes it (freeing it in the
/// close callback) when the loop shuts down with the handle still open.
protocol LoopHandleOwner: AnyObject {
    func forceClose()
}
