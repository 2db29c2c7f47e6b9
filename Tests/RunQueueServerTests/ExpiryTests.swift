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
@Suite(.serialized, .tags(.integration), .needsServices) struct ExpiryTests {

    /// A ready server whose expiry timers poll every 200 ms.
    static func started(stack: TestStack? = nil, _ configure: @escaping (inout ServerConfig) -> Void = { _ in }) async throws
        -> (TestServer, RunQueueConnection) {
        try await TestServer.started(stack: stack) {
            $0.ttlPollIntervalMs = 200
            configure(&$0)
        }
    }

    func events(_ test: TestServer, _ runID: String) throws -> Int {
        Int(try test.sql("SELECT count(*) FROM expiry_events WHERE run_id = '\(runID)'")) ?? -1
    }

    func waitForStatus(_ client: RunQueueConnection, _ runID: String, _ status: RunStatus) async throws -> RunRecord {
        try await waitFor("\(runID) to be \(status)") {
            let record = try await getRun(client, runID)
            return record?.status == status ? record : nil
        }
    }

    func getRun(_ client: RunQueueConnection, _ id: String) async throws -> RunRecord? {
        guard case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: id))) else { return nil }
        return r.run
    }

    func length(_ client: RunQueueConnection, _ env: String) async throws -> UInt64 {
        guard case .queueStats(let s)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: env))) else { return .max }
        return s.length
    }

    @Test func aQueuedRunWithTTLBecomesExpiredAndLeavesRedis() async throws {
        let (test, client) = try await Self.started { $0.ttlPollIntervalMs = 1000 }
        let n = Names()
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        #expect(e.created && e.expiresAtMs > 0)
        let record = try await waitForStatus(client, n("a"), .expired)
        #expect(record.expiredAtMs >= e.expiresAtMs)
        #expect(try await length(client, n("env")) == 0)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        #expect(try events(test, n("a")) == 1)
        let row = try test.sql("SELECT queue || ',' || ttl || ',' || expires_at FROM expiry_events WHERE run_id = '\(n("a"))'")
        #expect(row == "q,1s,\(e.expiresAtMs)")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aDelayedRunsTTLStartsWhenItComesDue() async throws {
        let (test, client) = try await Self.started()
        let n = Names()
        let due = nowMs() + 1500
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", timestamp: due, ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        // deadline = max(enqueue time, timestamp_ms) + ttl
        #expect(e.expiresAtMs == due + 1000)
        // Expired at its deadline, not at enqueue time + ttl.
        let record = try await waitForStatus(client, n("a"), .expired)
        #expect(record.expiredAtMs >= due + 1000)
        #expect(try events(test, n("a")) == 1)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aDequeuedRunNeverExpires() async throws {
        let (test, client) = try await Self.started()
        let n = Names()
        // Long enough that a busy machine dequeues it before its deadline.
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "5s"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        _ = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID, retryAtMs: 1,
                                                    keepAttempt: true, attempt: m.attempt)))
        // A sentinel in the same environment (so the same shard) with a later
        // deadline: once it expired, the expiry pass has gone past a's deadline.
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("sentinel", worker: "other", ttl: "5s"))))
        _ = try await waitForStatus(client, n("sentinel"), .expired)
        let record = try #require(try await getRun(client, n("a")))
        #expect(record.status == .queued)
        #expect(try await client.dequeue(n("wq")).map(\.runID) == [n("a")])
        #expect(try events(test, n("a")) == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func expiryRacingDequeueDeliversOrExpiresEachRunExactlyOnce() async throws {
        let (test, client) = try await Self.started { $0.ttlBatchSize = 7 }
        let n = Names()
        let count = 200
        let runs = (0..<count).map { n.run("r\($0)", ttl: "1s") }
        guard case .enqueueBatch(let batch)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs))) else {
            Issue.record("batch"); return
        }
        // Consumers take a few runs at a time around the deadline.
        let deadline = batch.results.map(\.expiresAtMs).min() ?? 0
        try await waitUntil("100 ms before the deadline", every: .milliseconds(5)) { nowMs() >= deadline - 100 }
        var delivered: [String] = []
        while nowMs() < deadline + 300 {
            guard case .dequeue(let r)? = try await client.call(.dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 3, waitMs: 0, leaseMs: 0)))
            else { break }
            for m in r.messages {
                delivered.append(m.runID)
                _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
            }
        }
        // Everything left expires.
        var statuses: [String: RunStatus] = [:]
        try await waitUntil("every run completed or expired") {
            statuses = [:]
            for run in runs { statuses[run.runID] = try await getRun(client, run.runID)?.status }
            return statuses.values.allSatisfy { $0 == .completed || $0 == .expired }
        }
        let expired = Set(statuses.filter { $0.value == .expired }.keys)
        let completed = Set(statuses.filter { $0.value == .completed }.keys)
        #expect(expired.count + completed.count == count)
        #expect(completed == Set(delivered))
        #expect(Set(delivered).count == delivered.count)
        #expect(expired.isDisjoint(with: delivered))
        let prefix = n("r")
        let eventCount = Int(try test.sql("SELECT count(*) FROM expiry_events WHERE run_id LIKE '\(prefix)%'")) ?? -1
        let eventRuns = Int(try test.sql("SELECT count(DISTINCT run_id) FROM expiry_events WHERE run_id LIKE '\(prefix)%'")) ?? -1
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
        let url = try #require(test.stack).databaseURL
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
        #expect(try events(test, n("a")) == 1)
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
        try await waitUntil("the run's deadline passed") { nowMs() > e.expiresAtMs + 300 }
        #expect(try await getRun(client, n("a"))?.status == .queued)
        #expect(try await client.dequeue(n("wq")).map(\.runID) == [n("a")])
        #expect(try events(test, n("a")) == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func consumersDisabledArmsButDoesNotExpireAndAnotherInstanceDoes() async throws {
        let (quiet, quietClient) = try await Self.started { $0.ttlConsumersDisabled = true }
        let n = Names()
        guard case .enqueue(let e)? = try await quietClient.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1s")))) else {
            Issue.record("enqueue"); return
        }
        // Past the deadline by more than the poll interval an expiring instance would use.
        try await waitUntil("the run's deadline passed") { nowMs() > e.expiresAtMs + 400 }
        #expect(try await getRun(quietClient, n("a"))?.status == .queued)
        let (active, activeClient) = try await Self.started(stack: quiet.stack)
        _ = try await waitForStatus(activeClient, n("a"), .expired)
        #expect(try events(quiet, n("a")) == 1)
        await quietClient.close()
        await activeClient.close()
        #expect(await quiet.server.stop() == 0)
        #expect(await active.server.stop() == 0)
    }

    @Test func aDeadlineArmedOnAnotherInstanceWakesTheLeaseHolder() async throws {
        // The active instance polls only every 10 minutes: without the
        // announcement on the wake channel the run would not expire in this test.
        let (active, activeClient) = try await Self.started { $0.ttlPollIntervalMs = 600_000 }
        let stack = try #require(active.stack)
        let (quiet, quietClient) = try await Self.started(stack: stack) { $0.ttlConsumersDisabled = true }
        let n = Names()
        // Shard 0's timer runs first, at start: the active instance holds its lease.
        let shards = ShardMap()
        let env = try #require((0..<10_000).map { "env\($0)" }.first { shards.shard(forEnvironment: n($0)) == 0 })
        try await waitUntil("the active instance holds shard 0's expiry lease") { try !stack.redis.cli("GET", "{rq0}:ttllease").isEmpty }
        _ = try await quietClient.call(.enqueue(EnqueueRequest(run: n.run("a", env: env, ttl: "1s"))))
        _ = try await waitForStatus(activeClient, n("a"), .expired)
        await quietClient.close()
        await activeClient.close()
        #expect(await quiet.server.stop() == 0)
        #expect(await active.server.stop() == 0)
    }

    @Test func twoInstancesExpireEachRunOnceAndTheSurvivorTakesOver() async throws {
        let (first, firstClient) = try await Self.started()
        let (second, secondClient) = try await Self.started(stack: first.stack)
        let n = Names()
        // Several environments, so several shards (and both instances' timers) are involved.
        let runs = (0..<60).map { n.run("r\($0)", env: "env\($0 % 6)", ttl: "1s") }
        _ = try await firstClient.call(.enqueueBatch(EnqueueBatchRequest(runs: Array(runs.prefix(30)))))
        _ = try await secondClient.call(.enqueueBatch(EnqueueBatchRequest(runs: Array(runs.suffix(30)))))
        func allExpired(_ client: RunQueueConnection, _ runs: [RunDescriptor]) async throws -> Bool {
            try await waitUntil("\(runs.count) runs expired") {
                for run in runs where try await getRun(client, run.runID)?.status != .expired { return false }
                return true
            }
            return true
        }
        #expect(try await allExpired(secondClient, runs))
        let prefix = n("r")
        #expect(try second.sql("SELECT count(*) || ',' || count(DISTINCT run_id) FROM expiry_events WHERE run_id LIKE '\(prefix)%'") == "60,60")
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
