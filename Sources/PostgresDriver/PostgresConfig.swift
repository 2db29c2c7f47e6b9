import Foundation
internal import CLibPQ

/// Where and how to connect: parsed from a `postgres://` URL, turned into
/// libpq connection keywords for each attempt.
///
/// libpq resolves a `host=` name with a blocking `getaddrinfo`, which would
/// stall the loop; so every attempt passes `hostaddr=` with a numeric address.
/// IP literals are used as they are, `localhost` is 127.0.0.1, and any other
/// name is resolved off the loop before each attempt (see `HostResolver`).
public struct PostgresConfig: Sendable, CustomStringConvertible {
    /// An IPv4/IPv6 literal or a host name (`localhost` means 127.0.0.1).
    public var host: String
    public var port: UInt16
    public var user: String?
    public var password: String?
    public var database: String?
    /// Bound on one connection attempt (TCP, TLS, authentication), in ms.
    /// Enforced by the driver: libpq's own `connect_timeout` only applies to
    /// blocking connects.
    public var connectTimeoutMs: UInt64 = 5_000
    /// Default bound on one request, from enqueue to its last result, in ms;
    /// 0 = none. A sent request that times out costs the connection (see
    /// `PostgresConnection`), so keep it well above normal latency.
    public var queryTimeoutMs: UInt64 = 30_000
    /// Delay before the second attempt after a failure, doubled per further
    /// failure up to `reconnectMaxDelayMs` (ms). The first reconnect after a
    /// connection that was up drops is immediate.
    public var reconnectDelayMs: UInt64 = 100
    public var reconnectMaxDelayMs: UInt64 = 5_000
    /// Further libpq keywords (`application_name`, `sslmode`, `options`, ...).
    /// `gssencmode` defaults to `disable`: GSSAPI negotiation may block on
    /// credential lookups.
    public var parameters: [String: String] = [:]

    public init(host: String, port: UInt16 = 5432, user: String? = nil, password: String? = nil, database: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses `postgres://user[:password]@host[:port]/database[?key=value&...]`
    /// (also `postgresql://`). Userinfo and database are percent-decoded; IPv6
    /// hosts go in brackets. Query keys: `connect_timeout` (seconds, as in
    /// libpq), `query_timeout_ms`, `reconnect_delay_ms`, `reconnect_max_delay_ms`;
    /// any other key must be a libpq connection keyword and is passed through.
    public init(url: String) throws {
        func bad(_ why: String) -> PostgresError {
            // The URL may hold a password: never echo it.
            PostgresError(.invalidArgument, "invalid PostgreSQL URL: \(why)")
        }
        var rest: Substring
        if url.hasPrefix("postgres://") {
            rest = url.dropFirst("postgres://".count)
        } else if url.hasPrefix("postgresql://") {
            rest = url.dropFirst("postgresql://".count)
        } else {
            throw bad("scheme must be postgres:// or postgresql://")
        }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                user = try Self.decode(info[..<colon], "user", bad)
                password = try Self.decode(info[info.index(after: colon)...], "password", bad)
            } else {
                user = try Self.decode(info, "user", bad)
            }
        }
        var host: String
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated [ in host") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            host = String(rest)
        }
        if host.contains(",") { throw bad("several hosts are not supported") }
        if host.isEmpty { host = "127.0.0.1" }
        var port: UInt16 = 5432
        if let portText {
            guard let p = UInt16(portText), p > 0 else { throw bad("port must be 1...65535") }
            port = p
        }
        let database = path.isEmpty ? nil : try Self.decode(path, "database", bad)
        self.init(host: host, port: port, user: user, password: password, database: database)

        if !query.isEmpty {
            let known = Self.libpqKeywords()
            for pair in query.split(separator: "&") where !pair.isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = try Self.decode(parts[0], "parameter name", bad)
                let value = parts.count > 1 ? try Self.decode(parts[1], "parameter \(key)", bad) : ""
                func milliseconds() throws -> UInt64 {
                    guard let v = UInt64(value) else { throw bad("\(key) must be a whole number") }
                    return v
                }
                switch key {
                case "connect_timeout":
                    let seconds = try milliseconds()
                    guard seconds > 0 else { throw bad("connect_timeout must be positive") }
                    connectTimeoutMs = seconds * 1000
                case "query_timeout_ms": queryTimeoutMs = try milliseconds()
                case "reconnect_delay_ms": reconnectDelayMs = try milliseconds()
                case "reconnect_max_delay_ms": reconnectMaxDelayMs = try milliseconds()
                case "host", "hostaddr", "port", "user", "password", "dbname":
                    throw bad("\(key) belongs in the URL itself, not in its query")
                default:
                    guard known.contains(key) else { throw bad("unknown parameter \(key)") }
                    parameters[key] = value
                }
            }
        }
    }

    /// The URL without the password, for logs.
    public var description: String {
        var s = "postgres://"
        if let user { s += user + (password == nil ? "" : ":***") + "@" }
        s += host.contains(":") ? "[\(host)]" : host
        s += ":\(port)/\(database ?? "")"
        return s
    }

    /// The numeric address to connect to without a lookup, or nil when `host`
    /// is a name that must be resolved first.
    var literalAddress: String? {
        if host == "localhost" { return "127.0.0.1" }
        return Self.isIPLiteral(host) ? host : nil
    }

    /// libpq keywords and values for one attempt at `address` (numeric).
    func connectionParameters(address: String) -> [(String, String)] {
        var list: [(String, String)] = [
            ("host", host),
            ("hostaddr", address),
            ("port", String(port)),
            ("gssencmode", "disable"),
        ]
        if let user { list.append(("user", user)) }
        if let password { list.append(("password", password)) }
        if let database { list.append(("dbname", database)) }
        var keywords = parameters
        // The caller's own `options` come after ours, so a plan_cache_mode set there wins.
        keywords["options"] = parameters["options"].map { "\(Self.sessionOptions) \($0)" } ?? Self.sessionOptions
        for (key, value) in keywords.sorted(by: { $0.key < $1.key }) {
            if let i = list.firstIndex(where: { $0.0 == key }) { list[i].1 = value } else { list.append((key, value)) }
        }
        return list
    }

    /// Server settings every session starts with.
    ///
    /// The connection prepares every statement by itself (see
    /// PostgresConnection.swift), so callers never chose prepared-statement
    /// semantics; with PostgreSQL's default plan cache, a statement run five
    /// times may switch for the rest of the session to a generic plan costed
    /// on the tables as they were then. A batch statement first run against
    /// near-empty tables (a new database) then keeps a sequential scan of
    /// the table per call after the table has grown to millions of rows:
    /// one UPDATE ... FROM unnest(...) of a few thousand runs took seconds
    /// instead of milliseconds. Custom plans are made for each execution from
    /// its actual parameters and the tables' current size; the parse is
    /// still saved.
    static let sessionOptions = "-c plan_cache_mode=force_custom_plan"

    static func isIPLiteral(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    private static func decode(_ text: Substring, _ what: String, _ bad: (String) -> PostgresError) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else { throw bad("bad percent-encoding in \(what)") }
        return decoded
    }

    /// Every keyword this libpq accepts (PQconndefaults reads only the
    /// environment and the service file; it does not touch the network).
    private static func libpqKeywords() -> Set<String> {
        var keywords = Set<String>()
        guard let options = PQconndefaults() else { return keywords }
        defer { PQconninfoFree(options) }
        var option = options
        while let keyword = option.pointee.keyword {
            keywords.insert(String(cString: keyword))
            option += 1
        }
        return keywords
    }
}
