// RunRecords: the durable record of every run in PostgreSQL.
//
// Creation first: Enqueue / EnqueueBatch / Redrive write the row before the
// run reaches Redis. Creations are group-committed: requests queue here and
// one set-based statement per flush writes them all (`INSERT ... SELECT FROM
// unnest(...) ON CONFLICT (id) DO NOTHING RETURNING id`), flushed when
// `maxBatch` rows wait or `flushDelayMs` after the first one. Input is fully
// validated before it gets here, so one bad row cannot fail the others.
//
// Every later change arrives as outbox entries (OutboxApplier): one guarded
// UPDATE per batch, each row changed only when the entry is newer than the
// last one applied to it (last_seq) and the transition is allowed; a finished
// run (COMPLETED, EXPIRED, DEAD_LETTERED) never changes again. A replayed or
// late entry therefore changes nothing.
//
// Writes and reads use separate connections, so a slow read never delays a
// commit. Loop thread only.
import PostgresDriver
import RunQueueCore
import UVLoop

public final class RunRecords: @unchecked Sendable {
    public let writer: PostgresConnection
    public let reader: PostgresConnection
    /// Where outbox entries are applied: its own connection (its own
    /// PostgreSQL backend) in a server, so applies and creation inserts run
    /// side by side instead of one after another; `writer` when not given.
    public let applier: PostgresConnection
    private let loop: EventLoop
    public var maxBatch = 500
    public var flushDelayMs: UInt64 = 1
    /// Benchmarks only (RUNQUEUE_BENCHMARK_DISCARD_RECORDS): `create` answers
    /// every run as created and `apply` succeeds, neither touching PostgreSQL.
    public var discardWrites = false
    /// Benchmarks only (RUNQUEUE_BENCHMARK_DISCARD_RECORDS=applier): rows are
    /// created, but `apply` succeeds without writing (no later change is stored).
    public var discardApplies = false

    public init(loop: EventLoop, writer: PostgresConnection, reader: PostgresConnection, applier: PostgresConnection? = nil) {
        self.loop = loop
        self.writer = writer
        self.reader = reader
        self.applier = applier ?? writer
    }

    // MARK: Creation (group commit)

    public struct NewRun: Sendable {
        public var run: RunDescriptor
        public var expiresAtMs: Int64?
        public var createdAtMs: Int64

        public init(run: RunDescriptor, expiresAtMs: Int64?, createdAtMs: Int64) {
            self.run = run
            self.expiresAtMs = expiresAtMs
            self.createdAtMs = createdAtMs
        }
    }

    /// A row as stored: the wire record plus what the wire record does not carry.
    public struct StoredRun: Sendable, Equatable {
        public var record: RunRecord
        public var priorityMs: Int64

        /// The descriptor the run was enqueued with (for re-adding it to Redis).
        public var descriptor: RunDescriptor {
            RunDescriptor(runID: record.runID, orgID: record.orgID, projectID: record.projectID,
                          environmentID: record.environmentID, environmentType: record.environmentType,
                          queue: record.queue, concurrencyKey: record.concurrencyKey,
                          taskIdentifier: record.taskIdentifier, workerQueue: record.workerQueue,
                          timestampMs: record.timestampMs, priorityMs: priorityMs, ttl: record.ttl)
        }

        /// The run as Redis should hold it when it is (re-)added from its row:
        /// at its recorded attempt, with its TTL only if it was never dequeued.
        public var enqueueItem: QueueStore.EnqueueItem {
            let neverDequeued = record.status == .queued && record.attempt == 0
            return QueueStore.EnqueueItem(run: descriptor,
                                          expiresAtMs: neverDequeued && record.expiresAtMs > 0 ? record.expiresAtMs : nil,
                                          attempt: record.attempt)
        }
    }

    public enum CreateOutcome: Sendable {
        case created
        /// The id existed (or came earlier in the same flush): the stored row.
        case exists(StoredRun)
    }

    private var pending: [(run: NewRun, completion: (Result<CreateOutcome, QueueStoreError>) -> Void)] = []
    private var flushTimer: LoopTimer?

    /// Records new runs; each completion gets created, or the existing row.
    public func create(_ runs: [NewRun], _ completion: @escaping ([Result<CreateOutcome, QueueStoreError>]) -> Void) {
        guard !runs.isEmpty else { completion([]); return }
        if discardWrites {
            completion(runs.map { _ in .success(.created) })
            return
        }
        var results = [Result<CreateOutcome, QueueStoreError>?](repeating: nil, count: runs.count)
        var left = runs.count
        for (index, run) in runs.enumerated() {
            pending.append((run, { result in
                results[index] = result
                left -= 1
                if left == 0 { completion(results.map { $0! }) }
            }))
        }
        if pending.count >= maxBatch {
            flush()
        } else if flushTimer == nil {
            flushTimer = loop.schedule(afterMs: flushDelayMs) { [weak self] in
                self?.flushTimer = nil
                self?.flush()
            }
        }
    }

    private func flush() {
        flushTimer?.close()
        flushTimer = nil
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            write(batch)
        }
    }

    private static let insertSQL = """
        INSERT INTO runs (id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                          task_identifier, worker_queue, queue_timestamp, priority_ms, ttl, expires_at,
                          created_at, updated_at)
        SELECT x.id, x.org, x.project, x.env, x.type, x.queue, x.ck, x.task, x.worker, x.ts, x.prio, x.ttl, x.expires,
               x.created, x.created
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], $7::text[], $8::text[],
                    $9::text[], $10::int8[], $11::int8[], $12::text[], $13::int8[], $14::int8[])
             AS x(id, org, project, env, type, queue, ck, task, worker, ts, prio, ttl, expires, created)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """

    private func write(_ batch: [(run: NewRun, completion: (Result<CreateOutcome, QueueStoreError>) -> Void)]) {
        // The first occurrence of an id in the flush is the one inserted.
        var firstIndex: [String: Int] = [:]
        for (i, item) in batch.enumerated() where firstIndex[item.run.run.runID] == nil { firstIndex[item.run.run.runID] = i }
        let runs = batch.map(\.run)
        let params: [PostgresBindable] = [
            .textArray(runs.map { $0.run.runID }), .textArray(runs.map { $0.run.orgID }),
            .textArray(runs.map { $0.run.projectID }), .textArray(runs.map { $0.run.environmentID }),
            .int64Array(runs.map { Int64($0.run.environmentType.rawValue) }), .textArray(runs.map { $0.run.queue }),
            .textArray(runs.map { $0.run.concurrencyKey }), .textArray(runs.map { $0.run.taskIdentifier }),
            .textArray(runs.map { $0.run.workerQueue }), .int64Array(runs.map { $0.run.timestampMs }),
            .int64Array(runs.map { $0.run.priorityMs }), .textArray(runs.map { $0.run.ttl }),
            .int64Array(runs.map { $0.expiresAtMs }), .int64Array(runs.map { $0.createdAtMs }),
        ]
        writer.query(Self.insertSQL, params) { [weak self] result in
            switch result {
            case .failure(let error):
                let failure = Self.map(error, doing: "record the run")
                for item in batch { item.completion(.failure(failure)) }
            case .success(let rows):
                let inserted = Set(rows.rows.compactMap { $0.first ?? nil })
                var others: [Int] = []
                for (i, item) in batch.enumerated() {
                    if inserted.contains(item.run.run.runID) && firstIndex[item.run.run.runID] == i {
                        item.completion(.success(.created))
                    } else {
                        others.append(i)
                    }
                }
                guard !others.isEmpty, let self else { return }
                self.fetch(others.map { batch[$0].run.run.runID }, on: self.writer) { fetched in
                    for i in others {
                        let id = batch[i].run.run.runID
                        switch fetched {
                        case .success(let records):
                            if let record = records[id] {
                                batch[i].completion(.success(.exists(record)))
                            } else {
                                batch[i].completion(.failure(QueueStoreError(.aborted, "run \(id) was deleted while being recorded; retry")))
                            }
                        case .failure(let error):
                            batch[i].completion(.failure(error))
                        }
                    }
                }
            }
        }
    }

    // MARK: Reads

    private static let columns = """
        id, org_id, project_id, environment_id, environment_type, queue, concurrency_key, task_identifier,
        worker_queue, attempt, queue_timestamp, priority_ms, ttl, expires_at, status, created_at, updated_at,
        completed_at, expired_at
        """

    private func fetch(_ ids: [String], on connection: PostgresConnection,
                       _ completion: @escaping (Result<[String: StoredRun], QueueStoreError>) -> Void) {
        connection.query("SELECT \(Self.columns) FROM runs WHERE id = ANY($1::text[])", [.textArray(ids)]) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read runs")))
            case .success(let rows):
                var out: [String: StoredRun] = [:]
                for row in rows { if let stored = Self.stored(row) { out[stored.record.runID] = stored } }
                completion(.success(out))
            }
        }
    }

    /// The stored run, or nil.
    public func get(runID: String, _ completion: @escaping (Result<StoredRun?, QueueStoreError>) -> Void) {
        fetch([runID], on: reader) { result in completion(result.map { $0[runID] }) }
    }

    static func stored(_ row: PostgresRow) -> StoredRun? {
        guard let id = row["id"], let status = row["status"].flatMap(RunStatus.init(name:)) else { return nil }
        let record = RunRecord(
            runID: id, orgID: row["org_id"] ?? "", projectID: row["project_id"] ?? "",
            environmentID: row["environment_id"] ?? "",
            environmentType: EnvironmentType(rawValue: Int32(row.int("environment_type") ?? 0)) ?? .unspecified,
            queue: row["queue"] ?? "", concurrencyKey: row["concurrency_key"] ?? "",
            taskIdentifier: row["task_identifier"] ?? "", workerQueue: row["worker_queue"] ?? "",
            timestampMs: row.int64("queue_timestamp") ?? 0, attempt: UInt32(row.int("attempt") ?? 0),
            leaseExpiresAtMs: 0, status: status, ttl: row["ttl"] ?? "", expiresAtMs: row.int64("expires_at") ?? 0,
            createdAtMs: row.int64("created_at") ?? 0, updatedAtMs: row.int64("updated_at") ?? 0,
            completedAtMs: row.int64("completed_at") ?? 0, expiredAtMs: row.int64("expired_at") ?? 0)
        return StoredRun(record: record, priorityMs: row.int64("priority_ms") ?? 0)
    }

    // MARK: Changes

    private static let applySQL = """
        UPDATE runs SET
            status = (CASE x.op WHEN 'D' THEN 'DEQUEUED' WHEN 'Q' THEN 'QUEUED' WHEN 'C' THEN 'COMPLETED'
                                WHEN 'X' THEN 'DEAD_LETTERED' ELSE 'EXPIRED' END)::run_status,
            attempt = x.attempt,
            last_seq = x.seq,
            updated_at = x.t,
            completed_at = CASE WHEN x.op = 'C' THEN x.t ELSE runs.completed_at END,
            expired_at = CASE WHEN x.op = 'E' THEN x.t ELSE runs.expired_at END
        FROM unnest($1::text[], $2::int8[], $3::text[], $4::int4[], $5::int8[]) AS x(id, seq, op, attempt, t)
        WHERE runs.id = x.id
          AND runs.last_seq < x.seq
          AND runs.status IN ('QUEUED', 'DEQUEUED')
          AND (x.op NOT IN ('D', 'E') OR runs.status = 'QUEUED')
        """

    /// Expired runs: marked EXPIRED and appended to the expiry event log in
    /// one statement, guarded by status, so a replayed entry appends nothing.
    private static let expireSQL = """
        WITH e AS (
            UPDATE runs SET status = 'EXPIRED', attempt = x.attempt, last_seq = x.seq, updated_at = x.t, expired_at = x.t
            FROM unnest($1::text[], $2::int8[], $3::int4[], $4::int8[]) AS x(id, seq, attempt, t)
            WHERE runs.id = x.id AND runs.last_seq < x.seq AND runs.status = 'QUEUED'
            RETURNING runs.id, runs.org_id, runs.project_id, runs.environment_id, runs.environment_type, runs.queue,
                      runs.concurrency_key, runs.task_identifier, runs.ttl, runs.expires_at, runs.expired_at, x.seq
        )
        INSERT INTO expiry_events (run_id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
                                   task_identifier, ttl, expires_at, expired_at)
        SELECT id, org_id, project_id, environment_id, environment_type, queue, concurrency_key, task_identifier, ttl,
               expires_at, expired_at
        FROM e ORDER BY seq, id
        """

    /// The transaction-scoped advisory lock that serialises appends to the
    /// expiry event log (commit order = cursor order).
    public static let expiryAppendLock: Int64 = 0x7271_6578_7069_7279 // "rqexpiry"
    /// Serialises outbox applies across servers (see `apply`).
    public static let applyLock: Int64 = 0x7271_6170_706C_7921 // "rqapply!"
    /// Channel notified when expiry events were appended (log readers wake on it).
    public static let expiryChannel = "runqueue_expiry"

    /// Applies outbox entries in one guarded statement. Several entries of
    /// one run in a batch collapse to the newest (each entry carries the
    /// whole new state, and UPDATE ... FROM applies one source row per row).
    /// Expiries (E) go in the same transaction through expireSQL, after the
    /// append lock is taken.
    public func apply(_ entries: [OutboxEntry], progress: [Int: Int64] = [:],
                      _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        var newest: [String: OutboxEntry] = [:]
        for entry in entries {
            if let known = newest[entry.runID], known.sequence >= entry.sequence { continue }
            newest[entry.runID] = entry
        }
        let all = Array(newest.values)
        guard !all.isEmpty || !progress.isEmpty, !discardWrites, !discardApplies else { completion(.success(())); return }
        let expired = all.filter { $0.op == .expired }
        let list = all.filter { $0.op != .expired }
        // Applies of every server run one at a time: two appliers draining
        // the same shard would otherwise lock the same rows in different
        // orders and deadlock (seen with several servers on one database).
        // Taken first, before any row lock and before the expiry lock.
        var statements: [PostgresStatement] = [PostgresStatement("SELECT pg_advisory_xact_lock($1)", [.int64(Self.applyLock)])]
        if !list.isEmpty {
            statements.append(PostgresStatement(Self.applySQL, [
                .textArray(list.map(\.runID)), .int64Array(list.map(\.sequence)), .textArray(list.map(\.op.rawValue)),
                .int64Array(list.map { Int64($0.attempt) }), .int64Array(list.map(\.timeMs)),
            ]))
        }
        if !expired.isEmpty {
            let ordered = expired.sorted { $0.sequence < $1.sequence }
            statements.append(PostgresStatement("SELECT pg_advisory_xact_lock($1)", [.int64(Self.expiryAppendLock)]))
            statements.append(PostgresStatement(Self.expireSQL, [
                .textArray(ordered.map(\.runID)), .int64Array(ordered.map(\.sequence)),
                .int64Array(ordered.map { Int64($0.attempt) }), .int64Array(ordered.map(\.timeMs)),
            ]))
            statements.append(PostgresStatement("SELECT pg_notify($1, '')", [.text(Self.expiryChannel)]))
        }
        if !progress.isEmpty {
            let shards = progress.keys.sorted()
            statements.append(PostgresStatement(Self.progressSQL, [.int64Array(shards.map(Int64.init)), .int64Array(shards.map { progress[$0] ?? 0 })]))
        }
        applier.transaction(statements) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "apply queue changes") })
        }
    }

    /// Records the highest outbox sequence applied per shard (never lowers it).
    static let progressSQL = """
        INSERT INTO shard_progress (shard, applied_seq) SELECT * FROM unnest($1::int8[], $2::int8[])
        ON CONFLICT (shard) DO UPDATE SET applied_seq = GREATEST(shard_progress.applied_seq, EXCLUDED.applied_seq)
        """

    /// The highest outbox sequence applied per shard (shards never applied are absent).
    public func shardProgress(_ completion: @escaping (Result<[Int: Int64], QueueStoreError>) -> Void) {
        reader.query("SELECT shard, applied_seq FROM shard_progress") { result in
            completion(result.map { rows in
                var out: [Int: Int64] = [:]
                for row in rows.rows {
                    if let shard = row[0].flatMap({ Int($0) }), let seq = row[1].flatMap({ Int64($0) }) { out[shard] = seq }
                }
                return out
            }.mapError { Self.map($0, doing: "read the applied sequences") })
        }
    }

    /// Deletes up to `limit` of the oldest expiry events expired before `before`; returns how many.
    public func pruneExpiryEvents(before: Int64, limit: Int, _ completion: @escaping (Result<Int, QueueStoreError>) -> Void) {
        let sql = """
            DELETE FROM expiry_events WHERE cursor IN (
                SELECT cursor FROM expiry_events WHERE expired_at < $1 ORDER BY expired_at LIMIT $2)
            """
        writer.query(sql, [.int64(before), .int64(Int64(limit))]) { result in
            completion(result.map(\.affectedRows).mapError { Self.map($0, doing: "prune expiry events") })
        }
    }

    /// DEAD_LETTERED -> QUEUED with attempt 0, due now and no TTL; returns the
    /// row, or nil when the run is not dead-lettered in that environment.
    public func redrive(runID: String, environmentID: String, now: Int64,
                        _ completion: @escaping (Result<StoredRun?, QueueStoreError>) -> Void) {
        let sql = """
            UPDATE runs SET status = 'QUEUED', attempt = 0, ttl = '', expires_at = NULL, updated_at = $3
            WHERE id = $1 AND environment_id = $2 AND status = 'DEAD_LETTERED'
            RETURNING \(Self.columns)
            """
        writer.query(sql, [.text(runID), .text(environmentID), .int64(now)]) { result in
            switch result {
            case .failure(let error): completion(.failure(Self.map(error, doing: "redrive the run")))
            case .success(let rows): completion(.success(rows.first.flatMap(Self.stored)))
            }
        }
    }

    /// Stores a limit (queue "" = the environment); nil limit clears it.
    public func setLimit(environmentID: String, queue: String, limit: UInt32?, burstFactor: Double?, now: Int64,
                         _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        let done: (Result<PostgresResult, PostgresError>) -> Void = { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "store the limit") })
        }
        guard let limit else {
            writer.query("DELETE FROM concurrency_limits WHERE environment_id = $1 AND queue = $2",
                         [.text(environmentID), .text(queue)], done)
            return
        }
        let sql = """
            INSERT INTO concurrency_limits (environment_id, queue, limit_value, burst_factor, updated_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (environment_id, queue) DO UPDATE
            SET limit_value = EXCLUDED.limit_value,
                burst_factor = COALESCE(EXCLUDED.burst_factor, concurrency_limits.burst_factor),
                updated_at = EXCLUDED.updated_at
            """
        writer.query(sql, [.text(environmentID), .text(queue), .int64(Int64(limit)), burstFactor.map { .double($0) } ?? .null, .int64(now)], done)
    }

    static func map(_ error: PostgresError, doing: String) -> QueueStoreError {
        switch error.kind {
        case .server:
            QueueStoreError(.internal, "PostgreSQL refused to \(doing): \(error.message)")
        case .invalidArgument, .migration, .protocol:
            QueueStoreError(.internal, "could not \(doing): \(error.message)")
        default:
            QueueStoreError(.unavailable, "PostgreSQL is unavailable, could not \(doing): \(error.message)")
        }
    }
}
