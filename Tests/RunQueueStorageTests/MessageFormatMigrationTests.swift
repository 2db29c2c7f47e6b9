// MessageFormatMigrationTests: a deployment moves between message formats
// (RUNQUEUE_MESSAGE_FORMAT v2 / v3 / v4) in either direction with no
// backfill. Stores configured for different formats share one keyspace (one
// key prefix) here, as servers of one deployment do before and after a
// config change: runs written in every format sit in the same lane, come
// out in timestamp order with every field intact, and ReadMessage names the
// format each run was written in.
import Foundation
import RunQueueCore
import RunQueueStorage
import TestSupport
import Testing

@Suite(.tags(.integration), .needsServices) struct MessageFormatMigrationTests {
    /// Stores writing V2, V3 and V4 on one keyspace, with max attempts 2.
    struct Stores {
        let v2: StoreHarness
        let v3: StoreHarness
        let v4: StoreHarness

        init() async throws {
            var config = QueueConfig()
            config.backoff = NackBackoff(maxAttempts: 2)
            config.messageFormat = .v2
            v2 = try await StoreHarness(config: config)
            config.messageFormat = .v3
            v3 = try await StoreHarness(config: config, prefix: v2.prefix)
            config.messageFormat = .v4
            v4 = try await StoreHarness(config: config, prefix: v2.prefix)
        }

        func close() -> [Int] { [v2.close(), v3.close(), v4.close()] }
    }

    /// A concurrency key that a split on ':' (trigger.dev's bug) or on
    /// ":ck:" after the first one would truncate.
    static let ck = "tenant:7:ck:eu-west"

    /// A run of the shared lane: environment type PREVIEW (not the harness
    /// default), queue "q", worker queue "wq", concurrency key `ck`.
    static func laneRun(_ h: StoreHarness, _ name: String, timestamp: Int64, task: String = "task") -> RunDescriptor {
        var run = h.run(name, ck: ck, timestamp: timestamp, task: task)
        run.environmentType = .preview
        return run
    }

    /// What a claim of `run` must deliver.
    static func expected(_ run: RunDescriptor, attempt: UInt32, lease: Int64) -> RunMessage {
        RunMessage(runID: run.runID, orgID: run.orgID, projectID: run.projectID, environmentID: run.environmentID,
                   environmentType: run.environmentType, queue: run.queue, concurrencyKey: run.concurrencyKey,
                   taskIdentifier: run.taskIdentifier, workerQueue: run.workerQueue, timestampMs: run.timestampMs,
                   attempt: attempt, leaseExpiresAtMs: lease)
    }

    @Test func v2ThenV3ThenV4ThenV2InOneLaneComeOutInTimestampOrderWithTheirFormats() async throws {
        let s = try await Stores()
        let t = s.v2.now
        // Written in this order; the timestamps interleave the formats.
        let written: [(run: RunDescriptor, source: MessageSource, by: StoreHarness)] = [
            (Self.laneRun(s.v2, "p1", timestamp: t - 500), .redisV2, s.v2),
            (Self.laneRun(s.v2, "p2", timestamp: t - 100), .redisV2, s.v2),
            (Self.laneRun(s.v3, "q1", timestamp: t - 900, task: "task-v3"), .redisV3, s.v3),
            (Self.laneRun(s.v3, "q2", timestamp: t - 300), .redisV3, s.v3),
            (Self.laneRun(s.v4, "r1", timestamp: t - 700, task: "task-v4"), .redisV4, s.v4),
            (Self.laneRun(s.v4, "r2", timestamp: t - 200), .redisV4, s.v4),
            (Self.laneRun(s.v2, "s1", timestamp: t - 1000), .redisV2, s.v2),
            (Self.laneRun(s.v2, "s2", timestamp: t - 50), .redisV2, s.v2),
        ]
        for w in written { #expect(try await w.by.enqueue([w.run]) == [true]) }
        let byName = Dictionary(uniqueKeysWithValues: written.map { (String($0.run.runID.dropFirst(s.v2.prefix.count + 1)), $0) })

        // Queued: every store reads every format, and names the one it found.
        #expect(try await s.v4.stats(queue: "q", ck: Self.ck).length == 8)
        for (name, w) in byName {
            for reader in [s.v2, s.v3, s.v4] {
                let found = try await reader.read(name)
                #expect(found?.state == .due)
                #expect(found?.source == w.source, "\(name) read by a \(reader.store.config.messageFormat) store")
                #expect(found?.message == Self.expected(w.run, attempt: 0, lease: 0), "\(name)")
            }
        }

        // One claim by the V3 store takes them all, oldest timestamp first.
        let lease = t + 60_000
        let claimed = try await s.v3.claim(count: 20)
        #expect(s.v2.names(claimed) == ["s1", "q1", "r1", "p1", "q2", "r2", "p2", "s2"])
        for message in claimed {
            let name = s.v2.names([message])[0]
            #expect(message == Self.expected(byName[name]!.run, attempt: 0, lease: lease), "\(name)")
            let found = try await s.v4.read(name)
            #expect(found?.state == .inFlight)
            #expect(found?.source == byName[name]!.source, "\(name) in flight")
            #expect(found?.message == message)
        }

        // A failure of a V2 and a V3 run: attempt 1 shows on the next claim
        // (the message keeps attempt 0; the side value carries the failure).
        for name in ["p1", "q1"] {
            guard case .done(let n) = try await s.v4.nack(name, fence: 0, retryAt: t) else { Issue.record("nack \(name)"); return }
            #expect(n.attempt == 1 && !n.deadLettered)
        }
        let again = try await s.v2.claim(count: 20)
        #expect(s.v2.names(again) == ["q1", "p1"])
        for message in again {
            let name = s.v2.names([message])[0]
            #expect(message == Self.expected(byName[name]!.run, attempt: 1, lease: lease), "\(name) after a nack")
            let found = try await s.v3.read(name)
            #expect(found?.source == byName[name]!.source)
            #expect(found?.message.attempt == 1)
        }

        // The V2 run fails again: dead-lettered (max attempts 2), it leaves
        // Redis, finishing until PostgreSQL has the dead letter.
        guard case .done(let dead) = try await s.v2.nack("p1", fence: 1, retryAt: t) else { Issue.record("nack p1"); return }
        #expect(dead.attempt == 2 && dead.deadLettered)
        #expect(try await s.v2.read("p1") == nil)
        let p1 = byName["p1"]!.run
        #expect(try await s.v4.enqueue([p1]) == [false])
        let entries = try await s.v2.outbox()
        #expect(entries.last?.op == .deadLettered && entries.last?.runID == p1.runID && entries.last?.attempt == 2)
        try await s.v2.outboxDone(entries)

        // Redriven by a V4 store (from the run's row): back as V4, attempt 0,
        // every field as written in V2.
        #expect(try await s.v4.redriveEnqueue([p1]) == [true])
        let back = try await s.v2.read("p1")
        #expect(back?.state == .due)
        #expect(back?.source == .redisV4)
        #expect(back?.message == Self.expected(p1, attempt: 0, lease: 0))
        let redriven = try await s.v3.claim(count: 20)
        #expect(redriven == [Self.expected(p1, attempt: 0, lease: lease)])

        for name in byName.keys {
            guard case .done = try await s.v4.ack(name) else { Issue.record("ack \(name)"); return }
        }
        let stats = try await s.v4.stats()
        #expect((stats.length, stats.inFlight) == (0, 0))
        #expect(s.close() == [0, 0, 0])
    }

    @Test func switchingFormatsNeedsNoBackfill() async throws {
        let s = try await Stores()
        let t = s.v2.now
        // No concurrency key here (the V2/V3 queue key without ":ck:"), and
        // one with ":ck:" in another lane of the same queue; both with a TTL.
        let a = s.v2.run("a", timestamp: t - 4)
        let b = s.v3.run("b", timestamp: t - 3)
        let c = s.v2.run("c", ck: "x:ck:y", timestamp: t - 2)
        let d = s.v3.run("d", ck: "x", timestamp: t - 1)
        #expect(try await s.v2.enqueue([a, c], expiresAt: t + 90_000) == [true, true])
        #expect(try await s.v3.enqueue([b, d], expiresAt: t + 90_000) == [true, true])
        for (name, source) in [("a", MessageSource.redisV2), ("b", .redisV3), ("c", .redisV2), ("d", .redisV3)] {
            let found = try await s.v4.read(name)
            #expect(found?.source == source)
            #expect(found?.expiresAtMs == t + 90_000)
        }

        // V2 written, claimed by a V3 store; V3 written, claimed by a V2 store.
        let lease = t + 60_000
        #expect(try await s.v3.claim(count: 1) == [Self.expected(a, attempt: 0, lease: lease)])
        #expect(try await s.v2.claim(count: 1) == [Self.expected(b, attempt: 0, lease: lease)])
        #expect(try await s.v3.claim(count: 1) == [Self.expected(c, attempt: 0, lease: lease)])
        #expect(try await s.v2.claim(count: 1) == [Self.expected(d, attempt: 0, lease: lease)])

        // Each store completes or fails runs written in the other format.
        guard case .done = try await s.v3.ack("a") else { Issue.record("ack a"); return }
        guard case .done = try await s.v2.ack("b") else { Issue.record("ack b"); return }
        guard case .done = try await s.v2.nack("c", retryAt: t) else { Issue.record("nack c"); return }
        #expect(try await s.v3.release(["d"]) == 1)
        #expect(try await s.v3.claim(count: 5) == [
            Self.expected(c, attempt: 1, lease: lease), Self.expected(d, attempt: 0, lease: lease),
        ])
        #expect(try await s.v2.read("c")?.source == .redisV2)
        #expect(try await s.v2.read("d")?.source == .redisV3)
        #expect(s.close() == [0, 0, 0])
    }
}
