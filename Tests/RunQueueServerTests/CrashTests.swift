import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueServer
import Testing
import TestSupport

/// kill -9 of Redis and of the server: nothing lost, nothing done twice.
@Suite struct CrashTests {
    typealias Names = QueueEngineTests.Names

    /// A redis-server of this test's own (it gets killed).
    final class OwnRedis {
        let port = TestServices.unusedPort()
        private var process: Process?

        init() throws { try start() }
        deinit { kill() }

        var url: String { "redis://127.0.0.1:\(port)" }

        func start() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            for _ in 0..<200 where (try? RawSocket(port: port)) == nil { usleep(10_000) }
        }

        func kill() {
            guard let process else { return }
            self.process = nil
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func dequeue(_ client: RunQueueConnection, _ worker: String, wait: UInt32 = 0, lease: UInt32 = 0) async throws -> [RunMessage] {
        guard case .dequeue(let r)? = try await client.call(.dequeue(DequeueRequest(workerQueue: worker, maxRuns: 100, waitMs: wait, leaseMs: lease)))
        else { return [] }
        return r.messages
    }

    /// A PostgreSQL database of this test's own, so a rebuild reads only its rows.
    static func ownDatabase() throws -> (url: String, drop: () -> Void) {
        let name = "rq_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        func psql(_ sql: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["psql", TestServices.databaseURL, "-qc", sql]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try? process.run()
            process.waitUntilExit()
        }
        psql("CREATE DATABASE \(name)")
        let base = TestServices.databaseURL
        let url = String(base[..<(base.lastIndex(of: "/") ?? base.endIndex)]) + "/" + name
        return (url, { psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") })
    }

    @Test func losingRedisRebuildsItFromPostgreSQLWithoutDuplicates() async throws {
        let redis = try OwnRedis()
        let database = try Self.ownDatabase()
        defer { database.drop() }
        let (test, client) = try await QueueEngineTests.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        let n = Names()
        let runs = (0..<5).map { n.run("r\($0)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
        let first = try await dequeue(client, n("wq"), wait: 2000)
        #expect(first.count == 5)
        // Ack two, leave three in flight; wait until PostgreSQL shows them dequeued.
        for m in first.prefix(2) {
            _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        }
        try await Task.sleep(for: .milliseconds(1500))
        redis.kill()
        try redis.start()  // empty: everything in Redis is gone
        // The first Dequeue after the loss finds the missing epoch; the shard is
        // rebuilt from PostgreSQL, and the three unfinished runs come back once,
        // without an extra attempt.
        var back: [RunMessage] = []
        for _ in 0..<40 where back.count < 3 {
            do { back += try await dequeue(client, n("wq"), wait: 500) } catch { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(Set(back.map(\.runID)) == Set(first.dropFirst(2).map(\.runID)))
        #expect(back.count == 3)
        #expect(back.allSatisfy { $0.attempt == 0 })
        #expect(try await dequeue(client, n("wq"), wait: 300).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func killingTheServerLosesNothingAndCompletesEachRunOnce() async throws {
        let n = Names()
        let port = TestServices.unusedPort()
        func launch() throws -> Process {
            let process = Process()
            process.executableURL = Binaries.runqueued
            process.environment = ["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": "error",
                                   "RUNQUEUE_REDIS_URL": TestServices.redisURL, "RUNQUEUE_DATABASE_URL": TestServices.databaseURL]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        func connect() async throws -> RunQueueConnection {
            for _ in 0..<200 {
                if let c = try? await RunQueueConnection.connect(to: .init(host: "127.0.0.1", port: port)), await QueueEngineTests.isReady(c) {
                    return c
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw RunQueueError(.unavailable, "server did not start")
        }
        var server = try launch()
        var client = try await connect()
        let total = 200
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<total).map { n.run("r\($0)") })))
        var completed = Set<String>()
        // Take 60 with a 1 s lease, ack 30, then kill -9 with 30 in flight and
        // acks possibly half-applied.
        let taken = try await dequeue(client, n("wq"), lease: 1000)
        for m in taken.prefix(30) {
            _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
            completed.insert(m.runID)
        }
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        await client.close()
        server = try launch()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        client = try await connect()
        // Drain everything: lapsed leases come back, the rest is queued.
        var emptyPolls = 0
        while emptyPolls < 3 {
            let batch = try await dequeue(client, n("wq"), wait: 1500, lease: 30_000)
            emptyPolls = batch.isEmpty ? emptyPolls + 1 : 0
            for m in batch {
                #expect(!completed.contains(m.runID), "\(m.runID) delivered after it was completed")
                _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
                completed.insert(m.runID)
            }
        }
        #expect(completed.count == total)
        // PostgreSQL shows every run completed exactly once.
        var recordedDone = 0
        for i in 0..<total {
            if case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: n("r\(i)")))), r.run?.status == .completed {
                recordedDone += 1
            }
        }
        #expect(recordedDone == total)
        await client.close()
    }

    @Test func repairReAddsRecordedRunsRedisLacks() async throws {
        let redis = try OwnRedis()
        let database = try Self.ownDatabase()
        defer { database.drop() }
        let (test, client) = try await QueueEngineTests.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<3).map { n.run("r\($0)") })))
        await client.close()
        #expect(await test.server.stop() == 0)
        redis.kill()
        try redis.start()  // Redis lost everything while no server ran

        func repair() throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = Binaries.runqueued.deletingLastPathComponent().appendingPathComponent("runqueue")
            process.arguments = ["repair", "--json"]
            process.environment = ["RUNQUEUE_REDIS_URL": redis.url, "RUNQUEUE_DATABASE_URL": database.url]
            let stdout = Pipe()
            process.standardOutput = stdout
            process.standardError = FileHandle.nullDevice
            try process.run()
            let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, output)
        }
        let first = try repair()
        #expect(first.status == 0)
        #expect(first.output.contains("\"added\":3"), "\(first.output)")
        // Twice in a row: the second finds everything present and adds nothing.
        let second = try repair()
        #expect(second.status == 0)
        #expect(second.output.contains("\"added\":0"), "\(second.output)")

        // Repaired: a server finds the runs (no rebuild needed) and a second repair adds nothing.
        let (again, client2) = try await QueueEngineTests.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        #expect(Set(try await dequeue(client2, n("wq"), wait: 2000).map(\.runID)) == Set((0..<3).map { n("r\($0)") }))
        await client2.close()
        #expect(await again.server.stop() == 0)
    }
}
