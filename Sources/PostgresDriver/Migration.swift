/// One schema migration: a numbered SQL file `NNNN_name.sql` (version NNNN,
/// at least one digit; name of letters, digits, `_` and `-`).
///
/// The SQL runs with the simple query protocol, in one transaction together
/// with the row that records it, so it may hold several statements but no
/// BEGIN/COMMIT of its own and nothing that refuses to run in a transaction
/// block (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String
    /// The file it came from (or `NNNN_name.sql` when built in code); errors name it.
    public let fileName: String

    public init(version: Int, name: String, sql: String) throws {
        let padded = String(repeating: "0", count: max(0, 4 - String(version).count)) + String(version)
        try self.init(fileName: "\(padded)_\(name).sql", sql: sql)
    }

    /// Parses the version and name out of `fileName` (`0001_create_runs.sql`);
    /// any other shape is an error naming the file.
    public init(fileName: String, sql: String) throws {
        func reject(_ why: String) -> PostgresError {
            PostgresError(.migration, "\(fileName): \(why)")
        }
        guard fileName.hasSuffix(".sql") else {
            throw reject("not a migration file name (expected NNNN_name.sql)")
        }
        let stem = fileName.dropLast(".sql".count)
        guard let underscore = stem.firstIndex(of: "_") else {
            throw reject("not a migration file name (expected NNNN_name.sql)")
        }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.count <= 9,
              let version = Int(digits)
        else {
            throw reject("the version must be digits (expected NNNN_name.sql)")
        }
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") })
        else {
            throw reject("the name may hold only letters, digits, _ and - (expected NNNN_name.sql)")
        }
        self.version = version
        self.name = String(name)
        self.sql = sql
        self.fileName = fileName
    }

    /// FNV-1a 64 of the SQL bytes, in hex: recorded with the migration so an
    /// applied file that was edited afterwards is noticed. (Not a security
    /// measure; just stable across processes, unlike `Hasher`.)
    public var checksum: String {
        let hash = Self.fnv1a(Array(sql.utf8))
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
