import Foundation
import RunQueueClient
import RunQueueCore
import Testing
import TestSupport

/// Redis or PostgreSQL going away under a running server (a child process).
///
/// The outages are made with a TCPProxy between the server and the store:
/// cutting it closes every connection under the server and refuses new ones,
/// which is what the server sees when the store stops, while the store keeps
/// running for the test's own checks (psql, redis-cli). Unlike stopping the
/// store, a cut can also land after PostgreSQL committed a transaction and
/// before the server read the answer, so an apply the server believes failed
/// may in fact be committed and is then applied again: the harder case for
/// "exactly once". Each test has its own redis-server and database: other
/// servers on a shared Redis would drain this server's outbox into their own
/// database.
@Suite(.tags(.integration), .needsServices) struct OutageTests {

    /// The shared PostgreSQL's port (the proxies forward to it).
    static var postgresPort: UInt16 {
        let url = TestServices.databaseURL
        guard let at = url.lastIndex(of: "@") else { return 5432 }
        let hostPort = url[url.index(after: at)...].prefix { $0 != "/" }
        return hostPort.split(separator: ":").last.flatMap { UInt16($0) } ?? 5432
    }

    /// `url` with its port replaced.
    static func url(_ url: String, port: UInt16) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let rest = url[url.index(after: at)...]
        let host = rest.prefix { $0 != ":" && $0 != "/" }
        let path = rest.drop { $0 != "/" }
        return url[...at] + host + ":\(port)" + path
    }

    /// Records every change of a row, to show each outbox entry was applied once.
    static let auditSQL = """
        CREATE TABLE run_audit (n bigserial, id text, new_status run_status, new_attempt int, old_seq bigint, new_seq bigint);
        CREATE FUNCTION audit_runs() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO run_audit (id, new_status, new_attempt, old_seq, new_seq)
            VALUES (NEW.id, NEW.status, NEW.attempt, OLD.last_seq, NEW.last_seq);
            RETURN NEW;
        END $$;
        CREATE TRIGGER audit AFTER UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION audit_runs();
        """

    /// Each run's changes in order, as "STATUS:attempt" joined by ",".
    static func history(_ databaseURL: String) throws -> [String: String] {
        let rows = try psql(databaseURL, "SELECT id || '=' || string_agg(new_status || ':' || new_attempt, ',' ORDER BY n) FROM run_audit GROUP BY id")
        var out: [String: String] = [:]
        for line in rows.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    func ack(_ client: RunQueueConnection, _ m: RunMessage) async -> (Result<Bool, RunQueueError>, Duration) {
        let start = ContinuousClock.now
        do throws(RunQueueError) {
            guard case .ack(let r)? = try await client.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
            else { return (.failure(RunQueueError(.internal, "shape")), ContinuousClock.now - start) }
            return (.success(r.acked), ContinuousClock.now - start)
        } catch {
            return (.failure(error), ContinuousClock.now - start)
        }
    }

    func acks(_ client: RunQueueConnection, _ runs: some Collection<RunMessage>) async -> [String: (Result<Bool, RunQueueError>, Duration)] {
        await withTaskGroup(of: (String, (Result<Bool, RunQueueError>, Duration)).self) { group in
            for m in runs { group.addTask { (m.runID, await ack(client, m)) } }
            var out: [String: (Result<Bool, RunQueueError>, Duration)] = [:]
            for await (id, outcome) in group { out[id] = outcome }
            return out
        }
    }

    func nack(_ client: RunQueueConnection, _ m: RunMessage, retryAtMs: Int64) async -> Result<NackResponse, RunQueueError> {
        do throws(RunQueueError) {
            guard case .nack(let r)? = try await client.call(.nack(NackRequest(runID: m.runID, environmentID: m.environmentID,
                                                                               retryAtMs: retryAtMs, keepAttempt: false, attempt: m.attempt)))
            else { return .failure(RunQueueError(.internal, "shape")) }
            return .success(r)
        } catch {
            return .failure(error)
        }
    }

    @Test func postgreSQLUnreachableMidRunThenBackAppliesEveryPendingEntryOnce() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let proxy = try TCPProxy(upstreamPort: Self.postgresPort)
        defer { proxy.shutdownAll() }
        let server = ServerProcess(redisURL: redis.url, databaseURL: Self.url(database.url, port: proxy.port))
        try server.launch()
        defer { server.kill() }
        let client = try await server.connect()
        try psql(database.url, Self.auditSQL)

        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: (0..<40).map { n.run("r\($0)") })))
        var taken: [RunMessage] = []
        try await waitUntil("40 runs dequeued") {
            taken += try await client.dequeue(n("wq"), wait: 500, lease: 15_000)
            return taken.count >= 40
        }
        #expect(taken.count == 40)
        // DEQUEUED is written behind; the outage starts once PostgreSQL has it.
        try await waitUntil("PostgreSQL shows 40 runs DEQUEUED") {
            try psql(database.url, "SELECT count(*) FROM runs WHERE status = 'DEQUEUED'") == "40" && outboxBacklog(redisPort: redis.port) == (0, 0)
        }

        proxy.cut()
        let acked = taken[0..<15], nacked = taken[15..<25], late = taken[25..<30], lapsing = taken[30..<40]
        let retryAt = Int64(Date().timeIntervalSince1970 * 1000) + 600_000
        async let ackOutcomes = acks(client, acked)
        async let nackOutcomes = withTaskGroup(of: Result<NackResponse, RunQueueError>.self) { group in
            for m in nacked { group.addTask { await nack(client, m, retryAtMs: retryAt) } }
            var out: [Result<NackResponse, RunQueueError>] = []
            for await outcome in group { out.append(outcome) }
            return out
        }
        // Creation needs PostgreSQL: refused, nothing written anywhere.
        do {
            _ = try await client.call(.enqueue(EnqueueRequest(run: n.run("refused"))))
            Issue.record("enqueue succeeded with PostgreSQL unreachable")
        } catch {
            #expect(error.code == .unavailable)
        }
        // The leases (15 s: longer than the writes before the cut take on a
        // busy machine) pass during the outage: lapses are paused, so late
        // acks still complete their runs in Redis, and a retry of an ack still
        // waiting answers as the first call does (still UNAVAILABLE).
        let leasesEnd = taken.map(\.leaseExpiresAtMs).max() ?? 0
        try await waitUntil("the leases passed, and a housekeeping pass after them") { nowMs() > leasesEnd + 1500 }
        guard case .queueStats(let during)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) else {
            Issue.record("stats"); return
        }
        #expect(during.inFlight == 15, "leases past their deadline stay in flight while the outbox cannot drain")
        async let lateOutcomes = acks(client, late)
        async let retried = ack(client, acked[acked.startIndex])

        for (id, (outcome, elapsed)) in await ackOutcomes {
            guard case .failure(let error) = outcome else { Issue.record("\(id): ack answered \(outcome) during the outage"); continue }
            #expect(error.code == .unavailable)
            #expect(error.message.contains("PostgreSQL has not recorded it yet"), "\(error.message)")
            // The bound is 5 s; a busy machine may answer later, never sooner.
            #expect(elapsed >= .milliseconds(4500), "answered after \(elapsed), bound is 5 s")
        }
        for outcome in await nackOutcomes {
            guard case .failure(let error) = outcome else { Issue.record("nack answered \(outcome) during the outage"); continue }
            #expect(error.code == .unavailable)
        }
        for (id, (outcome, _)) in await lateOutcomes {
            guard case .failure(let error) = outcome else { Issue.record("\(id): late ack answered \(outcome)"); continue }
            #expect(error.code == .unavailable)
        }
        if case (.failure(let error), _) = await retried { #expect(error.code == .unavailable) } else { Issue.record("retried ack") }

        // The Redis changes stand and their entries pile up in the outbox.
        let backlog = try outboxBacklog(redisPort: redis.port)
        #expect(backlog.entries == 30 && backlog.finishing == 20, "\(backlog)")
        #expect(try psql(database.url, "SELECT count(*) FROM runs WHERE status = 'DEQUEUED'") == "40")

        proxy.restore()
        try await waitUntil("the outbox is empty") { try outboxBacklog(redisPort: redis.port) == (0, 0) }
        // The paused leases lapse now: back in the queue at attempt 1.
        try await waitUntil("20 runs QUEUED at attempt 1") {
            try psql(database.url, "SELECT count(*) FROM runs WHERE status = 'QUEUED' AND attempt = 1") == "20"
        }

        // Retries with the same attempt answer as the first calls would have.
        for (id, (outcome, _)) in await acks(client, acked + late) {
            if case .success(true) = outcome { continue }
            Issue.record("\(id): ack retried after the outage answered \(outcome)")
        }
        #expect(await ack(client, lapsing[lapsing.startIndex]).0 == .success(false), "a lapsed run's old attempt is not acked")

        // Every entry applied exactly once: each row changed once per entry, never twice.
        let history = try Self.history(database.url)
        for m in acked + late { #expect(history[m.runID] == "DEQUEUED:0,COMPLETED:0", "\(m.runID): \(history[m.runID] ?? "-")") }
        for m in nacked + lapsing { #expect(history[m.runID] == "DEQUEUED:0,QUEUED:1", "\(m.runID): \(history[m.runID] ?? "-")") }
        #expect(try psql(database.url, "SELECT count(*) FROM run_audit WHERE new_seq <= old_seq") == "0")
        #expect(try psql(database.url, "SELECT count(*) FROM runs WHERE id = '\(n("refused"))'") == "0")
        #expect(try psql(database.url, "SELECT count(*) FROM runs WHERE status = 'COMPLETED' AND completed_at IS NOT NULL") == "20")

        // Only the lapsed runs come back now (the nacked ones are due in 10 minutes), once each.
        let back = try await client.dequeue(n("wq"), wait: 2000, lease: 30_000)
        #expect(Set(back.map(\.runID)) == Set(lapsing.map(\.runID)) && back.count == 10)
        #expect(back.allSatisfy { $0.attempt == 1 })
        await client.close()
    }

    @Test func redisFailingAfterTheCommitAnswersUnavailableAndARetryDeliversOnce() async throws {
        let redis = try OwnRedis()
        let proxy = try TCPProxy(upstreamPort: redis.port)
        defer { proxy.shutdownAll() }
        let database = try OwnDatabase()
        defer { database.drop() }
        // The reconciler would also queue the recorded run; keep it out of the
        // way so the retry is what adds it (it runs once at start, before the row).
        let server = ServerProcess(redisURL: "redis://127.0.0.1:\(proxy.port)", databaseURL: database.url,
                                   ["RUNQUEUE_RECONCILE_INTERVAL_MS": "3600000"])
        try server.launch()
        defer { server.kill() }
        let client = try await server.connect()
        let n = Names()
        // Hold the insert of this run inside its transaction: its trigger
        // waits for an advisory lock this test holds. Redis goes away while
        // it waits; then the lock is let go, so the commit succeeds and the
        // Redis add right after it fails.
        let holder = try PsqlSession(database.url, applicationName: "rq_lock_holder")
        holder.send("SELECT pg_advisory_lock(4242);")
        try await waitUntil("the test holds the lock") {
            try psql(database.url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted") == "1"
        }
        try psql(database.url, """
            CREATE FUNCTION held_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$;
            CREATE TRIGGER held BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION held_insert();
            """)
        async let first: Result<EnqueueResponse, RunQueueError> = {
            do throws(RunQueueError) {
                guard case .enqueue(let r)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a")))) else {
                    return .failure(RunQueueError(.internal, "shape"))
                }
                return .success(r)
            } catch {
                return .failure(error)
            }
        }()
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO runs%'"
        try await waitUntil("the insert waits in its transaction") { try psql(database.url, waiting) == "1" }
        proxy.cut()
        holder.send("SELECT pg_advisory_unlock(4242);")
        holder.end()
        guard case .failure(let error) = await first else { Issue.record("enqueue succeeded with Redis down"); return }
        #expect(error.code == .unavailable)
        #expect(error.message == "recorded, not yet queued; retry with the same run_id")
        #expect(try psql(database.url, "SELECT status FROM runs WHERE id = '\(n("a"))'") == "QUEUED")
        try psql(database.url, "DROP TRIGGER held ON runs")

        proxy.restore()
        let stats = try await waitFor("Redis answers again") { () async -> QueueStatsResponse? in
            if case .queueStats(let s)? = try? await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) { return s }
            return nil
        }
        #expect(stats.length == 0, "nothing queued the run before the retry")
        guard case .enqueue(let retry)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a")))) else { Issue.record("retry"); return }
        #expect(!retry.created)
        let got = try await client.dequeue(n("wq"), wait: 2000, lease: 30_000)
        #expect(got.map(\.runID) == [n("a")])
        #expect(await ack(client, try #require(got.first)).0 == .success(true))
        // Another retry after the ack: still created=false, never delivered again.
        guard case .enqueue(let again)? = try await client.call(.enqueue(EnqueueRequest(run: n.run("a")))) else { Issue.record("again"); return }
        #expect(!again.created)
        #expect(try await client.dequeue(n("wq"), wait: 1000, lease: 30_000).isEmpty)
        #expect(try psql(database.url, "SELECT status FROM runs WHERE id = '\(n("a"))'") == "COMPLETED")
        await client.close()
    }
}
