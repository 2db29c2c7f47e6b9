import Foundation
import RedisDriver
import RunQueueCore
import RunQueueStoredFormat
import RunQueueStorage
import TestSupport
import Testing

/// expire.lua against a real Redis: what expires, what never does, and that
/// an expired run leaves every structure of its shard.
@Suite(.tags(.integration), .needsServices) struct ExpireScriptTests {
    func expire(_ h: StoreHarness, env: String = "env", batch: Int = 100) async throws -> QueueStore.ExpireResult {
        let (store, now) = (h.store, h.now)
        let shard = store.shards.shard(forEnvironment: h.id(env))
        let result: Result<QueueStore.ExpireResult, QueueStoreError> = await withCheckedContinuation { continuation in
            h.loop.execute { store.expire(shard: shard, now: now, batch: batch) { continuation.resume(returning: $0) } }
        }
        return try result.get()
    }

    func tag(_ h: StoreHarness, env: String = "env") -> String {
        h.store.tag(shard: h.store.shards.shard(forEnvironment: h.id(env)))
    }

    func lane(_ h: StoreHarness, env: String = "env", queue: String = "q", worker: String = "wq") -> String {
        V4Layout.laneID(environmentID: h.id(env), queue: queue, workerQueue: h.id(worker), concurrencyKey: "")
    }

    func exists(_ h: StoreHarness, _ key: String) async throws -> Bool {
        try await h.redis.command("EXISTS", key).int == 1
    }

    @Test func aQueuedRunExpiresAtItsDeadlineAndLeavesEveryStructure() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([h.run("a"), h.run("b", timestamp: t + 500)], expiresAt: t + 1000)
        try await h.enqueue([h.run("keep")])
        // Not yet due.
        var r = try await expire(h)
        #expect(r.expired == 0 && r.nextDeadlineMs == t + 1000)
        h.now = t + 1000
        r = try await expire(h)
        #expect(r.expired == 2)
        #expect(r.nextDeadlineMs == nil)
        #expect(r.oldestExpiredDeadlineMs == t + 1000)
        let entries = try await h.outbox().filter { $0.op == .expired }
        #expect(Set(entries.map(\.runID)) == [h.id("a"), h.id("b")])
        #expect(entries.allSatisfy { $0.attempt == 0 && $0.timeMs == t + 1000 })
        #expect(r.outboxLength >= 2)
        // Gone from the queue: not readable, not claimable, not counted.
        #expect(try await h.read("a") == nil)
        #expect(try await h.read("b") == nil)
        #expect(try await h.stats(queue: "q").length == 1)
        #expect(h.names(try await h.claim(count: 10)) == ["keep"])
        let tag = tag(h), lane = lane(h)
        #expect(try await !exists(h, tag + ":l:" + lane + ":t"))
        #expect(try await !exists(h, tag + ":l:" + lane + ":d"))
        #expect(try await h.redis.command("ZSCORE", tag + ":ttlq", lane) == .null)
        #expect(try await h.redis.command("ZSCORE", tag + ":due", lane) == .null)
        // Finishing until PostgreSQL has it: an enqueue of the same id changes nothing.
        #expect(try await h.enqueue([h.run("a")]) == [false])
        #expect(try await h.redis.command("HGET", tag + ":fin", h.id("a")).string?.hasPrefix("E") == true)
        #expect(h.close() == 0)
    }

    @Test func theLaneRecordGoesWithTheLastRunAndV2MessagesAreDeleted() async throws {
        var config = QueueConfig()
        config.messageFormat = .v2
        let h = try await StoreHarness(config: config)
        let t = h.now
        try await h.enqueue([h.run("a"), h.run("b")], expiresAt: t + 10)
        let tag = tag(h), lane = lane(h)
        #expect(try await exists(h, tag + ":msg:" + h.id("a")))
        #expect(try await exists(h, tag + ":l:" + lane + ":m"))
        h.now = t + 10
        #expect(try await expire(h).expired == 2)
        #expect(try await !exists(h, tag + ":msg:" + h.id("a")))
        #expect(try await !exists(h, tag + ":msg:" + h.id("b")))
        #expect(try await !exists(h, tag + ":l:" + lane + ":m"))
        #expect(try await !exists(h, tag + ":l:" + lane + ":r"))
        #expect(try await h.redis.command("SISMEMBER", tag + ":e:" + h.id("env") + ":lanes", lane).int == 0)
        #expect(try await h.redis.command("ZSCORE", tag + ":wq:" + h.id("wq"), h.id("env")) == .null)
        #expect(h.close() == 0)
    }

    @Test func aDequeuedRunNeverExpiresEvenAfterANack() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([h.run("a")], expiresAt: t + 1000)
        #expect(h.names(try await h.claim(count: 1)) == ["a"])
        h.now = t + 2000
        var r = try await expire(h)
        #expect(r.expired == 0)
        // The lane's recorded deadline was stale (the claim does not touch
        // T:ttlq): recomputed and dropped.
        #expect(r.nextDeadlineMs == nil)
        _ = try await h.nack("a", retryAt: h.now)
        h.now = t + 3000
        r = try await expire(h)
        #expect(r.expired == 0)
        #expect(h.names(try await h.claim(count: 1)) == ["a"])
        #expect(h.close() == 0)
    }

    @Test func aStaleLaneDeadlineIsRecomputedFromTheLaneIndex() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue([h.run("first", timestamp: t - 10)], expiresAt: t + 100)
        try await h.enqueue([h.run("second")], expiresAt: t + 5000)
        #expect(h.names(try await h.claim(count: 1)) == ["first"])
        h.now = t + 200
        let r = try await expire(h)
        #expect(r.expired == 0)
        #expect(r.nextDeadlineMs == t + 5000)
        #expect(try await h.redis.command("ZSCORE", tag(h) + ":ttlq", lane(h)).string == String(t + 5000))
        #expect(h.close() == 0)
    }

    @Test func batchesDrainBackToBackAndSayWhenMoreIsDue() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue((0..<120).map { h.run("r\($0)", queue: "q\($0 % 7)") }, expiresAt: t + 50)
        try await h.enqueue([h.run("later")], expiresAt: t + 9000)
        h.now = t + 60
        var total = 0
        var passes = 0
        while true {
            let r = try await expire(h, batch: 50)
            total += r.expired
            passes += 1
            #expect(r.expired <= 50)
            guard let next = r.nextDeadlineMs, next <= h.now else {
                #expect(r.nextDeadlineMs == t + 9000)
                break
            }
        }
        #expect(total == 120)
        #expect(passes == 3)
        #expect(try await h.outbox().filter { $0.op == .expired }.count == 120)
        #expect(h.names(try await h.claim(count: 200)) == ["later"])
        #expect(h.close() == 0)
    }

    @Test func expiryAndClaimsNeverShareARun() async throws {
        let h = try await StoreHarness()
        let t = h.now
        try await h.enqueue((0..<200).map { h.run("r\($0)", timestamp: t - 1000 + Int64($0)) }, expiresAt: t + 100)
        h.now = t + 100
        // Interleave claims and expiry passes on the same due runs.
        var claimed: [String] = []
        for _ in 0..<5 {
            claimed += try await h.claim(count: 20).map(\.runID)
            _ = try await expire(h, batch: 15)
        }
        while try await expire(h, batch: 15).expired > 0 {}
        let expired = try await h.outbox().filter { $0.op == .expired }.map(\.runID)
        #expect(Set(claimed).isDisjoint(with: expired))
        #expect(Set(claimed).count == claimed.count && Set(expired).count == expired.count)
        #expect(claimed.count + expired.count == 200)
        #expect(try await h.claim(count: 200).isEmpty)
        #expect(h.close() == 0)
    }
}
