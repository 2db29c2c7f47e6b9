import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueWire
import Synchronization
import Testing
import TestSupport
import UVLoop

@Suite struct ServerProtocolTests {
    private func request(_ callID: UInt64, _ call: Call?) -> [UInt8] {
        FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: callID, call: call)))
    }

    private func response(_ socket: RawSocket) throws -> Response {
        let body = try #require(socket.readFrame())
        return try WireCodec.decodeResponse(body)
    }

    @Test func helloAndPingOverTheSwiftClient() async throws {
        let test = try await TestServer.protocolOnly { $0.maxFrameBytes = 65536; $0.shardCount = 8 }
        let loop = try EventLoop()
        let client = try await RunQueueConnection.connect(to: test.address, loop: loop)
        let hello = try await client.hello(clientName: "test")
        #expect(hello.serverVersion.hasPrefix("runqueued"))
        #expect(hello.maxFrameBytes == 65536)
        #expect(hello.shardCount == 8)
        #expect(try await client.ping([0, 1, 0xFF]) == [0, 1, 0xFF])
        await client.close()
        #expect(await test.server.stop() == 0)
        #expect(loop.shutdown() == 0)
    }

    @Test func tenThousandPipelinedCallsAreEachAnsweredOnce() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        var bytes: [UInt8] = []
        for id in 1...10_000 {
            bytes += request(UInt64(id), .ping(PingRequest(payload: Array("p\(id)".utf8))))
        }
        try socket.send(bytes)
        var seen = Set<UInt64>()
        for _ in 1...10_000 {
            let r = try response(socket)
            #expect(r.status.code == .ok)
            guard case .ping(let pong)? = r.result else { Issue.record("not a ping result"); break }
            #expect(pong.payload == Array("p\(r.callID)".utf8))
            #expect(seen.insert(r.callID).inserted, "call \(r.callID) answered twice")
        }
        #expect(seen.count == 10_000)
        #expect(await test.server.stop() == 0)
    }

    @Test func pipelinedCallsThroughTheSwiftClientMatchTheirAnswers() async throws {
        let test = try await TestServer.protocolOnly()
        let client = try await RunQueueConnection.connect(to: test.address)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<2000 {
                group.addTask { try await client.ping(Array("\(i)".utf8)) == Array("\(i)".utf8) }
            }
            for try await matched in group { #expect(matched) }
        }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func garbageBodyAnswersInvalidArgumentAndTheConnectionStaysUsable() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        try socket.send(FrameEncoder.frame([0xFF, 0xFF, 0xFF, 0x07]))
        let bad = try response(socket)
        #expect(bad.callID == 0)
        #expect(bad.status.code == .invalidArgument)
        try socket.send(request(9, .ping(PingRequest(payload: [1]))))
        let good = try response(socket)
        #expect(good.callID == 9)
        #expect(good.status.code == .ok)
        #expect(await test.server.stop() == 0)
    }

    @Test func oversizeFrameIsRefusedBeforeItsBodyThenClosed() async throws {
        let test = try await TestServer.protocolOnly { $0.maxFrameBytes = 4096 }
        let socket = try RawSocket(port: test.port)
        // Only the header is sent: the answer must not wait for the body.
        try socket.send([0, 0, 0x10, 0x01])
        let r = try response(socket)
        #expect(r.callID == 0)
        #expect(r.status.code == .resourceExhausted)
        #expect(r.status.message.contains("4097"))
        #expect(socket.readsEOF())
        #expect(await test.server.stop() == 0)
    }

    @Test func zeroLengthFrameIsRefusedThenClosed() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        try socket.send([0, 0, 0, 0])
        #expect(try response(socket).status.code == .resourceExhausted)
        #expect(socket.readsEOF())
        #expect(await test.server.stop() == 0)
    }

    @Test func requestWithoutAKnownMethodIsUnimplemented() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        try socket.send(request(3, nil))
        let r = try response(socket)
        #expect(r.callID == 3)
        #expect(r.status.code == .unimplemented)
        // An engine method not built yet names itself.
        try socket.send(request(4, .subscribeExpiry(SubscribeExpiryRequest())))
        let later = try response(socket)
        #expect(later.callID == 4)
        #expect(later.status.code == .unimplemented)
        #expect(later.status.message.contains("SubscribeExpiry"))
        #expect(await test.server.stop() == 0)
    }

    @Test func callIDZeroIsRefusedAndClosesTheConnection() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        try socket.send(request(0, .ping(PingRequest())))
        let r = try response(socket)
        #expect(r.callID == 0)
        #expect(r.status.code == .invalidArgument)
        #expect(r.status.message.contains("call_id"))
        #expect(socket.readsEOF())
        #expect(await test.server.stop() == 0)
    }

    @Test func cancelOfAnUnknownCallAnswersFalse() async throws {
        let test = try await TestServer.protocolOnly()
        let client = try await RunQueueConnection.connect(to: test.address)
        let result = try await client.call(.cancel(CancelRequest(targetCallID: 12345)))
        #expect(result == .cancel(CancelResponse(cancelled: false)))
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func fiveHundredConcurrentConnectionsAreServed() async throws {
        let test = try await TestServer.protocolOnly()
        let loop = try EventLoop()
        let clients = try await withThrowingTaskGroup(of: RunQueueConnection.self) { group in
            for i in 0..<500 {
                group.addTask {
                    let client = try await RunQueueConnection.connect(to: test.address, loop: loop)
                    #expect(try await client.ping(Array("\(i)".utf8)) == Array("\(i)".utf8))
                    return client
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(clients.count == 500)
        #expect(try await test.server.connectionCount() == 500)
        for client in clients { await client.close() }
        #expect(await test.server.stop() == 0)
        #expect(loop.shutdown() == 0)
    }

    @Test func idleConnectionsAreClosedAfterTheTimeout() async throws {
        let test = try await TestServer.protocolOnly { $0.idleTimeoutMs = 100 }
        let socket = try RawSocket(port: test.port, timeoutSeconds: 5)
        let start = ContinuousClock.now
        #expect(socket.readsEOF())
        #expect(ContinuousClock.now - start >= .milliseconds(90))
        #expect(await test.server.stop() == 0)
    }

    @Test func aClientThatStopsReadingDoesNotGrowServerMemory() async throws {
        let test = try await TestServer.protocolOnly { 
            $0.maxQueuedResponseBytes = 65536
            $0.maxCallsPerConnection = 64
            $0.shutdownGraceMs = 300
        }
        let socket = try RawSocket(port: test.port)
        // 64 KiB pings, never read: the server must stop reading once its
        // queue for us is full, so the kernel buffers fill and sends stop.
        let payload = [UInt8](repeating: 7, count: 60_000)
        var sent = 0
        var id: UInt64 = 1
        var chunk = request(id, .ping(PingRequest(payload: payload)))
        let deadline = ContinuousClock.now + .seconds(3)
        var offset = 0
        while ContinuousClock.now < deadline, sent < 512 << 20 {
            let n = chunk[offset...].withUnsafeBytes { socketSend(socket.fd, $0) }
            if n <= 0 { try await Task.sleep(for: .milliseconds(20)); continue }
            sent += n
            offset += n
            if offset == chunk.count {
                id += 1
                chunk = request(id, .ping(PingRequest(payload: payload)))
                offset = 0
            }
        }
        // Kernel socket buffers on loopback hold a few MiB each way; an
        // unbounded server would have taken all 512 MiB within 3 s.
        #expect(sent < 64 << 20, "server kept reading: \(sent) bytes accepted")
        #expect(await test.server.stop() == 0)
    }

    private func socketSend(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
    }

    @Test func gracefulShutdownAnswersCallsItReadThenCloses() async throws {
        let test = try await TestServer.protocolOnly()
        let socket = try RawSocket(port: test.port)
        let idle = try RawSocket(port: test.port)
        var bytes: [UInt8] = []
        for id in 1...5000 { bytes += request(UInt64(id), .ping(PingRequest(payload: [UInt8(id % 256)]))) }
        try socket.send(bytes)
        // The first answer proves the server is working on the batch.
        let first = try response(socket)
        #expect(first.status.code == .ok)
        async let stopped = test.server.stop()
        var seen: Set<UInt64> = [first.callID]
        while let body = socket.readFrame() {
            let r = try WireCodec.decodeResponse(body)
            #expect(r.status.code == .ok)
            #expect(seen.insert(r.callID).inserted, "call \(r.callID) answered twice")
        }
        #expect(idle.readsEOF())
        #expect(await stopped == 0)
        #expect(!seen.isEmpty)
    }
}
