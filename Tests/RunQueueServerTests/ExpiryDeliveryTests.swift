import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueEngine
import RunQueueServer
import Synchronization
import Testing
import TestSupport

/// Expiry events reach subscribers as the runs expire, whatever came
/// before: a server whose database was new when its first runs expired one
/// at a time, and subscribers that join, pause, resume and leave while
/// thousands of runs expire. Each test has its own redis-server and
/// database (a new database is part of what is tested), and reads the
/// expected events from the log in PostgreSQL.
@Suite(.serialized, .tags(.integration), .needsServices) struct ExpiryDeliveryTests {
    typealias StreamSocket = SubscribeExpiryTests.StreamSocket

    /// One SubscribeExpiry stream on a raw socket, read by a thread of its
    /// own (a blocking reader must not hold one of the few cooperative
    /// threads). `pause()` stops reading: with a small receive buffer the
    /// server's flow control then holds the stream back.
    final class Subscriber: @unchecked Sendable {
        let filter: ExpiryFilter
        let liveFrom: UInt64
        /// Every logged event after this cursor that matches is owed to this subscriber.
        let after: UInt64
        private let socket: StreamSocket
        private let state = Mutex<(events: [ExpiryEvent], paused: Bool, stopped: Bool, end: Status?)>(([], false, false, nil))
        private let finished = Mutex(false)

        /// A live subscription, or with `replay` one from the oldest event
        /// (the tests' databases are new: nothing was pruned, so that is cursor 1).
        init(port: UInt16, filter: ExpiryFilter, receiveBuffer: Int32? = nil, replay: Bool = false) throws {
            self.filter = filter
            socket = try StreamSocket(port: port, receiveBuffer: receiveBuffer, timeoutSeconds: 1)
            liveFrom = try socket.subscribe(SubscribeExpiryRequest(filter: filter, replay: replay))
            after = replay ? 0 : liveFrom
            let thread = Thread { [self] in readLoop() }
            thread.start()
        }

        deinit { stopAndClose() }

        private func readLoop() {
            while true {
                let (paused, stopped) = state.withLock { ($0.paused, $0.stopped) }
                if stopped { break }
                if paused {
                    usleep(5_000)
                    continue
                }
                do {
                    let response = try socket.next()
                    if case .expiryEvent(let event)? = response.result {
                        state.withLock { $0.events.append(event) }
                    } else if response.endOfStream {
                        state.withLock { $0.end = response.status }
                        break
                    }
                } catch let error as RunQueueError where error.code == .deadlineExceeded && !socket.atEOF {
                    continue  // nothing within the socket's timeout: look at the flags again
                } catch {
                    break
                }
            }
            finished.withLock { $0 = true }
        }

        var events: [ExpiryEvent] { state.withLock { $0.events } }
        var end: Status? { state.withLock { $0.end } }

        func pause() { state.withLock { $0.paused = true } }
        func resume() { state.withLock { $0.paused = false } }

        /// Leaves with a Cancel for the stream and waits for its end (reading
        /// again if paused: the end comes after the events queued before it).
        func cancel() async throws {
            try socket.send(2, .cancel(CancelRequest(targetCallID: 1)))
            resume()
            try await waitUntil("the stream ended") { self.end != nil }
            #expect(end?.code == .cancelled)
            stopAndClose()
        }

        /// Leaves by closing the socket, without Cancel: an orderly close,
        /// or with `reset` an abortive one (RST, unread data discarded).
        func drop(reset: Bool) {
            if reset { socket.setResetOnClose() }
            stopAndClose()
        }

        /// Stops the reader, then closes: the thread finishes its current
        /// read (at most the socket's 1 s timeout) before the descriptor goes.
        private func stopAndClose() {
            state.withLock { $0.stopped = true }
            while !finished.withLock({ $0 }) { usleep(1_000) }
            socket.close()
        }

        /// Waits until this subscriber holds `count` events; false after `seconds`.
        func waitForEvents(_ count: Int, seconds: Double = 60) async throws -> Bool {
            (try? await waitUntil("\(count) events arrived", within: .milliseconds(Int(seconds * 1000))) { self.events.count >= count }) != nil
        }
    }

    /// The logged events matching `filter` with a cursor after `after`, in
    /// cursor order: what a subscriber that started there must receive.
    static func logged(_ database: String, after: UInt64, _ filter: ExpiryFilter) throws -> [String] {
        var conditions = ["cursor > \(after)"]
        for (column, value) in [("org_id", filter.orgID), ("project_id", filter.projectID),
                                ("environment_id", filter.environmentID), ("queue", filter.queue)] where !value.isEmpty {
            conditions.append("\(column) = '\(value)'")
        }
        let rows = try psql(database, "SELECT cursor || ' ' || run_id FROM expiry_events WHERE \(conditions.joined(separator: " AND ")) ORDER BY cursor")
        return rows.split(separator: "\n").map(String.init)
    }

    static func received(_ events: [ExpiryEvent]) -> [String] { events.map { "\($0.cursor) \($0.runID)" } }

    static func enqueue(_ client: RunQueueConnection, _ runs: [RunDescriptor], batch: Int) async throws {
        for start in stride(from: 0, to: runs.count, by: batch) {
            let slice = Array(runs[start..<min(runs.count, start + batch)])
            guard case .enqueueBatch(let r)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: slice))) else {
                throw RunQueueError(.internal, "EnqueueBatch answered another method")
            }
            #expect(r.results.allSatisfy { $0.status.code == .ok })
        }
    }

    /// The sequence that once stalled delivery for tens of seconds. On a new
    /// database, single expiries applied one at a time left the outbox
    /// applier's prepared statements on a generic plan costed for an empty
    /// `runs` table (a sequential scan per call); once thousands of runs
    /// expired, every apply scanned the whole table while holding up the
    /// events of every shard behind it. B must get every event of its
    /// filter, in cursor order.
    @Test func aSubscriberAfterAnEarlierOneCameAndWentGetsEveryEventInOrder() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let server = ServerProcess(redisURL: redis.url, databaseURL: database.url)
        try server.launch()
        defer { server.kill() }
        let n = Names()
        let producer = try await server.connect()

        // Subscriber A sees single runs of E1 expire, one apply at a time.
        let a = try Subscriber(port: server.port, filter: ExpiryFilter(environmentID: n("E1")))
        for i in 0..<8 {
            let run = n.run("a\(i)", env: "E1", ttl: "1s")
            guard case .enqueue? = try await producer.call(.enqueue(EnqueueRequest(run: run))) else {
                throw RunQueueError(.internal, "Enqueue answered another method")
            }
            #expect(try await a.waitForEvents(i + 1, seconds: 30), "A missed the expiry of run \(i)")
        }
        #expect(a.events.map(\.runID) == (0..<8).map { n("a\($0)") })
        // A and the producer go away without Cancel.
        a.drop(reset: false)
        await producer.close()

        // Subscriber B on a new project; 20,000 runs with TTLs of 1..10 s in 8 environments.
        var filter = ExpiryFilter()
        filter.projectID = n("P2")
        let b = try Subscriber(port: server.port, filter: filter)
        let client = try await server.connect()
        let runs = (0..<20_000).map { i in
            var run = n.run("b\(i)", env: "E2_\(i % 8)", ttl: "\(i % 10 + 1)s")
            run.projectID = n("P2")
            return run
        }
        try await Self.enqueue(client, runs, batch: 40)
        #expect(try await b.waitForEvents(runs.count, seconds: 120), "B has \(b.events.count) of \(runs.count) events")
        #expect(Self.received(b.events) == (try Self.logged(database.url, after: b.after, filter)))
        #expect(Set(b.events.map(\.runID)) == Set(runs.map(\.runID)))
        await client.close()
        b.drop(reset: false)

        // The cause, a plan cached for an empty table, is ruled out at the
        // driver: every session plans every execution
        // (PostgresConnectionTests.plansEveryExecutionOfAPreparedStatementForItsParameters).
    }

    /// Events in the log so far.
    static func loggedCount(_ database: String) throws -> Int {
        Int(try psql(database, "SELECT count(*) FROM expiry_events")) ?? 0
    }

    /// While 20,000 runs expire over 10 s, subscribers with different
    /// filters join, read, pause (long enough to fall behind the server's
    /// buffer), resume, replay from the start and leave (Cancel, an orderly
    /// close, a reset). Each subscriber that stays gets exactly the logged
    /// events of its filter after its start, once, in cursor order; each
    /// Cancel ends its stream with CANCELLED.
    @Test func subscribersThatComeAndGoDuringAMassExpiryLeaveEveryStayerEveryEventOnce() async throws {
        // A server of this process with a small event buffer and small
        // connection queues: a subscriber that stops reading is held back
        // by the server soon, and one that starts or resumes far behind
        // pages from PostgreSQL (the counters show both happened).
        ExpiryTuning.bufferCapacity = 100
        ExpiryTuning.pageSize = 100
        defer {
            ExpiryTuning.bufferCapacity = nil
            ExpiryTuning.pageSize = nil
        }
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let (test, client) = try await TestServer.started {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
            $0.maxQueuedResponseBytes = 16 << 10
        }
        let pausesBefore = ExpiryTuning.pauses
        let pagesBefore = ExpiryTuning.pages
        let n = Names()
        // 8 environments in 4 projects of 2 organisations, 2 queues; TTLs of 1..10 s.
        let total = 20_000
        let runs = (0..<total).map { i in
            let env = i % 8
            var run = n.run("r\(i)", env: "e\(env)", queue: "q\(i % 2)", ttl: "\(i % 10 + 1)s")
            run.projectID = n("p\(env % 4)")
            run.orgID = n("o\(env % 2)")
            return run
        }
        let all = ExpiryFilter()
        let org0 = ExpiryFilter(orgID: n("o0"))
        var project1Queue1 = ExpiryFilter(projectID: n("p1"))
        project1Queue1.queue = "q1"
        let env5 = ExpiryFilter(environmentID: n("e5"))

        // Stayers: two join before the runs exist; the org's reads through a small buffer.
        let everything = try Subscriber(port: test.port, filter: all)
        let orgReader = try Subscriber(port: test.port, filter: org0, receiveBuffer: 4096)
        try await Self.enqueue(client, runs, batch: 1000)
        var stayers = [everything, orgReader]

        var leavers: [Subscriber] = []
        var cancelled: [Subscriber] = []
        var joinedProject = false, joinedEnv = false, orgPaused = false, orgResumed = false
        var envPausedAt: Int?
        var envReader: Subscriber?
        var logged = 0
        var round = 0
        while logged < total {
            logged = try Self.loggedCount(database.url)
            // The org's reader stops reading after 500 events and resumes
            // 12,000 events later, far behind the 100 the server keeps in memory.
            if !orgPaused && orgReader.events.count >= 500 {
                orgReader.pause()
                orgPaused = true
            }
            if orgPaused && !orgResumed && logged >= min(total, 500 + 12_000) {
                orgReader.resume()
                orgResumed = true
            }
            if !joinedProject && logged >= 3_000 {
                stayers.append(try Subscriber(port: test.port, filter: project1Queue1))
                // Replays from the start: far behind the buffer, so it pages from PostgreSQL.
                stayers.append(try Subscriber(port: test.port, filter: org0, replay: true))
                joinedProject = true
            }
            if !joinedEnv && logged >= 8_000 {
                let env = try Subscriber(port: test.port, filter: env5, receiveBuffer: 4096)
                env.pause()
                envPausedAt = logged
                envReader = env
                stayers.append(env)
                joinedEnv = true
            }
            if let at = envPausedAt, logged >= at + 2_000 {
                envReader?.resume()
                envPausedAt = nil
            }
            // Churn: a subscriber joins, reads or stops reading, and leaves one of three ways.
            let filters = [all, org0, project1Queue1, env5]
            let leaver = try Subscriber(port: test.port, filter: filters[round % filters.count], receiveBuffer: 4096)
            if round % 2 == 1 { leaver.pause() }
            let before = logged
            _ = try? await waitUntil("the leaver got an event or 300 more were logged") { try leaver.events.count > 0 || Self.loggedCount(database.url) >= min(total, before + 300) }
            switch round % 3 {
            case 0:
                try await leaver.cancel()
                cancelled.append(leaver)
            case 1: leaver.drop(reset: false)
            default: leaver.drop(reset: true)
            }
            leavers.append(leaver)
            round += 1
        }
        #expect(orgResumed, "the org's reader never resumed")
        envReader?.resume()
        #expect(round >= 10, "only \(round) subscribers came and went")

        for stayer in stayers {
            let expected = try Self.logged(database.url, after: stayer.after, stayer.filter)
            #expect(try await stayer.waitForEvents(expected.count, seconds: 60),
                    "a subscriber (\(stayer.filter)) has \(stayer.events.count) of \(expected.count) events")
            #expect(Self.received(stayer.events) == expected, "a subscriber (\(stayer.filter)) got other events than the log holds")
        }
        #expect(everything.events.count == total)
        #expect(cancelled.allSatisfy { $0.end?.code == .cancelled })
        // Still serving: a new subscriber opens and the leavers' streams are gone.
        let late = try Subscriber(port: test.port, filter: all)
        #expect(late.liveFrom >= everything.events.last?.cursor ?? 0)
        for subscriber in stayers + [late] { subscriber.drop(reset: false) }
        #expect(ExpiryTuning.pauses > pausesBefore, "no stream was ever held back")
        #expect(ExpiryTuning.pages > pagesBefore, "no stream read the log from PostgreSQL")
        await client.close()
        #expect(await test.server.stop() == 0)
    }
}
