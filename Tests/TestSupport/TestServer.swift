import Foundation
import Logging
import RunQueueClient
import RunQueueCore
import RunQueueServer
import UVLoop

/// An in-process runqueued on a free port. Unless the test points it
/// elsewhere, its engine runs on a `TestStack` of its own (a redis-server and
/// a database nobody else uses), kept alive as long as this value.
public struct TestServer: Sendable {
    public let server: Server
    public let port: UInt16
    /// The Redis and database the engine runs on (nil: protocol layer only,
    /// or both URLs chosen by the test).
    public let stack: TestStack?

    /// A server listening on `port` (0: a free one); the stores connect in the
    /// background. `configure` may point the engine at other stores: a URL it
    /// leaves empty is filled from `stack` (a new one when none is given).
    public static func start(port: UInt16 = 0, stack: TestStack? = nil,
                             _ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        var config = ServerConfig()
        config.listen = SocketAddress(host: "127.0.0.1", port: port)
        config.redisURL = ""
        config.databaseURL = ""
        configure(&config)
        var used = stack
        if config.storesEnabled, config.redisURL.isEmpty || config.databaseURL.isEmpty {
            let own = try stack ?? TestStack()
            if config.redisURL.isEmpty { config.redisURL = own.redisURL }
            if config.databaseURL.isEmpty { config.databaseURL = own.databaseURL }
            used = own
        }
        var logger = Logger(label: "runqueued-test")
        // RUNQUEUE_TEST_LOG_LEVEL (e.g. info) shows what the servers of a failing test said.
        logger.logLevel = ProcessInfo.processInfo.environment["RUNQUEUE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        let server = try Server(config: config, logger: logger)
        let bound = try await server.start()
        return TestServer(server: server, port: bound, stack: used)
    }

    /// A server whose engine already answers (Redis and PostgreSQL both up).
    public static func ready(port: UInt16 = 0, stack: TestStack? = nil,
                             _ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        try await started(port: port, stack: stack, configure).0
    }

    /// A ready server and a connection to it.
    public static func started(port: UInt16 = 0, stack: TestStack? = nil,
                               _ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> (TestServer, RunQueueConnection) {
        let test = try await start(port: port, stack: stack, configure)
        let client = try await RunQueueConnection.connect(to: test.address)
        try await waitUntil("the engine on port \(test.port) answers") { await client.engineAnswers() }
        return (test, client)
    }

    /// A server with the protocol layer only (no Redis, no PostgreSQL).
    public static func protocolOnly(_ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        try await start { config in
            config.storesEnabled = false
            configure(&config)
        }
    }

    public var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }
    public var hostPort: String { "127.0.0.1:\(port)" }

    /// A client of this server (fast reconnect for tests).
    public func client(connections: Int = 2, _ configure: (inout RunQueueClientConfiguration) -> Void = { _ in }) -> RunQueueClient {
        var configuration = RunQueueClientConfiguration(server: address)
        configuration.connections = connections
        configuration.reconnectPolicy = ReconnectPolicy(initialMs: 20, maxMs: 200)
        configure(&configuration)
        return RunQueueClient(configuration)
    }

    /// SQL on the engine's own database.
    @discardableResult
    public func sql(_ query: String) throws -> String {
        guard let stack else { throw TestSupportError("this server has no stack of its own") }
        return try stack.database.sql(query)
    }

    /// redis-cli on the engine's own Redis.
    @discardableResult
    public func redis(_ arguments: String...) throws -> String {
        guard let stack else { throw TestSupportError("this server has no stack of its own") }
        return try stack.redis.cli(arguments)
    }
}

/// Ids unique to one test.
public struct Names: Sendable {
    public let prefix = "t" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    public init() {}
    public func callAsFunction(_ name: String) -> String { prefix + "_" + name }

    public func run(_ id: String, env: String = "env", worker: String = "wq", queue: String = "q",
                    timestamp: Int64 = 0, ttl: String = "") -> RunDescriptor {
        RunDescriptor(runID: self(id), orgID: self("org"), projectID: self("proj"), environmentID: self(env),
                      environmentType: .production, queue: queue, concurrencyKey: "", taskIdentifier: "task",
                      workerQueue: self(worker), timestampMs: timestamp, priorityMs: 0, ttl: ttl)
    }
}

/// Unix milliseconds now.
public func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

extension RunQueueConnection {
    /// Whether the engine answers: GetRun of an unknown run is NOT_FOUND once
    /// Redis and PostgreSQL both do.
    public func engineAnswers() async -> Bool {
        do {
            _ = try await call(.getRun(GetRunRequest(runID: "readiness-probe")))
            return true
        } catch {
            return error.code == .notFound
        }
    }

    /// One Dequeue of up to `max` runs of `worker` (long poll `wait` ms,
    /// lease `lease` ms, 0 = the server's default).
    public func dequeue(_ worker: String, max: UInt32 = 100, wait: UInt32 = 0, lease: UInt32 = 0) async throws -> [RunMessage] {
        guard case .dequeue(let answer)? = try await call(.dequeue(DequeueRequest(workerQueue: worker, maxRuns: max, waitMs: wait, leaseMs: lease)))
        else { throw RunQueueError(.internal, "Dequeue answered another method") }
        return answer.messages
    }
}

/// Where `swift build` put the executables.
public enum Binaries {
    /// $RUNQUEUED_BIN, else next to the test bundle, else .build/debug.
    public static var runqueued: URL { ProductProcess.binary("runqueued", environmentVariable: "RUNQUEUED_BIN") }
    /// The CLI: $RUNQUEUE_CLI_BIN, else next to the test bundle, else .build/debug.
    public static var runqueue: URL { ProductProcess.binary("runqueue", environmentVariable: "RUNQUEUE_CLI_BIN") }
}

/// runqueued as a child process (for kill -9 and outages), on a fixed free
/// port so a restart listens where the clients expect it. Its output goes
/// nowhere: a test child never inherits the test's stdout.
public final class ServerProcess: @unchecked Sendable {
    public let port = TestServices.unusedPort()
    public var environment: [String: String]
    private var process: Process?

    public init(redisURL: String, databaseURL: String, _ extra: [String: String] = [:]) {
        environment = ["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": "error",
                       "RUNQUEUE_REDIS_URL": redisURL, "RUNQUEUE_DATABASE_URL": databaseURL].merging(extra) { $1 }
    }

    public convenience init(stack: TestStack, _ extra: [String: String] = [:]) {
        self.init(redisURL: stack.redisURL, databaseURL: stack.databaseURL, extra)
    }

    deinit { kill() }

    public var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }
    public var isRunning: Bool { process?.isRunning ?? false }

    public func launch() throws {
        let process = Process()
        process.executableURL = Binaries.runqueued
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// A connection once the engine answers (Redis and PostgreSQL both up).
    public func connect() async throws -> RunQueueConnection {
        try await waitFor("runqueued on port \(port) to answer", within: .seconds(60)) {
            guard let c = try? await RunQueueConnection.connect(to: address) else { return nil }
            if await c.engineAnswers() { return c }
            await c.close()
            return nil
        }
    }

    /// SIGKILL: no shutdown path runs.
    public func kill() {
        guard let process else { return }
        self.process = nil
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
