import Foundation
import PostgresDriver
import RunQueueClient
import RunQueueCore
import RunQueueServer
import RunQueueStorage
import Testing
import TestSupport
import UVLoop

/// The PostgreSQL record and its consistency with Redis, end to end.
@Suite(.tags(.integration), .needsServices) struct DurabilityTests {

    func getRun(_ client: RunQueueConnection, _ id: String) async throws -> RunRecord? {
        do {
            guard case .getRun(let r)? = try await client.call(.getRun(GetRunRequest(runID: id))) else { return nil }
            return r.run
        } catch let error where error.code == .notFound {
            return nil
        }
    }

    /// Polls GetRun until `predicate` holds (DEQUEUED is written behind).
    func eventually(_ client: RunQueueConnection, _ id: String, _ predicate: @escaping (RunRecord) -> Bool) async throws -> RunRecord? {
        try await waitFor("\(id)'s record to change") {
            guard let r = try await getRun(client, id), predicate(r) else { return nil }
            return r
        }
    }

    /// Waits until every outbox entry of the server's own Redis is applied.
    func outboxApplied(_ test: TestServer) async throws {
        let port = try #require(test.stack).redis.port
        try await waitUntil("the outbox is empty") { try outboxBacklog(redisPort: port) == (0, 0) }
    }

    @Test func theRecordFollowsTheRunAndAckAnswersAfterItIsStored() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        #expect(try await getRun(client, n("a")) == nil)
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a", ttl: "1h"))))
        let queued = try #require(try await getRun(client, n("a")))
        #expect(queued.status == .queued)
        #expect(queued.ttl == "1h" && queued.expiresAtMs > 0)
        #expect(queued.queue == "q" && queued.workerQueue == n("wq") && queued.environmentType == .production)
        let m = try #require(try await client.dequeue(n("wq")).first)
        let dequeued = try await eventually(client, n("a")) { $0.status == .dequeued }
        #expect(dequeued?.status == .dequeued)
        _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        // Right after the answer, without waiting.
        let done = try #require(try await getRun(client, n("a")))
        #expect(done.status == .completed)
        #expect(done.completedAtMs > 0)
        // A finished run is never queued again.
        guard case .enqueue(let again)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a")))) else { Issue.record("enqueue"); return }
        #expect(!again.created)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// An Ack answers at the commit of its row, while the run's finishing
    /// mark is still in Redis: right after it, an unfenced repeat answers
    /// acked=false (not in flight) and a retry fenced at the same attempt
    /// answers acked=true, as the first call did.
    @Test func rightAfterAnAckAnUnfencedRepeatIsFalseAndAFencedRetryTrue() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        let answers = await client.pipeline([
            .ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)),
            .ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: nil)),
            .ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)),
        ])
        let acked = answers.map { answer -> Bool? in
            if case .success(.ack(let a)?) = answer.result { a.acked } else { nil }
        }
        #expect(acked == [true, false, true])
        #expect(try await getRun(client, n("a"))?.status == .completed)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aLateNackAfterAckChangesNothing() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        let late = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID, retryAtMs: 0,
                                                           keepAttempt: false, attempt: m.attempt)))
        #expect(late == .nack(NackResponse(requeued: false, attempt: 0, deadLettered: false)))
        try await outboxApplied(test)
        let record = try #require(try await getRun(client, n("a")))
        #expect(record.status == .completed && record.attempt == 0)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func nackDeadLetterAndRedriveAreRecorded() async throws {
        let (test, client) = try await TestServer.started { $0.queue.backoff = NackBackoff(maxAttempts: 2) }
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        for expected in 1...2 {
            let m = try #require(try await client.dequeue(n("wq"), wait: 3000).first)
            guard case .nack(let nack)? = try await client.call(.nack(NackRequest(
                runID: m.runID, environmentID: m.environmentID, retryAtMs: 1, keepAttempt: false, attempt: m.attempt))) else {
                Issue.record("nack"); return
            }
            #expect(nack.attempt == UInt32(expected))
            let record = try #require(try await getRun(client, n("a")))
            #expect(record.attempt == UInt32(expected))
            #expect(record.status == (expected == 2 ? .deadLettered : .queued))
        }
        #expect(try await client.dequeue(n("wq")).isEmpty)
        do {
            _ = try await client.call(.redrive(RedriveRequest(runID: n("a"), environmentID: n("other"))))
            Issue.record("redrive from another environment")
        } catch {
            #expect(error.code == .failedPrecondition)
        }
        #expect(try await client.call(.redrive(RedriveRequest(runID: n("a"), environmentID: n("env")))) == .redrive(RedriveResponse(requeued: true)))
        let record = try #require(try await getRun(client, n("a")))
        #expect(record.status == .queued && record.attempt == 0)
        let back = try await client.dequeue(n("wq"))
        #expect(back.map(\.runID) == [n("a")] && back.first?.attempt == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// A Redrive whose row update committed and whose Redis step failed
    /// leaves the row QUEUED and the run in no Redis structure (the state is
    /// made here with the same UPDATE): its retry adds the run and answers
    /// as the first call would have.
    @Test func aRedriveRetryAfterItsRedisStepFailedQueuesTheRunOnce() async throws {
        let (test, client) = try await TestServer.started {
            $0.queue.backoff = NackBackoff(maxAttempts: 1)
            $0.reconcileIntervalMs = 3_600_000
        }
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        guard case .nack(let nack)? = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        else { Issue.record("nack"); return }
        #expect(nack.deadLettered)
        try await outboxApplied(test)
        try test.sql("UPDATE runs SET status = 'QUEUED', attempt = 0, ttl = '', expires_at = NULL WHERE id = '\(n("a"))' AND status = 'DEAD_LETTERED'")
        #expect(try await client.dequeue(n("wq")).isEmpty)
        let retry = try await client.call(.redrive(RedriveRequest(runID: n("a"), environmentID: n("env"))))
        #expect(retry == .redrive(RedriveResponse(requeued: true)))
        let back = try await client.dequeue(n("wq"))
        #expect(back.map(\.runID) == [n("a")] && back.first?.attempt == 0)
        // In flight now: not dead-lettered, and not added a second time.
        do {
            _ = try await client.call(.redrive(RedriveRequest(runID: n("a"), environmentID: n("env"))))
            Issue.record("a redrive of a run in flight was accepted")
        } catch {
            #expect(error.code == .failedPrecondition)
        }
        #expect(try await client.dequeue(n("wq")).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func readMessageFallsBackToTheRowWhenRedisHasNoMessage() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        // A row committed whose Redis step never happened (as when Redis failed after the commit).
        try await insertRow(n, id: "orphan", queue: "jobs/special", concurrencyKey: "tenant:1", databaseURL: try #require(test.stack).databaseURL)
        guard case .readMessage(let read)? = try await client.call(.readMessage(ReadMessageRequest(runID: n("orphan"), environmentID: n("env")))) else {
            Issue.record("read"); return
        }
        #expect(read.source == .postgres)
        #expect(read.message?.queue == "jobs/special")
        #expect(read.message?.concurrencyKey == "tenant:1")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// The rebuild's paging: spans of the id order, active rows only, every
    /// active row exactly once however the finished ones fall between them.
    @Test func activeRunsPagesThroughSpansOfTheIdOrder() async throws {
        let database = try OwnDatabase()
        defer { database.drop() }
        let (test, client) = try await TestServer.started { $0.databaseURL = database.url }
        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<9).map { n.run("r\($0)") })))
        // Complete every third run: finished rows sit between active ones in id order.
        let got = try await client.dequeue(n("wq"), wait: 2000)
        #expect(got.count == 9)
        for m in got where ["r0", "r3", "r6"].map({ n($0) }).contains(m.runID) {
            _ = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
        }
        let loop = try EventLoop()
        let url = database.url
        let (writer, reader) = try await loop.submit { (try PostgresConnection(loop: loop, url: url), try PostgresConnection(loop: loop, url: url)) }
        try await writer.connect()
        try await reader.connect()
        let records = try await loop.submit { RunRecords(loop: loop, writer: writer, reader: reader) }
        // Pages end at a span's end or at a full page, whichever comes first.
        func walk(limit: Int, span: Int) async throws -> (seen: [String], pages: Int) {
            var seen: [String] = []
            var after = ""
            var within: String?
            var pages = 0
            while pages < 20 {
                let (from, inSpan) = (after, within)
                let result: Result<RunRecords.ActivePage, QueueStoreError> = await withCheckedContinuation { c in
                    loop.execute { records.activeRuns(after: from, within: inSpan, limit: limit, span: span) { c.resume(returning: $0) } }
                }
                let page = try result.get()
                seen += page.rows.map(\.run.record.runID)
                guard let next = page.next else { break }
                #expect(page.rows.count <= limit && next > after)
                (after, within) = (next, page.spanEnd)
                pages += 1
            }
            return (seen, pages)
        }
        let active = ["r1", "r2", "r4", "r5", "r7", "r8"].map { n($0) }.sorted()
        let bySpan = try await walk(limit: 100, span: 2)
        #expect(bySpan.seen == active && bySpan.pages == 5)  // 9 rows in spans of 2
        let byLimit = try await walk(limit: 2, span: 100)
        #expect(byLimit.seen == active && byLimit.pages == 3)  // 3 full pages, then no rows left
        await writer.close()
        await reader.close()
        _ = loop.shutdown()
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func theReconcilerQueuesRecordedRunsMissingFromRedis() async throws {
        // Its own Redis and database: the reconciler walks every recent row.
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let configure: (inout ServerConfig) -> Void = {
            $0.reconcileIntervalMs = 200
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        // A first server creates the schema and stops; then a row is
        // committed as if a server died between the commit and Redis.
        let (first, firstClient) = try await TestServer.started(configure)
        await firstClient.close()
        #expect(await first.server.stop() == 0)
        let n = Names()
        try await insertRow(n, id: "orphan", queue: "q", concurrencyKey: "", databaseURL: database.url)
        let (test, client) = try await TestServer.started(configure)
        let got = try await client.dequeue(n("wq"), wait: 5000)
        #expect(got.map(\.runID) == [n("orphan")])
        // A row committed now, after passes already walked past older rows:
        // its turn comes once it is 5 s old (younger ones may still be on
        // their way to Redis).
        try await insertRow(n, id: "fresh", queue: "q", concurrencyKey: "", databaseURL: database.url)
        let fresh = try await waitFor("the fresh row to be queued") {
            let got = try await client.dequeue(n("wq"), wait: 3000)
            return got.isEmpty ? nil : got
        }
        #expect(fresh.map(\.runID) == [n("fresh")])

        // A slow commit: a row whose transaction stays open longer than the
        // 5 s a commit is otherwise given, while passes run every 200 ms. The
        // watermark stays behind the open transaction, so the row is found
        // once it commits.
        let writer = try PsqlSession(database.url, applicationName: "rq_slow_commit")
        let created = nowMs()
        writer.send("""
            BEGIN;
            INSERT INTO runs (id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                              task_identifier, worker_queue, queue_timestamp, created_at, updated_at)
            VALUES ('\(n("slow"))', '\(n("org"))', '\(n("proj"))', '\(n("env"))', 4, 'q', '', 'task', '\(n("wq"))', \(created), \(created), \(created));
            """)
        try await waitUntil("the slow transaction holds its row") {
            try database.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rq_slow_commit' AND backend_xid IS NOT NULL") == "1"
        }
        try await waitUntil("passes ran past the row's creation time and its grace") { nowMs() > created + 6_000 }
        writer.send("COMMIT;")
        writer.end()
        let slow = try await waitFor("the slowly committed row to be queued") {
            let got = try await client.dequeue(n("wq"), wait: 3000)
            return got.isEmpty ? nil : got
        }
        #expect(slow.map(\.runID) == [n("slow")])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// Rows committed an hour ago whose runs never reached Redis (their server
    /// died between the commit and Redis and stayed down): the reconciler
    /// walks from its durable watermark, so a restart delivers every one, and
    /// its first pass ends before Dequeue is served.
    @Test func rowsCommittedAnHourBeforeARestartAreDeliveredBeforeTheFirstDequeueAnswers() async throws {
        let stack = try TestStack()
        let configure: (inout ServerConfig) -> Void = {
            $0.rebuildHoldMs = 600_000
            $0.queue.defaultEnvironmentLimit = 1_000_000
        }
        // A first server creates the schema and its watermark, then stops.
        let (first, firstClient) = try await TestServer.started(stack: stack, configure)
        await firstClient.close()
        #expect(await first.server.stop() == 0)
        let n = Names()
        let hourAgo = nowMs() - 3_600_000
        // The watermark as it stood when those rows were committed.
        try stack.database.sql("UPDATE runqueue_meta SET value = lpad('\(hourAgo - 10_000)', 16, '0') || ' ' WHERE key = 'reconcile_watermark'")
        let count = 3000
        try stack.database.sql("""
            INSERT INTO runs (id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                              task_identifier, worker_queue, queue_timestamp, created_at, updated_at)
            SELECT '\(n("r"))' || i, '\(n("org"))', '\(n("proj"))', '\(n("env"))' || (i % 8), 4, 'q', '', 'task', '\(n("wq"))',
                   \(hourAgo), \(hourAgo) + i, \(hourAgo) + i
            FROM generate_series(1, \(count)) AS i
            """)
        let (test, client) = try await TestServer.started(stack: stack, configure)
        var delivered: [String] = []
        while delivered.count < count {
            let got = try await client.dequeue(n("wq"), max: 1000)
            #expect(!got.isEmpty, "a Dequeue answered empty with \(count - delivered.count) runs not delivered")
            if got.isEmpty { break }
            delivered += got.map(\.runID)
        }
        #expect(Set(delivered).count == count && delivered.count == count)
        // The watermark moved on: a later start does not walk these rows again.
        let watermark = try stack.database.sql("SELECT value FROM runqueue_meta WHERE key = 'reconcile_watermark'")
        #expect(watermark > String(format: "%016lld", hourAgo + Int64(count)), "\(watermark)")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// Inserts a QUEUED row directly, as if the server died between the commit and Redis.
    func insertRow(_ n: Names, id: String, queue: String, concurrencyKey: String,
                   databaseURL: String, ageMs: Int64 = 0) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000) - ageMs
        let sql = """
            INSERT INTO runs (id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                              task_identifier, worker_queue, queue_timestamp, created_at, updated_at)
            VALUES ('\(n(id))', '\(n("org"))', '\(n("proj"))', '\(n("env"))', 4, '\(queue)', '\(concurrencyKey)',
                    'task', '\(n("wq"))', \(now), \(now), \(now))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", databaseURL, "-v", "ON_ERROR_STOP=1", "-qc", sql]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    /// RUNQUEUE_BENCHMARK_DISCARD_RECORDS (benchmarks only) runs the cycle
    /// without a record; it is off unless set.
    @Test func theBenchmarkDiscardSettingSkipsTheRecordAndIsOffByDefault() async throws {
        #expect(try ServerConfig.load(environment: [:], arguments: []).benchmarkDiscardRecords == false)
        #expect(try ServerConfig.load(environment: ["RUNQUEUE_BENCHMARK_DISCARD_RECORDS": "1"], arguments: []).benchmarkDiscardRecords)
        let (test, client) = try await TestServer.started { $0.benchmarkDiscardRecords = true }
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        #expect(try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt))) == .ack(AckResponse(acked: true)))
        #expect(try await getRun(client, n("a")) == nil)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// RUNQUEUE_BENCHMARK_DISCARD_RECORDS=applier (benchmarks only) creates
    /// rows first as always but stores no later change.
    @Test func theBenchmarkApplierDiscardSettingCreatesRowsButWritesNoChange() async throws {
        let config = try ServerConfig.load(environment: ["RUNQUEUE_BENCHMARK_DISCARD_RECORDS": "applier"], arguments: [])
        #expect(config.benchmarkDiscardApplier && !config.benchmarkDiscardRecords)
        let (test, client) = try await TestServer.started { $0.benchmarkDiscardApplier = true }
        let n = Names()
        _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
        let m = try #require(try await client.dequeue(n("wq")).first)
        #expect(try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt))) == .ack(AckResponse(acked: true)))
        try await outboxApplied(test)
        #expect(try await getRun(client, n("a"))?.status == .queued)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func withPostgreSQLDownEnqueueAnswersUnavailableAndWritesNothing() async throws {
        let test = try await TestServer.start {
            $0.databaseURL = "postgres://postgres@127.0.0.1:\(TestServices.unusedPort())/postgres"
        }
        let client = try await RunQueueConnection.connect(to: test.address)
        let n = Names()
        try await waitUntil("Redis answers (QueueStats answers from Redis alone)") {
            (try? await client.call(.queueStats(QueueStatsRequest(environmentID: n("env"))))) != nil
        }
        do {
            _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("a"))))
            Issue.record("enqueue succeeded without PostgreSQL")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("PostgreSQL"))
        }
        guard case .queueStats(let stats)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) else {
            Issue.record("stats"); return
        }
        #expect(stats.length == 0)
        #expect(try await client.dequeue(n("wq")).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }
}
