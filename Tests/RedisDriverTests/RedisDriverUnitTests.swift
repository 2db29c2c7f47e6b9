import Testing
@testable import RedisDriver

@Suite struct RedisDriverUnitTests {
    @Test func sha1MatchesTheStandardTestVectors() {
        #expect(SHA1.hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(SHA1.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        // 55, 56 and 64 bytes: the padding edge cases.
        #expect(SHA1.hex([UInt8](repeating: 0x61, count: 55)) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(SHA1.hex([UInt8](repeating: 0x61, count: 56)) == "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        #expect(SHA1.hex([UInt8](repeating: 0x61, count: 64)) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
        #expect(RedisScript(source: "return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }

    @Test func parsesRedisURLs() throws {
        let plain = try RedisConfig(url: "redis://127.0.0.1:6391")
        #expect(plain.host == "127.0.0.1" && plain.port == 6391 && plain.db == 0 && plain.password == nil)
        let full = try RedisConfig(url: "redis://app:pw@localhost:7000/3")
        #expect(full.host == "127.0.0.1" && full.port == 7000 && full.db == 3)
        #expect(full.username == "app" && full.password == "pw")
        let passwordOnly = try RedisConfig(url: "redis://:pw@10.0.0.1")
        #expect(passwordOnly.port == 6379 && passwordOnly.username == nil && passwordOnly.password == "pw")
        let v6 = try RedisConfig(url: "redis://[::1]:6380/1")
        #expect(v6.host == "::1" && v6.port == 6380 && v6.db == 1)
        #expect(try RedisConfig(url: "redis://[::1]").port == 6379)
        #expect(try RedisConfig(url: "redis://127.0.0.1/").db == 0)
        for bad in ["http://127.0.0.1:6379", "redis://", "redis://redis.example.com:6379",
                    "redis://127.0.0.1:99999", "redis://127.0.0.1:6379/x", "redis://127.0.0.1:6379/-1"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfig(url: bad) }
        }
        #expect(!full.description.contains("pw"))
    }

    @Test func valueHelpersReadTheCommonShapes() {
        #expect(RedisValue.bulk(Array("42".utf8)).int == 42)
        #expect(RedisValue.int(7).int == 7)
        #expect(RedisValue.status("OK").string == "OK")
        #expect(RedisValue.bulk([0xFF]).string == nil)
        #expect(RedisValue.bulk([1, 2]).bytes == [1, 2])
        #expect(RedisValue.array([.null]).array == [.null])
        #expect(RedisValue.null.isNull && RedisValue.error("X").isError)
        #expect(RedisError(.replyError, "NOSCRIPT No matching script").replyErrorPrefix == "NOSCRIPT")
        #expect(RedisError(.timeout, "x").replyErrorPrefix == nil)
    }
}
