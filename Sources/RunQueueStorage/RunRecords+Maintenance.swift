// The reads and deletes behind the rebuild, the reconciler and retention.
import PostgresDriver
import RunQueueCore

extension RunRecords {
    private static let columnList = """
        id, org_id, project_id, environment_id, environment_type, queue, concurrency_key, task_identifier,
        worker_queue, attempt, queue_timestamp, priority_ms, ttl, expires_at, status, created_at, updated_at,
        completed_at, expired_at, last_seq
        """

    /// A row and the position of the last outbox entry applied to it.
    public typealias SequencedRun = (run: StoredRun, lastSeq: Int64)

    /// A page of the rebuild's walk through the table in id order.
    public struct ActivePage: Sendable {
        public var rows: [SequencedRun]
        /// Where the next page starts; nil: no rows left.
        public var next: String?
        /// The end of the span the next page is still in (pass it back), or
        /// nil when the next page starts a new span.
        public var spanEnd: String?
    }

    /// The next page of QUEUED and DEQUEUED rows in id order after `afterID`:
    /// at most `limit` rows, all within a span of the next `span` rows of the
    /// table (`within`: the span the previous page was in). Each statement is
    /// a bounded primary-key scan: filtering on status with `ORDER BY id
    /// LIMIT` alone lets the planner scan the whole table for every page, and
    /// finished rows outnumber active ones by far (seen: 300 ms a page with
    /// 1.3 million finished rows, which made a rebuild take minutes).
    public func activeRuns(after afterID: String, within: String? = nil, limit: Int, span: Int = 100_000,
                           _ completion: @escaping (Result<ActivePage, QueueStoreError>) -> Void) {
        let fetch = { [self] (spanEnd: String) in
            let sql = """
                SELECT \(Self.columnList) FROM runs
                WHERE id > $1 AND id <= $2 AND status IN ('QUEUED', 'DEQUEUED')
                ORDER BY id LIMIT $3
                """
            reader.query(sql, [.text(afterID), .text(spanEnd), .int64(Int64(limit))]) { result in
                completion(result.map { result in
                    let rows = Self.sequenced(result)
                    // A full page may end before its span does: the next page goes on inside it.
                    if rows.count == limit, let last = rows.last?.run.record.runID, last < spanEnd {
                        return ActivePage(rows: rows, next: last, spanEnd: spanEnd)
                    }
                    return ActivePage(rows: rows, next: spanEnd, spanEnd: nil)
                }.mapError { Self.map($0, doing: "read active runs") })
            }
        }
        if let within {
            fetch(within)
            return
        }
        let end = "SELECT max(id) AS last FROM (SELECT id FROM runs WHERE id > $1 ORDER BY id LIMIT $2) AS span"
        reader.query(end, [.text(afterID), .int64(Int64(span))]) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read active runs")))
            case .success(let rows):
                guard rows.count == 1, let last = rows[0]["last"] else {
                    completion(.success(ActivePage(rows: [], next: nil, spanEnd: nil)))
                    return
                }
                fetch(last)
            }
        }
    }

    /// A row's place in creation order: (created_at, id).
    public struct RowPosition: Sendable, Equatable, Comparable {
        public var createdAt: Int64
        public var id: String

        public init(createdAt: Int64, id: String) {
            self.createdAt = createdAt
            self.id = id
        }

        public static let start = RowPosition(createdAt: 0, id: "")

        public static func < (a: RowPosition, b: RowPosition) -> Bool {
            a.createdAt != b.createdAt ? a.createdAt < b.createdAt : Array(a.id.utf8).lexicographicallyPrecedes(Array(b.id.utf8))
        }

        /// As stored in runqueue_meta: text whose byte order is this order
        /// (created_at zero-padded; run ids sort bytewise, migration 0004).
        var stored: String { String(repeating: "0", count: max(0, 16 - String(max(0, createdAt)).count)) + String(max(0, createdAt)) + " " + id }

        init?(stored: String) {
            guard let space = stored.firstIndex(of: " "), let createdAt = Int64(stored[..<space]) else { return nil }
            self.init(createdAt: createdAt, id: String(stored[stored.index(after: space)...]))
        }
    }

    /// One page of the reconciler's walk in creation order: the QUEUED rows
    /// among the next rows (of any status) after a position, and where the
    /// page ends. `next` is nil when no row created before the bound is left.
    public struct CreationPage: Sendable {
        public var queued: [SequencedRun]
        public var end: RowPosition
        public var next: RowPosition?
    }

    /// The QUEUED rows among the next `span` rows created after `position`
    /// and before `before`. Each statement is a bounded walk of the
    /// (created_at, id) index (finished rows are counted in the span, not skipped
    /// through without bound).
    public func queuedPage(after position: RowPosition, before: Int64, span: Int,
                           _ completion: @escaping (Result<CreationPage, QueueStoreError>) -> Void) {
        // `end` nil: fewer than `span` rows are left, the page runs to `before`.
        let fetch = { [self] (end: RowPosition?) in
            let sql = """
                SELECT \(Self.columnList) FROM runs
                WHERE created_at >= $1 AND (created_at, id) > ($1, $2) AND \(end == nil ? "created_at < $3" : "(created_at, id) <= ($3, $4)")
                  AND status = 'QUEUED'
                ORDER BY created_at, id
                """
            let parameters: [PostgresBindable] = end.map { [.int64(position.createdAt), .text(position.id), .int64($0.createdAt), .text($0.id)] }
                ?? [.int64(position.createdAt), .text(position.id), .int64(before)]
            reader.query(sql, parameters) { result in
                completion(result.map { CreationPage(queued: Self.sequenced($0), end: end ?? RowPosition(createdAt: before, id: ""), next: end) }
                    .mapError { Self.map($0, doing: "read queued runs") })
            }
        }
        let spanEnd = """
            SELECT created_at, id FROM runs
            WHERE created_at >= $1 AND (created_at, id) > ($1, $2) AND created_at < $3
            ORDER BY created_at, id OFFSET $4 LIMIT 1
            """
        reader.query(spanEnd, [.int64(position.createdAt), .text(position.id), .int64(before), .int64(Int64(max(0, span - 1)))]) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read queued runs")))
            case .success(let rows):
                if rows.count == 1, let createdAt = rows[0].int64("created_at"), let id = rows[0]["id"] {
                    fetch(RowPosition(createdAt: createdAt, id: id))
                } else {
                    fetch(nil)
                }
            }
        }
    }

    /// When the oldest transaction still writing to this database began
    /// (Unix ms), or nil: rows it inserts become visible only when it commits,
    /// so the reconciler's watermark must stay behind it.
    public func oldestWriteInProgress(_ completion: @escaping (Result<Int64?, QueueStoreError>) -> Void) {
        let sql = """
            SELECT (extract(epoch FROM min(xact_start)) * 1000)::bigint AS oldest FROM pg_stat_activity
            WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
            """
        reader.query(sql) { result in
            completion(result.map { $0.scalar.flatMap { Int64($0) } }.mapError { Self.map($0, doing: "read the running transactions") })
        }
    }

    /// The reconciler's watermark: every row created before it has been
    /// looked at (and its run re-added if Redis held it in no form). Nil
    /// before the first pass of a deployment.
    public func reconcileWatermark(_ completion: @escaping (Result<RowPosition?, QueueStoreError>) -> Void) {
        reader.query("SELECT value FROM runqueue_meta WHERE key = 'reconcile_watermark'") { result in
            completion(result.map { $0.scalar.flatMap(RowPosition.init(stored:)) }.mapError { Self.map($0, doing: "read the watermark") })
        }
    }

    /// Moves the watermark forward to `position` (never back: several
    /// instances reconcile the same rows).
    public func advanceReconcileWatermark(to position: RowPosition, _ completion: @escaping (Result<Void, QueueStoreError>) -> Void) {
        let sql = """
            INSERT INTO runqueue_meta (key, value) VALUES ('reconcile_watermark', $1)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
            WHERE runqueue_meta.value COLLATE "C" < EXCLUDED.value COLLATE "C"
            """
        writer.query(sql, [.text(position.stored)]) { result in
            completion(result.map { _ in () }.mapError { Self.map($0, doing: "store the watermark") })
        }
    }

    private static func sequenced(_ rows: PostgresResult) -> [SequencedRun] {
        rows.compactMap { row in stored(row).map { ($0, row.int64("last_seq") ?? 0) } }
    }

    /// Of these (id, last_seq) pairs, the ids whose row is still active
    /// (QUEUED or DEQUEUED) with that last_seq (nothing applied in between).
    public func stillQueued(_ runs: [(id: String, lastSeq: Int64)], _ completion: @escaping (Result<Set<String>, QueueStoreError>) -> Void) {
        let sql = """
            SELECT r.id FROM runs r JOIN unnest($1::text[], $2::int8[]) AS x(id, seq) ON r.id = x.id
            WHERE r.status IN ('QUEUED', 'DEQUEUED') AND r.last_seq = x.seq
            """
        reader.query(sql, [.textArray(runs.map(\.id)), .int64Array(runs.map(\.lastSeq))]) { result in
            completion(result.map { Set($0.rows.compactMap { $0.first ?? nil }) }.mapError { Self.map($0, doing: "re-read runs") })
        }
    }

    public struct StoredLimit: Sendable {
        public var environmentID: String
        public var queue: String
        public var limit: UInt32
        public var burstFactor: Double?
    }

    public func limits(_ completion: @escaping (Result<[StoredLimit], QueueStoreError>) -> Void) {
        reader.query("SELECT environment_id, queue, limit_value, burst_factor FROM concurrency_limits") { result in
            completion(result.map { rows in
                rows.map { row in
                    StoredLimit(environmentID: row["environment_id"] ?? "", queue: row["queue"] ?? "",
                                limit: UInt32(row.int("limit_value") ?? 0), burstFactor: row.double("burst_factor"))
                }
            }.mapError { Self.map($0, doing: "read limits") })
        }
    }

    /// Deletes up to `limit` finished rows (COMPLETED, EXPIRED, DEAD_LETTERED)
    /// last changed before `before`; returns how many.
    public func pruneFinished(before: Int64, limit: Int, _ completion: @escaping (Result<Int, QueueStoreError>) -> Void) {
        let sql = """
            DELETE FROM runs WHERE id IN (
                SELECT id FROM runs
                WHERE created_at < $1 AND updated_at < $1 AND status IN ('COMPLETED', 'EXPIRED', 'DEAD_LETTERED')
                LIMIT $2)
            """
        writer.query(sql, [.int64(before), .int64(Int64(limit))]) { result in
            completion(result.map(\.affectedRows).mapError { Self.map($0, doing: "prune finished runs") })
        }
    }

    /// The deployment's epoch: the stored one, or `proposed` if none was stored yet.
    public func epoch(proposed: String, _ completion: @escaping (Result<String, QueueStoreError>) -> Void) {
        let sql = """
            WITH ins AS (INSERT INTO runqueue_meta (key, value) VALUES ('epoch', $1)
                         ON CONFLICT (key) DO NOTHING RETURNING value)
            SELECT value FROM ins UNION ALL SELECT value FROM runqueue_meta WHERE key = 'epoch' LIMIT 1
            """
        writer.query(sql, [.text(proposed)]) { result in
            completion(result.map { $0.scalar ?? proposed }.mapError { Self.map($0, doing: "read the epoch") })
        }
    }
}
