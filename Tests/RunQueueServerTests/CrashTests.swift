import Foundation
import Synchronization
import RunQueueClient
import RunQueueCore
import RunQueueServer
import Testing
import TestSupport

/// kill -9 of Redis and of the server: nothing lost, nothing done twice.
@Suite(.tags(.integration), .needsServices) struct CrashTests {

    @Test func losingRedisRebuildsItFromPostgreSQLWithoutDuplicates() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let (test, client) = try await TestServer.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        let n = Names()
        let runs = (0..<5).map { n.run("r\($0)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
        let first = try await client.dequeue(n("wq"), wait: 2000)
        #expect(first.count == 5)
        // Ack two, leave three in flight; wait until PostgreSQL shows them dequeued.
        for m in first.prefix(2) {
            _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        }
        try await waitUntil("PostgreSQL shows 2 runs completed and 3 dequeued") {
            try database.sql("SELECT status || ' ' || count(*) FROM runs GROUP BY status ORDER BY status::text") == "COMPLETED 2\nDEQUEUED 3"
        }
        redis.kill()
        try redis.start()  // empty: everything in Redis is gone
        // The first Dequeue after the loss finds the missing epoch; the shard is
        // rebuilt from PostgreSQL, and the three unfinished runs come back once,
        // without an extra attempt.
        var back: [RunMessage] = []
        try await waitUntil("the three unfinished runs come back") {
            // UNAVAILABLE until the server has reconnected to Redis.
            back += (try? await client.dequeue(n("wq"), wait: 500)) ?? []
            return back.count >= 3
        }
        #expect(Set(back.map(\.runID)) == Set(first.dropFirst(2).map(\.runID)))
        #expect(back.count == 3)
        #expect(back.allSatisfy { $0.attempt == 0 })
        #expect(try await client.dequeue(n("wq"), wait: 300).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// What the clients of the kill -9 test learnt, shared by their tasks.
    final class Ledger: Sendable {
        struct State {
            var answeredBatches: Set<Int> = []
            /// Runs whose Ack answered acked = true, with the attempt acked.
            var acked: [String: UInt32] = [:]
            /// Runs whose Ack got no answer (sent as the server died): done or not.
            var unknown: Set<String> = []
            var finished = 0
            /// Acks and nacks sent and not answered yet.
            var inFlight = 0
            var killed = false
            var errors: [String] = []
        }
        let state = Mutex(State())
        var killed: Bool { state.withLock { $0.killed } }
    }

    /// One worker loop: Dequeue, then for each run (all at once) ack 80 %,
    /// nack 15 % (due again at once), and leave 5 % to lapse.
    static func work(_ client: RunQueueConnection, _ worker: String, lease: UInt32, ledger: Ledger, until done: @escaping @Sendable () -> Bool) async {
        while !done() {
            let messages: [RunMessage]
            do {
                guard case .dequeue(let r)? = try await client.call(.dequeue(DequeueRequest(workerQueue: worker, maxRuns: 100, waitMs: 200, leaseMs: lease)))
                else { continue }
                messages = r.messages
            } catch {
                if !ledger.killed { ledger.state.withLock { $0.errors.append("dequeue: \(error)") } }
                return
            }
            await withTaskGroup(of: Void.self) { group in
                for m in messages {
                    let choice = abs((m.runID + String(m.attempt)).hashValue) % 100
                    guard choice < 95 else { continue }
                    ledger.state.withLock { $0.inFlight += 1 }
                    group.addTask {
                        defer { ledger.state.withLock { $0.inFlight -= 1 } }
                        do {
                            if choice < 80 {
                                let answer = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
                                if case .ack(let a)? = answer, a.acked {
                                    ledger.state.withLock {
                                        $0.acked[m.runID] = m.attempt
                                        $0.finished += 1
                                    }
                                }
                            } else {
                                _ = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID, retryAtMs: 1,
                                                                            keepAttempt: false, attempt: m.attempt)))
                            }
                        } catch let error as RunQueueError where error.code == .failedPrecondition {
                            // The lease lapsed first (a busy machine): the run is delivered again, not acked.
                        } catch {
                            ledger.state.withLock {
                                if choice < 80 { $0.unknown.insert(m.runID) }
                                if !$0.killed { $0.errors.append("\(m.runID): \(error)") }
                            }
                        }
                    }
                }
            }
        }
    }

    final class Drain: Sendable {
        let delivered = Mutex<[String: Int]>([:])
        let done = Mutex(false)
    }

    /// After the restart: Dequeue with long leases and ack every run, counting deliveries.
    static func drain(_ client: RunQueueConnection, _ worker: String, _ drain: Drain) async throws {
        while !drain.done.withLock({ $0 }) {
            guard case .dequeue(let r)? = try await client.call(.dequeue(DequeueRequest(workerQueue: worker, maxRuns: 100, waitMs: 300, leaseMs: 60_000)))
            else { continue }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for m in r.messages {
                    drain.delivered.withLock { $0[m.runID, default: 0] += 1 }
                    group.addTask {
                        let answer = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
                        #expect(answer == .ack(AckResponse(acked: true)), "\(m.runID)")
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// kill -9 of the server in the middle of a mixed load of 10,000 runs
    /// (batched enqueues, dequeues, acks, nacks, lapses), then a restart: every
    /// run acked before the kill is COMPLETED at the attempt acked and never
    /// delivered again; every other run is delivered exactly once afterwards
    /// (a run whose ack got no answer at most once: the ack may have landed).
    /// Redis is rebuilt before Dequeue is served: a Dequeue with wait 0 sent
    /// as soon as the server answers gets the run back, not an empty answer.
    @Test func aDequeueAtStartWaitsForTheRebuild() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let configure: (inout ServerConfig) -> Void = {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
            // The default hold (5 s): one pass restores 20,000 runs well within it.
        }
        let n = Names()
        let (first, firstClient) = try await TestServer.started(configure)
        try await Self.enqueueEnoughToRebuildSlowly(firstClient, n)
        await firstClient.close()
        #expect(await first.server.stop() == 0)
        // Redis loses everything while no server runs.
        redis.kill()
        try redis.start()
        let (test, client) = try await TestServer.started(configure)
        let got = try await client.dequeue(n("wq"))
        #expect(got.count == 100)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// 20,000 runs on worker queue n("wq"): enough rows that rebuilding Redis
    /// from them takes a while.
    static func enqueueEnoughToRebuildSlowly(_ client: RunQueueConnection, _ n: Names) async throws {
        for batch in 0..<20 {
            _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<1000).map { n.run("r\(batch * 1000 + $0)") })))
        }
    }

    /// Redis lost while the server runs: the Dequeue whose claim finds it
    /// out waits for the rebuild instead of telling the worker there is nothing.
    @Test func aDequeueThatFindsRedisLostWaitsForTheRebuild() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let (test, client) = try await TestServer.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
            // The default hold (5 s): one pass restores 20,000 runs well within it.
        }
        let n = Names()
        try await Self.enqueueEnoughToRebuildSlowly(client, n)
        redis.kill()
        try redis.start()
        // The server reconnects; then one Dequeue with wait 0.
        // UNAVAILABLE until the server has reconnected to Redis; the first answer counts.
        let got = try await waitFor("a Dequeue answered") { try? await client.dequeue(n("wq")) }
        #expect(got.count == 100)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// DEQUEUED is written behind (OutboxApplier holds D entries so an ack
    /// can supersede them): a server killed while it holds them loses none.
    @Test func aHeldDequeuedEntrySurvivesAKillAndAnAckSupersedesIt() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        // The first server holds D entries far longer than the test runs.
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url, ["RUNQUEUE_DEQUEUED_WRITE_LAG_MS": "600000"])
        try server.launch()
        defer { server.kill() }
        let n = Names()
        var client = try await server.connect()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: [n.run("held"), n.run("acked")])))
        let messages = try await client.dequeue(n("wq"), wait: 2000)
        #expect(messages.count == 2)
        // Killed within the hold time: the D entries were read at most, not written.
        server.kill()
        server.environment["RUNQUEUE_DEQUEUED_WRITE_LAG_MS"] = nil
        let status = { (run: String) throws -> String in try psql(database.url, "SELECT status || ' ' || attempt FROM runs WHERE id = '\(n(run))'") }
        #expect(try status("held") == "QUEUED 0")
        try server.launch()
        client = try await server.connect()
        // The restarted server reads the D entries again and writes them.
        // A first delivery is attempt 0.
        try await waitUntil("the held run is DEQUEUED 0 in PostgreSQL") { try status("held") == "DEQUEUED 0" }
        let acked = try #require(messages.first { $0.runID == n("acked") })
        guard case .ack(let answer)? = try await client.call(.ack(AckRequest(runID: acked.runID, environmentID: acked.environmentID, attempt: acked.attempt))) else {
            Issue.record("ack answered something else")
            return
        }
        #expect(answer.acked)
        #expect(try status("acked") == "COMPLETED 0")
        // The Ack answers at the commit; a pass clears the marks after it.
        try await waitUntil("the outbox is empty") { try outboxBacklog(redisPort: redis.port) == (0, 0) }
        await client.close()
    }

    /// An ack's C entry is written to PostgreSQL without waiting for a pass
    /// to read it back; the stream stays the record: passes still read those
    /// entries, write nothing twice, clear their marks and trim them.
    @Test func entriesWrittenDirectlyAreStillReadBackClearedAndTrimmed() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url)
        try server.launch()
        defer { server.kill() }
        let n = Names()
        let client = try await server.connect()
        let runs = (0..<200).map { n.run("r\($0)", env: "env\($0 % 8)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
        var messages: [RunMessage] = []
        for _ in 0..<10 where messages.count < runs.count {
            messages += try await client.dequeue(n("wq"), wait: 1000)
        }
        #expect(messages.count == runs.count)
        let answers = await client.pipeline(messages.map {
            .ack(AckRequest(runID: $0.runID, environmentID: $0.environmentID, attempt: $0.attempt))
        })
        #expect(answers.allSatisfy { if case .success(.ack(let a)?) = $0.result { a.acked } else { false } })
        // Answered: every row shows it at once, each written once (no DEQUEUED written behind it).
        let rows = try psql(database.url, "SELECT status || ' ' || count(*) FROM runs GROUP BY status")
        #expect(rows == "COMPLETED \(runs.count)")
        try await waitUntil("the outbox is empty") { try outboxBacklog(redisPort: redis.port) == (0, 0) }
        await client.close()
    }

    @Test func aDequeuedEntryIsNotWrittenWhenTheAckComesFirst() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        // Every change to a run row leaves one line in an audit table.
        try psql(database.url, """
            CREATE TABLE IF NOT EXISTS audit (id text, status text);
            """)
        // D entries are held 5 s: the acks below come well within that.
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url, ["RUNQUEUE_DEQUEUED_WRITE_LAG_MS": "5000"])
        try server.launch()
        defer { server.kill() }
        let client = try await server.connect()
        try psql(database.url, """
            CREATE FUNCTION audit_run() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO audit VALUES (NEW.id, NEW.status::text); RETURN NEW; END $$;
            CREATE TRIGGER audit_run AFTER UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION audit_run();
            """)
        let n = Names()
        let runs = (0..<50).map { n.run("r\($0)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
        let messages = try await client.dequeue(n("wq"), wait: 2000)
        #expect(messages.count == 50)
        let answers = await client.pipeline(messages.map { .ack(AckRequest(runID: $0.runID, environmentID: $0.environmentID, attempt: $0.attempt)) })
        #expect(answers.allSatisfy { if case .success(.ack(let a)?) = $0.result { a.acked } else { false } })
        // The outbox empties only once the hold time has passed: the
        // superseded D entries never reach the table.
        try await waitUntil("the outbox is empty", within: .seconds(60)) { try outboxBacklog(redisPort: redis.port) == (0, 0) }
        #expect(try psql(database.url, "SELECT status, count(*) FROM audit GROUP BY status ORDER BY status") == "COMPLETED|50")
        await client.close()
    }

    @Test func killingTheServerMidLoadLosesNothingAndCompletesEachRunOnce() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url,
                                   ["RUNQUEUE_DEFAULT_ENV_CONCURRENCY_LIMIT": "1000000", "RUNQUEUE_MAX_ATTEMPTS": "1000"])
        try server.launch()
        defer { server.kill() }
        let n = Names()
        let total = 10_000, batch = 250, killAfter = 4000
        let batches = (0..<(total / batch)).map { b in
            (0..<batch).map { i in n.run("r\(b * batch + i)", env: "env\(i % 4)") }
        }
        let ledger = Ledger()

        // Phase 1: a producer keeping at most 2,000 runs ahead of the workers,
        // four workers with 2 s leases; kill -9 once 4,000 runs are acked.
        var connections: [RunQueueConnection] = []
        for _ in 0..<5 { connections.append(try await server.connect()) }
        let producer = connections[0]
        let producing = Task {
            for (index, runs) in batches.enumerated() {
                try? await waitUntil("the workers catch up", within: .seconds(120), every: .milliseconds(5)) {
                    ledger.killed || index * batch - ledger.state.withLock({ $0.finished }) <= 2000
                }
                if ledger.killed { return }
                do {
                    guard case .enqueueBatch(let r)? = try await producer.call(.enqueueBatch(EnqueueBatchRequest(runs: runs))),
                          r.results.allSatisfy({ $0.status.code == .ok }) else {
                        ledger.state.withLock { $0.errors.append("batch \(index) not fully accepted") }
                        continue
                    }
                    ledger.state.withLock { _ = $0.answeredBatches.insert(index) }
                } catch {
                    if !ledger.killed { ledger.state.withLock { $0.errors.append("batch \(index): \(error)") } }
                    return
                }
            }
        }
        let workers = connections.dropFirst().map { connection in
            Task { await Self.work(connection, n("wq"), lease: 2000, ledger: ledger) { ledger.killed } }
        }
        // The kill lands while acks and nacks are on the wire.
        try await waitUntil("\(killAfter) runs acked with acks and nacks on the wire", within: .seconds(120), every: .milliseconds(5)) {
            ledger.state.withLock { $0.acked.count >= killAfter && $0.inFlight >= 50 }
        }
        // Flagged first, so the clients count what fails from here on as the kill's doing.
        ledger.state.withLock { $0.killed = true }
        server.kill()
        await producing.value
        for worker in workers { await worker.value }
        for connection in connections { await connection.close() }
        let before = ledger.state.withLock { $0 }
        #expect(before.errors.isEmpty, "\(before.errors.prefix(5))")
        #expect(before.acked.count >= killAfter)

        // Phase 2: restart; the producer resends every batch it had no answer
        // for (the same run ids); workers with long leases ack everything.
        try server.launch()
        connections = []
        for _ in 0..<5 { connections.append(try await server.connect()) }
        for index in batches.indices where !before.answeredBatches.contains(index) {
            guard case .enqueueBatch(let r)? = try await connections[0].call(.enqueueBatch(EnqueueBatchRequest(runs: batches[index]))) else {
                Issue.record("batch \(index) resent: no answer"); continue
            }
            #expect(r.results.allSatisfy { $0.status.code == .ok })
        }
        let drain = Drain()
        let databaseURL = database.url
        let completedInPG: @Sendable () -> Bool = {
            (try? psql(databaseURL, "SELECT count(*) FROM runs WHERE status = 'COMPLETED'")) == String(total)
        }
        let drainers = connections.dropFirst().map { connection in
            Task { try await Self.drain(connection, n("wq"), drain) }
        }
        try await waitUntil("every run COMPLETED in PostgreSQL", within: .seconds(180)) { completedInPG() }
        drain.done.withLock { $0 = true }
        for drainer in drainers { try await drainer.value }

        let after = drain.delivered.withLock { $0 }
        for id in batches.joined().map(\.runID) {
            let count = after[id] ?? 0
            if before.acked[id] != nil {
                #expect(count == 0, "\(id) acked before the kill, delivered \(count) times after")
            } else if before.unknown.contains(id) {
                #expect(count <= 1, "\(id) (ack unanswered at the kill) delivered \(count) times after")
            } else {
                #expect(count == 1, "\(id) delivered \(count) times after the restart")
            }
        }
        // PostgreSQL: every run COMPLETED once, those acked before the kill at the attempt acked.
        #expect(completedInPG())
        var recorded: [String: UInt32] = [:]
        for line in try psql(database.url, "SELECT id || ' ' || attempt FROM runs WHERE status = 'COMPLETED'").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { recorded[String(parts[0])] = UInt32(parts[1]) }
        }
        let wrongAttempts = before.acked.filter { recorded[$0.key] != $0.value }
        #expect(wrongAttempts.isEmpty, "\(wrongAttempts.prefix(5))")
        #expect(try outboxBacklog(redisPort: redis.port) == (0, 0))
        for env in 0..<4 {
            guard case .queueStats(let stats)? = try await connections[0].call(.queueStats(QueueStatsRequest(environmentID: n("env\(env)")))) else {
                Issue.record("stats"); continue
            }
            #expect(stats.length == 0 && stats.inFlight == 0)
        }
        for connection in connections { await connection.close() }
    }

    /// Redis restarted from an older snapshot keeps its epoch; its shards'
    /// sequences are behind what PostgreSQL applied, so those shards are
    /// emptied and rebuilt: no run acked after the snapshot comes back, and
    /// every run created after it is delivered once.
    @Test func aRedisRestartedFromAnOlderSnapshotIsRebuiltWithoutItsStaleRuns() async throws {
        let stack = try TestStack()
        let (test, client) = try await TestServer.started(stack: stack) {
            $0.queue.defaultEnvironmentLimit = 1_000_000
            $0.rebuildHoldMs = 600_000
        }
        let n = Names()
        let before = (0..<20).map { n.run("a\($0)", env: "env\($0 % 2)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: before)))
        let leased = try await client.dequeue(n("wq"), max: 100, lease: 600_000)
        #expect(leased.count == 20)
        try await waitUntil("the outbox is applied") { try outboxBacklog(redisPort: stack.redis.port) == (0, 0) }
        #expect(try stack.redis.cli("SAVE") == "OK")

        // After the snapshot: ten runs acked (PostgreSQL applies their entries), ten created.
        let acked = Array(leased.prefix(10))
        for m in acked {
            #expect(try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt))) == .ack(AckResponse(acked: true)))
        }
        try await waitUntil("the outbox is applied") { try outboxBacklog(redisPort: stack.redis.port) == (0, 0) }
        let after = (0..<10).map { n.run("b\($0)", env: "env\($0 % 2)") }
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: after)))

        // Redis goes back to the snapshot under the running server.
        stack.redis.kill()
        try stack.redis.start()
        var delivered: [String] = []
        try await waitUntil("every run not acked is back") {
            delivered += (try? await client.dequeue(n("wq"), max: 100, lease: 600_000).map(\.runID)) ?? []
            return delivered.count >= 20
        }
        #expect(try await client.dequeue(n("wq"), max: 100).isEmpty)
        #expect(Set(delivered).count == delivered.count, "a run was delivered twice")
        #expect(Set(delivered).isDisjoint(with: acked.map(\.runID)), "a run acked after the snapshot came back")
        #expect(Set(after.map(\.runID)).isSubset(of: Set(delivered)))
        #expect(try stack.database.sql("SELECT count(*) FROM runs WHERE status = 'COMPLETED'") == "10")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func repairReAddsRecordedRunsRedisLacks() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let (test, client) = try await TestServer.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<3).map { n.run("r\($0)") })))
        await client.close()
        #expect(await test.server.stop() == 0)
        redis.kill()
        try redis.start()  // Redis lost everything while no server ran

        func repair() async throws -> ProductProcess.Outcome {
            try await ProductProcess.run(Binaries.runqueue, ["repair", "--json"],
                                         environment: ["RUNQUEUE_REDIS_URL": redis.url, "RUNQUEUE_DATABASE_URL": database.url])
        }
        let first = try await repair()
        #expect(first.status == 0)
        #expect(first.stdout.contains("\"added\":3"), "\(first.stdout)")
        // Twice in a row: the second finds everything present and adds nothing.
        let second = try await repair()
        #expect(second.status == 0)
        #expect(second.stdout.contains("\"added\":0"), "\(second.stdout)")

        // Repaired: a server finds the runs (no rebuild needed) and a second repair adds nothing.
        let (again, client2) = try await TestServer.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        #expect(Set(try await client2.dequeue(n("wq"), wait: 2000).map(\.runID)) == Set((0..<3).map { n("r\($0)") }))
        await client2.close()
        #expect(await again.server.stop() == 0)
    }
}
