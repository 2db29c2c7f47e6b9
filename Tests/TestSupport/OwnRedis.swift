import Foundation
import Synchronization

/// A redis-server process of one test's own, on a free loopback port: a test
/// that starts an engine, kills Redis, flushes it or reads its keys does so
/// without touching any other test running beside it.
public final class OwnRedis: Sendable {
    private let state: Mutex<(port: UInt16, process: Process?)>
    private let extraArguments: [String]
    /// Where RDB and AOF files go (removed with the server).
    public let directory: URL

    /// Starts the server and waits until it accepts connections.
    public init(extraArguments: [String] = []) throws {
        self.extraArguments = extraArguments
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("own-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        state = Mutex((TestServices.unusedPort(), nil))
        try start()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    public var port: UInt16 { state.withLock { $0.port } }
    public var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts redis-server (again, after `kill()`, on the same port and with
    /// the same data folder). A port another process took between the probe
    /// and the bind is only possible on the first start: then a new one is tried.
    public func start() throws {
        for attempt in 0..<5 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", directory.path] + extraArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let started = ContinuousClock.now
            while process.isRunning, ContinuousClock.now - started < .seconds(20), !TestServices.accepts(port: port) {
                usleep(5_000)
            }
            if process.isRunning, TestServices.accepts(port: port) {
                state.withLock { $0.process = process }
                return
            }
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if attempt == 0, state.withLock({ $0.process }) == nil { state.withLock { $0.port = TestServices.unusedPort() } }
        }
        throw TestSupportError("redis-server did not start on port \(port)")
    }

    /// SIGKILL: no goodbye on the sockets, like a crash.
    public func kill() {
        guard let process = state.withLock({ state -> Process? in
            defer { state.process = nil }
            return state.process
        }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// redis-cli against this server; its output, trimmed.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String { try cli(arguments) }

    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        try runTool(["redis-cli", "-p", String(port)] + arguments).output
    }
}

