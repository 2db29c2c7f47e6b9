import Foundation
import RunQueueClient
import RunQueueCore
import Testing
import TestSupport

/// The library against an in-process runqueued on the real Redis and PostgreSQL.
@Suite(.tags(.integration), .needsServices) struct RunQueueClientTests {
    @Test func helloAndPingAnswerAndTheServerIsRemembered() async throws {
        let test = try await TestServer.ready { $0.maxFrameBytes = 200_000 }
        let client = test.client()
        #expect(client.serverInfo == nil)
        let hello = try await client.hello()
        #expect(hello.maxFrameBytes == 200_000)
        #expect(hello.shardCount > 0)
        #expect(client.serverInfo?.maxFrameBytes == 200_000)
        #expect(try await client.ping([1, 2, 3]) == [1, 2, 3])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aRunGoesThroughEnqueueDequeueReadHeartbeatAndAck() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        let before = nowMs()
        let created = try await client.enqueue(n.run("a", ttl: "1h"))
        #expect(created.created)
        #expect(abs(created.expiresAtMs - (before + 3_600_000)) < 5000)
        #expect(try await client.enqueue(n.run("a")).created == false)

        let messages = try await client.dequeue(workerQueue: n("wq"), maxRuns: 10, leaseMs: 60_000)
        #expect(messages.map(\.runID) == [n("a")])
        let message = try #require(messages.first)
        #expect(message.attempt == 0 && message.environmentType == .production && message.queue == "q")
        #expect(message.leaseExpiresAtMs > nowMs() + 50_000)

        let read = try await client.readMessage(runID: n("a"), environmentID: n("env"))
        #expect(read.message?.runID == n("a"))
        #expect(read.source == .redisV4)

        let extended = try await client.heartbeat(runID: n("a"), environmentID: n("env"), leaseMs: 120_000, attempt: 0)
        #expect(extended > nowMs() + 100_000)

        let stats = try await client.queueStats(environmentID: n("env"), queue: "q")
        #expect(stats.inFlight == 1 && stats.length == 0)

        #expect(try await client.ack(message))
        // A retry with the same attempt answers as the first call did (docs/durability.md).
        #expect(try await client.ack(message))
        await expectError(.failedPrecondition) {
            try await client.heartbeat(runID: n("a"), environmentID: n("env"))
        }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func pipelinedCallsAnswerInTheirOrderWithEachStatus() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        for name in ["a", "b", "c"] { _ = try await client.enqueue(n.run(name)) }
        let messages = try await client.dequeue(workerQueue: n("wq"), maxRuns: 3)
        #expect(messages.count == 3)
        let connection = try await RunQueueConnection.connect(to: test.address)
        var calls = messages.map { Call.ack(AckRequest(runID: $0.runID, environmentID: $0.environmentID, attempt: $0.attempt)) }
        // A bad call in the middle fails alone.
        calls.insert(.ack(AckRequest(runID: "", environmentID: n("env"))), at: 1)
        let answers = await connection.pipeline(calls)
        #expect(answers.count == 4)
        let acked = answers.map { answer -> Bool? in
            guard case .success(.ack(let ack)?) = answer.result else { return nil }
            return ack.acked
        }
        #expect(acked == [true, nil, true, true])
        if case .failure(let error) = answers[1].result {
            #expect(error.code == .invalidArgument && error.message.contains("run_id"))
        } else {
            Issue.record("an ack with an empty run_id was accepted")
        }
        #expect(answers.allSatisfy { $0.elapsed > .zero })
        for message in messages { #expect(try await client.getRun(runID: message.runID).status == .completed) }
        #expect(await connection.pipeline([]).isEmpty)
        await connection.close()
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aNackedRunComesBackWithItsNextAttempt() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a"))
        let first = try #require(try await client.dequeue(workerQueue: n("wq")).first)
        let nack = try await client.nack(first, retryAtMs: nowMs())
        #expect(nack.requeued && !nack.deadLettered && nack.attempt == 1)
        let again = try await client.dequeue(workerQueue: n("wq"), waitMs: 5000)
        #expect(again.map(\.attempt) == [1])
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aDeadLetteredRunIsRedriven() async throws {
        let test = try await TestServer.ready { config in
            config.queue.backoff = NackBackoff(factor: 2, minMs: 1000, maxMs: 1000, maxAttempts: 1)
        }
        let client = test.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a"))
        let message = try #require(try await client.dequeue(workerQueue: n("wq")).first)
        let nack = try await client.nack(message)
        #expect(nack.deadLettered && !nack.requeued)
        #expect(try await client.dequeue(workerQueue: n("wq")).isEmpty)
        #expect(try await client.redrive(runID: n("a"), environmentID: n("env")))
        let redriven = try await client.dequeue(workerQueue: n("wq"))
        #expect(redriven.map(\.runID) == [n("a")])
        #expect(redriven.first?.attempt == 0)
        await expectError(.failedPrecondition) { try await client.redrive(runID: n("a"), environmentID: n("env")) }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aQueueLimitCapsDequeueUntilCleared() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        try await client.setConcurrencyLimit(environmentID: n("env"), queue: "q", .limit(1))
        #expect(try await client.queueStats(environmentID: n("env"), queue: "q").concurrencyLimit == 1)
        let results = try await client.enqueueBatch((0..<3).map { n.run("r\($0)") })
        #expect(results.allSatisfy { $0.status.isOK && $0.created })
        #expect(try await client.dequeue(workerQueue: n("wq"), maxRuns: 10).count == 1)
        try await client.setConcurrencyLimit(environmentID: n("env"), queue: "q", .clear)
        #expect(try await client.dequeue(workerQueue: n("wq"), maxRuns: 10).count == 2)
        try await client.setConcurrencyLimit(environmentID: n("env"), .limit(7), burstFactor: 2)
        #expect(try await client.queueStats(environmentID: n("env")).concurrencyLimit == 14)
        await expectError(.invalidArgument) {
            try await client.setConcurrencyLimit(environmentID: n("env"), queue: "q", .limit(1), burstFactor: 2)
        }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func aBatchLargerThanOneFrameIsSplitAndKeepsItsOrder() async throws {
        // 16 KiB frames hold about 100 runs: 2500 runs take some 25 calls.
        let test = try await TestServer.ready { $0.maxFrameBytes = 16 * 1024 }
        let client = test.client()
        let n = Names()
        var runs = (0..<2500).map { n.run(String(format: "run%05d", $0)) }
        runs[1234].queue = "not a queue name"
        runs[2001] = runs[7]
        let results = try await client.enqueueBatch(runs)
        #expect(results.count == runs.count)
        #expect(results[1234].status.code == .invalidArgument)
        #expect(results[1234].status.message.contains("queue"))
        // The repeated id lands in two of the concurrently sent calls: exactly
        // one of them creates it, whichever PostgreSQL records first.
        #expect(results[7].status.isOK && results[2001].status.isOK)
        #expect([results[7].created, results[2001].created].filter { $0 }.count == 1)
        #expect(results.enumerated().filter { ![7, 1234, 2001].contains($0.offset) }.allSatisfy { $0.element.created })
        #expect(try await client.queueStats(environmentID: n("env")).length == 2498)
        #expect(try await client.enqueueBatch([]).isEmpty)
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func callErrorsCarryTheStatusAndTheServersMessage() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        let error = await expectError(.invalidArgument) { try await client.enqueue(n.run("a", ttl: "10 m")) }
        #expect(error?.message.contains("ttl") == true)
        #expect(error?.description.hasPrefix("INVALID_ARGUMENT: ") == true)
        await expectError(.invalidArgument) { try await client.dequeue(workerQueue: n("wq"), maxRuns: 0) }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func getRunReturnsTheRunsRecord() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a", ttl: "1h"))
        do {
            _ = try await client.getRun(runID: n("missing"))
            Issue.record("GetRun found a run that was never enqueued")
        } catch {
            if error.code == .unimplemented {
                // A server from before the PostgreSQL records says so by name.
                #expect(error.message.contains("GetRun"))
                await client.close()
                #expect(await test.server.stop() == 0)
                return
            }
            #expect(error.code == .notFound, "\(error)")
        }
        // The record may be written just after Enqueue answers: allow a moment.
        let run = try await waitFor("the run's record") { try? await client.getRun(runID: n("a")) }
        #expect(run.runID == n("a") && run.environmentID == n("env") && run.workerQueue == n("wq"))
        #expect(run.status == .queued)
        #expect(!run.ttl.isEmpty && run.expiresAtMs > nowMs())
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func subscribeExpiryDeliversARunsExpiry() async throws {
        let test = try await TestServer.ready()
        let client = test.client()
        let n = Names()
        _ = try await client.enqueue(n.run("a", ttl: "1s"))
        let subscription = client.subscribeExpiry(filter: ExpiryFilter(environmentID: n("env")), replay: true)
        let outcome = await withTaskGroup(of: Result<ExpiryEvent?, RunQueueError>?.self) { group in
            group.addTask {
                var iterator = subscription.makeAsyncIterator()
                do throws(RunQueueError) { return .success(try await iterator.next()) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(20))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch try #require(outcome, "no expiry event within 20 s") {
        case .failure(let error):
            // A server from before the expiry stream ends it at once, by name.
            #expect(error.code == .unimplemented, "\(error)")
            #expect(error.message.contains("SubscribeExpiry"))
        case .success(let event):
            let event = try #require(event)
            #expect(event.runID == n("a") && event.environmentID == n("env") && event.cursor > 0)
        }
        await client.close()
        #expect(await test.server.stop() == 0)
    }

    @Test func callsAreSpreadOverThePool() async throws {
        let test = try await TestServer.ready()
        let client = test.client(connections: 3)
        for _ in 0..<12 { _ = try await client.ping() }
        try await waitUntil("three connections are open") { try await test.server.connectionCount() == 3 }
        await client.close()
        #expect(await test.server.stop() == 0)
    }
}
