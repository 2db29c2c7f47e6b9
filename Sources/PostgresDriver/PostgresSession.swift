internal import CLibPQ
internal import DequeModule
import UVLoop
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One libpq connection (`PGconn`) and the socket watcher on it: the only code
/// in the driver that calls libpq. `PostgresConnection` owns at most one
/// session at a time and makes a new one per connection attempt.
///
/// Invariants:
/// - `finish()` closes the watcher before `PQfinish` closes the socket (libuv
///   must not poll a closed fd); after it, `alive` is false and no libpq call
///   is made on this session again.
/// - Every `PGresult` is cleared right after it is copied into Swift values.
/// - Loop thread only.
final class PostgresSession {
    /// Which attempt of its connection this is (1, 2, ...).
    let generation: UInt64
    private let conn: OpaquePointer
    private(set) var alive = true
    /// Connected and in pipeline mode (false while the attempt is in progress).
    var ready = false

    var watcher: FDWatcher?
    /// What the watcher is currently asked for.
    private(set) var interest: FDWatcher.Events = []
    /// The last PQflush left bytes in libpq's output buffer.
    var outputPending = false

    /// Pipelined requests sent and not yet completed, in wire order.
    var inflight = Deque<PendingRequest>()
    /// The simple-protocol request on the wire (the pipeline is off meanwhile).
    var simple: PendingRequest?
    /// Reentrancy guard of `PostgresConnection.pump`.
    var pumping = false
    var repump = false
    /// Statements prepared on this session: SQL and parameter types -> name.
    /// A statement is prepared the first time it is sent (in a sync segment
    /// of its own, so nothing else can abort it) and executed by name after:
    /// no parse, analysis or planning per execution. Names are never reused.
    private var preparedNames: [PreparedKey: String] = [:]
    private var preparedCount = 0
    /// Beyond this many statements a session sends the rest unprepared
    /// (a bound on what one connection keeps on the server).
    static let preparedLimit = 256

    struct PreparedKey: Hashable {
        let sql: String
        let types: [UInt32]
    }

    private init(conn: OpaquePointer, generation: UInt64) {
        self.conn = conn
        self.generation = generation
    }

    /// Starts a non-blocking connect (PQconnectStartParams; no network I/O
    /// happens in this call, and `hostaddr` is always numeric so libpq does no
    /// DNS lookup).
    static func start(parameters: [(String, String)], generation: UInt64) -> Result<PostgresSession, PostgresError> {
        let keywords = parameters.map { strdup($0.0) }
        let values = parameters.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let keywordList = keywords.map { UnsafePointer($0) } + [nil]
        let valueList = values.map { UnsafePointer($0) } + [nil]
        // NULL only when libpq cannot allocate the PGconn.
        guard let conn = PQconnectStartParams(keywordList, valueList, 0) else {
            return .failure(PostgresError(.connectFailed, "libpq could not allocate a connection"))
        }
        // The default notice processor prints to stderr; notices (NOTICE,
        // WARNING from the server) are dropped instead.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        if PQstatus(conn) == CONNECTION_BAD {
            // Bad options (unknown sslmode value, ...): nothing was opened.
            let message = errorMessage(of: conn)
            PQfinish(conn)
            return .failure(PostgresError(.connectFailed, message))
        }
        // 0 on success; -1 only if output could not be flushed, impossible
        // before anything was sent.
        _ = PQsetnonblocking(conn, 1)
        return .success(PostgresSession(conn: conn, generation: generation))
    }

    /// Closes the watcher, then the connection. Idempotent.
    func finish() {
        guard alive else { return }
        alive = false
        watcher?.close()
        watcher = nil
        PQfinish(conn)
    }

    /// Asks the watcher for `events`. During the connect phase pass `force`:
    /// libpq may have replaced the socket by one with the same fd number
    /// (second address, SSL fallback), and only a fresh uv_poll_start
    /// registers the new socket with epoll.
    func setInterest(_ events: FDWatcher.Events, force: Bool = false) {
        guard alive, let watcher, force || events != interest else { return }
        interest = events
        watcher.watch(events)
    }

    var socket: Int32 { PQsocket(conn) }
    var errorMessage: String { Self.errorMessage(of: conn) }
    var isBad: Bool { PQstatus(conn) == CONNECTION_BAD }
    var backendPID: Int32 { PQbackendPID(conn) }

    enum ConnectStep {
        case wantRead, wantWrite, connected
        case failed(String)
    }

    /// One step of the connect state machine (PQconnectPoll).
    func connectPoll() -> ConnectStep {
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING: return .wantRead
        case PGRES_POLLING_WRITING: return .wantWrite
        case PGRES_POLLING_OK: return .connected
        // PGRES_POLLING_FAILED, and PGRES_POLLING_ACTIVE which libpq no longer returns.
        default: return .failed(errorMessage)
        }
    }

    /// PQenterPipelineMode / PQexitPipelineMode return 1 on success, 0 when
    /// the connection is busy (results pending) or not usable.
    func enterPipelineMode() -> Bool { PQenterPipelineMode(conn) == 1 }
    func exitPipelineMode() -> Bool { PQexitPipelineMode(conn) == 1 }

    /// The name `statement` is prepared under on this session, if it is.
    func preparedName(for statement: EncodedStatement) -> String? {
        preparedNames[PreparedKey(sql: statement.sql, types: statement.types)]
    }

    /// Names `statement` for preparing, or nil when the session prepares no more.
    func reservePreparedName(for statement: EncodedStatement) -> (PreparedKey, String)? {
        guard preparedCount < Self.preparedLimit else { return nil }
        preparedCount += 1
        let key = PreparedKey(sql: statement.sql, types: statement.types)
        let name = "rq_\(preparedCount)"
        preparedNames[key] = name
        return (key, name)
    }

    /// The prepare failed: send the statement unprepared (or prepare it anew) next time.
    func forgetPrepared(_ key: PreparedKey) {
        preparedNames[key] = nil
    }

    /// Queues a Parse of `sql` under `name` (PQsendPrepare).
    func sendPrepare(name: String, sql: String, types: [UInt32]) -> Bool {
        PQsendPrepare(conn, name, sql, Int32(types.count), types) == 1
    }

    /// Queues one statement (extended protocol: Parse/Bind/Describe/Execute,
    /// or Bind/Describe/Execute of a statement prepared under `prepared`).
    /// False when libpq refuses it (connection broken or out of memory).
    func send(_ statement: EncodedStatement, prepared: String? = nil) -> Bool {
        statement.buffer.withUnsafeBufferPointer { buffer -> Bool in
            let base = UnsafeRawPointer(buffer.baseAddress!)
            let values: [UnsafePointer<CChar>?] = statement.offsets.map { offset in
                offset < 0 ? nil : (base + offset).assumingMemoryBound(to: CChar.self)
            }
            // libpq copies everything into its output buffer before returning.
            // Returns 1 when queued, 0 on failure.
            if let prepared {
                return PQsendQueryPrepared(conn, prepared, Int32(statement.types.count), values, statement.lengths,
                                           statement.formats, 0) == 1
            }
            return PQsendQueryParams(conn, statement.sql, Int32(statement.types.count), statement.types,
                                     values, statement.lengths, statement.formats, 0) == 1
        }
    }

    /// Ends the current sync segment (PQpipelineSync; it also tries to flush).
    func sync() -> Bool { PQpipelineSync(conn) == 1 }

    /// Sends a simple-protocol query (may hold several statements). Only
    /// outside pipeline mode.
    func sendSimple(_ sql: String) -> Bool { PQsendQuery(conn, sql) == 1 }

    enum FlushOutcome { case done, pending, failed }

    /// PQflush: 0 = all sent, 1 = some left (wait for writable), -1 = failed.
    func flush() -> FlushOutcome {
        switch PQflush(conn) {
        case 0: outputPending = false; return .done
        case 1: outputPending = true; return .pending
        default: return .failed
        }
    }

    /// PQconsumeInput: reads what the socket has into libpq's buffer; false
    /// when the connection broke (EOF, reset).
    func consumeInput() -> Bool { PQconsumeInput(conn) == 1 }

    /// True when PQgetResult would have to wait for more input.
    var isBusy: Bool { PQisBusy(conn) == 1 }

    enum Fetched {
        /// The NULL that ends one statement's results (or a simple query's).
        case end
        case result(PostgresResult)
        case error(PostgresError)
        /// PGRES_PIPELINE_ABORTED: skipped after an earlier error in the segment.
        case aborted
        /// PGRES_PIPELINE_SYNC: the end of a sync segment.
        case sync
        /// A status this driver does not handle (COPY, single-row).
        case unexpected(String)
    }

    /// PQgetResult, copied out and cleared. Call only when `isBusy` is false
    /// (otherwise libpq would block in it).
    func nextResult() -> Fetched {
        guard let result = PQgetResult(conn) else { return .end }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return .result(Self.copy(result))
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            return .error(Self.error(from: result))
        case PGRES_PIPELINE_ABORTED:
            return .aborted
        case PGRES_PIPELINE_SYNC:
            return .sync
        default:
            return .unexpected(String(cString: PQresStatus(status)))
        }
    }

    /// Notifications parsed so far (PQnotifies parses buffered input itself).
    func notifications() -> [PostgresNotification] {
        var list: [PostgresNotification] = []
        while let notify = PQnotifies(conn) {
            list.append(PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                senderPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return list
    }

    private static func errorMessage(of conn: OpaquePointer) -> String {
        guard let text = PQerrorMessage(conn) else { return "unknown libpq error" }
        let message = String(cString: text).trimmingWhitespace()
        return message.isEmpty ? "unknown libpq error" : message
    }

    private static func copy(_ result: OpaquePointer) -> PostgresResult {
        let rowCount = PQntuples(result)
        let columnCount = PQnfields(result)
        var columns: [String] = []
        columns.reserveCapacity(Int(columnCount))
        for column in 0..<columnCount {
            columns.append(PQfname(result, column).map { String(cString: $0) } ?? "")
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if PQgetisnull(result, row, column) == 1 {
                    values.append(nil)
                } else {
                    let bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, row, column),
                                                       count: Int(PQgetlength(result, row, column)))
                    values.append(String(decoding: bytes, as: UTF8.self))
                }
            }
            rows.append(values)
        }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        let affected = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? 0
        return PostgresResult(columns: columns, rows: rows, affectedRows: affected, commandTag: tag)
    }

    private static func error(from result: OpaquePointer) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let primary = field(UInt8(ascii: "M"))  // PG_DIAG_MESSAGE_PRIMARY
        let message = primary ?? PQresultErrorMessage(result).map { String(cString: $0).trimmingWhitespace() } ?? ""
        // PG_DIAG_SQLSTATE: absent when libpq made the error itself (the
        // connection broke), which is not a statement failure.
        guard let sqlstate = field(UInt8(ascii: "C")) else {
            return PostgresError(.disconnected, message.isEmpty ? "connection lost" : message)
        }
        return PostgresError(.server(sqlstate: sqlstate), message, detail: field(UInt8(ascii: "D")))  // PG_DIAG_MESSAGE_DETAIL
    }
}
