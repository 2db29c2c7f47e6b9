import Foundation
import RunQueueCore
import RunQueueWire

/// A scripted stand-in for runqueued: the test accepts each connection,
/// reads the client's requests and writes exactly the responses (or the
/// disconnect) it wants to test against. Blocking sockets, each blocking call
/// on its own thread so the test's tasks are never blocked.
public final class FakeServer: @unchecked Sendable {
    public let port: UInt16
    private let fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        port = UInt16(bigEndian: addr.sin_port)
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    public var hostPort: String { "127.0.0.1:\(port)" }

    /// The next client connection (within 10 s).
    public func accept() async throws -> FakeConnection {
        let listener = fd
        let client = await onThread { Glibc.accept(listener, nil, nil) }
        guard client >= 0 else { throw POSIXError(.ETIMEDOUT) }
        return FakeConnection(fd: client)
    }

    /// Accepts a connection and answers its Hello, as every RunQueueClient
    /// connection starts with one.
    public func acceptAndGreet(maxFrameBytes: UInt32 = 1 << 20) async throws -> FakeConnection {
        let connection = try await accept()
        let hello = try await connection.readRequest()
        guard case .hello? = hello.call else { throw FakeServerError("expected Hello first, got \(String(describing: hello.call))") }
        try connection.send(Response(callID: hello.callID, result: .hello(
            HelloResponse(serverVersion: "fake", maxFrameBytes: maxFrameBytes, shardCount: 1))))
        return connection
    }
}

public struct FakeServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One accepted connection of a FakeServer.
public final class FakeConnection: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    public init(fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close() }

    /// The next request; throws on EOF or after 10 s.
    public func readRequest() async throws -> Request {
        guard let body = await onThread({ self.readFrame() }) else { throw FakeServerError("the client closed or sent nothing") }
        return try WireCodec.decodeRequest(body)
    }

    /// True when the client closed the connection (EOF) within 10 s.
    public func readsEOF() async -> Bool {
        await onThread { self.readFrame() == nil }
    }

    public func send(_ response: Response) throws {
        let bytes = FrameEncoder.frame(WireCodec.encodeResponse(response))
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            offset += n
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }

    private func readFrame() -> [UInt8]? {
        guard let header = read(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return read(length)
    }

    private func read(_ count: Int) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while buffer.count < count {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
        let out = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return out
    }
}

/// Runs a blocking call on a thread of its own.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
