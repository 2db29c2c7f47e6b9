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

    /// Binds the listener; returns the bound port (useful with port 0).
    public func start(handleSignals: Bool = false) async throws -> UInt16 {
        let core = self.core
        return try await loop.submit { try core.start(handleSignals: handleSignals) }
    }

    /// Waits until the server has shut down (after a signal or `stop()`),
    /// then closes the loop. Returns the number of loop handles that had to be
    /// force-closed (0 when everything closed cleanly).
    public func waitUntilStopped() async -> Int {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let core = self.core
            loop.execute { core.onStoppedOrNow { continuation.resume() } }
        }
        return loop.shutdown()
    }

    /// Graceful shutdown: stop accepting, finish calls in progress, close.
    /// Returns the number of handles force-closed at the end (0 = clean).
    @discardableResult
    public func stop() async -> Int {
        let core = self.core
        loop.execute { core.beginShutdown() }
        return await waitUntilStopped()
    }

    /// Connections currently open (for tests and metrics).
    public func connectionCount() async throws -> Int {
        let core = self.core
        return try await loop.submit { core.connectionCount }
    }
}

extension ServerCore: @unchecked Sendable {}
