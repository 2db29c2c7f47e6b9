/// A Redis (RESP2) reply, copied out of hiredis' reply tree into Swift values.
///
/// A top-level error reply is delivered as `RedisError(code: .replyError)`
/// instead; `.error` appears only nested inside an array (EXEC, Lua tables).
public enum RedisValue: Sendable, Equatable, Hashable {
    case null
    case int(Int64)
    case bulk([UInt8])
    case status(String)
    case error(String)
    case array([RedisValue])

    /// A bulk string decoded as UTF-8 (nil when it is not valid UTF-8), or a status.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(validating: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// An integer reply, or a bulk string holding a decimal integer (what GET returns after INCR).
    public var int: Int64? {
        switch self {
        case .int(let value): value
        case .bulk(let bytes): String(validating: bytes, as: UTF8.self).flatMap { Int64($0) }
        default: nil
        }
    }

    /// The bytes of a bulk string.
    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    public var isNull: Bool { self == .null }

    public var isError: Bool {
        if case .error = self { return true }
        return false
    }
}

extension RedisValue: CustomStringConvertible {
    /// A short rendering for test output; bulk strings show their length, not their bytes.
    public var description: String {
        switch self {
        case .null: "null"
        case .int(let value): "int(\(value))"
        case .bulk(let bytes): "bulk(\(bytes.count) bytes)"
        case .status(let text): "status(\(text))"
        case .error(let text): "error(\(text))"
        case .array(let elements): "array(\(elements.map(\.description).joined(separator: ", ")))"
        }
    }
}
