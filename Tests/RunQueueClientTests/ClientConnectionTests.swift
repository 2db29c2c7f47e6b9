import Foundation
import RunQueueClient
import RunQueueCore
import Testing
import TestSupport

/// Reconnects, deadlines and cancellation.
@Suite(.tags(.integration), .needsServices) struct ClientConnectionTests {
    @Test func theNextCallWorksAfterTheServerRestarts() async throws {
        let first = try await TestServer.ready()
        let client = first.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a"))
        #expect(await first.server.stop() == 0)

        let second = try await TestServer.ready(port: first.port, stack: first.stack)
        // Every pooled connection was dropped; the next calls reconnect.
        #expect(try await client.ping([7]) == [7])
        let messages = try await client.dequeue(workerQueue: n("wq"))
        #expect(messages.map(\.runID) == [n("a")])
        #expect(try await client.ack(try #require(messages.first)))
        await client.close()
        #expect(await second.server.stop() == 0)
    }

    @Test func aSubscriptionResumesAcrossAServerRestartWithoutGapOrDuplicate() async throws {
        let first = try await TestServer.ready()
        let client = first.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a", ttl: "1s"))
        let events = EventLog()
        let consumer = Task {
            do {
                for try await event in client.subscribeExpiry(filter: ExpiryFilter(environmentID: n("env")), replay: true) {
                    await events.append(event)
                }
                await events.end(nil)
            } catch {
                await events.end(error as? RunQueueError)
            }
        }
        // A server without the expiry stream ends it at once: nothing more to check here.
        guard try await events.wait(forCount: 1, seconds: 20) else {
            let ended = await events.ended
            #expect(ended?.code == .unimplemented, "no expiry event within 20 s: \(String(describing: ended))")
            consumer.cancel()
            await client.close()
            #expect(await first.server.stop() == 0)
            return
        }
        #expect(await first.server.stop() == 0)
        let second = try await TestServer.ready(port: first.port, stack: first.stack)
        _ = try await client.enqueue(n.run("b", ttl: "1s"))
        let resumed = try await events.wait(forCount: 2, seconds: 30)
        let endedWith = await events.ended
        #expect(resumed, "no event after the restart: \(String(describing: endedWith))")
        let received = await events.events
        #expect(received.map(\.runID) == [n("a"), n("b")])
        #expect(received.count == 2 && received[1].cursor > received[0].cursor)
        consumer.cancel()
        await client.close()
        #expect(await second.server.stop() == 0)
    }

    @Test func aCallWaitsForTheServerToComeBack() async throws {
        let first = try await TestServer.ready()
        let client = first.client(connections: 1) { $0.reconnectWait = .seconds(10) }
        _ = try await client.ping()
        #expect(await first.server.stop() == 0)
        // Once the client has read the server's close, a call waits for a
        // connection (a call written before that fails with UNAVAILABLE, as
        // any call in flight on a dropped connection): a short one runs out.
        try await waitUntil("the client waits for a connection") {
            do {
                _ = try await client.ping(timeout: .milliseconds(200))
                return false
            } catch {
                return (error as? RunQueueError)?.code == .deadlineExceeded
            }
        }
        async let pinged = client.ping([1])
        let restarted = try await TestServer.ready(port: first.port, stack: first.stack)
        #expect(try await pinged == [1])
        await client.close()
        #expect(await restarted.server.stop() == 0)
    }

    @Test func aDownServerFailsFastWithUnavailable() async throws {
        var configuration = try RunQueueClientConfiguration(server: "127.0.0.1:\(TestServices.unusedPort())")
        configuration.reconnectWait = .zero
        let client = RunQueueClient(configuration)
        let start = ContinuousClock.now
        let error = await expectError(.unavailable) { try await client.ping() }
        #expect(error?.message.contains("cannot connect") == true)
        // Backing off: the next call fails at once without a new attempt.
        await expectError(.unavailable) { try await client.ping() }
        // Generous: the full suite loads both cores; what is ruled out is
        // waiting for the 10 s default call timeout.
        #expect(ContinuousClock.now - start < .seconds(8))
        await client.close()
    }

    @Test func aDownServerFailsWithDeadlineExceededAtTheCallsDeadline() async throws {
        var configuration = try RunQueueClientConfiguration(server: "127.0.0.1:\(TestServices.unusedPort())")
        configuration.reconnectWait = .seconds(30)
        configuration.reconnectPolicy = ReconnectPolicy(initialMs: 20, maxMs: 100)
        let client = RunQueueClient(configuration)
        let start = ContinuousClock.now
        await expectError(.deadlineExceeded) { try await client.ping(timeout: .milliseconds(400)) }
        let elapsed = ContinuousClock.now - start
        // The alternative is the 30 s reconnect wait; the bound leaves room for a loaded machine.
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(15), "\(elapsed)")
        await client.close()
    }

    @Test func aCallPastItsDeadlineIsCancelledOnTheServer() async throws {
        let test = try await TestServer.ready()
        let client = test.client(connections: 1)
        let n = Names()
        let start = ContinuousClock.now
        await expectError(.deadlineExceeded) {
            try await client.dequeue(workerQueue: n("wq"), maxRuns: 5, waitMs: 30_000, timeout: .milliseconds(300))
        }
        // Not the end of the long poll's own wait.
        #expect(ContinuousClock.now - start < .seconds(25))
        // The abandoned long poll was cancelled (the Cancel went out at the deadline): it does not take this run.
        try await waitUntil("the server cancelled the long poll") { try await test.server.waitingDequeueCount() == 0 }
        _ = try await client.enqueue(n.run("a"))
        let got = try await client.dequeue(workerQueue: n("wq"), waitMs: 2000)
        #expect(got.map(\.runID) == [n("a")])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func theDefaultTimeoutAppliesAndDequeueAddsItsWait() async throws {
        let test = try await TestServer.ready()
        let client = test.client { $0.defaultTimeout = .milliseconds(1000) }
        let n = Names()
        _ = try await client.ping(timeout: .seconds(30))  // connected: the timeout below is the call's own
        // wait 1500 ms > default 1000 ms: still answered (empty), not DEADLINE_EXCEEDED.
        #expect(try await client.dequeue(workerQueue: n("wq"), waitMs: 1500).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func cancellingTheCallingTaskCancelsTheCallOnTheServer() async throws {
        let test = try await TestServer.ready()
        let client = test.client(connections: 1)
        let n = Names()
        _ = try await client.ping()
        let poll = Task { try await client.dequeue(workerQueue: n("wq"), maxRuns: 5, waitMs: 30_000) }
        try await waitUntil("the long poll waits") { try await test.server.waitingDequeueCount() == 1 }
        let start = ContinuousClock.now
        poll.cancel()
        await expectError(.cancelled) { try await poll.value }
        // Not the end of the long poll's own wait.
        #expect(ContinuousClock.now - start < .seconds(25))
        _ = try await client.enqueue(n.run("a"))
        let got = try await client.dequeue(workerQueue: n("wq"), waitMs: 2000)
        #expect(got.map(\.runID) == [n("a")] && got.first?.attempt == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aCallInFlightWhenItsConnectionDropsFailsWithUnavailable() async throws {
        let fake = try FakeServer()
        var configuration = try RunQueueClientConfiguration(server: fake.hostPort)
        configuration.connections = 1
        let client = RunQueueClient(configuration)
        let pinged = Task { try await client.ping([1]) }
        let connection = try await fake.acceptAndGreet()
        let ping = try await connection.readRequest()
        #expect(ping.call == .ping(PingRequest(payload: [1])))
        connection.close()
        let error = await expectError(.unavailable) { try await pinged.value }
        #expect(error != nil)

        // The next call reconnects.
        let again = Task { try await client.ping([2]) }
        let second = try await fake.acceptAndGreet()
        let request = try await second.readRequest()
        try second.send(Response(callID: request.callID, result: .ping(PingResponse(payload: [2]))))
        #expect(try await again.value == [2])
        await client.close()
    }

    @Test func aCancelledCallEndsEvenWhenTheServerNeverAnswers() async throws {
        let fake = try FakeServer()
        var configuration = try RunQueueClientConfiguration(server: fake.hostPort)
        configuration.connections = 1
        let client = RunQueueClient(configuration)
        let poll = Task { try await client.dequeue(workerQueue: "wq", waitMs: 30_000) }
        let connection = try await fake.acceptAndGreet()
        let dequeue = try await connection.readRequest()
        let start = ContinuousClock.now
        poll.cancel()
        let cancel = try await connection.readRequest()
        #expect(cancel.call == .cancel(CancelRequest(targetCallID: dequeue.callID)))
        let error = await expectError(.cancelled) { try await poll.value }
        #expect(error?.message.contains("did not confirm") == true)
        let elapsed = ContinuousClock.now - start
        // The client gives the server 2 s to confirm; the poll itself would wait 30 s.
        #expect(elapsed >= .milliseconds(1900) && elapsed < .seconds(25), "\(elapsed)")
        await client.close()
    }

    @Test func unauthenticatedHelloFailsTheCallWithItsStatus() async throws {
        let fake = try FakeServer()
        var configuration = try RunQueueClientConfiguration(server: fake.hostPort)
        configuration.token = "wrong"
        configuration.reconnectWait = .zero
        let client = RunQueueClient(configuration)
        let pinged = Task { try await client.ping() }
        let connection = try await fake.accept()
        let hello = try await connection.readRequest()
        #expect(hello.call == .hello(HelloRequest(token: "wrong", clientName: "runqueue-swift")))
        try connection.send(Response.error(callID: hello.callID, .unauthenticated, "unknown token"))
        let error = await expectError(.unauthenticated) { try await pinged.value }
        #expect(error?.message == "unknown token")
        await client.close()
    }
}

/// What a subscription consumer received, for tests that wait on it.
actor EventLog {
    private(set) var events: [ExpiryEvent] = []
    private(set) var ended: RunQueueError?
    private(set) var isEnded = false

    func append(_ event: ExpiryEvent) { events.append(event) }

    func end(_ error: RunQueueError?) {
        ended = error
        isEnded = true
    }

    /// True once `count` events arrived; false when the iteration ended or
    /// `seconds` passed first.
    func wait(forCount count: Int, seconds: Double) async throws -> Bool {
        try? await waitUntil("\(count) events or the end", within: .milliseconds(Int64(seconds * 1000))) {
            events.count >= count || isEnded
        }
        return events.count >= count
    }
}
