import Foundation

/// Where the tests find the real Redis and PostgreSQL that `scripts/services`
/// (and so `make test` / `.ci/run`) starts. Override with
/// RUNQUEUE_TEST_REDIS_URL / RUNQUEUE_TEST_DATABASE_URL.
public enum TestServices {
    public static var redisURL: String {
        ProcessInfo.processInfo.environment["RUNQUEUE_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6391"
    }

    public static var databaseURL: String {
        ProcessInfo.processInfo.environment["RUNQUEUE_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5491/postgres"
    }

    /// Redis host and port of `redisURL`.
    public static var redisHostPort: (host: String, port: UInt16) {
        let rest = redisURL.replacingOccurrences(of: "redis://", with: "")
        let hostPort = rest.split(separator: "/").first.map(String.init) ?? rest
        let parts = hostPort.split(separator: ":")
        return (String(parts.first ?? "127.0.0.1"), parts.count > 1 ? UInt16(parts[1]) ?? 6391 : 6379)
    }

    /// A TCP port nothing listens on (bound, then released).
    public static func unusedPort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
