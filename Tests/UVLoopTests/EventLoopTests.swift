import Foundation
import Synchronization
import Testing
import TestSupport
import UVLoop

@Suite struct EventLoopTests {
    @Test func runsPostedWorkOnTheLoopThreadAndClosesCleanly() async throws {
        let loop = try EventLoop()
        let onLoop = try await loop.submit { loop.inEventLoop }
        #expect(onLoop)
        #expect(!loop.inEventLoop)
        #expect(loop.shutdown() == 0)
    }

    @Test func timerFiresAfterItsDelay() async throws {
        let loop = try EventLoop()
        let start = ContinuousClock.now
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            loop.execute { loop.schedule(afterMs: 30) { c.resume() } }
        }
        #expect(ContinuousClock.now - start >= .milliseconds(29))
        #expect(loop.shutdown() == 0)
    }

    @Test func shutdownReportsAndClosesHandlesLeftOpen() async throws {
        let loop = try EventLoop()
        try await loop.submit { _ = LoopTimer(loop: loop) }
        #expect(loop.shutdown() == 1)
    }

    @Test func tcpEchoRoundTripAndCleanClose() async throws {
        let loop = try EventLoop()
        let port = try await loop.submit { () -> UInt16 in
            let listener = try TCPListener(loop: loop, address: SocketAddress(host: "127.0.0.1", port: 0)) { conn in
                conn.onRead = { conn.write($0) }
                conn.onReadEnd = { _ in conn.closeAfterFlush() }
                conn.startReading()
            }
            return listener.localPort
        }
        let echoed = await withCheckedContinuation { (c: CheckedContinuation<[UInt8], Never>) in
            loop.execute {
                TCPConnection.connect(loop: loop, to: SocketAddress(host: "127.0.0.1", port: port)) { result in
                    guard case .success(let conn) = result else { c.resume(returning: []); return }
                    var got: [UInt8] = []
                    conn.onRead = { bytes in
                        got.append(contentsOf: bytes)
                        if got.count == 5 { conn.close(); c.resume(returning: got) }
                    }
                    conn.startReading()
                    conn.write(Array("hello".utf8))
                }
            }
        }
        #expect(echoed == Array("hello".utf8))
        // The listener is still open: shutdown force-closes it and reports it.
        #expect(loop.shutdown() >= 1)
    }

    @Test func connectToClosedPortFails() async throws {
        let loop = try EventLoop()
        let port = TestServices.unusedPort()
        let failed = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            loop.execute {
                TCPConnection.connect(loop: loop, to: SocketAddress(host: "127.0.0.1", port: port)) { result in
                    if case .success(let conn) = result { conn.close(); c.resume(returning: false) } else { c.resume(returning: true) }
                }
            }
        }
        #expect(failed)
        #expect(loop.shutdown() == 0)
    }

    @Test func parsesSocketAddresses() {
        #expect(SocketAddress(parsing: "127.0.0.1:7420") == SocketAddress(host: "127.0.0.1", port: 7420))
        #expect(SocketAddress(parsing: "[::1]:80") == SocketAddress(host: "::1", port: 80))
        #expect(SocketAddress(parsing: "localhost:1")?.host == "127.0.0.1")
        #expect(SocketAddress(parsing: "127.0.0.1") == nil)
        #expect(SocketAddress(parsing: "127.0.0.1:99999") == nil)
        #expect(SocketAddress(parsing: "example.com:80") == nil)
    }
}
