import Synchronization

/// Whether a connection is still usable, readable from any thread.
final class ConnectionStatus: Sendable {
    private let state = Mutex<RunQueueError?>(nil)

    var failure: RunQueueError? { state.withLock { $0 } }

    /// Records the first reason the connection stopped working.
    func markFailed(_ error: RunQueueError) {
        state.withLock { if $0 == nil { $0 = error } }
    }
}
