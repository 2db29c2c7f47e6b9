import Foundation
import Logging
import RunQueueClient
import RunQueueCore
import RunQueueServer
import TestSupport
import Testing
import UVLoop

/// An in-process runqueued on the test Redis and PostgreSQL (a copy of the
/// server tests' helper: test targets do not import each other).
struct TestServer {
    let server: Server
    let port: UInt16

    /// A server on `port` (0 = a free one) whose engine is ready to answer.
    static func start(port: UInt16 = 0, _ configure: (inout ServerConfig) -> Void = { _ in }) async throws -> TestServer {
        var config = ServerConfig()
        config.listen = SocketAddress(host: "127.0.0.1", port: port)
        config.redisURL = TestServices.redisURL
        config.databaseURL = TestServices.databaseURL
        configure(&config)
        var logger = Logger(label: "runqueued-client-test")
        logger.logLevel = .warning
        let server = try Server(config: config, logger: logger)
        let bound = try await server.start()
        let test = TestServer(server: server, port: bound)
        try await test.waitUntilEngineReady()
        return test
    }

    var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }
    var hostPort: String { "127.0.0.1:\(port)" }

    /// The stores connect in the background: wait until Redis and PostgreSQL
    /// both answer (GetRun of an unknown run is NOT_FOUND; a server without
    /// GetRun yet needs Redis only).
    private func waitUntilEngineReady() async throws {
        let probe = try await RunQueueConnection.connect(to: address)
        for _ in 0..<400 {
            do {
                _ = try await probe.call(.getRun(GetRunRequest(runID: "readiness-probe")))
                break
            } catch {
                if error.code == .notFound { break }
                if error.code == .unimplemented, (try? await probe.call(.queueStats(QueueStatsRequest(environmentID: "probe")))) != nil {
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        let ready = (try? await probe.call(.queueStats(QueueStatsRequest(environmentID: "probe")))) != nil
        await probe.close()
        if !ready { throw RunQueueError(.unavailable, "the engine did not become ready") }
    }

    /// A client of this server (fast reconnect for tests).
    func client(connections: Int = 2, _ configure: (inout RunQueueClientConfiguration) -> Void = { _ in }) -> RunQueueClient {
        var configuration = RunQueueClientConfiguration(server: address)
        configuration.connections = connections
        configuration.reconnectPolicy = ReconnectPolicy(initialMs: 20, maxMs: 200)
        configure(&configuration)
        return RunQueueClient(configuration)
    }
}

/// Ids unique to one test (the servers share the test Redis).
struct Names {
    let prefix = "c" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    func callAsFunction(_ name: String) -> String { prefix + "_" + name }

    func run(_ id: String, env: String = "env", worker: String = "wq", queue: String = "q", ttl: String = "") -> RunDescriptor {
        RunDescriptor(runID: self(id), orgID: self("org"), projectID: self("proj"), environmentID: self(env),
                      environmentType: .production, queue: queue, concurrencyKey: "", taskIdentifier: "task",
                      workerQueue: self(worker), timestampMs: 0, priorityMs: 0, ttl: ttl)
    }
}

/// Unix milliseconds now.
func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// Expects `body` to throw a RunQueueError with `code`; returns it.
@discardableResult
func expectError<T>(_ code: StatusCode, _ body: () async throws -> T,
                    sourceLocation: SourceLocation = #_sourceLocation) async -> RunQueueError? {
    do {
        _ = try await body()
        Issue.record("expected \(code.name), the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RunQueueError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RunQueueError \(code.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
