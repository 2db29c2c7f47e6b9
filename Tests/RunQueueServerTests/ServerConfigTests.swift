import Foundation
import RunQueueServer
import Testing
import TestSupport
import UVLoop

@Suite struct ServerConfigTests {
    @Test func defaultsMatchTheDocumentation() throws {
        let config = try ServerConfig.load(environment: [:], arguments: [])
        #expect(config.listen == SocketAddress(host: "127.0.0.1", port: 7420))
        #expect(config.maxFrameBytes == 1 << 20)
        #expect(config.logLevel == .info)
        #expect(config.shardCount == 16)
        #expect(config.rebuildHoldMs == 5000)
    }

    @Test func theRebuildHoldIsSetAndRangeChecked() throws {
        let config = try ServerConfig.load(environment: ["RUNQUEUE_REBUILD_HOLD_MS": "60000"], arguments: [])
        #expect(config.rebuildHoldMs == 60_000)
        #expect(try ServerConfig.load(environment: [:], arguments: ["--rebuild-hold-ms", "0"]).rebuildHoldMs == 0)
        #expect(throws: ConfigError.self) { _ = try ServerConfig.load(environment: ["RUNQUEUE_REBUILD_HOLD_MS": "600001"], arguments: []) }
        #expect(throws: ConfigError.self) { _ = try ServerConfig.load(environment: ["RUNQUEUE_REBUILD_HOLD_MS": "-1"], arguments: []) }
    }

    @Test func flagsOverrideTheEnvironment() throws {
        let config = try ServerConfig.load(
            environment: ["RUNQUEUE_LISTEN": "127.0.0.1:1", "RUNQUEUE_MAX_FRAME_BYTES": "2048"],
            arguments: ["--listen", "0.0.0.0:9000", "--log-level=debug"])
        #expect(config.listen == SocketAddress(host: "0.0.0.0", port: 9000))
        #expect(config.maxFrameBytes == 2048)
        #expect(config.logLevel == .debug)
    }

    @Test(arguments: [
        (["RUNQUEUE_LISTEN": "nohost"], "RUNQUEUE_LISTEN"),
        (["RUNQUEUE_MAX_FRAME_BYTES": "12x"], "RUNQUEUE_MAX_FRAME_BYTES"),
        (["RUNQUEUE_MAX_FRAME_BYTES": "0"], "RUNQUEUE_MAX_FRAME_BYTES"),
        (["RUNQUEUE_LOG_LEVEL": "loud"], "RUNQUEUE_LOG_LEVEL"),
        (["RUNQUEUE_REDIS_URL": "http://x"], "RUNQUEUE_REDIS_URL"),
        (["RUNQUEUE_DATABASE_URL": "mysql://x"], "RUNQUEUE_DATABASE_URL"),
        (["RUN_ENGINE_RUN_QUEUE_SHARD_COUNT": "-1"], "RUN_ENGINE_RUN_QUEUE_SHARD_COUNT"),
    ])
    func invalidValuesNameTheirKey(environment: [String: String], key: String) {
        #expect {
            _ = try ServerConfig.load(environment: environment, arguments: [])
        } throws: { error in
            (error as? ConfigError)?.message.contains(key) == true
        }
    }

    @Test func unknownFlagIsRefused() {
        #expect(throws: ConfigError.self) { _ = try ServerConfig.load(environment: [:], arguments: ["--nope", "1"]) }
    }

    @Test func invalidConfigurationExitsWithCode2AndOneMessage() throws {
        let process = Process()
        process.executableURL = Binaries.runqueued
        process.environment = ["RUNQUEUE_MAX_FRAME_BYTES": "lots"]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 2)
        let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("RUNQUEUE_MAX_FRAME_BYTES"))
        #expect(text.split(separator: "\n").count == 1)
    }

    @Test func sigtermStopsTheServerWithExitCode0() async throws {
        let port = TestServices.unusedPort()
        let process = Process()
        process.executableURL = Binaries.runqueued
        process.environment = ["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": "error"]
        // Not the test's own stdout: a child left behind must not hold the runner's pipe open.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await waitUntil("runqueued listens on port \(port)") { TestServices.accepts(port: port) }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(process.terminationReason == .exit)
    }
}
