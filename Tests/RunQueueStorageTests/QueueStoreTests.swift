import Foundation
import RunQueueCore
import RunQueueStorage
import TestSupport
import Testing

@Suite(.tags(.integration), .needsServices) struct QueueStoreTests {
    @Test func dueRunsComeOutByTimestampMinusPriority() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([
            h.run("late", timestamp: t - 100),
            h.run("early", timestamp: t - 300),
            h.run("boosted", timestamp: t - 50, priority: 1000),
            h.run("middle", timestamp: t - 200),
        ])
        let claimed = try await h.claim(count: 10)
        #expect(h.names(claimed) == ["boosted", "early", "middle", "late"])
        #expect(claimed[0].timestampMs == t - 50)
        #expect(claimed.allSatisfy { $0.attempt == 0 && $0.leaseExpiresAtMs == t + 60_000 })
        #expect(h.close() == 0)
    }

    @Test func delayedRunsWaitUntilDueAndPriorityOrdersOnlyDueRuns() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([h.run("future", timestamp: t + 5000, priority: 1_000_000), h.run("now", timestamp: t)])
        #expect(h.names(try await h.claim(count: 10)) == ["now"])
        h.now = t + 5000
        let later = try await h.claim(count: 10)
        #expect(h.names(later) == ["future"])
        #expect(later.first?.timestampMs == t + 5000)
        #expect(h.close() == 0)
    }

    @Test func enqueueIsIdempotentOnRunID() async throws {
        let h = try await StoreHarness()
        #expect(try await h.enqueue([h.run("a")]) == [true])
        #expect(try await h.enqueue([h.run("a")]) == [false])
        #expect(try await h.stats().length == 1)
        _ = try await h.claim(count: 1)
        // In flight: still present.
        #expect(try await h.enqueue([h.run("a")]) == [false])
        #expect(try await h.claim(count: 1).isEmpty)
        #expect(h.close() == 0)
    }

    /// Presence is read in bulk before the script changes anything: a run
    /// listed twice in one call is still added once, and runs queued,
    /// delayed or in flight in the same call's list are found.
    @Test func oneEnqueueCallAddsARunListedTwiceOnceAndFindsThePresentOnes() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([h.run("inflight"), h.run("delayed", timestamp: t + 60_000), h.run("waiting")])
        #expect(h.names(try await h.claim(count: 1)) == ["inflight"])
        let again = try await h.enqueue([h.run("new"), h.run("inflight"), h.run("delayed", timestamp: t + 60_000),
                                         h.run("waiting"), h.run("new")])
        #expect(again == [true, false, false, false, false])
        #expect(h.names(try await h.claim(count: 10)).sorted() == ["new", "waiting"])
        #expect(h.close() == 0)
    }

    @Test func environmentLimitAndBurstCapClaims() async throws {
        let h = try await StoreHarness()
        try await h.enqueue((0..<10).map { h.run("r\($0)", queue: $0 % 2 == 0 ? "even" : "odd") })
        try await h.setLimit(.set(limit: 2, burstFactor: 0))
        #expect(try await h.claim(count: 10).count == 2)
        #expect(try await h.claim(count: 10).isEmpty)
        #expect(try await h.stats().concurrencyLimit == 2)
        // Burst raises the environment's cap; each queue stays capped by the
        // limit without burst (as in trigger.dev's run queue).
        try await h.setLimit(.set(limit: 2, burstFactor: 2.0))
        #expect(try await h.stats().concurrencyLimit == 4)
        #expect(try await h.stats(queue: "even").concurrencyLimit == 2)
        #expect(try await h.claim(count: 10).count == 2)
        #expect(try await h.claim(count: 10).isEmpty)
        #expect(try await h.stats().inFlight == 4)
        #expect(try await h.stats(queue: "even").inFlight == 2)
        #expect(try await h.stats(queue: "odd").inFlight == 2)
        #expect(h.close() == 0)
    }

    @Test func aSlotFreedByAckUnblocksTheNextRun() async throws {
        let h = try await StoreHarness()
        try await h.setLimit(.set(limit: 1, burstFactor: 0))
        try await h.enqueue([h.run("a", timestamp: h.now - 2), h.run("b", timestamp: h.now - 1)])
        #expect(h.names(try await h.claim(count: 5)) == ["a"])
        #expect(try await h.claim(count: 5).isEmpty)
        guard case .done = try await h.ack("a") else { Issue.record("ack failed"); return }
        #expect(h.names(try await h.claim(count: 5)) == ["b"])
        #expect(h.close() == 0)
    }

    @Test func queueLimitIsCappedByTheEnvironmentLimitAndConcurrencyKeysGetOwnSlots() async throws {
        let h = try await StoreHarness()
        try await h.setLimit(queue: "q", .set(limit: 1, burstFactor: 0))
        try await h.enqueue([
            h.run("plain1"), h.run("plain2"),
            h.run("a1", ck: "tenant-a"), h.run("a2", ck: "tenant-a"),
            h.run("b1", ck: "tenant-b"),
            h.run("other", queue: "other"),
        ])
        let claimed = Set(h.names(try await h.claim(count: 10)))
        // One slot for the queue's own runs, one per concurrency key, other queues unaffected.
        #expect(claimed.count == 4)
        #expect(claimed.contains("other"))
        #expect(claimed.contains("b1"))
        #expect(claimed.intersection(["plain1", "plain2"]).count == 1)
        #expect(claimed.intersection(["a1", "a2"]).count == 1)
        #expect(try await h.stats(queue: "q").concurrencyLimit == 1)
        #expect(try await h.stats(queue: "q", ck: "tenant-a").inFlight == 1)
        // Queue limit above the environment limit: the environment limit wins.
        try await h.setLimit(.set(limit: 3, burstFactor: 0))
        try await h.setLimit(queue: "q", .set(limit: 50, burstFactor: 0))
        #expect(try await h.stats(queue: "q").concurrencyLimit == 3)
        #expect(h.close() == 0)
    }

    @Test func fairnessServesASmallEnvironmentDespiteABigBacklog() async throws {
        let h = try await StoreHarness(shardCount: 1)
        let t = h.now
        var big: [RunDescriptor] = []
        for i in 0..<2000 { big.append(h.run("a\(i)", env: "A", timestamp: t - 100_000 + Int64(i))) }
        for chunk in stride(from: 0, to: big.count, by: 500) { try await h.enqueue(Array(big[chunk..<min(chunk + 500, big.count)])) }
        try await h.enqueue((0..<20).map { h.run("b\($0)", env: "B", timestamp: t - 100 + Int64($0)) })
        var delivered: [String] = []
        while delivered.count < 400 {
            let batch = try await h.claim(shard: 0, count: 10)
            delivered += h.names(batch.messages)
            if batch.messages.isEmpty { break }
        }
        // Claims of 10 alternate the two environments' shares (5 + 5), so B
        // is done within 40 runs (docs/queue-design.md, "Fairness between
        // environments").
        let fromB = delivered.prefix(40).filter { $0.hasPrefix("b") }.count
        #expect(fromB == 20, "B got \(fromB) of its 20 runs within the first 40")
        #expect(h.close() == 0)
    }

    @Test func ackNackHeartbeatOnARunNotInFlightChangeNothing() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        guard case .notInFlight = try await h.ack("a") else { Issue.record("ack of a queued run"); return }
        guard case .notInFlight = try await h.nack("a") else { Issue.record("nack of a queued run"); return }
        guard case .notInFlight = try await h.heartbeat("a", leaseMs: 1000) else { Issue.record("heartbeat"); return }
        guard case .notInFlight = try await h.ack("missing") else { Issue.record("ack of unknown run"); return }
        #expect(try await h.stats().length == 1)
        #expect(h.close() == 0)
    }

    @Test func fencesRejectAStaleAttempt() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        _ = try await h.claim(count: 1)
        guard case .done(let n) = try await h.nack("a", fence: 0, retryAt: h.now) else { Issue.record("nack"); return }
        #expect(n.attempt == 1)
        let again = try await h.claim(count: 1)
        #expect(again.first?.attempt == 1)
        guard case .fenceMismatch(let current) = try await h.ack("a", fence: 0) else { Issue.record("stale ack accepted"); return }
        #expect(current == 1)
        guard case .fenceMismatch = try await h.heartbeat("a", fence: 5, leaseMs: 1000) else { Issue.record("stale heartbeat"); return }
        guard case .done = try await h.ack("a", fence: 1) else { Issue.record("fresh ack refused"); return }
        #expect(h.close() == 0)
    }

    @Test func aLapsedLeaseIsAFailureDueAgainAtOnce() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        _ = try await h.claim(count: 1, leaseMs: 1000)
        h.now += 999
        guard case .done(let deadline) = try await h.heartbeat("a", leaseMs: 2000) else { Issue.record("heartbeat"); return }
        #expect(deadline == h.now + 2000)
        h.now += 2000
        // Past the deadline: lapsed in every call, whether or not a sweeper ran.
        guard case .notInFlight = try await h.ack("a") else { Issue.record("ack after lapse"); return }
        let again = try await h.claim(count: 1)
        #expect(h.names(again) == ["a"])
        #expect(again.first?.attempt == 1)
        #expect(h.close() == 0)
    }

    @Test func nackBacksOffOrHonoursRetryAt() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a"), h.run("b")])
        _ = try await h.claim(count: 2)
        guard case .done = try await h.nack("a", random: 0) else { Issue.record("nack a"); return }
        guard case .done = try await h.nack("b", retryAt: h.now + 5000) else { Issue.record("nack b"); return }
        #expect(try await h.claim(count: 5).isEmpty)
        let a = try await h.read("a")
        #expect(a?.state == .delayed)
        h.now += 1000  // attempt 1, r = 1: exactly min = 1 s
        #expect(h.names(try await h.claim(count: 5)) == ["a"])
        h.now += 3999
        #expect(try await h.claim(count: 5).isEmpty)
        h.now += 1
        #expect(h.names(try await h.claim(count: 5)) == ["b"])
        #expect(h.close() == 0)
    }

    @Test func keepAttemptRequeuesWithoutCountingAFailure() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        _ = try await h.claim(count: 1)
        guard case .done(let n) = try await h.nack("a", retryAt: h.now, keep: true) else { Issue.record("nack"); return }
        #expect(n.attempt == 0)
        #expect(try await h.claim(count: 1).first?.attempt == 0)
        #expect(h.close() == 0)
    }

    @Test func maxAttemptsDeadLettersTheRunOutOfRedisUntilRedriven() async throws {
        var config = QueueConfig()
        config.backoff = NackBackoff(maxAttempts: 3)
        let h = try await StoreHarness(config: config)
        try await h.enqueue([h.run("a")])
        var last = QueueStore.NackResult(attempt: 0, deadLettered: false)
        for _ in 0..<3 {
            _ = try await h.claim(count: 1)
            guard case .done(let n) = try await h.nack("a", retryAt: h.now) else { Issue.record("nack"); return }
            last = n
        }
        #expect(last.attempt == 3 && last.deadLettered)
        #expect(try await h.claim(count: 1).isEmpty)
        #expect(try await h.stats().length == 0)
        #expect(try await h.read("a") == nil)
        let entries = try await h.outbox()
        #expect(entries.last?.op == .deadLettered)
        #expect(entries.last?.attempt == 3)
        // Finishing until PostgreSQL has the dead letter: a plain enqueue does not revive it.
        #expect(try await h.enqueue([h.run("a")]) == [false])
        try await h.outboxDone(entries)
        #expect(try await h.outbox().isEmpty)
        // Redrive (PostgreSQL moved it back first) queues it with attempt 0.
        #expect(try await h.redriveEnqueue([h.run("a")]) == [true])
        let back = try await h.claim(count: 1)
        #expect(h.names(back) == ["a"])
        #expect(back.first?.attempt == 0)
        #expect(h.close() == 0)
    }

    @Test func outboxEntryIDsOrderAsOneNumber() {
        #expect(OutboxEntry.sequence(ofEntryID: "1764388800123-0") == 1_764_388_800_123_000_000)
        #expect(OutboxEntry.sequence(ofEntryID: "1764388800123-42") == 1_764_388_800_123_000_042)
        #expect(OutboxEntry.sequence(ofEntryID: "5-3") > OutboxEntry.sequence(ofEntryID: "4-999"))
        // The sequence part saturates; nothing else about it is lost.
        #expect(OutboxEntry.sequence(ofEntryID: "7-123456789") == 7_999_999)
        for malformed in ["", "12", "1-2-3", "a-1", "1-b", "-", "1234567890123456789012-1"] {
            #expect(OutboxEntry.sequence(ofEntryID: malformed) == 0, "\(malformed)")
        }
        #expect(OutboxEntry(id: "9-1", op: .completed, runID: "r", attempt: 1, timeMs: 9).sequence == 9_000_001)
    }

    @Test func everyChangeAfterCreationIsAnOutboxEntry() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a"), h.run("b")])
        #expect(try await h.outbox().isEmpty)
        _ = try await h.claim(count: 2)
        guard case .done(let ack) = try await h.ack("a") else { Issue.record("ack"); return }
        guard case .done = try await h.nack("b", retryAt: h.now) else { Issue.record("nack"); return }
        let entries = try await h.outbox()
        #expect(entries.map(\.op) == [.dequeued, .dequeued, .completed, .queued])
        #expect(entries.map(\.runID) == [h.id("a"), h.id("b"), h.id("a"), h.id("b")])
        #expect(entries[3].attempt == 1)
        #expect(entries[2].id == ack.entryID)
        // One stream entry per script call: the claim of a and b is one D entry.
        #expect(entries[0].id == entries[1].id)
        #expect(entries[1].sequence < entries[2].sequence && entries[2].sequence < entries[3].sequence)
        // A retried ack while the completion is finishing answers like the first.
        guard case .done(let retry) = try await h.ack("a", fence: 0) else { Issue.record("retried ack"); return }
        #expect(retry.alreadyCompleted && retry.entryID == ack.entryID)
        try await h.outboxDone(entries)
        guard case .notInFlight = try await h.ack("a") else { Issue.record("ack after applied"); return }
        #expect(h.close() == 0)
    }

    /// An ack of many runs appends one C entry carrying all of them (ids
    /// and attempts in order); each run's answer and finishing mark name it.
    @Test func oneAckCallAppendsOneEntryForAllItsRuns() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a"), h.run("b"), h.run("c")])
        _ = try await h.claim(count: 3)
        guard case .done = try await h.nack("c", retryAt: h.now) else { Issue.record("nack"); return }
        _ = try await h.claim(count: 3)
        let now = h.now
        let outcomes = try await h.ack(["a", "c", "b", "a"])
        let acks = try outcomes.prefix(3).map { outcome -> QueueStore.AckResult in
            guard case .done(let ack) = outcome else { throw QueueStoreError(.internal, "not acked: \(outcome)") }
            return ack
        }
        #expect(Set(acks.map(\.entryID)).count == 1)
        #expect(acks.map(\.alreadyCompleted) == [false, false, false])
        #expect(acks.map(\.attempt) == [0, 1, 0])
        // An unfenced repeat, even in the same call, is an ack of a run no longer in flight.
        guard case .notInFlight = outcomes[3] else { Issue.record("repeat answered \(outcomes[3])"); return }
        let completed = try await h.outbox().filter { $0.op == .completed }
        #expect(completed.map(\.runID) == ["a", "c", "b"].map(h.id))
        #expect(completed.map(\.attempt) == [0, 1, 0])
        #expect(completed.allSatisfy { $0.id == acks[0].entryID && $0.timeMs == now })
        #expect(h.close() == 0)
    }

    @Test func releasedRunsComeBackWithoutAnExtraAttempt() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        _ = try await h.claim(count: 1)
        #expect(try await h.release(["a"]) == 1)
        #expect(try await h.stats().inFlight == 0)
        #expect(try await h.claim(count: 1).first?.attempt == 0)
        #expect(h.close() == 0)
    }

    @Test func anotherEnvironmentReadsAsNotFound() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a")])
        _ = try await h.claim(count: 1)
        guard case .notInFlight = try await h.ack("a", env: "intruder") else { Issue.record("ack across environments"); return }
        #expect(try await h.read("a", env: "intruder") == nil)
        #expect(try await h.read("a")?.state == .inFlight)
        #expect(h.close() == 0)
    }

    @Test func statsCountQueuedDueAndInFlight() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a", timestamp: h.now - 1000), h.run("b"), h.run("c", timestamp: h.now + 10_000)])
        var s = try await h.stats()
        #expect((s.length, s.due, s.inFlight) == (3, 2, 0))
        #expect(s.oldestAgeMs == 1000)
        #expect(s.concurrencyLimit == 100)
        _ = try await h.claim(count: 1)
        s = try await h.stats()
        #expect((s.length, s.due, s.inFlight) == (2, 1, 1))
        #expect(h.close() == 0)
    }

    @Test func aRunWithAnotherTaskIdentifierKeepsItInTheLane() async throws {
        let h = try await StoreHarness()
        try await h.enqueue([h.run("a", timestamp: h.now - 2, task: "first"), h.run("b", timestamp: h.now - 1, task: "second")])
        let claimed = try await h.claim(count: 2)
        #expect(claimed.map(\.taskIdentifier) == ["first", "second"])
        #expect(h.close() == 0)
    }
}
