/// One request to the server: statements sent between two pipeline syncs (one
/// implicit transaction), or one simple-protocol query string. Loop thread only.
///
/// Tracks how far its results have come in (`position`), collects them, and
/// calls its completion exactly once (`finish` drops the closure).
final class PendingRequest {
    enum Body {
        /// Statements in one sync segment. Also the shape of a statement's
        /// prepare, which the connection sends by itself (one result, then
        /// the sync) ahead of the request that first uses the statement.
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
