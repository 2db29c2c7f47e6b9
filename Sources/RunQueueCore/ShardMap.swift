// ShardMap: which Redis shard an environment lives in, and that shard's key prefix.
//
// What (docs/queue-design.md, "Shards and keys"): shard =
// jumpHash(first 8 bytes of SHA-256(UTF-8 environment id), read big-endian as
// an unsigned 64-bit key, shardCount). Every Redis key of shard N starts with
// the hash tag `{rqN}`, so all of a shard's keys fall in one cluster slot and
// a script never touches two shards.
//
// Invariants:
// - Pure and deterministic: the same (environment id, shard count) gives the
//   same shard on every server, every run, every platform (no Hasher seeding,
//   no Foundation). Golden values computed by an independent Python version
//   are in Tests/RunQueueCoreTests/ShardMapTests.swift.
// - 1 <= shardCount <= Int32.max and 0 <= shard < shardCount. The shard count
//   is configuration checked at startup (and stored in Redis and PostgreSQL),
//   so a count out of range is a programming error, not a peer's input.
// - Jump consistent hashing moves only ~1/(n+1) of the environments when the
//   count grows from n to n+1; that is why it is used rather than `% n`
//   (a changed count still refuses to start: the server exits with code 2,
//   see docs/queue-design.md).
//
// Fidelity to trigger.dev's `jumpHash.ts` (the reference):
// - j = floor(((b + 1) * 2^31) / ((key >> 33) + 1)) in IEEE doubles, the
//   multiplication first and then one division, exactly as the TypeScript
//   does (the paper's C++ divides first; the two can differ in the last bit).
//   (b + 1) * 2^31 is exact in a double, so only the division rounds.
// - The TypeScript adds the +1 after reducing mod 2^64, so one key state in
//   2^64 becomes 2^64 there and wraps to 0 here. For every bucket count below
//   2^31 both give the same bucket: with 2^64 the next j equals b and the step
//   after jumps to >= 2^31; with 0, j jumps to >= 2^31 at once. Plain
//   wraparound is therefore exact for every Int32 bucket count.

import Synchronization

/// Maps environments to shards and shards to their Redis hash tag.
public struct ShardMap: Sendable, Equatable {
    /// Default shard count (`RUN_ENGINE_RUN_QUEUE_SHARD_COUNT`, default 16; README.md "Configuration").
    public static let defaultShardCount = 16
    /// The shard counts a deployment may be configured with.
    public static let configurableShardCounts = 1...1024

    /// The number of shards, 1...Int32.max.
    public let shardCount: Int
    /// Environments seen recently and their shards: every enqueue, ack and
    /// claimed run asks, and the SHA-256 cost more than a microsecond each.
    private let cache = Cache()

    public init(shardCount: Int = ShardMap.defaultShardCount) {
        precondition(shardCount >= 1 && shardCount <= Int(Int32.max), "shard count out of range 1...\(Int32.max): \(shardCount)")
        self.shardCount = shardCount
    }

    public static func == (lhs: ShardMap, rhs: ShardMap) -> Bool { lhs.shardCount == rhs.shardCount }

    /// The shard (0..<shardCount) of an environment: jump hash of the first
    /// 8 bytes of SHA-256 of its UTF-8 id, read big-endian.
    public func shard(forEnvironment id: String) -> Int {
        if let shard = cache.shard(of: id) { return shard }
        let shard = Int(Self.jumpHash(key: Self.key(forEnvironment: id), buckets: Int32(shardCount)))
        cache.remember(id, shard: shard)
        return shard
    }

    /// A bounded map from environment id to shard, shared by copies of one
    /// ShardMap (so by every thread of a server). Emptied when full: an
    /// environment not seen for a while costs one hash again.
    private final class Cache: Sendable {
        static let capacity = 8192
        private let entries = Mutex<[String: Int]>([:])

        func shard(of id: String) -> Int? { entries.withLock { $0[id] } }

        func remember(_ id: String, shard: Int) {
            entries.withLock { entries in
                if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
                entries[id] = shard
            }
        }
    }

    /// The hash tag every Redis key of `shard` starts with: `{rq<shard>}`.
    public func hashTag(shard: Int) -> String {
        precondition(shard >= 0 && shard < shardCount, "shard \(shard) out of range 0..<\(shardCount)")
        return "{rq\(shard)}"
    }

    /// The 64-bit jump-hash key of an environment: the first 8 bytes of
    /// SHA-256 of its UTF-8 id as a big-endian unsigned integer.
    public static func key(forEnvironment id: String) -> UInt64 {
        let digest = SHA256.hash(id.utf8)
        var key: UInt64 = 0
        for byte in digest.prefix(8) { key = key << 8 | UInt64(byte) }
        return key
    }

    /// Lamping–Veach jump consistent hash: a bucket in 0..<buckets.
    /// `buckets` must be at least 1.
    public static func jumpHash(key: UInt64, buckets: Int32) -> Int32 {
        precondition(buckets >= 1, "jump hash needs at least one bucket: \(buckets)")
        /// The LCG multiplier of the paper (and of trigger.dev's `jumpHash.ts`).
        let multiplier: UInt64 = 2_862_933_555_777_941_757
        /// 2^31 as a double: the scale of the jump.
        let twoTo31 = 2_147_483_648.0
        var key = key
        var b: Int64 = -1
        var j: Int64 = 0
        while j < Int64(buckets) {
            b = j
            key = key &* multiplier &+ 1
            // (b + 1) <= 2^31 and the divisor >= 1, so the quotient < 2^63: fits Int64.
            j = Int64((Double(b + 1) * twoTo31 / Double((key >> 33) + 1)).rounded(.down))
        }
        return Int32(b)
    }
}
