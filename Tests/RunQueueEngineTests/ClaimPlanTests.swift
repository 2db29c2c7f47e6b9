import Testing
@testable import RunQueueEngine

/// How a Dequeue spreads its claim over the shards, without Redis.
@Suite struct ClaimPlanTests {
    @Test func theOrderStartsAtTheRotationPointAndSkipsHintedShards() {
        #expect(ClaimPlan.order(shardCount: 4, start: 0, skipping: []) == [0, 1, 2, 3])
        #expect(ClaimPlan.order(shardCount: 4, start: 2, skipping: []) == [2, 3, 0, 1])
        #expect(ClaimPlan.order(shardCount: 4, start: 3, skipping: [0, 2]) == [3, 1])
        #expect(ClaimPlan.order(shardCount: 3, start: 1, skipping: [0, 1, 2]).isEmpty)
        #expect(ClaimPlan.order(shardCount: 0, start: 0, skipping: []).isEmpty)
    }

    @Test func sharesAddUpToWhatIsWantedAndTheFirstShardsTakeTheRemainder() throws {
        let plan = try #require(ClaimPlan(remaining: 10, shards: [5, 6, 7, 8]))
        #expect(plan.visits.map(\.shard) == [5, 6, 7, 8])
        #expect(plan.visits.map(\.share) == [3, 3, 2, 2])
        #expect(plan.notAsked.isEmpty)
        #expect(plan.visits.map(\.share).reduce(0, +) == 10)
    }

    @Test func fewerRunsThanShardsAskOneRunOfEachOfTheFirstShards() throws {
        let plan = try #require(ClaimPlan(remaining: 2, shards: [3, 0, 1, 2]))
        #expect(plan.visits == [.init(shard: 3, share: 1), .init(shard: 0, share: 1)])
        #expect(plan.notAsked == [1, 2])
    }

    @Test func theNextPassAsksTheShardsNotAskedThenThoseThatGaveTheirFullShare() throws {
        let plan = try #require(ClaimPlan(remaining: 3, shards: [0, 1, 2, 3, 4]))
        // Shard 0 gave its one run, shard 1 none, shard 2 its one.
        #expect(plan.nextShards(given: [1, 0, 1]) == [3, 4, 0, 2])
        let wide = try #require(ClaimPlan(remaining: 9, shards: [0, 1, 2]))
        #expect(wide.nextShards(given: [3, 2, 3]) == [0, 2])
    }

    @Test func nothingWantedOrNowhereToAskIsNoPass() {
        #expect(ClaimPlan(remaining: 0, shards: [0, 1]) == nil)
        #expect(ClaimPlan(remaining: 5, shards: []) == nil)
    }
}
