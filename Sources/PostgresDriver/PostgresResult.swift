/// The outcome of one statement, copied out of libpq in text format.
///
/// A collection of rows: `result[0]["id"]`, `for row in result`.
public struct PostgresResult: Sendable, RandomAccessCollection {
    public let columns: [String]
    /// Row-major text values; nil is SQL NULL.
    public let rows: [[String?]]
    /// Rows inserted/updated/deleted/selected as the command tag reports it
    /// (0 for commands without a count).
    public let affectedRows: Int
    /// The command tag (`INSERT 0 3`, `SELECT 1`, `CREATE TABLE`).
    public let commandTag: String

    public init(columns: [String], rows: [[String?]], affectedRows: Int, commandTag: String) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { rows.count }
    public subscript(position: Int) -> PostgresRow { PostgresRow(columns: columns, values: rows[position]) }

    /// The first column of the first row (`SELECT count(*) ...`).
    public var scalar: String? { rows.first?.first ?? nil }
}
