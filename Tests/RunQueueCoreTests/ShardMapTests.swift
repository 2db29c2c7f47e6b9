@testable import RunQueueCore
import Testing

// Golden values come from an independent Python implementation that mirrors
// trigger.dev's packages/core/src/v3/serverOnly/jumpHash.ts (hashlib instead
// of our SHA256, Python big integers instead of wrapping UInt64):
//
//     import hashlib, math
//     M = 2862933555777941757
//     def jump(key, buckets):
//         b, j = -1, 0
//         while j < buckets:
//             b = j
//             key = (key * M) % 2**64 + 1          # +1 after the mod, as the TS
//             j = math.floor(((b + 1) * float(2**31)) / float((key >> 33) + 1))
//         return b
//     def shard(env, n):
//         return jump(int.from_bytes(hashlib.sha256(env.encode()).digest()[:8], "big"), n)
//     for e in ["env_1", "env_2", "cm3abcxyz0000000000000000", ...]:
//         print(e, [(n, shard(e, n)) for n in (1, 2, 4, 16, 64, 1000)])
//     k = (2**64 - 1) * pow(M, -1, 2**64) % 2**64  # key whose step hits 2^64 in the TS
//
// SHA-256 vectors: FIPS 180-2 appendix B and hashlib for the block-boundary lengths.

@Suite struct SHA256Tests {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func hashesTheEmptyMessage() {
        #expect(hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func hashesAbc() {
        #expect(hex(SHA256.hash("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hashesThe448BitMessage() {
        let message = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        #expect(hex(SHA256.hash(message.utf8)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func hashesOneMillionAs() {
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(arguments: [
        (55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"),
        (56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"),
        (63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"),
        (64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"),
        (65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"),
        (119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"),
        (120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"),
        (128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"),
    ])
    func padsCorrectlyAroundBlockBoundaries(length: Int, digest: String) {
        let message = (0..<length).map { UInt8($0 % 251) }
        #expect(hex(SHA256.hash(message)) == digest)
        // Fed in uneven pieces, the digest is the same.
        for piece in [1, 7, 63, 64] {
            var hasher = SHA256()
            var start = 0
            while start < length {
                let end = min(start + piece, length)
                hasher.update(message[start..<end])
                start = end
            }
            #expect(hex(hasher.finalize()) == digest, "piece \(piece)")
        }
    }
}

@Suite struct ShardMapTests {
    @Test func readsTheFirstEightDigestBytesBigEndian() {
        #expect(ShardMap.key(forEnvironment: "env_1") == 0xb6f6_b232_ca3b_9763)
        #expect(ShardMap.key(forEnvironment: "") == 0xe3b0_c442_98fc_1c14)
        #expect(ShardMap.key(forEnvironment: "a") == 0xca97_8112_ca1b_bdca)
    }

    @Test(arguments: [
        // (environment id, shard count, shard) computed by the Python above.
        ("env_1", 1, 0), ("env_1", 2, 1), ("env_1", 4, 1), ("env_1", 16, 8), ("env_1", 64, 59), ("env_1", 1000, 414),
        ("env_2", 4, 2), ("env_2", 16, 2), ("env_2", 1000, 214),
        ("cm3abcxyz0000000000000000", 16, 9), ("cm3abcxyz0000000000000000", 1000, 265),
        ("clxprod123456789abcdefghij", 4, 3), ("clxprod123456789abcdefghij", 16, 12), ("clxprod123456789abcdefghij", 64, 56),
        ("prod.env-42", 16, 6), ("prod.env-42", 1000, 896),
        ("environment_with_a_long_name_0123456789", 64, 45),
        ("a", 64, 50), ("", 16, 5),
    ])
    func assignsTheShardAnIndependentImplementationComputes(environment: String, shardCount: Int, shard: Int) {
        #expect(ShardMap(shardCount: shardCount).shard(forEnvironment: environment) == shard)
    }

    private static let jumpGolden: [(key: UInt64, buckets: Int32, bucket: Int32)] = [
        (0, 16, 0), (1, 16, 6), (1, 1000, 549), (1, Int32.max, 262_355_607),
        (0xdead_beef, 3, 2), (0xdead_beef, 64, 16), (0xdead_beef, Int32.max, 1_452_406_526),
        (UInt64.max, 16, 10), (UInt64.max, 1000, 313), (UInt64.max, Int32.max, 699_554_662),
        (0x0123_4567_89ab_cdef, 16, 13), (0x0123_4567_89ab_cdef, Int32.max, 1_651_575_352),
    ]

    @Test(arguments: jumpGolden)
    func jumpHashMatchesTheReferenceArithmetic(key: UInt64, buckets: Int32, bucket: Int32) {
        #expect(ShardMap.jumpHash(key: key, buckets: buckets) == bucket)
    }

    @Test func wrappingKeyStateGivesTheSameBucketAsTheReference() {
        // The one key whose first step is 2^64 in the TypeScript (0 here).
        let key: UInt64 = 2_313_046_976_756_913_067
        #expect(key &* 2_862_933_555_777_941_757 == UInt64.max)
        for buckets: Int32 in [1, 2, 4, 16, 64, 1000, Int32.max] {
            #expect(ShardMap.jumpHash(key: key, buckets: buckets) == 0)
        }
    }

    @Test func oneShardTakesEveryEnvironment() {
        let map = ShardMap(shardCount: 1)
        for i in 0..<100 { #expect(map.shard(forEnvironment: "env_\(i)") == 0) }
    }

    @Test func defaultsToSixteenShards() {
        #expect(ShardMap().shardCount == 16)
    }

    @Test func spreadsEnvironmentsOverEveryShard() {
        let map = ShardMap(shardCount: 16)
        var counts = [Int](repeating: 0, count: 16)
        for i in 0..<3200 { counts[map.shard(forEnvironment: "env_\(i)")] += 1 }
        // 200 expected per shard; a fair hash stays well inside 100...300.
        #expect(counts.allSatisfy { (100...300).contains($0) }, "\(counts)")
    }

    @Test func growingTheShardCountMovesEnvironmentsOnlyToTheNewShard() {
        let before = ShardMap(shardCount: 16)
        let after = ShardMap(shardCount: 17)
        var moved = 0
        for i in 0..<2000 {
            let old = before.shard(forEnvironment: "env_\(i)")
            let new = after.shard(forEnvironment: "env_\(i)")
            if old != new {
                moved += 1
                #expect(new == 16, "env_\(i) moved from \(old) to \(new), not to the new shard")
            }
        }
        // About 1/17 of 2000 (~118) move.
        #expect((50...200).contains(moved), "\(moved) moved")
    }

    @Test func hashTagPrefixesEveryKeyOfTheShard() {
        let map = ShardMap(shardCount: 16)
        #expect(map.hashTag(shard: 0) == "{rq0}")
        #expect(map.hashTag(shard: 7) == "{rq7}")
        #expect(map.hashTag(shard: 15) == "{rq15}")
    }
}
