import Foundation
import PostgresDriver
import RunQueueClient
import RunQueueCore
import RunQueueServer
import RunQueueStorage
import Testing
import TestSupport
import UVLoop

/// The TTL system end to end: expiry in Redis, the EXPIRED row and its
/// event in PostgreSQL, and the race with dequeue.
@Suite(.serialized) struct ExpiryTests {
    typealias Names = QueueEngineTests.Names

    static func tool(_ arguments: [String]) -> String { (try? runTool(arguments))?.output ?? "" }

    static func sql(_ query: String) -> String { tool(["psql", TestServices.databaseURL, "-tAqc", query]) }

    /// Expiry leases left by servers other tests killed would hold shards for a few seconds.
    static func clearLeases() {
        for shard in 0..<16 { _ = tool(["redis-cli", "-u", TestServices.redisURL, "DEL", "{rq\(shard)}:ttllease"]) }
    }

    static func started(_ configure: @escaping (inout ServerConfig) -> Void = { _ in }) async throws -> (TestServer, RunQueueConnection) {
        clearLeases()
        return try await QueueEngineTests.started {
            $0.ttlPollIntervalMs = 200
            configure(&$0)
        }
    }

    func events(_ runID: String) -> Int { Int(Self.sql("SELECT count(*) FROM expiry_events WHERE run_id = '\(runID)'")) ?? -1 }

    func getRun(_ client: RunQueueConnection, _ id: String) async throws -> RunRecord? {
        guard case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: id))) else { return nil }
        return r.run
    }

    func length(_ client: RunQueueConnection, _ env: String) async throws -> UInt64 {
        guard case .queueStats(let s)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: env))) else { return .max }
        return s.length
    }

    @Test func aQueuedRunWithTTLBecomesExpiredWithinBoundAndLeavesRedis() async throws {
        let (test, client) = try await Self.started { $0.ttlPollIntervalMs = 1000 }
        let n = Names()
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        #expect(e.created && e.expiresAtMs > 0)
        let start = ContinuousClock.now
        var record: RunRecord?
        while ContinuousClock.now - start < .milliseconds(2500) {
            record = try await getRun(client, n("a"))
            if record?.status == .expired { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = ContinuousClock.now - start
        #expect(record?.status == .expired)
        #expect(elapsed < .milliseconds(1500), "expired after \(elapsed)")
        #expect((record?.expiredAtMs ?? 0) >= e.expiresAtMs)
        #expect(try await length(client, n("env")) == 0)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        #expect(events(n("a")) == 1)
        let row = Self.sql("SELECT queue || ',' || ttl || ',' || expires_at FROM expiry_events WHERE run_id = '\(n("a"))'")
        #expect(row == "q,1s,\(e.expiresAtMs)")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aDelayedRunsTTLStartsWhenItComesDue() async throws {
        let (test, client) = try await Self.started()
        let n = Names()
        let due = Int64(Date().timeIntervalSince1970 * 1000) + 1500
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", timestamp: due, ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        // deadline = max(enqueue time, timestamp_ms) + ttl
        #expect(e.expiresAtMs == due + 1000)
        // Past enqueue time + ttl, before the deadline: still queued.
        try await Task.sleep(for: .milliseconds(1800))
        #expect(try await getRun(client, n("a"))?.status == .queued)
        var status: RunStatus?
        for _ in 0..<100 {
            status = try await getRun(client, n("a"))?.status
            if status == .expired { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(status == .expired)
        #expect(events(n("a")) == 1)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aDequeuedRunNeverExpires() async throws {
        let (test, client) = try await Self.started()
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        _ = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID, retryAtMs: 1,
                                                    keepAttempt: true, attempt: m.attempt)))
        try await Task.sleep(for: .milliseconds(1600))
        let record = try #require(try await getRun(client, n("a")))
        #expect(record.status == .queued)
        #expect(try await client.dequeue(n("wq")).map(\.runID) == [n("a")])
        #expect(events(n("a")) == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func expiryRacingDequeueDeliversOrExpiresEachRunExactlyOnce() async throws {
        let (test, client) = try await Self.started { $0.ttlBatchSize = 7 }
        let n = Names()
        let count = 200
        let runs = (0..<count).map { n.run("r\($0)", ttl: "1s") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
        // Consumers take a few runs at a time around the deadline.
        try await Task.sleep(for: .milliseconds(900))
        var delivered: [String] = []
        let until = ContinuousClock.now + .milliseconds(400)
        while ContinuousClock.now < until {
            guard case .dequeue(let r)? = try await client.call(.dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 3, waitMs: 0, leaseMs: 0)))
            else { break }
            for m in r.messages {
                delivered.append(m.runID)
                _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
            }
        }
        // Everything left expires.
        var statuses: [String: RunStatus] = [:]
        for _ in 0..<100 {
            statuses = [:]
            for run in runs { statuses[run.runID] = try await getRun(client, run.runID)?.status }
            if statuses.values.allSatisfy({ $0 == .completed || $0 == .expired }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let expired = Set(statuses.filter { $0.value == .expired }.keys)
        let completed = Set(statuses.filter { $0.value == .completed }.keys)
        #expect(expired.count + completed.count == count)
        #expect(completed == Set(delivered))
        #expect(Set(delivered).count == delivered.count)
        #expect(expired.isDisjoint(with: delivered))
        let prefix = n("r")
        let eventCount = Int(Self.sql("SELECT count(*) FROM expiry_events WHERE run_id LIKE '\(prefix)%'")) ?? -1
        let eventRuns = Int(Self.sql("SELECT count(DISTINCT run_id) FROM expiry_events WHERE run_id LIKE '\(prefix)%'")) ?? -1
        #expect(eventCount == expired.count && eventRuns == expired.count)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func replayingAnExpiryEntryAppendsNoSecondEvent() async throws {
        let (test, client) = try await Self.started { $0.ttlSystemDisabled = true }
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1h"))))
        let loop = try EventLoop()
        let url = TestServices.databaseURL
        let (writer, reader) = try await loop.submit {
            (try PostgresConnection(loop: loop, url: url), try PostgresConnection(loop: loop, url: url))
        }
        try await writer.connect()
        try await reader.connect()
        let records = try await loop.submit { RunRecords(loop: loop, writer: writer, reader: reader) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let entry = OutboxEntry(id: "\(now)-0", op: .expired, runID: n("a"), attempt: 0, timeMs: now)
        for _ in 0..<3 {
            let result: Result<Void, QueueStoreError> = await withCheckedContinuation { continuation in
                loop.execute { records.apply([entry]) { continuation.resume(returning: $0) } }
            }
            try result.get()
        }
        // A later entry for the same run (a replay from another server) changes nothing either.
        let later = OutboxEntry(id: "\(now + 5)-3", op: .expired, runID: n("a"), attempt: 0, timeMs: now + 5)
        let result: Result<Void, QueueStoreError> = await withCheckedContinuation { continuation in
            loop.execute { records.apply([later, entry]) { continuation.resume(returning: $0) } }
        }
        try result.get()
        #expect(events(n("a")) == 1)
        let record = try #require(try await getRun(client, n("a")))
        #expect(record.status == .expired && record.expiredAtMs == now)
        await writer.close()
        await reader.close()
        _ = loop.shutdown()
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func withTheTTLSystemDisabledRunsPastTheirDeadlineStillDequeue() async throws {
        let (test, client) = try await Self.started { $0.ttlSystemDisabled = true }
        let n = Names()
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        #expect(e.expiresAtMs > 0)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await getRun(client, n("a"))?.status == .queued)
        #expect(try await client.dequeue(n("wq")).map(\.runID) == [n("a")])
        #expect(events(n("a")) == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func consumersDisabledArmsButDoesNotExpireAndAnotherInstanceDoes() async throws {
        let (quiet, quietClient) = try await Self.started { $0.ttlConsumersDisabled = true }
        let n = Names()
        _ = try await quietClient.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s"))))
        try await Task.sleep(for: .milliseconds(1400))
        #expect(try await getRun(quietClient, n("a"))?.status == .queued)
        let (active, activeClient) = try await Self.started()
        var status: RunStatus?
        for _ in 0..<60 {
            status = try await getRun(activeClient, n("a"))?.status
            if status == .expired { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(status == .expired)
        #expect(events(n("a")) == 1)
        await quietClient.close()
        await activeClient.close()
        #expect(await quiet.server.stop() == 0)
        #expect(await active.server.stop() == 0)
    }

    @Test func aDeadlineArmedOnAnotherInstanceWakesTheLeaseHolder() async throws {
        // The active instance polls only every 10 s: without the announcement
        // on the wake channel it would find the run that late.
        let (active, activeClient) = try await Self.started { $0.ttlPollIntervalMs = 10_000 }
        let (quiet, quietClient) = try await Self.started { $0.ttlConsumersDisabled = true }
        let n = Names()
        // The active instance takes its shard leases on its first timer round.
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        _ = try await quietClient.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s"))))
        var status: RunStatus?
        for _ in 0..<100 {
            status = try await getRun(activeClient, n("a"))?.status
            if status == .expired { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(status == .expired)
        #expect(ContinuousClock.now - start < .seconds(4))
        await quietClient.close()
        await activeClient.close()
        #expect(await quiet.server.stop() == 0)
        #expect(await active.server.stop() == 0)
    }

    @Test func twoInstancesExpireEachRunOnceAndTheSurvivorTakesOver() async throws {
        let (first, firstClient) = try await Self.started()
        let (second, secondClient) = try await Self.started()
        let n = Names()
        // Several environments, so several shards (and both instances' timers) are involved.
        let runs = (0..<60).map { n.run("r\($0)", env: "env\($0 % 6)", ttl: "1s") }
        _ = try await firstClient.call(.enqueueBatch(EnqueueBatchRequest(runs: Array(runs.prefix(30)))))
        _ = try await secondClient.call(.enqueueBatch(EnqueueBatchRequest(runs: Array(runs.suffix(30)))))
        func allExpired(_ client: RunQueueConnection, _ runs: [RunDescriptor]) async throws -> Bool {
            for _ in 0..<80 {
                var done = true
                for run in runs where try await getRun(client, run.runID)?.status != .expired { done = false; break }
                if done { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        #expect(try await allExpired(secondClient, runs))
        let prefix = n("r")
        #expect(Self.sql("SELECT count(*) || ',' || count(DISTINCT run_id) FROM expiry_events WHERE run_id LIKE '\(prefix)%'") == "60,60")
        // The first instance stops (its leases are given back): the second expires everything from now on.
        await firstClient.close()
        #expect(await first.server.stop() == 0)
        let later = (0..<12).map { n.run("later\($0)", env: "env\($0 % 6)", ttl: "1s") }
        _ = try await secondClient.call(.enqueueBatch(EnqueueBatchRequest(runs: later)))
        #expect(try await allExpired(secondClient, later))
        await secondClient.close()
        #expect(await second.server.stop() == 0)
    }

    @Test func theTTLShardCountMustMatchTheQueueShardCount() throws {
        #expect(throws: ConfigError.self) {
            _ = try ServerConfig.load(environment: ["RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT": "8"], arguments: [])
        }
        let same = try ServerConfig.load(environment: ["RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT": "16", "RUN_ENGINE_TTL_SYSTEM_BATCH_SIZE": "50",
                                                       "RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS": "250", "RUN_ENGINE_TTL_CONSUMERS_DISABLED": "true"],
                                         arguments: [])
        #expect(same.ttlShardCount == 16 && same.ttlBatchSize == 50 && same.ttlPollIntervalMs == 250 && same.ttlConsumersDisabled)
        #expect(!same.ttlSystemDisabled)
        let flags = try ServerConfig.load(environment: [:], arguments: ["--shard-count", "8", "--ttl-shard-count", "8", "--ttl-system-disabled", "1"])
        #expect(flags.ttlShardCount == 8 && flags.ttlSystemDisabled)
        #expect(throws: ConfigError.self) {
            _ = try ServerConfig.load(environment: ["RUN_ENGINE_TTL_SYSTEM_DISABLED": "maybe"], arguments: [])
        }
    }
}
