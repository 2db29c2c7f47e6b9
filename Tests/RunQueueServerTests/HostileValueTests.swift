import Foundation
import RunQueueClient
import RunQueueCore
import RunQueueServer
import RunQueueWire
import Testing
import TestSupport

/// Values at the ends of their types, from a client or from another
/// instance on the shared wake channel: each is refused with a status naming
/// it, or ignored, and the server keeps serving. (The server runs in the
/// test process: a trap would end the test run.)
@Suite(.serialized, .tags(.integration), .needsServices) struct HostileValueTests {

    func stillServing(_ client: RunQueueConnection) async throws {
        guard case .ping(let pong)? = try await client.call(.ping(PingRequest(payload: [1, 2, 3]))) else {
            Issue.record("Ping answered another method")
            return
        }
        #expect(pong.payload == [1, 2, 3])
    }

    @Test func aResumeAfterOfTheLargestCursorIsOutOfRange() async throws {
        let (test, client) = try await ExpiryTests.started()
        let socket = try SubscribeExpiryTests.StreamSocket(port: test.port)
        try socket.send(1, .subscribeExpiry(SubscribeExpiryRequest(resumeAfter: .max)))
        let answer = try socket.next()
        #expect(answer.callID == 1 && answer.status.code == .outOfRange, "\(answer)")
        #expect(answer.status.message.contains("resume_after 18446744073709551615"))
        try await stillServing(client)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aNackRetryTimeBeyondTheTimestampRangeIsRefusedAndTheLargestAllowedOneWorks() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: [n.run("a")])))
        let leased = try await client.dequeue(n("wq"), wait: 2000)
        let run = try #require(leased.first)
        for retryAt in [Int64.max, Validation.maxTimestampMs + 1, -1] {
            do {
                _ = try await client.call(.nack(NackRequest(runID: run.runID, environmentID: run.environmentID, retryAtMs: retryAt)))
                Issue.record("retry_at_ms \(retryAt) was accepted")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains("retry_at_ms"), "\(error)")
            }
        }
        guard case .nack(let answer)? = try await client.call(.nack(NackRequest(runID: run.runID, environmentID: run.environmentID,
                                                                                 retryAtMs: Validation.maxTimestampMs))) else {
            Issue.record("Nack answered another method")
            return
        }
        #expect(answer.requeued)
        // Not due before the year 33658: nothing to dequeue, and the server serves on.
        #expect(try await client.dequeue(n("wq"), wait: 0).isEmpty)
        try await stillServing(client)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func wakeAnnouncementsWithExtremeTimesAreHarmless() async throws {
        let (test, client) = try await ExpiryTests.started()
        let port = try #require(test.stack).redis.port
        for payload in ["s|{rq0}|-9223372036854775808", "s|{rq1}|9223372036854775807", "x|{rq2}|-9223372036854775808",
                        "x|{rq3}|9223372036854775807", "s|{rq4}|not-a-number", "w|{rq99999}|wq"] {
            try redisCLI(port: port, ["PUBLISH", "runqueue:wake", payload])
        }
        // Redis has handed them to the server's subscriber when PUBLISH
        // answers; the loop handles them in order with the calls below (a
        // trap there would end the test process whenever it happened).
        let n = Names()
        _ = try await client.call(.enqueueBatch(EnqueueBatchRequest(runs: [n.run("after")])))
        #expect(try await client.dequeue(n("wq"), wait: 2000).map(\.runID) == [n("after")])
        try await stillServing(client)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aStringWithANULOrIllFormedUTF8IsRefusedOnItsCallAndNothingIsStored() async throws {
        let (test, client) = try await TestServer.started()
        let n = Names()
        var run = n.run("nul")
        run.projectID = "p~~~~x"
        let body = try #require(WireCodec.encodeRequest(Request(callID: 5, call: .enqueue(EnqueueRequest(run: run))))
            .settingFirstByte(of: "~~~~", to: 0))
        let utf8 = try #require(WireCodec.encodeRequest(Request(callID: 6, call: .enqueue(EnqueueRequest(run: run))))
            .settingFirstByte(of: "~~~~", to: 0xFF))
        let socket = try RawSocket(port: test.port)
        try socket.send(FrameEncoder.frame(body) + FrameEncoder.frame(utf8))
        for (callID, reason) in [(UInt64(5), "holds a NUL byte"), (6, "is not valid UTF-8")] {
            let answer = try WireCodec.decodeResponse(try #require(socket.readFrame()))
            #expect(answer.callID == callID && answer.status.code == .invalidArgument, "\(answer)")
            #expect(answer.status.message.contains("enqueue.run.project_id \(reason)"), "\(answer.status.message)")
        }
        // Neither was stored (not cut to "p"), and the connection still serves.
        do {
            _ = try await client.call(.getRun(GetRunRequest(runID: run.runID)))
            Issue.record("a refused run was stored")
        } catch {
            #expect(error.code == .notFound)
        }
        try socket.send(FrameEncoder.frame(WireCodec.encodeRequest(Request(callID: 7, call: .ping(PingRequest(payload: [9]))))))
        #expect(try WireCodec.decodeResponse(try #require(socket.readFrame())).callID == 7)
        await client.close()
        #expect(await test.server.stop() == 0)
    }
}
