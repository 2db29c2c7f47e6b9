import Foundation
import Logging
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
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var runqueued: URL {
        let env = ProcessInfo.processInfo.environment
        if let path = env["RUNQUEUED_BIN"] { return URL(fileURLWithPath: path) }
        return root.appendingPathComponent(".build/debug/runqueued")
    }
}
