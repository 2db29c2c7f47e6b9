import Foundation
import UVLoop

/// Resolves a host name to a numeric address without blocking the loop:
/// `getaddrinfo` runs on a short-lived thread and the answer comes back
/// through `loop.execute`. Used once per connection attempt when the config
/// names a host rather than an address, so a DNS change is picked up on
/// reconnect.
enum HostResolver {
    static func resolve(_ host: String, on loop: EventLoop,
                        _ completion: @escaping @Sendable (Result<String, PostgresError>) -> Void) {
        Thread.detachNewThread {
            let outcome = lookup(host)
            loop.execute { completion(outcome) }
        }
    }

    /// Blocking lookup: the first TCP address of `host`, as text.
    static func lookup(_ host: String) -> Result<String, PostgresError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0, let first = list else {
            let reason = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
            return .failure(PostgresError(.connectFailed, "could not resolve host \(host): \(reason)"))
        }
        defer { freeaddrinfo(list) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok: Bool
        switch first.pointee.ai_family {
        case AF_INET:
            ok = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addr in
                var ip = addr.pointee.sin_addr
                return inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil
            }
        case AF_INET6:
            ok = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addr in
                var ip = addr.pointee.sin6_addr
                return inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil
            }
        default:
            ok = false
        }
        guard ok else { return .failure(PostgresError(.connectFailed, "could not resolve host \(host): unsupported address")) }
        let length = text.firstIndex(of: 0) ?? text.count
        return .success(String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}
