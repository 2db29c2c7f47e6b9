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
@Suite(.serialized, .tags(.integration), .needsServices) struct ExpiryCrashTests {

    /// runqueued as a child process on the test's Redis and database, its expiry timers at 200 ms.
    static func launched(_ redis: OwnRedis, _ database: OwnDatabase) throws -> ServerProcess {
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url, ["RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS": "200"])
        try server.launch()
        return server
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
            try await waitUntil("the subscription started") { [probe] in probe.liveFromCursor != nil }
        }

        func waitFor(_ count: Int) async throws {
            try await waitUntil("\(count) events arrived", within: .seconds(60)) { events.withLock { $0.count } >= count }
        }

        func cancel() async {
            probe.cancel()
            await task.withLock { $0 }?.value
        }
    }

    /// The holder of every shard's expiry lease (nil for a shard nobody holds).
    static func leaseHolders(_ redis: OwnRedis) throws -> [String?] {
        try (0..<16).map { shard in
            let value = try redis.cli("GET", "{rq\(shard)}:ttllease")
            return value.isEmpty ? nil : value
        }
    }

    /// Every shard's outbox is empty: the applier has written all it read.
    static func outboxesEmpty(_ redis: OwnRedis) throws -> Bool {
        try (0..<16).allSatisfy { try redis.cli("XLEN", "{rq\($0)}:outbox") == "0" }
    }

    func status(_ client: RunQueueConnection, _ runID: String) async throws -> RunStatus? {
        guard case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: runID))) else { return nil }
        return r.run?.status
    }

    func waitExpired(_ client: RunQueueConnection, _ runID: String) async throws {
        try await waitUntil("\(runID) expired", within: .seconds(60)) { try await status(client, runID) == .expired }
    }

    @Test func killedBetweenTheRedisExpiryAndThePostgreSQLUpdateTheRunEndsExpiredWithOneEvent() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let server = try Self.launched(redis, database)
        defer { server.kill() }
        var client = try await server.connect()
        let n = Names()
        let subscriber = try await Subscriber(server.address, filter: ExpiryFilter(environmentID: n("env")))
        _ = try await client.call(.setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: n("env"), value: .limit(0))))
        // The TTL leaves the lock below time to be taken first, even on a busy machine.
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "8s"))))

        // Another session locks the run's row: the applier's UPDATE waits on it.
        let locker = try PsqlSession(database.url, applicationName: "rq_row_locker")
        locker.send("BEGIN;\nSELECT id FROM runs WHERE id = '\(n("a"))' FOR UPDATE;")
        try await waitUntil("the row is locked") {
            try database.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rq_row_locker' AND state = 'idle in transaction'") == "1"
        }

        // The run leaves Redis and its E entry waits in the outbox while PostgreSQL still shows it QUEUED.
        try await waitUntil("an E entry for the run in an outbox") {
            try (0..<16).contains { shard in
                let entries = try redis.cli("XRANGE", "{rq\(shard)}:outbox", "-", "+")
                return entries.contains(n("a")) && entries.split(separator: "\n").contains("E")
            }
        }
        guard case .queueStats(let stats)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) else {
            Issue.record("QueueStats")
            return
        }
        #expect(stats.length == 0)
        try await waitUntil("the applier waits on the lock") {
            try database.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") == "1"
        }
        #expect(try database.sql("SELECT status FROM runs WHERE id = '\(n("a"))'") == "QUEUED")
        #expect(try database.sql("SELECT count(*) FROM expiry_events") == "0")

        server.kill()
        await client.close()
        locker.send("COMMIT;")
        locker.end()
        try server.launch()
        client = try await server.connect()

        try await waitExpired(client, n("a"))
        try await subscriber.waitFor(1)
        // Once every outbox is empty, the log holds all there will be: one event.
        try await waitUntil("every outbox is empty") { try Self.outboxesEmpty(redis) }
        #expect(try database.sql("SELECT count(*) FROM expiry_events WHERE run_id = '\(n("a"))'") == "1")
        #expect(subscriber.events.withLock { $0.map { $0.runID } } == [n("a")])
        await subscriber.cancel()
        await client.close()
    }

    @Test func theSurvivorTakesTheExpiryLeasesOverFromAKilledHolderAndExpiresOnce() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let holder = try Self.launched(redis, database)
        defer { holder.kill() }
        let holderClient = try await holder.connect()
        let held = try await waitFor("one instance holding every lease") {
            let held = try Self.leaseHolders(redis)
            return held.allSatisfy({ $0 != nil }) && Set(held).count == 1 ? held : nil
        }
        let holderID = try #require(held.first ?? nil)

        let survivor = try Self.launched(redis, database)
        defer { survivor.kill() }
        let client = try await survivor.connect()
        // The holder renews; the survivor cannot take a lease that is held.
        #expect(try Self.leaseHolders(redis).allSatisfy { $0 == holderID })
        let n = Names()
        let subscriber = try await Subscriber(survivor.address, filter: ExpiryFilter(environmentID: n("env")))

        holder.kill()
        await holderClient.close()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("late", ttl: "1s"))))
        // The lease lasts 5 s after the holder's last renewal; then the survivor takes every shard.
        try await waitExpired(client, n("late"))
        try await waitUntil("the survivor holds every lease") {
            try Self.leaseHolders(redis).allSatisfy { $0 != nil && $0 != holderID }
        }
        try await subscriber.waitFor(1)
        try await waitUntil("every outbox is empty") { try Self.outboxesEmpty(redis) }
        #expect(try database.sql("SELECT count(*) FROM expiry_events WHERE run_id = '\(n("late"))'") == "1")
        #expect(subscriber.events.withLock { $0.map { $0.runID } } == [n("late")])
        await subscriber.cancel()
        await client.close()
    }

    @Test func twoInstancesApplyingExpiriesAtOnceNeverMakeASubscriberSkipACursor() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let first = try Self.launched(redis, database)
        defer { first.kill() }
        let second = try Self.launched(redis, database)
        defer { second.kill() }
        let clients = [try await first.connect(), try await second.connect()]
        // Both instances expire: the leases are split between them. When one
        // took them all, the odd shards' leases are freed: the instance holding
        // nothing asks Redis at every timer and takes them, the holder renews
        // only every third of a lease.
        try await waitUntil("the leases split between the two instances", every: .milliseconds(300)) {
            let held = try Self.leaseHolders(redis)
            if Set(held.compactMap { $0 }).count == 2 { return true }
            if held.allSatisfy({ $0 != nil }) {
                for shard in stride(from: 1, to: 16, by: 2) { try redis.cli("DEL", "{rq\(shard)}:ttllease") }
            }
            return false
        }

        let n = Names()
        let subscribers = [try await Subscriber(first.address, filter: ExpiryFilter(orgID: n("org"))),
                           try await Subscriber(second.address, filter: ExpiryFilter(orgID: n("org")))]
        // 3000 runs over 32 environments (most shards), deadlines spread over
        // 2 s, enqueued half through each instance.
        let total = 3000
        let due = nowMs() + 1500
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
        for subscriber in subscribers { try await subscriber.waitFor(total) }
        try await waitUntil("every outbox is empty") { try Self.outboxesEmpty(redis) }

        let log = try database.sql( "SELECT cursor || ' ' || run_id FROM expiry_events ORDER BY cursor").split(separator: "\n").map {
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
