import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueWire
import RunQueueServer
import RunQueueStorage
import Testing
import TestSupport
import UVLoop

/// The queue methods end to end: client -> runqueued -> real Redis.
@Suite(.tags(.integration), .needsServices) struct QueueEngineTests {
    func enqueue(_ client: RunQueueConnection, _ run: RunDescriptor) async throws -> EnqueueResponse {
        guard case .enqueue(let r)? = try await client.call(.enqueue(EnqueueRequest(run: run))) else { throw RunQueueError(.internal, "shape") }
        return r
    }

    func expectInvalid(_ client: RunQueueConnection, _ call: Call, naming field: String) async {
        do {
            _ = try await client.call(call)
            Issue.record("\(call.methodName) accepted bad \(field)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(field), "\(error.message) should name \(field)")
        }
    }

    @Test func enqueueDequeueAckRoundTrip() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let created = try await enqueue(client, n.run("a", ttl: "1h"))
        #expect(created.created)
        #expect(created.expiresAtMs >= before + 3_600_000 - 5000 && created.expiresAtMs <= before + 3_600_000 + 5000)
        #expect(try await enqueue(client, n.run("a")).created == false)
        let messages = try await client.dequeue(n("wq"))
        #expect(messages.map(\.runID) == [n("a")])
        let m = try #require(messages.first)
        #expect(m.orgID == n("org") && m.environmentID == n("env") && m.queue == "q" && m.taskIdentifier == "task")
        #expect(m.environmentType == .production)
        #expect(m.attempt == 0)
        #expect(m.timestampMs >= before - 5000)
        #expect(m.leaseExpiresAtMs > m.timestampMs + 250_000)
        guard case .readMessage(let read)? = try await client.call(.readMessage(ReadMessageRequest(runID: n("a"), environmentID: n("env")))) else {
            Issue.record("read"); return
        }
        #expect(read.source == .redisV4)
        #expect(read.message?.runID == n("a"))
        let ack = try await client.call(.ack(AckRequest(runID: n("a"), environmentID: n("env"), attempt: 0)))
        #expect(ack == .ack(AckResponse(acked: true)))
        // A retry with the same attempt answers as the first call, whether or
        // not the finishing mark is still there; without a fence the run is
        // simply not in flight any more.
        let again = try await client.call(.ack(AckRequest(runID: n("a"), environmentID: n("env"), attempt: 0)))
        #expect(again == .ack(AckResponse(acked: true)))
        let unfenced = try await client.call(.ack(AckRequest(runID: n("a"), environmentID: n("env"))))
        #expect(unfenced == .ack(AckResponse(acked: false)))
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func badInputIsRefusedNamingTheFieldAndWritesNothing() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        var bad = n.run("a")
        bad.runID = "has space"
        await expectInvalid(client, .enqueue(EnqueueRequest(run: bad)), naming: "run_id")
        bad = n.run("a", ttl: "10 m")
        await expectInvalid(client, .enqueue(EnqueueRequest(run: bad)), naming: "ttl")
        bad = n.run("a")
        bad.environmentType = .unspecified
        await expectInvalid(client, .enqueue(EnqueueRequest(run: bad)), naming: "environment_type")
        bad = n.run("a")
        bad.concurrencyKey = "a|b"
        await expectInvalid(client, .enqueue(EnqueueRequest(run: bad)), naming: "concurrency_key")
        await expectInvalid(client, .enqueueBatch(EnqueueBatchRequest(runs: [])), naming: "runs")
        await expectInvalid(client, .enqueueBatch(EnqueueBatchRequest(runs: (0..<1001).map { n.run("b\($0)") })), naming: "runs")
        await expectInvalid(client, .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 0, waitMs: 0, leaseMs: 0)), naming: "max_runs")
        await expectInvalid(client, .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 1001, waitMs: 0, leaseMs: 0)), naming: "max_runs")
        await expectInvalid(client, .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 1, waitMs: 30_001, leaseMs: 0)), naming: "wait_ms")
        await expectInvalid(client, .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 1, waitMs: 0, leaseMs: 999)), naming: "lease_ms")
        await expectInvalid(client, .dequeue(DequeueRequest(workerQueue: "", maxRuns: 1, waitMs: 0, leaseMs: 0)), naming: "worker_queue")
        await expectInvalid(client, .ack(AckRequest(runID: "", environmentID: n("env"))), naming: "run_id")
        await expectInvalid(client, .heartbeat(HeartbeatRequest(runID: n("a"), environmentID: n("env"), leaseMs: 5)), naming: "lease_ms")
        await expectInvalid(client, .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: n("env"), queue: "", value: nil)), naming: "limit")
        await expectInvalid(client, .setConcurrencyLimit(SetConcurrencyLimitRequest(
            environmentID: n("env"), queue: "q", value: .limit(3), burstFactor: 2)), naming: "burst_factor")
        guard case .queueStats(let stats)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n("env")))) else {
            Issue.record("stats"); return
        }
        #expect(stats.length == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func batchItemsGetTheirOwnStatus() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        var invalid = n.run("bad")
        invalid.queue = "no spaces allowed"
        var otherIdentity = n.run("a")
        otherIdentity.orgID = n("other-org")
        let runs = [n.run("a"), invalid, n.run("a"), otherIdentity, n.run("b")]
        guard case .enqueueBatch(let batch)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs))) else {
            Issue.record("batch"); return
        }
        #expect(batch.results.map(\.status.code) == [.ok, .invalidArgument, .ok, .alreadyExists, .ok])
        #expect(batch.results.map(\.created) == [true, false, false, false, true])
        #expect(batch.results[1].status.message.contains("queue"))
        #expect(Set(try await client.dequeue(n("wq")).map(\.runID)) == [n("a"), n("b")])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// Every item is judged against the run as stored, not against an
    /// earlier item of the batch that conflicted with it.
    @Test func aBatchRepeatMatchingTheStoredRunIsNotACreationEvenAfterAConflictingItem() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        _ = try await enqueue(client, n.run("b"))
        let elsewhere = n.run("b", env: "other")
        let runs = [n.run("a"), elsewhere, n.run("a"), n.run("b")]
        guard case .enqueueBatch(let batch)? = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs))) else {
            Issue.record("batch"); return
        }
        #expect(batch.results.map(\.status.code) == [.ok, .alreadyExists, .ok, .ok])
        #expect(batch.results.map(\.created) == [true, false, false, false])
        #expect(Set(try await client.dequeue(n("wq")).map(\.runID)) == [n("a"), n("b")])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aLongPollWakesWhenARunIsEnqueued() async throws {
        let (test, client) = try await TestServer.started { $0.housekeepingIntervalMs = 600_000 }
        let n = Names()
        let producer = try await RunQueueConnection.connect(to: test.address)
        let start = ContinuousClock.now
        async let polled = client.dequeue(n("wq"), wait: 30_000)
        try await waitUntil("the long poll waits") { try await test.server.waitingDequeueCount() == 1 }
        _ = try await enqueue(producer, n.run("a"))
        let got = try await polled
        #expect(got.map(\.runID) == [n("a")])
        // Answered by the wake-up, not at the end of its wait (housekeeping is off).
        #expect(ContinuousClock.now - start < .seconds(25))
        await producer.close()
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aLongPollWakesWhenADelayedRunComesDue() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let due = nowMs() + 3000
        _ = try await enqueue(client, n.run("later", timestamp: due))
        #expect(try await client.dequeue(n("wq")).isEmpty)
        let got = try await client.dequeue(n("wq"), wait: 30_000)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(got.map(\.runID) == [n("later")])
        #expect(now >= due - 50)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aLongPollWithNothingAnswersEmptyAfterItsWait() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let start = ContinuousClock.now
        #expect(try await client.dequeue(n("wq"), wait: 300).isEmpty)
        #expect(ContinuousClock.now - start >= .milliseconds(290))
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aLongPollWhoseConnectionClosedLeasesNothing() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        do {
            let socket = try RawSocket(port: test.port)
            try socket.send(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: 1, call: .dequeue(
                DequeueRequest(workerQueue: n("wq"), maxRuns: 5, waitMs: 30_000, leaseMs: 0))))))
            try await waitUntil("the long poll waits") { try await test.server.waitingDequeueCount() == 1 }
        }  // socket closed here
        try await waitUntil("the server let go of the closed connection's long poll") {
            let waiting = try await test.server.waitingDequeueCount()
            let connections = try await test.server.connectionCount()
            return waiting == 0 && connections == 1
        }
        _ = try await enqueue(client, n.run("a"))
        let got = try await client.dequeue(n("wq"))
        #expect(got.map(\.runID) == [n("a")])
        #expect(got.first?.attempt == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func concurrentConsumersNeverGetTheSameRunTwice() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let envs = 6
        let perEnv = 400
        for e in 0..<envs {
            for chunk in stride(from: 0, to: perEnv, by: 200) {
                let runs = (chunk..<chunk + 200).map { n.run("r\(e)_\($0)", env: "e\(e)") }
                _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: runs)))
            }
        }
        let consumers = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let c = try await RunQueueConnection.connect(to: test.address)
                    var seen: [String] = []
                    var emptyInARow = 0
                    while emptyInARow < 3 {
                        let batch = try await c.dequeue(n("wq"), max: 50, wait: 100)
                        emptyInARow = batch.isEmpty ? emptyInARow + 1 : 0
                        for m in batch {
                            seen.append(m.runID)
                            _ = try await c.call(.ack(AckRequest(runID: m.runID, environmentID: m.environmentID, attempt: m.attempt)))
                        }
                    }
                    await c.close()
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let all = consumers.flatMap { $0 }
        #expect(all.count == envs * perEnv)
        #expect(Set(all).count == all.count, "a run was delivered twice")
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aCancelledLongPollAnswersCancelledAndLeasesNothing() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let socket = try RawSocket(port: test.port)
        func send(_ id: UInt64, _ call: Call) throws {
            try socket.send(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: id, call: call))))
        }
        try send(7, .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 5, waitMs: 30_000, leaseMs: 0)))
        try await waitUntil("the long poll waits") { try await test.server.waitingDequeueCount() == 1 }
        try send(8, .cancel(CancelRequest(targetCallID: 7)))
        var answers: [UInt64: Response] = [:]
        for _ in 0..<2 {
            let r = try WireCodec.decodeResponse(try #require(socket.readFrame()))
            answers[r.callID] = r
        }
        #expect(answers[7]?.status.code == .cancelled)
        #expect(answers[8]?.result == .cancel(CancelResponse(cancelled: true)))
        _ = try await enqueue(client, n.run("a"))
        let got = try await client.dequeue(n("wq"))
        #expect(got.map(\.runID) == [n("a")])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    /// The cancel arrives with the Dequeue, while its claim is still walking
    /// the shards one by one (max_runs 1 asks one shard per pass); the run is
    /// enqueued into the shard visited last. Nothing may be leased for the
    /// cancelled call, not even for the moment before a release.
    @Test func aLongPollCancelledMidClaimAsksNoFurtherShard() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let shards = ShardMap()
        let env = try #require((0..<10_000).map { "env\($0)" }.first { shards.shard(forEnvironment: n($0)) == shards.shardCount - 1 })
        let socket = try RawSocket(port: test.port)
        let dequeue = FrameEncoder.frame(WireCodec.encodeRequest(Request(
            callID: 7, call: .dequeue(DequeueRequest(workerQueue: n("wq"), maxRuns: 1, waitMs: 20_000, leaseMs: 0)))))
        let cancel = FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: 8, call: .cancel(CancelRequest(targetCallID: 7)))))
        try socket.send(dequeue + cancel)
        for _ in 0..<2 { _ = try WireCodec.decodeResponse(try #require(socket.readFrame())) }
        _ = try await enqueue(client, n.run("a", env: env))
        for _ in 0..<5 {
            guard case .queueStats(let stats)? = try await client.call(.queueStats(QueueStatsRequest(environmentID: n(env)))) else {
                throw RunQueueError(.internal, "shape")
            }
            #expect(stats.inFlight == 0, "a run was leased for a cancelled long poll")
        }
        guard case .getRun(let record)? = try await client.call(.getRun(GetRunRequest(runID: n("a")))) else {
            throw RunQueueError(.internal, "shape")
        }
        #expect(record.run?.status == .queued)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func shutdownAnswersWaitingLongPollsAtOnce() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        let start = ContinuousClock.now
        async let polled = client.dequeue(n("wq"), wait: 30_000)
        try await waitUntil("the long poll waits") { try await test.server.waitingDequeueCount() == 1 }
        #expect(await test.server.stop() == 0)
        #expect(try await polled.isEmpty)
        #expect(ContinuousClock.now - start < .seconds(25))
        await client.close()
    }

    @Test func aLongPollWakesOnAnotherInstancesEnqueue() async throws {
        // Housekeeping is off: only the announcement can wake the poll before its wait ends.
        let (first, client) = try await TestServer.started { $0.housekeepingIntervalMs = 600_000 }
        let stack = try #require(first.stack)
        let (second, producer) = try await TestServer.started(stack: stack) { $0.housekeepingIntervalMs = 600_000 }
        let n = Names()
        try await waitUntil("both servers listen for wake-ups") {
            try stack.redis.cli("PUBSUB", "NUMSUB", QueueConfig.wakeChannel).split(separator: "\n").last == "2"
        }
        let start = ContinuousClock.now
        async let polled = client.dequeue(n("wq"), wait: 30_000)
        try await waitUntil("the long poll waits") { try await first.server.waitingDequeueCount() == 1 }
        _ = try await enqueue(producer, n.run("a"))
        let got = try await polled
        #expect(got.map(\.runID) == [n("a")])
        #expect(ContinuousClock.now - start < .seconds(25))
        await producer.close()
        await client.close()
        #expect(await second.server.stop() == 0)
        #expect(await first.server.stop() == 0)
    }
}
