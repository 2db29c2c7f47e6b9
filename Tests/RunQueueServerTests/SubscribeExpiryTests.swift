import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueWire
import RunQueueEngine
import RunQueueServer
import Testing
import TestSupport
import UVLoop

/// SubscribeExpiry end to end over the raw protocol: real Redis and
/// PostgreSQL, runs that really expire (ttl 1s).
@Suite(.serialized, .tags(.integration), .needsServices) struct SubscribeExpiryTests {

    /// A blocking client socket that reads one stream's frames; `receiveBuffer`
    /// (set before connecting) keeps the kernel from absorbing a slow reader's backlog.
    final class StreamSocket {
        let fd: Int32
        private var buffer: [UInt8] = []

        init(port: UInt16, receiveBuffer: Int32? = nil, timeoutSeconds: Int = 15) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = port.bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { Glibc.close(fd); throw POSIXError(.ECONNREFUSED) }
            var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close() }

        private(set) var isClosed = false
        /// The server closed the connection (a read timeout leaves this false).
        private(set) var atEOF = false

        func close() {
            guard !isClosed else { return }
            isClosed = true
            Glibc.close(fd)
        }

        /// Makes `close()` abortive: the peer gets a reset, not an orderly end.
        func setResetOnClose() {
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        }

        func send(_ callID: UInt64, _ call: Call) throws {
            let bytes = FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: callID, call: call)))
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw POSIXError(.EPIPE) }
                offset += n
            }
        }

        private func read(_ count: Int) -> [UInt8]? {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while buffer.count < count {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 { atEOF = true }
                if n <= 0 { return nil }
                buffer.append(contentsOf: chunk[0..<n])
            }
            let out = Array(buffer[0..<count])
            buffer.removeFirst(count)
            return out
        }

        /// The next response; throws on EOF or timeout.
        func next() throws -> Response {
            guard let header = read(4) else { throw RunQueueError(.deadlineExceeded, "no response") }
            let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            guard let body = read(length) else { throw RunQueueError(.deadlineExceeded, "truncated response") }
            return try WireCodec.decodeResponse(body)
        }

        /// Opens a stream (call id 1) and returns live_from_cursor.
        func subscribe(_ request: SubscribeExpiryRequest) throws -> UInt64 {
            try send(1, .subscribeExpiry(request))
            let first = try next()
            guard first.callID == 1, first.status.code == .ok, case .subscribeExpiry(let started)? = first.result else {
                throw RunQueueError(first.status.code, "unexpected opening response: \(first)")
            }
            return started.liveFromCursor
        }

        /// The next `count` events of call 1.
        func events(_ count: Int) throws -> [ExpiryEvent] {
            var out: [ExpiryEvent] = []
            while out.count < count {
                let response = try next()
                guard response.callID == 1, case .expiryEvent(let event)? = response.result else {
                    throw RunQueueError(response.status.code, "unexpected response: \(response)")
                }
                out.append(event)
            }
            return out
        }

        /// True when nothing arrives within `ms`.
        func silent(forMs ms: Int) -> Bool {
            var tv = timeval(tv_sec: 0, tv_usec: Int(ms) * 1000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            defer {
                var back = timeval(tv_sec: 15, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, socklen_t(MemoryLayout<timeval>.size))
            }
            if !buffer.isEmpty { return false }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
            return n < 0
        }
    }

    static func cursors(_ test: TestServer, after: UInt64, through: UInt64, env: String? = nil) throws -> [UInt64] {
        let filter = env.map { " AND environment_id = '\($0)'" } ?? ""
        return try test.sql("SELECT cursor FROM expiry_events WHERE cursor > \(after) AND cursor <= \(through)\(filter) ORDER BY cursor")
            .split(separator: "\n").compactMap { UInt64($0) }
    }

    func enqueue(_ client: RunQueueConnection, _ runs: [RunDescriptor]) async throws {
        for start in stride(from: 0, to: runs.count, by: 1000) {
            let slice = Array(runs[start..<min(runs.count, start + 1000)])
            guard case .enqueueBatch(let r)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: slice))) else {
                throw RunQueueError(.internal, "shape")
            }
            #expect(r.results.allSatisfy { $0.status.code == .ok })
        }
    }

    @Test func aLiveSubscriberReceivesAnExpiringRunsEventWithEveryField() async throws {
        let (test, client) = try await ExpiryTests.started()
        let n = Names()
        let socket = try StreamSocket(port: test.port)
        let liveFrom = try socket.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env"))))
        #expect(UInt64(try test.sql("SELECT coalesce(max(cursor), 0) FROM expiry_events")) ?? 0 <= liveFrom)
        var run = n.run("a", queue: "q/sub", ttl: "1s")
        run.concurrencyKey = "ck-1"
        run.taskIdentifier = "task.sub"
        run.environmentType = .staging
        guard case .enqueue(let e)? = try await client.call(.enqueue(EnqueueRequest(run: run))) else {
            Issue.record("enqueue"); return
        }
        let event = try #require(try socket.events(1).first)
        #expect(event.cursor > liveFrom)
        #expect(event.runID == n("a") && event.orgID == n("org") && event.projectID == n("proj"))
        #expect(event.environmentID == n("env") && event.environmentType == .staging)
        #expect(event.queue == "q/sub" && event.concurrencyKey == "ck-1" && event.taskIdentifier == "task.sub")
        #expect(event.ttl == "1s" && event.expiresAtMs == e.expiresAtMs && event.expiredAtMs >= e.expiresAtMs)
        #expect(try test.sql("SELECT cursor FROM expiry_events WHERE run_id = '\(n("a"))'") == "\(event.cursor)")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aFilterByEnvironmentAndQueueExcludesOtherEvents() async throws {
        let (test, client) = try await ExpiryTests.started()
        let n = Names()
        let socket = try StreamSocket(port: test.port)
        _ = try socket.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("envA"), queue: "q1")))
        try await enqueue(client, [n.run("a", env: "envA", queue: "q1", ttl: "1s"), n.run("b", env: "envA", queue: "q2", ttl: "1s"),
                                   n.run("c", env: "envB", queue: "q1", ttl: "1s")])
        try await waitUntil("a, b and c expired") {
            try test.sql("SELECT count(*) FROM expiry_events WHERE run_id LIKE '\(n.prefix)%'") == "3"
        }
        try await enqueue(client, [n.run("d", env: "envA", queue: "q1", ttl: "1s")])
        // b and c expired before d: were they delivered, they would come before it.
        let events = try socket.events(2)
        #expect(events.map(\.runID) == [n("a"), n("d")])
        #expect(events[0].cursor < events[1].cursor)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func invalidFilterIdentifiersAreRefusedNamingTheField() async throws {
        let (test, client) = try await ExpiryTests.started()
        let socket = try StreamSocket(port: test.port)
        try socket.send(1, .subscribeExpiry(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: "bad env"))))
        let answer = try socket.next()
        #expect(answer.status.code == .invalidArgument && answer.status.message.contains("environment_id"))
        try socket.send(2, .subscribeExpiry(SubscribeExpiryRequest(filter: ExpiryFilter(queue: "bad|queue"))))
        let second = try socket.next()
        #expect(second.status.code == .invalidArgument && second.status.message.contains("queue"))
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func resumeAfterAndReplayDeliverExactlyTheLaterEventsInOrder() async throws {
        let (test, client) = try await ExpiryTests.started()
        let n = Names()
        let live = try StreamSocket(port: test.port)
        _ = try live.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env"))))
        try await enqueue(client, (0..<5).map { n.run("r\($0)", ttl: "1s") })
        let first = try live.events(5)
        #expect(Set(first.map(\.runID)) == Set((0..<5).map { n("r\($0)") }))
        #expect(zip(first, first.dropFirst()).allSatisfy { $0.cursor < $1.cursor })

        // Resume after the second: exactly the last three.
        let resumed = try StreamSocket(port: test.port)
        _ = try resumed.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env")), resumeAfter: first[1].cursor))
        #expect(try resumed.events(3) == Array(first[2...]))
        #expect(resumed.silent(forMs: 300))

        // Unfiltered: every cursor of the log after it, no gap.
        let unfiltered = try StreamSocket(port: test.port)
        _ = try unfiltered.subscribe(SubscribeExpiryRequest(resumeAfter: first[1].cursor))
        let expected = try Self.cursors(test, after: first[1].cursor, through: first[4].cursor)
        #expect(try unfiltered.events(expected.count).map(\.cursor) == expected)

        // Replay: from the oldest retained event.
        let oldest = UInt64(try test.sql("SELECT min(cursor) FROM expiry_events")) ?? 0
        let replay = try StreamSocket(port: test.port)
        _ = try replay.subscribe(SubscribeExpiryRequest(replay: true))
        #expect(try replay.events(1).first?.cursor == oldest)
        let replayEnv = try StreamSocket(port: test.port)
        _ = try replayEnv.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env")), replay: true))
        #expect(try replayEnv.events(5) == first)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aCursorOutsideTheRetainedLogIsOutOfRange() async throws {
        let (test, client) = try await ExpiryTests.started()
        let socket = try StreamSocket(port: test.port)
        let newest = UInt64(try test.sql("SELECT coalesce(pg_sequence_last_value('expiry_events_cursor_seq'), 0)")) ?? 0
        try socket.send(1, .subscribeExpiry(SubscribeExpiryRequest(resumeAfter: newest + 1000)))
        let answer = try socket.next()
        #expect(answer.status.code == .outOfRange)
        #expect(answer.status.message.contains("resume_after \(newest + 1000)") && answer.status.message.contains("newest"))
        #expect(answer.status.message.contains("oldest"))
        // Exactly the newest is fine (a live start).
        try socket.send(2, .subscribeExpiry(SubscribeExpiryRequest(resumeAfter: max(1, newest))))
        let ok = try socket.next()
        #expect(ok.callID == 2 && (ok.status.code == .ok || newest == 0))
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func cancelEndsTheStreamWithEndOfStreamAndCancelled() async throws {
        let (test, client) = try await ExpiryTests.started()
        let socket = try StreamSocket(port: test.port)
        _ = try socket.subscribe(SubscribeExpiryRequest())
        try socket.send(2, .cancel(CancelRequest(targetCallID: 1)))
        var ended: Response?
        var cancelAnswer: CancelResponse?
        while ended == nil || cancelAnswer == nil {
            let response = try socket.next()
            if response.callID == 2, case .cancel(let c)? = response.result { cancelAnswer = c }
            if response.callID == 1 && response.endOfStream { ended = response }
        }
        #expect(cancelAnswer?.cancelled == true)
        #expect(ended?.status.code == .cancelled)
        // The call id is free again.
        _ = try socket.subscribe(SubscribeExpiryRequest())
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func shutdownEndsStreamsWithUnavailable() async throws {
        let (test, client) = try await ExpiryTests.started()
        let socket = try StreamSocket(port: test.port)
        _ = try socket.subscribe(SubscribeExpiryRequest())
        await client.close()
        let stopped = Task { await test.server.stop() }
        let end = try socket.next()
        #expect(end.callID == 1 && end.endOfStream && end.status.code == .unavailable)
        #expect(await stopped.value == 0)
    }

    @Test func aSubscriberThatStopsReadingGetsEveryEventInOrderAfterwards() async throws {
        ExpiryTuning.bufferCapacity = 64
        ExpiryTuning.pageSize = 100
        defer {
            ExpiryTuning.bufferCapacity = nil
            ExpiryTuning.pageSize = nil
        }
        let (test, client) = try await ExpiryTests.started { $0.maxQueuedResponseBytes = 16 << 10 }
        let n = Names()
        let socket = try StreamSocket(port: test.port, receiveBuffer: 4096, timeoutSeconds: 30)
        let liveFrom = try socket.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env"))))
        let pausesBefore = ExpiryTuning.pauses
        let pagesBefore = ExpiryTuning.pages
        let count = 3000
        try await enqueue(client, (0..<count).map { n.run("r\($0)", ttl: "1s") })
        // Not reading while every run expires.
        try await waitUntil("every run expired", within: .seconds(60)) {
            (Int(try test.sql("SELECT count(*) FROM expiry_events WHERE environment_id = '\(n("env"))'")) ?? 0) >= count
        }
        try await waitUntil("the stream paused for the full connection") { ExpiryTuning.pauses > pausesBefore }
        let events = try socket.events(count)
        #expect(Set(events.map(\.runID)).count == count)
        let newest = events.last?.cursor ?? 0
        let logged = try Self.cursors(test, after: liveFrom, through: newest, env: n("env"))
        #expect(events.map(\.cursor) == logged)
        // The ring held 64 events: the stream caught up from PostgreSQL.
        #expect(ExpiryTuning.pages > pagesBefore)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aSubscriberOnOneServerSeesExpiriesAppliedByAnother() async throws {
        let (a, clientA) = try await ExpiryTests.started()
        let (b, clientB) = try await TestServer.started(stack: a.stack) { $0.ttlConsumersDisabled = true }
        let n = Names()
        let socket = try StreamSocket(port: b.port)
        let liveFrom = try socket.subscribe(SubscribeExpiryRequest(filter: ExpiryFilter(environmentID: n("env"))))
        try await enqueue(clientA, [n.run("a", ttl: "1s")])
        let event = try #require(try socket.events(1).first)
        #expect(event.runID == n("a") && event.cursor > liveFrom)
        await clientA.close()
        await clientB.close()
        #expect(await b.server.stop() == 0)
        #expect(await a.server.stop() == 0)
    }
}
