/// One SQL statement with its parameters, for `PostgresConnection.transaction`.
/// A string literal is a statement without parameters.
public struct PostgresStatement: Sendable, Hashable, ExpressibleByStringLiteral {
    public var sql: String
    public var parameters: [PostgresBindable]

    public init(_ sql: String, _ parameters: [PostgresBindable] = []) {
        self.sql = sql
        self.parameters = parameters
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }
}
