import RunQueueCore
import RunQueueStoredFormat
import Testing

@Suite struct LogicalQueueKeyTests {
    private func parseError(_ text: String) -> MessageFormatError? {
        do { _ = try LogicalQueueKey(parsing: text); return nil } catch { return error }
    }

    private func parseError(bytes: [UInt8]) -> MessageFormatError? {
        do { _ = try LogicalQueueKey(parsing: bytes); return nil } catch { return error }
    }

    @Test func encodesTriggerDevGrammarWithoutConcurrencyKey() {
        let key = LogicalQueueKey(orgID: "org_1", projectID: "proj_1", environmentID: "env_1", queue: "task/send-email")
        #expect(key.encoded == "{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email")
        #expect(key.encodedByteCount == key.encoded.utf8.count)
    }

    @Test func appendsCkSectionOnlyWhenAConcurrencyKeyIsSet() {
        let key = LogicalQueueKey(orgID: "o", projectID: "p", environmentID: "e", queue: "q", concurrencyKey: "tenant-7")
        #expect(key.encoded == "{org:o}:proj:p:env:e:queue:q:ck:tenant-7")
        #expect(key.withoutConcurrencyKey.encoded == "{org:o}:proj:p:env:e:queue:q")
        #expect(key.description == key.encoded)
    }

    @Test func appendsTheSameBytesAsItEncodes() {
        let key = LogicalQueueKey(orgID: "o", projectID: "p", environmentID: "e", queue: "q", concurrencyKey: "ü:x")
        var out: [UInt8] = [7]
        key.appendEncoded(to: &out)
        #expect(out == [7] + key.encoded.utf8Bytes)
        #expect(key.encodedBytes == key.encoded.utf8Bytes)
    }

    @Test func parsesEverySection() throws {
        let key = try LogicalQueueKey(parsing: "{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email")
        #expect(key == LogicalQueueKey(orgID: "org_1", projectID: "proj_1", environmentID: "env_1", queue: "task/send-email", concurrencyKey: ""))
    }

    @Test func concurrencyKeyIsEverythingAfterTheFirstCk() throws {
        // trigger.dev's parser split on ':' and kept only "a" here.
        let key = try LogicalQueueKey(parsing: "{org:o}:proj:p:env:e:queue:q:ck:a:ck:b:c")
        #expect(key.queue == "q")
        #expect(key.concurrencyKey == "a:ck:b:c")
        #expect(key.encoded == "{org:o}:proj:p:env:e:queue:q:ck:a:ck:b:c")

        let odd = try LogicalQueueKey(parsing: "{org:o}:proj:p:env:e:queue:q:ck::")
        #expect(odd.concurrencyKey == ":")
        let unicode = try LogicalQueueKey(parsing: "{org:o}:proj:p:env:e:queue:q:ck:日本 🎉 \"x\"")
        #expect(unicode.concurrencyKey == "日本 🎉 \"x\"")
    }

    @Test func parsesBytesLikeText() throws {
        let text = "{org:o}:proj:p:env:e:queue:a/b:ck:é"
        #expect(try LogicalQueueKey(parsing: text.utf8Bytes) == LogicalQueueKey(parsing: text))
    }

    @Test func acceptsSectionsOfExactly128Bytes() throws {
        let long = String(repeating: "x", count: 128)
        let key = LogicalQueueKey(orgID: long, projectID: long, environmentID: long, queue: long,
                                  concurrencyKey: String(repeating: "é", count: 64))
        #expect(try LogicalQueueKey(parsing: key.encoded) == key)
    }

    @Test func rejectsBrokenLayouts() {
        let rejected = [
            "",
            "org:o}:proj:p:env:e:queue:q",
            "{org:o:proj:p:env:e:queue:q",
            "{org:}:proj:p:env:e:queue:q",
            "{org:o}:project:p:env:e:queue:q",
            "{org:o}:proj::env:e:queue:q",
            "{org:o}:proj:p:queue:q",
            "{org:o}:proj:p:env:e:queue:",
            "{org:o}:proj:p:env:e:q:q",
            "{org:o}:proj:p:env:e:queue:q:",
            "{org:o}:proj:p:env:e:queue:q:ck:",
            "{org:o}:proj:p:env:e:queue:q:cq:x",
            "{org:o}:proj:p:env:e:queue:q x",
            "{org:o}:proj:p:env:e:queue:q|r",
            "{org:o p}:proj:p:env:e:queue:q",
            "{org:o}:proj:p/x:env:e:queue:q",
            " {org:o}:proj:p:env:e:queue:q",
            "{org:o}:env:e:proj:p:queue:q",
        ]
        for text in rejected {
            let error = parseError(text)
            #expect(error?.code == .malformed, "\(text.debugDescription)")
            #expect(error?.field == "queue")
            #expect(error?.message.hasPrefix("queue is not a logical queue key: ") == true)
        }
    }

    @Test func rejectsSectionsOver128Bytes() {
        let long = String(repeating: "x", count: 129)
        #expect(parseError("{org:\(long)}:proj:p:env:e:queue:q")?.message.contains("org id must be 1..128 bytes") == true)
        #expect(parseError("{org:o}:proj:\(long):env:e:queue:q")?.message.contains("project id") == true)
        #expect(parseError("{org:o}:proj:p:env:\(long):queue:q")?.message.contains("environment id") == true)
        #expect(parseError("{org:o}:proj:p:env:e:queue:\(long)")?.message.contains("queue name") == true)
        #expect(parseError("{org:o}:proj:p:env:e:queue:q:ck:\(long)")?.message.contains("concurrency key") == true)
    }

    @Test func rejectsConcurrencyKeysValidationWouldReject() {
        for key in ["a|b", "a\u{1E}b", "tab\t", "\u{7F}", "\u{85}"] {
            #expect(parseError("{org:o}:proj:p:env:e:queue:q:ck:\(key)")?.code == .malformed, "\(key.debugDescription)")
        }
        // Bytes that are not UTF-8 at all (a lone continuation byte, an overlong).
        let prefix = "{org:o}:proj:p:env:e:queue:q:ck:".utf8Bytes
        for tail: [UInt8] in [[0x80], [0xC0, 0xAF], [0xFF], [0xE2, 0x82]] {
            #expect(parseError(bytes: prefix + tail)?.message.contains("not valid UTF-8") == true)
        }
    }

    @Test func roundTripsEverySeededValidKey() throws {
        var random = MessageFormatRandom(seed: 0x1091_CA1_0E)
        for _ in 0..<5_000 {
            let key = random.queueKey()
            let encoded = key.encoded
            #expect(key.encodedByteCount == encoded.utf8.count)
            let parsed = try LogicalQueueKey(parsing: encoded)
            #expect(parsed == key, "\(encoded.debugDescription)")
            #expect(parsed.encoded == encoded)
            #expect(Validation.isConcurrencyKey(parsed.concurrencyKey))
        }
    }

    @Test func randomBytesEitherFailOrParseToAValidKey() {
        var random = MessageFormatRandom(seed: 0xBAD_5EED)
        let seed = "{org:o}:proj:p:env:e:queue:q:ck:k".utf8Bytes
        for _ in 0..<20_000 {
            var bytes = seed
            for _ in 0..<random.int(1...4) {
                switch random.int(0...2) {
                case 0: bytes[random.int(0...bytes.count - 1)] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.insert(random.pick(Array(":{}ck/ \u{1E}".utf8)), at: random.int(0...bytes.count))
                default: if bytes.count > 1 { bytes.remove(at: random.int(0...bytes.count - 1)) }
                }
            }
            if let key = try? LogicalQueueKey(parsing: bytes) {
                #expect(key.encoded.utf8Bytes == bytes)
                #expect(Validation.isIdentifier(key.orgID) && Validation.isIdentifier(key.projectID)
                    && Validation.isIdentifier(key.environmentID) && Validation.isQueueName(key.queue)
                    && Validation.isConcurrencyKey(key.concurrencyKey))
            }
        }
    }
}
