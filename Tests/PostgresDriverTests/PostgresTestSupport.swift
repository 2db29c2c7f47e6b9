import Foundation
import PostgresDriver
import Synchronization
import TestSupport
import UVLoop

/// A name no other test (or run) uses: `prefix_` plus 12 hex digits.
func uniqueName(_ prefix: String) -> String {
    prefix + "_" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
}

/// The test database config, adjusted by `configure`.
func testConfig(_ configure: (inout PostgresConfig) -> Void = { _ in }) throws -> PostgresConfig {
    var config = try PostgresConfig(url: TestServices.databaseURL)
    configure(&config)
    return config
}

/// A connected connection on `loop`.
func connected(_ loop: EventLoop, _ configure: (inout PostgresConfig) -> Void = { _ in }) async throws -> PostgresConnection {
    let connection = PostgresConnection(loop: loop, config: try testConfig(configure))
    try await connection.connect()
    return connection
}

/// Collects values from loop callbacks; tests wait for a count with a bound.
final class Collector<Value: Sendable>: Sendable {
    private let items = Mutex<[Value]>([])

    func append(_ value: Value) {
        items.withLock { $0.append(value) }
    }

    var values: [Value] { items.withLock { $0 } }

    /// Waits until at least `count` values arrived (or a minute passed) and
    /// returns what arrived.
    func wait(for count: Int) async -> [Value] {
        try? await waitUntil("\(count) values arrived", every: .milliseconds(5)) { values.count >= count }
        return values
    }
}

extension PostgresConnection {
    /// Records every state change into `collector` (set on the loop thread).
    func recordStates(into collector: Collector<String>) async throws {
        try await loop.submit {
            self.onStateChange = { state in
                switch state {
                case .disconnected(let error): collector.append("disconnected:\(error.kind)")
                default: collector.append(state.description)
                }
            }
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// A TCP port that completes handshakes (kernel backlog) but never accepts or
/// answers: a server that hangs. Closed by `close()`.
final class SilentListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 64) == 0 else {
            Glibc.close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        port = UInt16(bigEndian: addr.sin_port)
    }

    func close() { Glibc.close(fd) }
}
