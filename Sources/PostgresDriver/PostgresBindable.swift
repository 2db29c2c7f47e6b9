/// A statement parameter (`$1`, `$2`, ...).
///
/// Everything is sent in text format except `bytea`, which goes binary so no
/// escaping is involved. `text` is sent with an unspecified type, so the server
/// infers it from the statement (`$1::int`, a column); the others carry their
/// type. Arrays are sent as array literals, ready for `unnest($1::text[])`.
/// `.int64` is typed `bigint`: comparisons and inserts into `integer` columns
/// work, but a function that takes `integer` needs a cast (`pg_terminate_backend($1::int)`).
public enum PostgresBindable: Sendable, Hashable {
    case null
    case text(String)
    case int64(Int64)
    case double(Double)
    case bool(Bool)
    case bytea([UInt8])
    case textArray([String?])
    case int64Array([Int64?])

    public static func int(_ value: Int) -> PostgresBindable { .int64(Int64(value)) }

    /// `.text(value)`, or `.null` for nil.
    public static func optional(_ value: String?) -> PostgresBindable { value.map { .text($0) } ?? .null }

    /// PostgreSQL type OIDs (pg_type.dat); 0 lets the server infer the type.
    private enum OID {
        static let unspecified: UInt32 = 0
        static let bool: UInt32 = 16
        static let bytea: UInt32 = 17
        static let int8: UInt32 = 20
        static let float8: UInt32 = 701
        static let textArray: UInt32 = 1009
        static let int8Array: UInt32 = 1016
    }

    /// The type OID, the bytes (nil for NULL) and whether they are binary.
    var encoded: (oid: UInt32, bytes: [UInt8]?, binary: Bool) {
        switch self {
        case .null: return (OID.unspecified, nil, false)
        case .text(let s): return (OID.unspecified, Array(s.utf8), false)
        case .int64(let v): return (OID.int8, Array(String(v).utf8), false)
        case .double(let v): return (OID.float8, Array(Self.floatText(v).utf8), false)
        case .bool(let v): return (OID.bool, v ? [UInt8(ascii: "t")] : [UInt8(ascii: "f")], false)
        case .bytea(let bytes): return (OID.bytea, bytes, true)
        case .textArray(let items): return (OID.textArray, Self.arrayLiteral(items), false)
        case .int64Array(let items): return (OID.int8Array, Self.arrayLiteral(items.map { $0.map(String.init) }), false)
        }
    }

    /// `{"a","b\"c",NULL}`: every element quoted, `"` and `\` escaped.
    /// Built as UTF-8 bytes: the applier sends arrays of thousands of ids per
    /// statement, and appending scalar by scalar to a String was the largest
    /// single CPU cost of a flush.
    static func arrayLiteral(_ items: [String?]) -> [UInt8] {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        out.append(UInt8(ascii: "{"))
        for (i, item) in items.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            guard let item else { out.append(contentsOf: "NULL".utf8); continue }
            out.append(quote)
            for byte in item.utf8 {
                if byte == quote || byte == backslash { out.append(backslash) }
                out.append(byte)
            }
            out.append(quote)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func floatText(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Infinity" : "Infinity" }
        return "\(v)"
    }
}

extension PostgresBindable: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}
