import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueServer
import Synchronization
import Testing
import TestSupport
import UVLoop

/// Expiry across process deaths and between instances: kill -9 between the
/// Redis expiry and the PostgreSQL update, the lease taken over from a killed
/// holder, and two instances applying expiries while a subscriber reads. Each
/// test has its own redis-server and database, so other servers on the shared
/// Redis cannot take its expiry leases.
@Suite(.serialized) struct ExpiryCrashTests {
    typealias Names = QueueEngineTests.Names
    typealias OwnRedis = CrashTests.OwnRedis

    /// A runqueued process on its own port.
    final class ServerProcess {
        let port = TestServices.unusedPort()
        let redisURL: String
        let databaseURL: String
        private var process: Process?

        init(redis: String, database: String) throws {
            redisURL = redis
            databaseURL = database
            try launch()
        }

        deinit { kill9() }

        func launch() throws {
            let process = Process()
            process.executableURL = Binaries.runqueued
            process.environment = ["RUNQUEUE_LISTEN": "127.0.0.1:\(port)", "RUNQUEUE_LOG_LEVEL": "error",
                                   "RUNQUEUE_REDIS_URL": redisURL, "RUNQUEUE_DATABASE_URL": databaseURL,
                                   "RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS": "200"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
        }

        func kill9() {
            guard let process else { return }
            self.process = nil
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        var address: SocketAddress { SocketAddress(host: "127.0.0.1", port: port) }

        func connect() async throws -> RunQueueConnection {
            for _ in 0..<300 {
                if let c = try? await RunQueueConnection.connect(to: address), await QueueEngineTests.isReady(c) { return c }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw RunQueueError(.unavailable, "runqueued on port \(port) did not start")
        }
    }

    /// A subscriber through the client library (which reconnects and resumes by itself).
    /// `probe` is a copy of the iterator the task iterates; both share one
    /// driver, so the probe sees when the stream started and can cancel it.
    /// (The iterator type is not Sendable; the probe is only used for those two
    /// thread-safe operations.)
    final class Subscriber: @unchecked Sendable {
        let events = Mutex<[ExpiryEvent]>([])
        private let probe: ExpirySubscription.Iterator
        private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

        init(_ address: SocketAddress, filter: ExpiryFilter) async throws {
            probe = RunQueueClient(RunQueueClientConfiguration(server: address)).subscribeExpiry(filter: filter).makeAsyncIterator()
            task.withLock {
                $0 = Task { [self] in
                    var iterator = probe
                    while let event = try? await iterator.next() { events.withLock { $0.append(event) } }
                }
            }
            for _ in 0..<200 where probe.liveFromCursor == nil { try await Task.sleep(for: .milliseconds(25)) }
            #expect(probe.liveFromCursor != nil, "the subscription did not start")
        }

        func waitFor(_ count: Int, seconds: Int) async throws {
            let limit = ContinuousClock.now + .seconds(seconds)
            while events.withLock({ $0.count }) < count && ContinuousClock.now < limit { try await Task.sleep(for: .milliseconds(20)) }
        }

        func cancel() async {
            probe.cancel()
            await task.withLock { $0 }?.value
        }
    }

    static func sql(_ database: String, _ query: String) -> String { ExpiryTests.tool(["psql", database, "-tAqc", query]) }

    static func redis(_ redis: OwnRedis, _ args: String...) -> String {
        ExpiryTests.tool(["redis-cli", "-p", String(redis.port)] + args)
    }

    /// The holder of every shard's expiry lease (nil for a shard nobody holds).
    static func leaseHolders(_ redis: OwnRedis) -> [String?] {
        (0..<16).map { shard in
            let value = Self.redis(redis, "GET", "{rq\(shard)}:ttllease")
            return value.isEmpty ? nil : value
        }
    }

    func status(_ client: RunQueueConnection, _ runID: String) async throws -> RunStatus? {
        guard case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: runID))) else { return nil }
        return r.run?.status
    }

    func waitExpired(_ client: RunQueueConnection, _ runID: String, seconds: Int) async throws -> Bool {
        let limit = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < limit {
            if try await status(client, runID) == .expired { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func killedBetweenTheRedisExpiryAndThePostgreSQLUpdateTheRunEndsExpiredWithOneEvent() async throws {
        let redis = try OwnRedis()
        let database = try CrashTests.ownDatabase()
        defer { database.drop() }
        let server = try ServerProcess(redis: redis.url, database: database.url)
        defer { server.kill9() }
        var client = try await server.connect()
        let n = Names()
        let subscriber = try await Subscriber(server.address, filter: ExpiryFilter(environmentID: n("env")))
        _ = try await client.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: n("env"), value: .limit(0))))
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s"))))

        // Another session locks the run's row: the applier's UPDATE waits on it.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = ["psql", database.url + "?application_name=rq_row_locker", "-q"]
        let input = Pipe()
        locker.standardInput = input
        locker.standardOutput = FileHandle.nullDevice
        locker.standardError = FileHandle.nullDevice
        try locker.run()
        input.fileHandleForWriting.write(Data("BEGIN;\nSELECT id FROM runs WHERE id = '\(n("a"))' FOR UPDATE;\n".utf8))
        var locked = false
        for _ in 0..<100 where !locked {
            locked = Self.sql(database.url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rq_row_locker' AND state = 'idle in transaction'") == "1"
            if !locked { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(locked)

        // The run leaves Redis and its E entry waits in the outbox while PostgreSQL still shows it QUEUED.
        var inOutbox = false
        for _ in 0..<100 where !inOutbox {
            inOutbox = (0..<16).contains { shard in
                let entries = Self.redis(redis, "XRANGE", "{rq\(shard)}:outbox", "-", "+")
                return entries.contains(n("a")) && entries.split(separator: "\n").contains("E")
            }
            if !inOutbox { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(inOutbox, "no E entry for the run in any outbox")
        guard case .queueStats(let stats)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) else {
            Issue.record("QueueStats")
            return
        }
        #expect(stats.length == 0)
        // Give the applier time to start its transaction and wait on the lock.
        try await Task.sleep(for: .milliseconds(500))
        #expect(Self.sql(database.url, "SELECT status FROM runs WHERE id = '\(n("a"))'") == "QUEUED")
        #expect(Self.sql(database.url, "SELECT count(*) FROM expiry_events") == "0")

        server.kill9()
        await client.close()
        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try input.fileHandleForWriting.close()
        locker.waitUntilExit()
        try server.launch()
        client = try await server.connect()

        #expect(try await waitExpired(client, n("a"), seconds: 10))
        try await subscriber.waitFor(1, seconds: 10)
        // A second event would come at once after the first: the applier had the entry already.
        try await Task.sleep(for: .milliseconds(1500))
        #expect(subscriber.events.withLock { $0.map { $0.runID } } == [n("a")])
        #expect(Self.sql(database.url, "SELECT count(*) FROM expiry_events WHERE run_id = '\(n("a"))'") == "1")
        #expect((0..<16).allSatisfy { Self.redis(redis, "XLEN", "{rq\($0)}:outbox") == "0" })
        await subscriber.cancel()
        await client.close()
    }

    @Test func theSurvivorTakesTheExpiryLeasesOverFromAKilledHolderAndExpiresOnce() async throws {
        let redis = try OwnRedis()
        let database = try CrashTests.ownDatabase()
        defer { database.drop() }
        let holder = try ServerProcess(redis: redis.url, database: database.url)
        defer { holder.kill9() }
        let holderClient = try await holder.connect()
        var held: [String?] = []
        for _ in 0..<100 {
            held = Self.leaseHolders(redis)
            if held.allSatisfy({ $0 != nil }) && Set(held).count == 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let holderID = try #require(held.first ?? nil)
        #expect(held.allSatisfy { $0 == holderID })

        let survivor = try ServerProcess(redis: redis.url, database: database.url)
        defer { survivor.kill9() }
        let client = try await survivor.connect()
        // The holder renews; the survivor holds nothing.
        try await Task.sleep(for: .milliseconds(1000))
        #expect(Self.leaseHolders(redis).allSatisfy { $0 == holderID })
        let n = Names()
        let subscriber = try await Subscriber(survivor.address, filter: ExpiryFilter(environmentID: n("env")))

        holder.kill9()
        await holderClient.close()
        let start = ContinuousClock.now
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("late", ttl: "1s"))))
        #expect(try await waitExpired(client, n("late"), seconds: 15))
        let elapsed = ContinuousClock.now - start
        // The lease lasts 5 s after the holder's last renewal, the TTL 1 s.
        #expect(elapsed < .seconds(8), "expired \(elapsed) after the kill")
        var now = Self.leaseHolders(redis)
        for _ in 0..<60 where !now.allSatisfy({ $0 != nil && $0 != holderID }) {
            try await Task.sleep(for: .milliseconds(50))
            now = Self.leaseHolders(redis)
        }
        #expect(now.allSatisfy { $0 != nil && $0 != holderID }, "leases after the takeover: \(now)")
        try await subscriber.waitFor(1, seconds: 5)
        try await Task.sleep(for: .milliseconds(1000))
        #expect(subscriber.events.withLock { $0.map { $0.runID } } == [n("late")])
        #expect(Self.sql(database.url, "SELECT count(*) FROM expiry_events WHERE run_id = '\(n("late"))'") == "1")
        await subscriber.cancel()
        await client.close()
    }

    @Test func twoInstancesApplyingExpiriesAtOnceNeverMakeASubscriberSkipACursor() async throws {
        let redis = try OwnRedis()
        let database = try CrashTests.ownDatabase()
        defer { database.drop() }
        let first = try ServerProcess(redis: redis.url, database: database.url)
        defer { first.kill9() }
        let second = try ServerProcess(redis: redis.url, database: database.url)
        defer { second.kill9() }
        let clients = [try await first.connect(), try await second.connect()]
        // Both instances expire: the leases are split between them. When one
        // took them all, the odd shards' leases are freed: the instance holding
        // nothing asks Redis at every timer and takes them, the holder renews
        // only every third of a lease.
        var holders = Set<String>()
        for _ in 0..<40 {
            let held = Self.leaseHolders(redis)
            holders = Set(held.compactMap { $0 })
            if holders.count == 2 { break }
            if held.allSatisfy({ $0 != nil }) {
                for shard in stride(from: 1, to: 16, by: 2) { _ = Self.redis(redis, "DEL", "{rq\(shard)}:ttllease") }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(holders.count == 2, "the leases did not split between the two instances")

        let n = Names()
        let subscribers = [try await Subscriber(first.address, filter: ExpiryFilter(orgID: n("org"))),
                           try await Subscriber(second.address, filter: ExpiryFilter(orgID: n("org")))]
        // 3000 runs over 32 environments (most shards), deadlines spread over
        // 2 s, enqueued half through each instance.
        let total = 3000
        let due = Int64(Date().timeIntervalSince1970 * 1000) + 1500
        let runs = (0..<total).map { i in
            n.run("r\(i)", env: "env\(i % 32)", timestamp: due + Int64(i % 2000), ttl: "1s")
        }
        for (index, chunk) in stride(from: 0, to: total, by: 500).map({ Array(runs[$0..<min(total, $0 + 500)]) }).enumerated() {
            guard case .enqueueBatch(let answer)? = try await clients[index % 2].call(.enqueueBatch(EnqueueBatchRequest(runs: chunk))) else {
                Issue.record("EnqueueBatch")
                return
            }
            #expect(answer.results.allSatisfy { $0.status.code == .ok && $0.created })
        }
        for subscriber in subscribers { try await subscriber.waitFor(total, seconds: 20) }
        try await Task.sleep(for: .milliseconds(500))

        let log = Self.sql(database.url, "SELECT cursor || ' ' || run_id FROM expiry_events ORDER BY cursor").split(separator: "\n").map {
            let parts = $0.split(separator: " ")
            return (cursor: UInt64(parts[0]) ?? 0, runID: String(parts[1]))
        }
        #expect(log.count == total)
        #expect(Set(log.map(\.runID)) == Set(runs.map(\.runID)))
        for subscriber in subscribers {
            let events = subscriber.events.withLock { $0 }
            // Every event in the log, once, in cursor order: nothing skipped.
            #expect(events.map(\.cursor) == log.map(\.cursor))
            #expect(events.map(\.runID) == log.map(\.runID))
            await subscriber.cancel()
        }
        for client in clients { await client.close() }
    }
}
