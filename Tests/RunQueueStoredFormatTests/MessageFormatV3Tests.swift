import RunQueueCore
import RunQueueStoredFormat
import Testing

@Suite struct MessageFormatV3Tests {
    private let rs = "\u{1E}"

    private func decodeError(_ text: String) -> MessageFormatError? {
        decodeError(bytes: text.utf8Bytes)
    }

    private func decodeError(bytes: [UInt8]) -> MessageFormatError? {
        do { _ = try MessageFormatV3.decode(bytes); return nil } catch { return error }
    }

    /// A V3 value from its five fields.
    private func v3(_ queue: String = "{org:o}:proj:p:env:e:queue:q", _ timestamp: String = "5",
                    _ attempt: String = "0", _ type: String = "P", _ workerQueue: String = "main") -> String {
        "v3:" + [queue, timestamp, attempt, type, workerQueue].joined(separator: rs)
    }

    // MARK: Golden vectors

    @Test func encodesGoldenBytesWithoutConcurrencyKey() {
        #expect(MessageFormatV3.encode(MessageFormatSamples.plain) == MessageFormatSamples.plainV3.utf8Bytes)
    }

    @Test func encodesGoldenBytesWithConcurrencyKey() {
        // The TTL deadline of `keyed` is not part of V3.
        #expect(MessageFormatV3.encode(MessageFormatSamples.keyed) == MessageFormatSamples.keyedV3.utf8Bytes)
    }

    @Test func encodesGoldenBytesSpelledOut() {
        let message = StoredMessage(
            runID: "r", orgID: "o", projectID: "p", environmentID: "e", environmentType: .staging, queue: "q",
            taskIdentifier: "t", workerQueue: "w", timestampMs: 0, attempt: 0
        )
        let expected: [UInt8] = [
            0x76, 0x33, 0x3A,                                                   // v3:
            0x7B, 0x6F, 0x72, 0x67, 0x3A, 0x6F, 0x7D,                           // {org:o}
            0x3A, 0x70, 0x72, 0x6F, 0x6A, 0x3A, 0x70,                           // :proj:p
            0x3A, 0x65, 0x6E, 0x76, 0x3A, 0x65,                                 // :env:e
            0x3A, 0x71, 0x75, 0x65, 0x75, 0x65, 0x3A, 0x71,                     // :queue:q
            0x1E, 0x30,                                                         // RS 0
            0x1E, 0x30,                                                         // RS 0
            0x1E, 0x53,                                                         // RS S
            0x1E, 0x77,                                                         // RS w
        ]
        #expect(MessageFormatV3.encode(message) == expected)
        var preview = message
        preview.environmentType = .preview
        preview.attempt = 4_294_967_295
        preview.timestampMs = 999_999_999_999_999
        #expect(MessageFormatV3.encode(preview) == v3("{org:o}:proj:p:env:e:queue:q", "999999999999999", "4294967295", "V", "w").utf8Bytes)
    }

    @Test func usesOneLetterPerEnvironmentType() {
        #expect(MessageFormatV3.typeCode(.development) == UInt8(ascii: "D"))
        #expect(MessageFormatV3.typeCode(.staging) == UInt8(ascii: "S"))
        #expect(MessageFormatV3.typeCode(.preview) == UInt8(ascii: "V"))
        #expect(MessageFormatV3.typeCode(.production) == UInt8(ascii: "P"))
        for type in [EnvironmentType.development, .staging, .preview, .production] {
            #expect(MessageFormatV3.environmentType(code: MessageFormatV3.typeCode(type)) == type)
        }
    }

    @Test func decodesGoldenBytes() throws {
        let plain = try MessageFormatV3.decode(MessageFormatSamples.plainV3.utf8Bytes)
        #expect(plain == MessageFormatV3.Decoded(
            queueKey: LogicalQueueKey(orgID: "org_1", projectID: "proj_1", environmentID: "env_1", queue: "task/send-email"),
            timestampMs: 1_700_000_000_000, attempt: 0, environmentType: .production, workerQueue: "main"
        ))
        #expect(try plain.storedMessage(runID: "run_1234", taskIdentifier: "send-email") == MessageFormatSamples.plain)

        var keyed = MessageFormatSamples.keyed
        keyed.ttlExpiresAtMs = nil
        #expect(try MessageFormatV3.decode(MessageFormatSamples.keyedV3.utf8Bytes, runID: "run_5678", taskIdentifier: "send-email") == keyed)
    }

    @Test func takesRunIdAndTaskIdentifierFromTheCallerNeverFromTheQueueName() throws {
        let message = try MessageFormatV3.decode(MessageFormatSamples.plainV3.utf8Bytes, runID: "run_x", taskIdentifier: "")
        #expect(message.runID == "run_x")
        #expect(message.taskIdentifier == "")
        #expect(message.queue == "task/send-email")
    }

    @Test func refusesAnEmptyOrInvalidCallerRunIdOrTaskIdentifier() throws {
        let decoded = try MessageFormatV3.decode(MessageFormatSamples.plainV3.utf8Bytes)
        for runID in ["", "run 1", String(repeating: "r", count: 129)] {
            #expect(throws: MessageFormatError(.invalidField, field: "runId", "runId must be 1..128 bytes of [A-Za-z0-9_.-] (supplied by the caller for V3)")) {
                try decoded.storedMessage(runID: runID, taskIdentifier: "t")
            }
        }
        #expect(throws: MessageFormatError(.invalidField, field: "taskIdentifier", "taskIdentifier must be 0..128 bytes of [A-Za-z0-9_./-] (supplied by the caller for V3)")) {
            try decoded.storedMessage(runID: "r", taskIdentifier: "my task")
        }
    }

    // MARK: Strictness

    @Test func requiresThePrefix() {
        for text in ["", "v3", "v3", "V3:" + v3().dropFirst(3), "v2:" + v3().dropFirst(3), " v3:" + v3().dropFirst(3),
                     String(v3().dropFirst(3))] {
            #expect(decodeError(text) == MessageFormatError(.malformed, field: nil, "V3 message must start with \"v3:\""), "\(text.debugDescription)")
        }
    }

    @Test func requiresExactlyFiveFields() {
        let four = "v3:" + ["{org:o}:proj:p:env:e:queue:q", "5", "0", "P"].joined(separator: rs)
        let six = v3() + rs + "extra"
        let trailing = v3() + rs
        for (text, found) in [(four, 4), (six, 6), (trailing, 6), ("v3:", 1), ("v3:" + rs + rs + rs + rs + rs, 6)] {
            #expect(decodeError(text) == MessageFormatError(.malformed, field: nil, "V3 message must have exactly 5 fields separated by 0x1E (found \(found))"), "\(text.debugDescription)")
        }
    }

    @Test func namesEachEmptyField() {
        let cases = [
            ("queue", v3("")), ("timestamp", v3("{org:o}:proj:p:env:e:queue:q", "")),
            ("attempt", v3("{org:o}:proj:p:env:e:queue:q", "5", "")),
            ("environmentType", v3("{org:o}:proj:p:env:e:queue:q", "5", "0", "")),
            ("workerQueue", v3("{org:o}:proj:p:env:e:queue:q", "5", "0", "P", "")),
        ]
        for (field, text) in cases {
            #expect(decodeError(text) == MessageFormatError(.missingField, field: field, "\(field) is empty in a V3 message"))
        }
        #expect(decodeError(v3("", "", "", "", ""))?.field == "queue")
    }

    @Test func timestampMustBeCanonicalDigitsOfAtMost15() throws {
        let rule = MessageFormatError(.invalidField, field: "timestamp", "timestamp must be 1..15 decimal digits with no sign, space or leading zero")
        for value in ["1000000000000000", "9007199254740993", "+1", "-1", "-0", " 1", "1 ", "01", "00", "1.5", "1e3", "abc",
                      "NaN", "Infinity", "0x10", "١٢٣"] {
            #expect(decodeError(v3("{org:o}:proj:p:env:e:queue:q", value)) == rule, "\(value.debugDescription)")
        }
        #expect(try MessageFormatV3.decode(v3("{org:o}:proj:p:env:e:queue:q", "999999999999999").utf8Bytes).timestampMs == 999_999_999_999_999)
        #expect(try MessageFormatV3.decode(v3("{org:o}:proj:p:env:e:queue:q", "0").utf8Bytes).timestampMs == 0)
    }

    @Test func attemptMustBeCanonicalDigitsThatFitUInt32() throws {
        for value in ["4294967296", "10000000000", "+0", "-1", " 0", "00", "07", "1.0", "x"] {
            let error = decodeError(v3("{org:o}:proj:p:env:e:queue:q", "5", value))
            #expect(error?.field == "attempt", "\(value.debugDescription)")
            #expect(error?.code == .invalidField)
        }
        #expect(try MessageFormatV3.decode(v3("{org:o}:proj:p:env:e:queue:q", "5", "4294967295").utf8Bytes).attempt == .max)
    }

    @Test func typeMustBeOneKnownLetter() throws {
        for value in ["X", "d", "p", "DD", "PRODUCTION", " ", "0", "U"] {
            #expect(decodeError(v3("{org:o}:proj:p:env:e:queue:q", "5", "0", value)) == MessageFormatError(.invalidField, field: "environmentType", "environmentType must be one of the codes D, S, V, P"), "\(value)")
        }
        for (code, type) in [("D", EnvironmentType.development), ("S", .staging), ("V", .preview), ("P", .production)] {
            #expect(try MessageFormatV3.decode(v3("{org:o}:proj:p:env:e:queue:q", "5", "0", code).utf8Bytes).environmentType == type)
        }
    }

    @Test func workerQueueMustBeAnIdentifier() {
        for value in ["a b", "a/b", "é", String(repeating: "w", count: 129)] {
            #expect(decodeError(v3("{org:o}:proj:p:env:e:queue:q", "5", "0", "P", value))?.field == "workerQueue", "\(value)")
        }
    }

    @Test func queueMustBeALogicalQueueKey() {
        for value in ["task/send-email", "{org:o}:proj:p:env:e:queue:q:ck:", "{org:o}:proj:p:env:e:queue:q:ck:a|b"] {
            let error = decodeError(v3(value))
            #expect(error?.field == "queue", "\(value)")
            #expect(error?.code == .malformed)
        }
        // Not UTF-8 in the concurrency key.
        let bytes = "v3:{org:o}:proj:p:env:e:queue:q:ck:".utf8Bytes + [0xFF] + (rs + "5" + rs + "0" + rs + "P" + rs + "w").utf8Bytes
        #expect(decodeError(bytes: bytes)?.field == "queue")
    }

    // MARK: Round trips

    @Test func roundTripsSeededMessagesByteExactly() throws {
        var random = MessageFormatRandom(seed: 0x0003_5EED)
        for _ in 0..<3_000 {
            let message = random.storedMessage(withTTL: false)
            let bytes = MessageFormatV3.encode(message)
            let decoded = try MessageFormatV3.decode(bytes, runID: message.runID, taskIdentifier: message.taskIdentifier)
            #expect(decoded == message)
            #expect(MessageFormatV3.encode(decoded) == bytes)
            // V2 and V3 agree on everything V3 holds.
            let viaV2 = try MessageFormatV2.decode(MessageFormatV2.encode(message))
            #expect(MessageFormatV3.encode(viaV2) == bytes)
        }
    }

    @Test func dropsTheTTLDeadline() throws {
        #expect(MessageFormatV3.encode(MessageFormatSamples.keyed).count < MessageFormatV2.encode(MessageFormatSamples.keyed).count / 2)
        let decoded = try MessageFormatV3.decode(MessageFormatV3.encode(MessageFormatSamples.keyed), runID: "run_5678", taskIdentifier: "send-email")
        #expect(decoded.ttlExpiresAtMs == nil)
    }

    @Test func mutatedMessagesNeverTrapAndDecodeOnlyToValidMessages() {
        var random = MessageFormatRandom(seed: 0xF022_0003)
        let seeds = [MessageFormatSamples.plainV3.utf8Bytes, MessageFormatSamples.keyedV3.utf8Bytes]
        let interesting = Array("v3:{}0123456789 +-DSVPX".utf8) + [0x00, 0x1E, 0x80, 0xFF]
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
            if let message = try? MessageFormatV3.decode(bytes, runID: "r", taskIdentifier: "t") {
                #expect(message.isEncodable)
                #expect(MessageFormatV3.encode(message) == bytes)
            }
        }
    }
}
