// The reads behind SubscribeExpiry: the bounds of the retained expiry event
// log and pages of events after a cursor.
//
// Appends to expiry_events are serialised by `expiryAppendLock` (taken
// before the INSERT draws its cursor), so commit order equals cursor order:
// once cursor N is visible every smaller cursor is either visible or never
// committed (a rolled-back append leaves a gap in the sequence, never a late
// event). Readers therefore only need "cursor > last seen".
import PostgresDriver
import RunQueueCore

extension RunRecords {
    /// The retained log: `oldest` is the smallest retained cursor and
    /// `newest` the highest cursor ever drawn whose append has finished.
    /// An empty log (nothing expired yet, or everything pruned) reports
    /// `oldest = newest + 1`.
    public struct ExpiryLogBounds: Sendable, Equatable {
        public var oldest: UInt64
        public var newest: UInt64
    }

    /// Reads the bounds while holding the append lock in shared mode, so no
    /// append is in flight: every cursor up to `newest` is committed or
    /// abandoned, and starting a live stream after `newest` skips nothing.
    public func expiryLogBounds(on connection: PostgresConnection? = nil,
                                _ completion: @escaping (Result<ExpiryLogBounds, QueueStoreError>) -> Void) {
        let statements = [
            PostgresStatement("SELECT pg_advisory_xact_lock_shared($1)", [.int64(Self.expiryAppendLock)]),
            PostgresStatement("""
                SELECT (SELECT min(cursor) FROM expiry_events) AS oldest,
                       (SELECT max(cursor) FROM expiry_events) AS newest,
                       pg_sequence_last_value(pg_get_serial_sequence('expiry_events', 'cursor')::regclass) AS drawn
                """),
        ]
        (connection ?? reader).transaction(statements) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read the expiry log bounds")))
            case .success(let results):
                let row = results[1].first
                let newest = UInt64(max(row?.int64("newest") ?? 0, row?.int64("drawn") ?? 0, 0))
                let oldest = row?.int64("oldest").map { UInt64(max(0, $0)) } ?? newest + 1
                completion(.success(ExpiryLogBounds(oldest: oldest, newest: newest)))
            }
        }
    }

    /// A page of the log.
    public struct ExpiryPage: Sendable {
        /// Matching events, in cursor order.
        public var events: [ExpiryEvent]
        /// When fewer than `limit` events came back: every event up to this
        /// cursor was examined (the log's head in the query's snapshot, capped
        /// by the scan window), so a reader may continue after it.
        public var scannedThrough: UInt64
    }

    private static let eventColumns = """
        cursor, run_id, org_id, project_id, environment_id, environment_type, queue, concurrency_key,
        task_identifier, ttl, expires_at, expired_at
        """

    /// Up to `limit` events with `after < cursor <= after + scanWindow` that
    /// match `filter` (empty fields match all), in cursor order, read in one
    /// snapshot together with the log's head.
    public func expiryEvents(after: UInt64, filter: ExpiryFilter = ExpiryFilter(), limit: Int,
                             scanWindow: UInt64 = UInt64(Int64.max), on connection: PostgresConnection? = nil,
                             _ completion: @escaping (Result<ExpiryPage, QueueStoreError>) -> Void) {
        let upper = after > UInt64(Int64.max) - min(scanWindow, UInt64(Int64.max)) ? UInt64(Int64.max) : after + scanWindow
        let sql = """
            WITH h AS (SELECT coalesce(max(cursor), 0) AS head FROM expiry_events)
            SELECT h.head, e.* FROM h LEFT JOIN LATERAL (
                SELECT \(Self.eventColumns) FROM expiry_events
                WHERE cursor > $1 AND cursor <= $2
                  AND ($3 = '' OR org_id = $3) AND ($4 = '' OR project_id = $4)
                  AND ($5 = '' OR environment_id = $5) AND ($6 = '' OR queue = $6)
                ORDER BY cursor LIMIT $7) e ON true
            ORDER BY e.cursor
            """
        let params: [PostgresBindable] = [
            .int64(Int64(after)), .int64(Int64(upper)), .text(filter.orgID), .text(filter.projectID),
            .text(filter.environmentID), .text(filter.queue), .int64(Int64(limit)),
        ]
        (connection ?? reader).query(sql, params) { result in
            switch result {
            case .failure(let error):
                completion(.failure(Self.map(error, doing: "read expiry events")))
            case .success(let rows):
                var events: [ExpiryEvent] = []
                var head: Int64 = 0
                for row in rows {
                    head = max(head, row.int64("head") ?? 0)
                    if let event = Self.event(row) { events.append(event) }
                }
                let scanned = max(after, min(upper, UInt64(max(0, head))))
                completion(.success(ExpiryPage(events: events, scannedThrough: scanned)))
            }
        }
    }

    static func event(_ row: PostgresRow) -> ExpiryEvent? {
        guard let cursor = row.int64("cursor"), let runID = row["run_id"] else { return nil }
        return ExpiryEvent(
            cursor: UInt64(cursor), runID: runID, orgID: row["org_id"] ?? "", projectID: row["project_id"] ?? "",
            environmentID: row["environment_id"] ?? "",
            environmentType: EnvironmentType(rawValue: Int32(row.int("environment_type") ?? 0)) ?? .unspecified,
            queue: row["queue"] ?? "", concurrencyKey: row["concurrency_key"] ?? "",
            taskIdentifier: row["task_identifier"] ?? "", ttl: row["ttl"] ?? "",
            expiresAtMs: row.int64("expires_at") ?? 0, expiredAtMs: row.int64("expired_at") ?? 0)
    }
}
