import Logging
import UVLoop

/// runqueued as a value you can start and stop: the executable and the
/// in-process integration tests both use it.
public final class Server: Sendable {
    public let config: ServerConfig
    private let loop: EventLoop
    private let core: ServerCore

    public init(config: ServerConfig, logger: Logger) throws {
        self.config = config
        loop = try EventLoop(name: "runqueued")
        core = ServerCore(loop: loop, config: config, logger: logger)
    }

    /// A server dropped without `stop()` still shuts down gracefully: the
    /// shutdown job keeps the core alive until everything it owns has closed
    /// (the loop thread itself stays, parked, for the rest of the process).
    deinit {
        let core = self.core
        loop.execute {
            core.beginShutdown()
            core.onStoppedOrNow { _ = core }
        }
    }

    /// Binds the listener; returns the bound port (useful with port 0).
    public func start(handleSignals: Bool = false) async throws -> UInt16 {
        let core = self.core
        return try await loop.submit { try core.start(handleSignals: handleSignals) }
    }

    /// How a server stopped.
    public struct StopReport: Sendable {
        /// Loop handles that had to be force-closed (0 when everything closed cleanly).
        public var leftoverHandles: Int
        /// Why the server stopped on its own (a fatal configuration conflict:
        /// exit code 2), or nil after a signal or `stop()`.
        public var fatalError: String?
    }

    /// Waits until the server has shut down (after a signal, `stop()` or a
    /// fatal conflict), then closes the loop.
    public func waitUntilStopped() async -> StopReport {
        let fatal = await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            let core = self.core
            loop.execute { core.onStoppedOrNow { continuation.resume(returning: core.fatalError) } }
        }
        return StopReport(leftoverHandles: loop.shutdown(), fatalError: fatal)
    }

    /// Graceful shutdown: stop accepting, finish calls in progress, close.
    /// Returns the number of handles force-closed at the end (0 = clean).
    @discardableResult
    public func stop() async -> Int {
        let core = self.core
        loop.execute { core.beginShutdown() }
        return await waitUntilStopped().leftoverHandles
    }

    /// Dequeue calls waiting in a long poll now (for tests and metrics).
    public func waitingDequeueCount() async throws -> Int {
        let core = self.core
        return try await loop.submit { core.waitingDequeues }
    }

    /// Connections currently open (for tests and metrics).
    public func connectionCount() async throws -> Int {
        let core = self.core
        return try await loop.submit { core.connectionCount }
    }
}

extension ServerCore: @unchecked Sendable {}
