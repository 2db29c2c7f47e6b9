/// A Lua script run with EVALSHA. The SHA-1 is computed here, so the script
/// never needs a SCRIPT LOAD round trip before its first use: when Redis does
/// not know it (fresh server, restart, SCRIPT FLUSH), the call falls back to
/// EVAL once, which also caches it on the server (see `evalScript`).
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// Lowercase hex SHA-1 of `source`, as Redis names scripts.
    public let sha1: String
    let sourceBytes: [UInt8]
    let sha1Bytes: [UInt8]

    public init(source: String) {
        self.source = source
        sourceBytes = Array(source.utf8)
        sha1 = SHA1.hex(sourceBytes)
        sha1Bytes = Array(sha1.utf8)
    }
}
