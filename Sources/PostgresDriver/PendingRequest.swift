/// One request to the server: statements sent between two pipeline syncs (one
/// implicit transaction), or one simple-protocol query string. Loop thread only.
///
/// Tracks how far its results have come in (`position`), collects them, and
/// calls its completion exactly once (`finish` drops the closure).
final class PendingRequest {
    enum Body {
        case pipelined([EncodedStatement])
        case simple(String)
    }

    let body: Body
    /// Loop time (ms) after which the request fails with `.timeout`; nil = none.
    let deadline: UInt64?
    /// When set, the request may only run on the session with this generation
    /// (the migrator's statements must run where its advisory lock is held).
    let pinnedSession: UInt64?
    /// Statements whose results are complete (pipelined requests).
    var position = 0
    /// A result arrived for the statement at `position`.
    var gotResult = false
    var results: [PostgresResult] = []
    /// The first error among the statements (later ones are aborted).
    var error: PostgresError?
    /// Set when the deadline passed while the request was on the wire.
    var timedOut = false
    private var completion: ((Result<[PostgresResult], PostgresError>) -> Void)?

    init(body: Body, deadline: UInt64?, pinnedSession: UInt64?,
         completion: @escaping (Result<[PostgresResult], PostgresError>) -> Void) {
        self.body = body
        self.deadline = deadline
        self.pinnedSession = pinnedSession
        self.completion = completion
    }

    var statementCount: Int {
        if case .pipelined(let statements) = body { return statements.count }
        return 1
    }

    func isExpired(at now: UInt64) -> Bool {
        guard let deadline else { return false }
        return deadline <= now
    }

    /// Completes with what was collected: the first error, else the results.
    func finishWithOutcome() {
        if let error { finish(.failure(error)) } else { finish(.success(results)) }
    }

    func finish(_ outcome: Result<[PostgresResult], PostgresError>) {
        guard let completion else { return }
        self.completion = nil
        completion(outcome)
    }
}

/// A statement with its parameters flattened for `PQsendQueryParams`: every
/// value in one byte buffer (text values NUL-terminated), located by offset.
struct EncodedStatement {
    let sql: String
    let types: [UInt32]
    /// Offset of each value in `buffer`, or -1 for NULL.
    let offsets: [Int]
    let lengths: [Int32]
    let formats: [Int32]
    /// Never empty, so its base address is never nil (an empty binary value
    /// still needs a non-NULL pointer: NULL means SQL NULL).
    let buffer: [UInt8]

    /// libpq's limit on parameters per statement (PQ_QUERY_PARAM_MAX_LIMIT).
    static let maxParameters = 65535

    init(_ statement: PostgresStatement) throws(PostgresError) {
        guard !statement.sql.utf8.contains(0) else {
            throw PostgresError(.invalidArgument, "SQL text contains a NUL byte")
        }
        guard statement.parameters.count <= Self.maxParameters else {
            throw PostgresError(.invalidArgument, "\(statement.parameters.count) parameters; the limit is \(Self.maxParameters)")
        }
        sql = statement.sql
        var types: [UInt32] = []
        var offsets: [Int] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var buffer: [UInt8] = []
        types.reserveCapacity(statement.parameters.count)
        for (index, parameter) in statement.parameters.enumerated() {
            let (oid, bytes, binary) = parameter.encoded
            types.append(oid)
            formats.append(binary ? 1 : 0)
            guard let bytes else {
                offsets.append(-1)
                lengths.append(0)
                continue
            }
            guard bytes.count <= Int(Int32.max) else {
                throw PostgresError(.invalidArgument, "parameter $\(index + 1) is too large")
            }
            if !binary, bytes.contains(0) {
                // Text values travel NUL-terminated; PostgreSQL text cannot hold NUL anyway.
                throw PostgresError(.invalidArgument, "parameter $\(index + 1) contains a NUL byte; use .bytea")
            }
            offsets.append(buffer.count)
            lengths.append(Int32(bytes.count))
            buffer.append(contentsOf: bytes)
            if !binary { buffer.append(0) }
        }
        buffer.append(0)
        self.types = types
        self.offsets = offsets
        self.lengths = lengths
        self.formats = formats
        self.buffer = buffer
    }
}
