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
