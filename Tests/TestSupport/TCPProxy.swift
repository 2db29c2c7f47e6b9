import Foundation
import Synchronization

/// A TCP forwarder on a free loopback port that a test puts between the
/// server and Redis or PostgreSQL, then cuts and restores: an outage as the
/// server sees one (every connection closed under it, new ones closed at
/// once), while the service itself keeps its data and stays reachable for
/// the test's own checks. Each connection is pumped by its own thread with
/// blocking sockets; `cut` shuts the sockets down and the pumps close them.
/// The threads hold the proxy: call `shutdownAll` when done.
public final class TCPProxy: Sendable {
    public let port: UInt16
    private let upstreamPort: UInt16
    private let listener: Int32
    private struct State {
        var cut = false
        var closed = false
        var sockets: Set<Int32> = []
    }
    private let state = Mutex(State())

    public init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 128) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Closes every forwarded connection; until `restore`, new ones are closed as soon as they arrive.
    public func cut() {
        // Under the lock: a pump closes its sockets under it too, so no fd here is reused.
        state.withLock { state in
            state.cut = true
            for fd in state.sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    public func restore() {
        state.withLock { $0.cut = false }
    }

    /// Stops listening and closes every forwarded connection.
    public func shutdownAll() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            state.cut = true
            shutdown(listener, Int32(SHUT_RDWR))
            for fd in state.sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return addr
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            let (admitted, closed) = state.withLock { ($0.cut == false, $0.closed) }
            if closed { close(client); close(listener); return }
            guard admitted, let upstream = connectUpstream() else { close(client); continue }
            let registered = state.withLock { state -> Bool in
                guard !state.cut else { return false }
                state.sockets.insert(client)
                state.sockets.insert(upstream)
                return true
            }
            guard registered else { close(client); close(upstream); continue }
            Thread.detachNewThread { [self] in pump(client, upstream) }
        }
    }

    private func connectUpstream() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = Self.loopback(port: upstreamPort)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }

    /// Copies bytes both ways until either side ends or the proxy cuts them.
    private func pump(_ a: Int32, _ b: Int32) {
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        loop: while true {
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let from = entry.fd, to = index == 0 ? b : a
                let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break loop }
                var offset = 0
                while offset < n {
                    let sent = buffer[offset..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { break loop }
                    offset += sent
                }
            }
        }
        state.withLock { state in
            state.sockets.remove(a)
            state.sockets.remove(b)
            close(a)
            close(b)
        }
    }
}
