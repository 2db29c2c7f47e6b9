import Foundation
import Logging
import RunQueueClient
import RunQueueCore
import RunQueueServer
import TestSupport
import UVLoop

/// An in-process runqueued on a free port.
struct TestServer {
    let server: Server
    let port: UInt16

    /// A server with its engine on the test Redis and PostgreSQL.
    static func start(_ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        var config = ServerConfig()
        config.listen = SocketAddress(host: "127.0.0.1", port: 0)
        config.redisURL = TestServices.redisURL
        config.databaseURL = TestServices.databaseURL
        configure(&config)
        var logger = Logger(label: "runqueued-test")
        logger.logLevel = .warning
        let server = try Server(config: config, logger: logger)
        let port = try await server.start()
        return TestServer(server: server, port: port)
    }

    /// A server with the protocol layer only (no Redis, no PostgreSQL).
    static func protocolOnly(_ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        try await start { config in
            config.storesEnabled = false
            configure(&config)
        }
    }

    var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }
}

/// Where `swift build` put the executables.
enum Binaries {
    /// $RUNQUEUED_BIN, else next to the test bundle, else .build/debug.
    static var runqueued: URL { ProductProcess.binary("runqueued", environmentVariable: "RUNQUEUED_BIN") }
    /// The CLI: $RUNQUEUE_CLI_BIN, else next to the test bundle, else .build/debug.
    static var runqueue: URL { ProductProcess.binary("runqueue", environmentVariable: "RUNQUEUE_CLI_BIN") }
}

/// runqueued as a child process (for kill -9 and outages), on a fixed free
/// port so a restart listens where the clients expect it. Its output goes
/// nowhere: a test child never inherits the test's stdout.
final class ServerProcess {
    let port = TestServices.unusedPort()
    let environment: [String: String]
    private(set) var process: Process?

    init(redisURL: String, databaseURL: String, _ extra: [String: String] = [:]) {
        environment = ["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": "error",
                       "RUNQUEUE_REDIS_URL": redisURL, "RUNQUEUE_DATABASE_URL": databaseURL].merging(extra) { $1 }
    }

    deinit { kill() }

    var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }

    func launch() throws {
        let process = Process()
        process.executableURL = Binaries.runqueued
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// A connection once the engine answers (Redis and PostgreSQL both up).
    func connect() async throws -> RunQueueConnection {
        for _ in 0..<400 {
            if let c = try? await RunQueueConnection.connect(to: address), await QueueEngineTests.isReady(c) { return c }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RunQueueError(.unavailable, "runqueued did not become ready on port \(port)")
    }

    /// SIGKILL: no shutdown path runs.
    func kill() {
        guard let process else { return }
        self.process = nil
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Runs a tool found on PATH (`/usr/bin/env arguments...`) to completion:
/// its exit status and its standard output, trimmed (standard error dropped).
func runTool(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let stdout = Pipe()
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    try process.run()
    let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// psql against a database URL: runs `sql` and returns the unaligned, tuples-only output.
@discardableResult
func psql(_ databaseURL: String, _ sql: String) throws -> String {
    let (status, output) = try runTool(["psql", databaseURL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
    guard status == 0 else { throw RunQueueError(.internal, "psql failed (\(status)): \(sql)") }
    return output
}

/// redis-cli against a local port; returns its output.
@discardableResult
func redisCLI(port: UInt16, _ args: [String]) throws -> String {
    try runTool(["redis-cli", "-p", String(port)] + args).output
}

/// Polls `condition` every 100 ms until it holds or `seconds` pass; its last value.
func waitFor(seconds: Double, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try condition()
}

/// Run changes waiting in every shard's outbox (a stream entry of one
/// script call carries many runs: counted per run) and finishing marks
/// left, summed over 16 shards.
func outboxBacklog(redisPort: UInt16, shards: Int = 16) throws -> (entries: Int, finishing: Int) {
    var entries = 0, finishing = 0
    for shard in 0..<shards {
        if (Int(try redisCLI(port: redisPort, ["XLEN", "{rq\(shard)}:outbox"])) ?? 0) > 0 {
            // Raw output, one element per line: id, o, op, r, runs, a, attempts, t, time.
            let lines = try redisCLI(port: redisPort, ["XRANGE", "{rq\(shard)}:outbox", "-", "+"]).split(separator: "\n")
            for (index, line) in lines.enumerated() where line == "r" && index + 1 < lines.count {
                entries += lines[index + 1].split(separator: "\u{1E}").count
            }
        }
        finishing += Int(try redisCLI(port: redisPort, ["HLEN", "{rq\(shard)}:fin"])) ?? 0
    }
    return (entries, finishing)
}

extension RunQueueConnection {
    /// One Dequeue of up to `max` runs of `worker` (long poll `wait` ms,
    /// lease `lease` ms, 0 = the server's default).
    func dequeue(_ worker: String, max: UInt32 = 100, wait: UInt32 = 0, lease: UInt32 = 0) async throws -> [RunMessage] {
        guard case .dequeue(let answer)? = try await call(.dequeue(DequeueRequest(workerQueue: worker, maxRuns: max, waitMs: wait, leaseMs: lease)))
        else { throw RunQueueError(.internal, "Dequeue answered another method") }
        return answer.messages
    }
}
