import RunQueueCore
@testable import RunQueueStoredFormat
import Testing

@Suite struct MessageFormatV2Tests {
    private func decodeError(_ text: String, fallback: String? = nil) -> MessageFormatError? {
        decodeError(bytes: text.utf8Bytes, fallback: fallback)
    }

    private func decodeError(bytes: [UInt8], fallback: String? = nil) -> MessageFormatError? {
        do { _ = try MessageFormatV2.decode(bytes, taskIdentifierFallback: fallback); return nil } catch { return error }
    }

    /// `plainV2` with `key`'s value text replaced (the key must be present).
    private func plainReplacing(_ key: String, with valueText: String) -> String {
        let fields = ["version": #""2""#, "runId": #""run_1234""#, "taskIdentifier": #""send-email""#,
                      "orgId": #""org_1""#, "projectId": #""proj_1""#, "environmentId": #""env_1""#,
                      "environmentType": #""PRODUCTION""#,
                      "queue": #""{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email""#,
                      "timestamp": "1700000000000", "attempt": "0", "workerQueue": #""main""#]
        let target = "\"\(key)\":\(fields[key]!)"
        precondition(MessageFormatSamples.plainV2.contains(target))
        return MessageFormatSamples.plainV2.replacing(target, with: "\"\(key)\":\(valueText)")
    }

    /// `plainV2` without `key`.
    private func plainWithout(_ key: String) -> String {
        var text = MessageFormatSamples.plainV2
        let start = text.firstRange(of: "\"\(key)\":")!
        var end = start.upperBound
        var inString = false
        while end < text.endIndex {
            let c = text[end]
            if c == "\"" { inString.toggle() } else if !inString, c == "," || c == "}" { break }
            end = text.index(after: end)
        }
        if text[end] == "," { end = text.index(after: end) } else if text[text.index(before: start.lowerBound)] == "," {
            text.removeSubrange(text.index(before: start.lowerBound)..<end)
            return text
        }
        text.removeSubrange(start.lowerBound..<end)
        return text
    }

    // MARK: Golden vectors

    @Test func encodesGoldenBytesWithoutConcurrencyKeyOrTTL() {
        #expect(MessageFormatV2.encode(MessageFormatSamples.plain) == MessageFormatSamples.plainV2.utf8Bytes)
    }

    @Test func encodesGoldenBytesWithConcurrencyKeyAndTTL() {
        #expect(MessageFormatV2.encode(MessageFormatSamples.keyed) == MessageFormatSamples.keyedV2.utf8Bytes)
    }

    @Test func encodesGoldenBytesWithTTLButNoConcurrencyKey() {
        var message = MessageFormatSamples.plain
        message.ttlExpiresAtMs = 0
        message.environmentType = .staging
        message.attempt = 4_294_967_295
        message.timestampMs = 999_999_999_999_999
        let expected = #"{"version":"2","runId":"run_1234","taskIdentifier":"send-email","orgId":"org_1","projectId":"proj_1","environmentId":"env_1","environmentType":"STAGING","queue":"{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email","timestamp":999999999999999,"attempt":4294967295,"workerQueue":"main","ttlExpiresAt":0}"#
        #expect(MessageFormatV2.encode(message) == expected.utf8Bytes)
    }

    @Test func escapesConcurrencyKeyInBothQueueAndConcurrencyKey() throws {
        var message = MessageFormatSamples.plain
        message.environmentType = .preview
        message.taskIdentifier = ""
        message.concurrencyKey = #"say "hi" \ é/ü🎉"#
        let expected = #"{"version":"2","runId":"run_1234","taskIdentifier":"","orgId":"org_1","projectId":"proj_1","environmentId":"env_1","environmentType":"PREVIEW","queue":"{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email:ck:say \"hi\" \\ é/ü🎉","concurrencyKey":"say \"hi\" \\ é/ü🎉","timestamp":1700000000000,"attempt":0,"workerQueue":"main"}"#
        #expect(MessageFormatV2.encode(message) == expected.utf8Bytes)
        #expect(try MessageFormatV2.decode(expected.utf8Bytes) == message)
    }

    @Test func escapesLikeJSONStringify() {
        var out: [UInt8] = []
        MessageFormatV2.appendEscaped("a\"b\\c/d\u{08}\u{0C}\n\r\t\u{00}\u{01}\u{1E}\u{1F} \u{7F}é\u{2028}", to: &out)
        #expect(out == #"a\"b\\c/d\b\f\n\r\t\u0000\u0001\u001e\u001f "#.utf8Bytes + [0x7F] + "é\u{2028}".utf8Bytes)
    }

    @Test func decodesGoldenBytes() throws {
        #expect(try MessageFormatV2.decode(MessageFormatSamples.plainV2.utf8Bytes) == MessageFormatSamples.plain)
        #expect(try MessageFormatV2.decode(MessageFormatSamples.keyedV2.utf8Bytes) == MessageFormatSamples.keyed)
    }

    /// What trigger.dev's enqueueMessage writes: its own key order, trace
    /// fields injected by OpenTelemetry, `eligibleAtMs`, whitespace.
    @Test func decodesAReferenceShapedMessageIgnoringUnknownKeys() throws {
        let text = """
        { "runId": "run_cm4x1", "taskIdentifier": "my-background-task", "orgId": "cm4org", "projectId": "cm4proj",
          "environmentId": "cm4env", "environmentType": "PRODUCTION",
          "queue": "{org:cm4org}:proj:cm4proj:env:cm4env:queue:task/my-background-task",
          "timestamp": 1738400000123, "eligibleAtMs": 1738400000123.5, "attempt": 0,
          "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          "tracestate": "", "baggage": {"nested": [1, 2.5e3, -0, true, false, null, {"deep": "\\u00e9\\n"}]},
          "version": "2", "workerQueue": "main" }
        """
        let message = try MessageFormatV2.decode(text.utf8Bytes)
        #expect(message == StoredMessage(
            runID: "run_cm4x1", orgID: "cm4org", projectID: "cm4proj", environmentID: "cm4env",
            environmentType: .production, queue: "task/my-background-task", concurrencyKey: "",
            taskIdentifier: "my-background-task", workerQueue: "main", timestampMs: 1_738_400_000_123,
            attempt: 0, ttlExpiresAtMs: nil
        ))
    }

    @Test func decodesEscapedKeysAndValues() throws {
        let text = plainReplacing("runId", with: #""run_\u0031234""#)
            .replacing(#""orgId""#, with: #""\u006frgId""#)
        #expect(try MessageFormatV2.decode(text.utf8Bytes) == MessageFormatSamples.plain)
        var keyed = MessageFormatSamples.keyed
        keyed.concurrencyKey = "😀"
        let surrogates = MessageFormatSamples.keyedV2
            .replacing("user:42", with: #"\ud83d\ude00"#)
        #expect(try MessageFormatV2.decode(surrogates.utf8Bytes) == keyed)
    }

    @Test func treatsNullAndEmptyOptionalFieldsAsAbsent() throws {
        let nulls = MessageFormatSamples.plainV2.replacing(
            #""workerQueue":"main"}"#, with: #""workerQueue":"main","concurrencyKey":null,"ttlExpiresAt":null}"#)
        #expect(try MessageFormatV2.decode(nulls.utf8Bytes) == MessageFormatSamples.plain)
        let empty = MessageFormatSamples.plainV2.replacing(
            #""workerQueue":"main"}"#, with: #""workerQueue":"main","concurrencyKey":""}"#)
        #expect(try MessageFormatV2.decode(empty.utf8Bytes) == MessageFormatSamples.plain)
    }

    @Test func usesTheFallbackOnlyWhenTaskIdentifierIsAbsent() throws {
        let without = plainWithout("taskIdentifier")
        #expect(!without.contains("taskIdentifier"))
        #expect(try MessageFormatV2.decode(without.utf8Bytes, taskIdentifierFallback: "from-row").taskIdentifier == "from-row")
        #expect(decodeError(without) == MessageFormatError(.missingField, field: "taskIdentifier", "taskIdentifier is missing"))
        #expect(try MessageFormatV2.decode(MessageFormatSamples.plainV2.utf8Bytes, taskIdentifierFallback: "from-row").taskIdentifier == "send-email")
    }

    // MARK: Legacy V1

    @Test func readsV1DevelopmentWithTheEnvironmentAsWorkerQueue() throws {
        let text = #"{"version":"1","runId":"r1","taskIdentifier":"t","orgId":"o","projectId":"p","environmentId":"env_dev","environmentType":"DEVELOPMENT","queue":"{org:o}:proj:p:env:env_dev:queue:q","timestamp":5,"attempt":1,"masterQueues":["shared-1"]}"#
        let message = try MessageFormatV2.decode(text.utf8Bytes)
        #expect(message.workerQueue == "env_dev")
        #expect(message.attempt == 1)
        // Re-encoding upgrades to V2.
        #expect(MessageFormatV2.encode(message).starts(with: #"{"version":"2","#.utf8Bytes))
    }

    @Test func readsV1DeployedWithTheFirstMasterQueue() throws {
        let text = #"{"version":"1","runId":"r1","taskIdentifier":"t","orgId":"o","projectId":"p","environmentId":"e","environmentType":"PRODUCTION","queue":"{org:o}:proj:p:env:e:queue:q","timestamp":5,"attempt":0,"masterQueues":["main", "other"]}"#
        #expect(try MessageFormatV2.decode(text.utf8Bytes).workerQueue == "main")

        let none = text.replacing(#"["main", "other"]"#, with: "[]")
        #expect(decodeError(none)?.field == "masterQueues")
        #expect(decodeError(none)?.code == .missingField)
        let numbers = text.replacing(#"["main", "other"]"#, with: "[1]")
        #expect(decodeError(numbers) == MessageFormatError(.invalidField, field: "masterQueues", "masterQueues must be an array of strings"))
        let bad = text.replacing(#"["main", "other"]"#, with: #"["engine:main"]"#)
        #expect(decodeError(bad)?.field == "masterQueues")
        #expect(decodeError(bad)?.code == .invalidField)
    }

    // MARK: Strictness

    @Test func rejectsAnythingButOneJSONObject() {
        for text in ["", " ", "[]", "\"x\"", "null", "{", "{}x", #"{"a":1,}"#, #"{"a":1"#, #"{'a':1}"#,
                     MessageFormatSamples.plainV2 + "{}", MessageFormatSamples.plainV2 + ",",
                     "{\"a\":1}\u{0}"] {
            let error = decodeError(text)
            #expect(error?.code == .malformed, "\(text.debugDescription) -> \(String(describing: error))")
        }
        // Whitespace around the object is JSON.
        #expect(decodeError(" \n" + MessageFormatSamples.plainV2 + "\t\r\n") == nil)
    }

    @Test func rejectsInvalidUTF8AnywhereInTheValue() {
        let base = MessageFormatSamples.plainV2.utf8Bytes
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            var bytes = base
            // An unknown string key holding the bad bytes.
            bytes.insert(contentsOf: [UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "x"), UInt8(ascii: "\""),
                                      UInt8(ascii: ":"), UInt8(ascii: "\"")] + bad + [UInt8(ascii: "\"")],
                         at: base.count - 1)
            #expect(decodeError(bytes: bytes) == MessageFormatError(.malformed, field: nil, "V2 message is not valid UTF-8"))
        }
    }

    @Test func utf8CheckAgreesWithTheStandardLibraryAtEveryOffset() {
        let samples: [[UInt8]] = [
            "é".utf8Bytes, "€".utf8Bytes, "🎉".utf8Bytes, "\u{10FFFF}".utf8Bytes, "\u{D7FF}".utf8Bytes, "\u{E000}".utf8Bytes,
            [0x80], [0xC1, 0xBF], [0xE0, 0x9F, 0x80], [0xED, 0xA0, 0x80], [0xF0, 0x8F, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xFF],
        ]
        for sample in samples {
            for offset in 0...17 {
                let bytes = Array(repeating: UInt8(ascii: "a"), count: offset) + sample + Array(repeating: UInt8(ascii: "b"), count: 17 - offset)
                let expected = String(validating: bytes, as: UTF8.self) != nil
                let actual = bytes.withUnsafeBufferPointer { MessageFormatJSONReader.isValidUTF8($0) }
                #expect(actual == expected, "\(sample) at \(offset)")
            }
        }
    }

    @Test func rejectsBadJSONSyntaxInsideValues() {
        let cases = [
            plainReplacing("runId", with: "\"run\u{1}\""),          // raw control byte in a string
            plainReplacing("runId", with: #""run\x""#),             // unknown escape
            plainReplacing("runId", with: #""run\u12""#),           // short \u
            plainReplacing("runId", with: #""run\ud800""#),         // lone high surrogate
            plainReplacing("runId", with: #""run\udc00x""#),        // lone low surrogate
            plainReplacing("timestamp", with: "01700000000000"),    // leading zero
            plainReplacing("timestamp", with: "1."),
            plainReplacing("attempt", with: "1e"),
        ]
        for text in cases {
            #expect(decodeError(text)?.code == .malformed, "\(text)")
        }
    }

    @Test func rejectsDuplicateKnownKeys() {
        let text = MessageFormatSamples.plainV2.replacing(#""workerQueue":"main"}"#,
                                                                     with: #""workerQueue":"main","runId":"run_1234"}"#)
        #expect(decodeError(text) == MessageFormatError(.malformed, field: "runId", "runId appears twice"))
        // Unknown keys may repeat: they are not read.
        let unknown = MessageFormatSamples.plainV2.replacing(#""workerQueue":"main"}"#,
                                                                        with: #""workerQueue":"main","x":1,"x":2}"#)
        #expect(decodeError(unknown) == nil)
    }

    @Test func namesEachMissingRequiredKey() {
        for key in ["version", "runId", "taskIdentifier", "orgId", "projectId", "environmentId", "environmentType",
                    "queue", "timestamp", "attempt", "workerQueue"] {
            let text = plainWithout(key)
            #expect(!text.contains("\"\(key)\""), "\(text)")
            #expect(decodeError(text) == MessageFormatError(.missingField, field: key, "\(key) is missing"), "\(key)")
        }
        #expect(decodeError("{}")?.field == "version")
    }

    @Test func namesEachStringFieldWithTheWrongType() {
        for key in ["runId", "taskIdentifier", "orgId", "projectId", "environmentId", "environmentType", "queue", "workerQueue"] {
            for value in ["1", "null", "true", "{}", "[\"x\"]"] {
                let error = decodeError(plainReplacing(key, with: value))
                #expect(error == MessageFormatError(.invalidField, field: key, "\(key) must be a string"), "\(key) = \(value)")
            }
        }
        #expect(decodeError(plainReplacing("version", with: "2"))?.field == "version")
        #expect(decodeError(plainReplacing("version", with: "2"))?.code == .invalidField)
    }

    @Test func acceptsOnlyVersionsTwoAndOne() {
        for value in [#""3""#, #""""#, #""2.0""#, #"" 2""#, #""v2""#] {
            let error = decodeError(plainReplacing("version", with: value))
            #expect(error == MessageFormatError(.unsupportedVersion, field: "version", "version must be \"2\" (or legacy \"1\")"), "\(value)")
        }
    }

    @Test func timestampsMustBeNonNegativeIntegersOfAtMost15Digits() throws {
        let rule = "timestamp must be a non-negative integer of at most 15 digits (Unix milliseconds)"
        for value in ["1.5", "1700000000000.0", "1e3", "1E3", "17e11", "-1", "-0", "1000000000000000", "9007199254740993",
                      "\"1700000000000\"", "null", "[]", "NaN", "Infinity", "+1", "true"] {
            #expect(decodeError(plainReplacing("timestamp", with: value)) == MessageFormatError(.invalidField, field: "timestamp", rule), "\(value)")
        }
        #expect(try MessageFormatV2.decode(plainReplacing("timestamp", with: "999999999999999").utf8Bytes).timestampMs == 999_999_999_999_999)
        #expect(try MessageFormatV2.decode(plainReplacing("timestamp", with: "0").utf8Bytes).timestampMs == 0)

        let ttl = MessageFormatSamples.keyedV2
        for value in ["1.5", "-5", "1000000000000000", "\"5\""] {
            let text = ttl.replacing("\"ttlExpiresAt\":1700000600000", with: "\"ttlExpiresAt\":\(value)")
            #expect(decodeError(text)?.field == "ttlExpiresAt", "\(value)")
            #expect(decodeError(text)?.code == .invalidField)
        }
    }

    @Test func attemptMustFitUInt32() throws {
        #expect(try MessageFormatV2.decode(plainReplacing("attempt", with: "4294967295").utf8Bytes).attempt == .max)
        for value in ["4294967296", "99999999999", "-1", "0.5", "1e0", "\"0\""] {
            #expect(decodeError(plainReplacing("attempt", with: value)) == MessageFormatError(.invalidField, field: "attempt", "attempt must be an integer 0..4294967295"), "\(value)")
        }
    }

    @Test func valuesMeetTheAPIEdgeRules() {
        let cases: [(String, String)] = [
            ("runId", #""""#), ("runId", #""run 1""#), ("runId", "\"\(String(repeating: "r", count: 129))\""),
            ("taskIdentifier", #""has space""#),
            ("environmentType", #""production""#), ("environmentType", #""ENVIRONMENT_TYPE_UNSPECIFIED""#),
            ("workerQueue", #""""#), ("workerQueue", #""a/b""#),
        ]
        for (key, value) in cases {
            let error = decodeError(plainReplacing(key, with: value))
            #expect(error?.field == key, "\(key) = \(value)")
            #expect(error?.code == .invalidField)
            #expect(error?.message.hasPrefix("\(key) must be ") == true)
        }
        // orgId etc. are checked before the cross-check with the queue key.
        let org = plainReplacing("orgId", with: #""org 1""#)
        #expect(decodeError(org)?.field == "orgId")
        #expect(decodeError(org)?.code == .invalidField)
    }

    @Test func queueMustBeALogicalQueueKeyOfThisEnvironment() {
        let notAKey = decodeError(plainReplacing("queue", with: #""task/send-email""#))
        #expect(notAKey?.code == .malformed)
        #expect(notAKey?.field == "queue")
        for key in ["{org:org_2}:proj:proj_1:env:env_1:queue:q", "{org:org_1}:proj:proj_2:env:env_1:queue:q",
                    "{org:org_1}:proj:proj_1:env:env_2:queue:q"] {
            #expect(decodeError(plainReplacing("queue", with: "\"\(key)\""))?.code == .mismatch, "\(key)")
        }
    }

    @Test func concurrencyKeyMustMatchTheQueueKey() {
        // The key has a :ck: section, the field is absent.
        let keyOnly = plainReplacing("queue", with: #""{org:org_1}:proj:proj_1:env:env_1:queue:task/send-email:ck:x""#)
        #expect(decodeError(keyOnly) == MessageFormatError(.mismatch, field: "concurrencyKey", "concurrencyKey differs from the queue key's :ck: section"))
        // The field is set, the key has none.
        let fieldOnly = MessageFormatSamples.plainV2.replacing(#""timestamp""#, with: #""concurrencyKey":"x","timestamp""#)
        #expect(decodeError(fieldOnly)?.code == .mismatch)
        // Both set, different.
        let different = MessageFormatSamples.keyedV2.replacing(#""concurrencyKey":"user:42""#, with: #""concurrencyKey":"user:43""#)
        #expect(decodeError(different)?.code == .mismatch)
        // A field the key grammar would reject.
        let bad = MessageFormatSamples.plainV2.replacing(#""timestamp""#, with: #""concurrencyKey":"a|b","timestamp""#)
        #expect(decodeError(bad)?.field == "concurrencyKey")
        #expect(decodeError(bad)?.code == .invalidField)
    }

    @Test func limitsNestingOfSkippedValues() {
        let shallow = String(repeating: "[", count: 63) + String(repeating: "]", count: 63)
        #expect(decodeError(plainReplacing("runId", with: #""run_1234","x":"# + shallow)) == nil)
        let deep = String(repeating: "[", count: 100_000)
        #expect(decodeError(plainReplacing("runId", with: #""run_1234","x":"# + deep))?.code == .malformed)
    }

    // MARK: Round trips

    @Test func roundTripsSeededMessagesByteExactly() throws {
        var random = MessageFormatRandom(seed: 0x0002_5EED)
        for i in 0..<3_000 {
            let message = random.storedMessage(withTTL: i % 2 == 0)
            let bytes = MessageFormatV2.encode(message)
            let decoded = try MessageFormatV2.decode(bytes)
            #expect(decoded == message)
            #expect(MessageFormatV2.encode(decoded) == bytes)
        }
    }

    @Test func appendsAfterExistingBytes() {
        var out: [UInt8] = [1, 2, 3]
        MessageFormatV2.encode(MessageFormatSamples.plain, into: &out)
        #expect(out == [1, 2, 3] + MessageFormatSamples.plainV2.utf8Bytes)
    }

    @Test func mutatedMessagesNeverTrapAndDecodeOnlyToValidMessages() {
        var random = MessageFormatRandom(seed: 0xF022_0002)
        let seeds = [MessageFormatSamples.plainV2.utf8Bytes, MessageFormatSamples.keyedV2.utf8Bytes]
        let interesting = Array("{}[]\":,\\u0-1e.9 ".utf8) + [0x00, 0x1E, 0x80, 0xC3, 0xFF]
        for _ in 0..<20_000 {
            var bytes = random.pick(seeds)
            for _ in 0..<random.int(1...3) {
                if bytes.isEmpty { bytes.append(random.pick(interesting)); continue }
                switch random.int(0...3) {
                case 0: bytes[random.int(0...bytes.count - 1)] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes[random.int(0...bytes.count - 1)] = random.pick(interesting)
                case 2: bytes.insert(random.pick(interesting), at: random.int(0...bytes.count))
                default: bytes.removeSubrange(random.int(0...bytes.count - 1)..<bytes.count)
                }
            }
            if let message = try? MessageFormatV2.decode(bytes) {
                #expect(message.isEncodable)
            }
        }
    }
}
