import Foundation
@testable import RunQueueClient
import RunQueueCore
import Testing
import TestSupport

/// The subscription's stream protocol, resume and de-duplication, against a
/// scripted server that controls every response (RunQueueClientTests covers
/// the stream against runqueued).
@Suite struct ExpirySubscriptionTests {
    static func client(_ fake: FakeServer) throws -> RunQueueClient {
        var configuration = try RunQueueClientConfiguration(server: fake.hostPort)
        configuration.reconnectPolicy = ReconnectPolicy(initialMs: 10, maxMs: 50)
        return RunQueueClient(configuration)
    }

    static func event(_ cursor: UInt64) -> ExpiryEvent {
        ExpiryEvent(cursor: cursor, runID: "run\(cursor)", orgID: "o", projectID: "p", environmentID: "e",
                    environmentType: .production, queue: "q", ttl: "1m", expiresAtMs: 1000, expiredAtMs: 1001)
    }

    /// Reads the SubscribeExpiry request of a new session.
    static func subscription(on connection: FakeConnection) async throws -> (UInt64, SubscribeExpiryRequest) {
        let request = try await connection.readRequest()
        guard case .subscribeExpiry(let subscribe)? = request.call else {
            throw FakeServerError("expected SubscribeExpiry, got \(String(describing: request.call))")
        }
        return (request.callID, subscribe)
    }

    static func send(_ connection: FakeConnection, _ callID: UInt64, liveFrom: UInt64? = nil, events: [UInt64] = []) throws {
        if let liveFrom {
            try connection.send(Response(callID: callID, result: .subscribeExpiry(SubscribeExpiryResponse(liveFromCursor: liveFrom))))
        }
        for cursor in events { try connection.send(Response(callID: callID, result: .expiryEvent(event(cursor)))) }
    }

    @Test func eventsResumeAfterTheLastCursorAcrossAReconnectWithoutDuplicates() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let filter = ExpiryFilter(orgID: "o", environmentID: "e")
        let consumer = Task { () throws -> [UInt64] in
            var cursors: [UInt64] = []
            for try await event in client.subscribeExpiry(filter: filter) { cursors.append(event.cursor) }
            return cursors
        }
        let first = try await fake.acceptAndGreet()
        let (id1, request1) = try await Self.subscription(on: first)
        #expect(request1 == SubscribeExpiryRequest(filter: filter, resumeAfter: 0, replay: false))
        try Self.send(first, id1, liveFrom: 10, events: [11, 12])
        first.close()

        let second = try await fake.acceptAndGreet()
        let (id2, request2) = try await Self.subscription(on: second)
        #expect(request2 == SubscribeExpiryRequest(filter: filter, resumeAfter: 12, replay: false))
        try Self.send(second, id2, liveFrom: 20, events: [12, 13, 14])
        try second.send(Response(callID: id2, status: .ok, endOfStream: true))
        #expect(try await consumer.value == [11, 12, 13, 14])
        await client.close()
    }

    @Test func aLiveSubscriptionThatReceivedNothingResumesAfterItsLiveFromCursor() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () throws -> [UInt64] in
            var cursors: [UInt64] = []
            for try await event in client.subscribeExpiry() { cursors.append(event.cursor) }
            return cursors
        }
        let first = try await fake.acceptAndGreet()
        let (id1, _) = try await Self.subscription(on: first)
        try Self.send(first, id1, liveFrom: 41)
        first.close()
        let second = try await fake.acceptAndGreet()
        let (id2, request2) = try await Self.subscription(on: second)
        #expect(request2.resumeAfter == 41 && !request2.replay)
        try Self.send(second, id2, liveFrom: 44, events: [42, 43, 44])
        try second.send(Response(callID: id2, status: .ok, endOfStream: true))
        #expect(try await consumer.value == [42, 43, 44])
        await client.close()
    }

    @Test func aLiveSubscriptionOnAnEmptyLogReplaysAfterAReconnect() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () throws -> [UInt64] in
            var cursors: [UInt64] = []
            for try await event in client.subscribeExpiry() { cursors.append(event.cursor) }
            return cursors
        }
        let first = try await fake.acceptAndGreet()
        let (id1, _) = try await Self.subscription(on: first)
        try Self.send(first, id1, liveFrom: 0)
        first.close()
        let second = try await fake.acceptAndGreet()
        let (id2, request2) = try await Self.subscription(on: second)
        #expect(request2.replay && request2.resumeAfter == 0)
        try Self.send(second, id2, liveFrom: 1, events: [1])
        try second.send(Response(callID: id2, status: .ok, endOfStream: true))
        #expect(try await consumer.value == [1])
        await client.close()
    }

    @Test func aReplayThatReceivedNothingReplaysAgainAndThenResumes() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () throws -> [UInt64] in
            var cursors: [UInt64] = []
            for try await event in client.subscribeExpiry(resumeAfter: 99, replay: true) { cursors.append(event.cursor) }
            return cursors
        }
        let first = try await fake.acceptAndGreet()
        let (id1, request1) = try await Self.subscription(on: first)
        #expect(request1.replay && request1.resumeAfter == 99)
        try Self.send(first, id1, liveFrom: 500)
        first.close()
        let second = try await fake.acceptAndGreet()
        let (id2, request2) = try await Self.subscription(on: second)
        #expect(request2.replay && request2.resumeAfter == 0)
        try Self.send(second, id2, liveFrom: 500, events: [3, 4])
        // A server going down cancels its streams: that is retried too, on
        // the same connection while it stays open.
        try second.send(Response.error(callID: id2, .cancelled, "server shutting down", endOfStream: true))
        let (id3, request3) = try await Self.subscription(on: second)
        #expect(id3 != id2)
        #expect(!request3.replay && request3.resumeAfter == 4)
        try Self.send(second, id3, liveFrom: 500, events: [5])
        try second.send(Response(callID: id3, status: .ok, endOfStream: true))
        #expect(try await consumer.value == [3, 4, 5])
        await client.close()
    }

    @Test func aStatusRetryingCannotFixEndsTheIterationAfterTheEventsBeforeIt() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () -> ([UInt64], RunQueueError?) in
            var cursors: [UInt64] = []
            do {
                for try await event in client.subscribeExpiry(resumeAfter: 5) { cursors.append(event.cursor) }
                return (cursors, nil)
            } catch {
                return (cursors, error as? RunQueueError)
            }
        }
        let first = try await fake.acceptAndGreet()
        let (id1, request1) = try await Self.subscription(on: first)
        #expect(request1.resumeAfter == 5)
        try Self.send(first, id1, liveFrom: 9, events: [6, 7])
        try first.send(Response.error(callID: id1, .outOfRange, "resume_after 5 is below the oldest retained cursor 6", endOfStream: true))
        let (cursors, error) = await consumer.value
        #expect(cursors == [6, 7])
        #expect(error?.code == .outOfRange)
        await client.close()
    }

    @Test func theFirstStartFailingEndsTheIterationWithItsError() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () async -> RunQueueError? in
            do {
                for try await _ in client.subscribeExpiry() {}
                return nil
            } catch {
                return error as? RunQueueError
            }
        }
        let first = try await fake.acceptAndGreet()
        let (id1, _) = try await Self.subscription(on: first)
        try first.send(Response.error(callID: id1, .unavailable, "expiry log unreachable", endOfStream: true))
        let error = await consumer.value
        #expect(error == RunQueueError(.unavailable, "expiry log unreachable"))
        await client.close()
    }

    @Test func leavingTheLoopCancelsTheStreamOnTheServer() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let consumer = Task { () throws -> UInt64? in
            for try await event in client.subscribeExpiry() { return event.cursor }
            return nil
        }
        let connection = try await fake.acceptAndGreet()
        let (id, _) = try await Self.subscription(on: connection)
        try Self.send(connection, id, liveFrom: 1, events: [2, 3])
        #expect(try await consumer.value == 2)
        let cancel = try await connection.readRequest()
        #expect(cancel.call == .cancel(CancelRequest(targetCallID: id)))
        try connection.send(Response.error(callID: id, .cancelled, "cancelled", endOfStream: true))
        #expect(await connection.readsEOF())
        await client.close()
    }

    @Test func cancellingTheConsumingTaskEndsTheIterationWithNil() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let events = EventLog()
        let consumer = Task {
            for try await event in client.subscribeExpiry() { await events.append(event) }
        }
        let connection = try await fake.acceptAndGreet()
        let (id, _) = try await Self.subscription(on: connection)
        try Self.send(connection, id, liveFrom: 1, events: [2])
        #expect(try await events.wait(forCount: 1, seconds: 10))
        consumer.cancel()
        try await consumer.value  // ends without an error
        #expect(await events.events.map(\.cursor) == [2])
        let cancel = try await connection.readRequest()
        #expect(cancel.call == .cancel(CancelRequest(targetCallID: id)))
        await client.close()
    }

    @Test func aSlowConsumerGetsEveryEventInOrderAfterTheClientPausedReading() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let total: UInt64 = 5000  // well above the 1024 events at which the client stops reading
        let server = Task { () throws -> FakeConnection in
            let connection = try await fake.acceptAndGreet()
            let (id, _) = try await Self.subscription(on: connection)
            try Self.send(connection, id, liveFrom: 0, events: Array(1...total))
            try connection.send(Response(callID: id, status: .ok, endOfStream: true))
            return connection
        }
        var iterator = client.subscribeExpiry().makeAsyncIterator()
        #expect(try await iterator.next()?.cursor == 1)
        // The buffer fills to its high-water mark, then the client stops reading.
        try await waitUntil("the client stopped reading") { [iterator] in iterator.handle.driver.isReadingPaused }
        var expected: UInt64 = 2
        while let event = try await iterator.next() {
            #expect(event.cursor == expected)
            expected += 1
        }
        #expect(expected == total + 1)
        #expect(!iterator.handle.driver.isReadingPaused)
        _ = try await server.value
        await client.close()
    }

    @Test func theIteratorReportsItsCursors() async throws {
        let fake = try FakeServer()
        let client = try Self.client(fake)
        let server = Task { () throws -> FakeConnection in
            let connection = try await fake.acceptAndGreet()
            let (id, _) = try await Self.subscription(on: connection)
            try Self.send(connection, id, liveFrom: 30, events: [31, 32])
            return connection
        }
        var iterator = client.subscribeExpiry().makeAsyncIterator()
        #expect(iterator.lastCursor == 0 && iterator.liveFromCursor == nil)
        #expect(try await iterator.next()?.cursor == 31)
        #expect(iterator.lastCursor == 31 && iterator.liveFromCursor == 30)
        #expect(try await iterator.next()?.cursor == 32)
        iterator.cancel()
        #expect(try await iterator.next() == nil)
        _ = try await server.value
        await client.close()
    }
}
