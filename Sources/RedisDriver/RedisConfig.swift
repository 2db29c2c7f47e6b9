import UVLoop

/// Where and how to connect to Redis.
///
/// The host must be an IP literal: hiredis 0.14 resolves names with a blocking
/// getaddrinfo on the loop thread, so names are refused (except `localhost`,
/// which is rewritten to 127.0.0.1).
public struct RedisConfig: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    /// Database index selected on every (re)connect.
    public var db: Int
    /// ACL user for AUTH (Redis 6+); nil with a password means `AUTH password`.
    public var username: String?
    public var password: String?
    /// A command with no reply after this long fails with `.timeout` and the
    /// connection is reset (replies are ordered, so a stuck reply stalls all later ones).
    public var commandTimeoutMs: UInt64
    /// TCP connect plus handshake (AUTH/SELECT/PING) must finish within this.
    public var connectTimeoutMs: UInt64
    /// Reconnect delay after the first failure; doubled per failed attempt up to `reconnectMaxMs`.
    public var reconnectMinMs: UInt64
    public var reconnectMaxMs: UInt64

    public init(
        host: String = "127.0.0.1", port: UInt16 = 6379, db: Int = 0,
        username: String? = nil, password: String? = nil,
        commandTimeoutMs: UInt64 = 5_000, connectTimeoutMs: UInt64 = 2_000,
        reconnectMinMs: UInt64 = 100, reconnectMaxMs: UInt64 = 5_000
    ) {
        self.host = host == "localhost" ? "127.0.0.1" : host
        self.port = port
        self.db = db
        self.username = username
        self.password = password
        self.commandTimeoutMs = commandTimeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.reconnectMinMs = reconnectMinMs
        self.reconnectMaxMs = reconnectMaxMs
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` (port 6379 and db 0
    /// by default; IPv6 hosts in brackets). Timeouts and backoff keep their defaults.
    public init(url: String) throws {
        let scheme = "redis://"
        guard url.hasPrefix(scheme) else {
            throw RedisError(.invalidConfig, "Redis URL must start with redis://")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = userinfo[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(userinfo[userinfo.index(after: colon)...])
            } else {
                password = String(userinfo)
            }
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let parsed = Int(dbText), parsed >= 0 else {
                    throw RedisError(.invalidConfig, "Redis URL database must be a non-negative integer")
                }
                db = parsed
            }
        }
        // Default the port when the authority has none ("host", "[::1]").
        let hasPort = rest.hasPrefix("[") ? rest.contains("]:") : rest.contains(":")
        let authority = hasPort ? String(rest) : "\(rest):6379"
        guard !rest.isEmpty, let address = SocketAddress(parsing: authority) else {
            throw RedisError(.invalidConfig, "Redis URL needs a numeric host (IP literal or localhost) and a valid port")
        }
        self.init(host: address.host, port: address.port, db: db, username: username, password: password)
    }

    /// True when `host` is an IP literal, which hiredis connects to without a DNS lookup.
    var hasNumericHost: Bool {
        SocketAddress(parsing: SocketAddress(host: host, port: port).description) != nil
    }
}

extension RedisConfig: CustomStringConvertible {
    /// The URL form without the password (safe to log).
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        return "redis://\(auth)\(SocketAddress(host: host, port: port))/\(db)"
    }
}
