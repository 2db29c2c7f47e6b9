// ClaimPlan: which shards one Dequeue asks, in which order, and for how many
// runs each. A pure value: DequeueCoordinator.claim runs it against Redis,
// Tests/RunQueueEngineTests/ClaimPlanTests.swift checks it without.
//
// - Order: every shard once, starting at the worker queue's rotation point
//   (so successive Dequeues start on successive shards), skipping shards the
//   worker queue's last claims found empty (the hints, dropped when a shard
//   gets runs again).
// - A pass asks its first `remaining` shards at once, for shares that add up
//   to exactly what is still wanted (the first `remaining % n` shards one more).
// - The next pass asks the shards not asked yet, then those that gave their
//   full share (they may hold more); one that gave less is empty for now.
// (Which environments of a shard give the runs is the claim script's choice:
// Sources/RunQueueStorage/Lua/claim.lua.)
struct ClaimPlan: Equatable {
    /// The shards of one pass with the runs asked of each.
    struct Visit: Equatable {
        let shard: Int
        let share: Int
    }

    let visits: [Visit]
    /// Shards left for a later pass, in order.
    let notAsked: [Int]

    /// The shards a claim walks: `shardCount` shards from `start`, minus `hinted`.
    static func order(shardCount: Int, start: Int, skipping hinted: Set<Int>) -> [Int] {
        guard shardCount > 0 else { return [] }
        return (0..<shardCount).map { (start + $0) % shardCount }.filter { !hinted.contains($0) }
    }

    /// The pass that asks for `remaining` runs among `shards`; nil when there
    /// is nothing left to ask for or nowhere left to ask.
    init?(remaining: Int, shards: [Int]) {
        guard remaining > 0, !shards.isEmpty else { return nil }
        let asked = Array(shards.prefix(remaining))
        let base = remaining / asked.count, extra = remaining % asked.count
        visits = asked.enumerated().map { index, shard in Visit(shard: shard, share: base + (index < extra ? 1 : 0)) }
        notAsked = Array(shards.dropFirst(asked.count))
    }

    /// The shards of the next pass, given how many runs each visit gave.
    func nextShards(given: [Int]) -> [Int] {
        notAsked + zip(visits, given).filter { $0.1 >= $0.0.share }.map(\.0.shard)
    }
}
