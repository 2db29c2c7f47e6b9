/// Every failure the PostgreSQL driver reports: what kind it is, a message for
/// people, and for server errors the SQLSTATE (`22012`, `23505`, ...).
///
/// Messages never contain the password or parameter values.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A connection attempt failed (refused, authentication, unknown
        /// database, connect timeout, host name not resolvable).
        case connectFailed
        /// The connection broke (or was not up) while the request was pending;
        /// whether a sent statement took effect is unknown.
        case disconnected
        /// The request was still pending at its deadline. If it had been sent,
        /// the connection was dropped (and is being re-established), so its
        /// effect is unknown.
        case timeout
        /// `close()` was called while the request was pending.
        case closed
        /// The server rejected the statement; the connection is fine.
        case server(sqlstate: String)
        /// libpq or the server did something this driver does not expect (a
        /// COPY result, a missing sync); the connection is dropped.
        case `protocol`
        /// A bad argument, such as a malformed URL.
        case invalidArgument
        /// A migration set is invalid (bad file name, gap, duplicate, changed
        /// file) or a migration failed; the message names the file.
        case migration
    }

    public let kind: Kind
    public let message: String
    /// The server's DETAIL field, if any (server errors only).
    public let detail: String?
    /// The error this one wraps (a migration failure wraps the server error).
    public let cause: (any Error)?

    public init(_ kind: Kind, _ message: String, detail: String? = nil, cause: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.detail = detail
        self.cause = cause
    }

    /// The SQLSTATE of a server error (also of the server error a migration
    /// failure wraps), else nil.
    public var sqlstate: String? {
        if case .server(let state) = kind { return state }
        return (cause as? PostgresError)?.sqlstate
    }

    public var description: String {
        switch kind {
        case .server(let state): return "PostgreSQL error \(state): \(message)"
        default: return "PostgreSQL \(kind): \(message)"
        }
    }
}
