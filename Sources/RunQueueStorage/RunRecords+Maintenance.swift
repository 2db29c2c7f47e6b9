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

    /// QUEUED rows created before `before`, oldest first, after the
    /// (created_at, id) position given (the reconciler's bounded pass).
    public func recentQueued(after position: (createdAt: Int64, id: String), before: Int64, limit: Int,
                             _ completion: @escaping (Result<[SequencedRun], QueueStoreError>) -> Void) {
        let sql = """
            SELECT \(Self.columnList) FROM runs
            WHERE created_at >= $1 AND created_at < $3 AND (created_at, id) > ($1, $2) AND status = 'QUEUED'
            ORDER BY created_at, id LIMIT $4
            """
        reader.query(sql, [.int64(position.createdAt), .text(position.id), .int64(before), .int64(Int64(limit))]) { result in
            completion(result.map(Self.sequenced).mapError { Self.map($0, doing: "read recent runs") })
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
