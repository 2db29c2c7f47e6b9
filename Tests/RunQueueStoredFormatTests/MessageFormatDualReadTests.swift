import RunQueueCore
import RunQueueStoredFormat
import Testing

/// StoredMessage: format detection, the dual read, and the wire view.
@Suite struct MessageFormatDualReadTests {
    private func decodeError(_ bytes: [UInt8], runID: String, taskIdentifier: String?) -> MessageFormatError? {
        do { _ = try StoredMessage.decode(bytes, runID: runID, taskIdentifier: taskIdentifier); return nil } catch { return error }
    }

    @Test func detectsV3ByPrefixAndV2ByOpeningBrace() {
        #expect(StoredFormat.detect(MessageFormatSamples.plainV3.utf8Bytes) == .v3)
        #expect(StoredFormat.detect("v3:".utf8Bytes) == .v3)
        #expect(StoredFormat.detect(MessageFormatSamples.plainV2.utf8Bytes) == .v2)
        #expect(StoredFormat.detect("{".utf8Bytes) == .v2)
        for other in ["", "v", "v3", "V3:", "v2:{}", " {}", "[]", "run_1", "{org:o}:message:run_1".dropFirst(1).description] {
            #expect(StoredFormat.detect(other.utf8Bytes) == nil, "\(other.debugDescription)")
        }
    }

    @Test func mapsFormatsToMessageSources() {
        #expect(StoredFormat.v2.messageSource == .redisV2)
        #expect(StoredFormat.v3.messageSource == .redisV3)
    }

    @Test func readsBothFormats() throws {
        let (v2, v2Format) = try StoredMessage.decode(MessageFormatSamples.keyedV2.utf8Bytes, runID: "run_5678", taskIdentifier: nil)
        #expect(v2 == MessageFormatSamples.keyed)
        #expect(v2Format == .v2)

        let (v3, v3Format) = try StoredMessage.decode(MessageFormatSamples.plainV3.utf8Bytes, runID: "run_1234", taskIdentifier: "send-email")
        #expect(v3 == MessageFormatSamples.plain)
        #expect(v3Format == .v3)
    }

    @Test func v2KeepsItsOwnTaskIdentifierOverTheCallers() throws {
        let (message, _) = try StoredMessage.decode(MessageFormatSamples.plainV2.utf8Bytes, runID: "run_1234", taskIdentifier: "other")
        #expect(message.taskIdentifier == "send-email")
    }

    @Test func v2RunIdMustBeTheRunItWasReadFor() {
        #expect(decodeError(MessageFormatSamples.plainV2.utf8Bytes, runID: "run_9999", taskIdentifier: nil)
            == MessageFormatError(.mismatch, field: "runId", "runId in the message differs from the run it was read for"))
    }

    @Test func v3NeedsTheCallersTaskIdentifierAndRunId() {
        #expect(decodeError(MessageFormatSamples.plainV3.utf8Bytes, runID: "run_1234", taskIdentifier: nil)?.code == .missingField)
        #expect(decodeError(MessageFormatSamples.plainV3.utf8Bytes, runID: "run_1234", taskIdentifier: nil)?.field == "taskIdentifier")
        #expect(decodeError(MessageFormatSamples.plainV3.utf8Bytes, runID: "", taskIdentifier: "t")?.field == "runId")
    }

    @Test func rejectsUnknownFormats() {
        for bytes: [UInt8] in [[], "run_1".utf8Bytes, "[1]".utf8Bytes, [0xFF, 0x00]] {
            #expect(decodeError(bytes, runID: "run_1", taskIdentifier: "t")
                == MessageFormatError(.unknownFormat, field: nil, "stored message is neither V3 (\"v3:\") nor V2 (a JSON object)"))
        }
    }

    @Test func readsWhateverTheOtherFormatWrote() throws {
        var random = MessageFormatRandom(seed: 0xD0A1_5EED)
        for i in 0..<1_000 {
            var message = random.storedMessage(withTTL: false)
            let bytes = i % 2 == 0 ? MessageFormatV2.encode(message) : MessageFormatV3.encode(message)
            let (decoded, format) = try StoredMessage.decode(bytes, runID: message.runID, taskIdentifier: message.taskIdentifier)
            #expect(format == (i % 2 == 0 ? .v2 : .v3))
            #expect(decoded == message)
            message.ttlExpiresAtMs = 1
            #expect(message.isEncodable)
        }
    }

    @Test func convertsToTheWireViewWithALease() {
        let message = MessageFormatSamples.keyed.runMessage(leaseExpiresAtMs: 1_700_000_300_000)
        #expect(message == RunMessage(
            runID: "run_5678", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
            environmentType: .development, queue: "task/send-email", concurrencyKey: "user:42",
            taskIdentifier: "send-email", workerQueue: "env_1", timestampMs: 1_700_000_000_000,
            attempt: 3, leaseExpiresAtMs: 1_700_000_300_000
        ))
    }

    @Test func knowsWhatItCanEncode() {
        #expect(MessageFormatSamples.plain.isEncodable)
        #expect(MessageFormatSamples.keyed.isEncodable)
        let breakers: [(inout StoredMessage) -> Void] = [
            { $0.runID = "" }, { $0.orgID = "o:1" }, { $0.environmentType = .unspecified }, { $0.queue = "" },
            { $0.concurrencyKey = "a\u{1E}b" }, { $0.taskIdentifier = "t t" }, { $0.workerQueue = "" },
            { $0.timestampMs = -1 }, { $0.timestampMs = 1_000_000_000_000_000 }, { $0.ttlExpiresAtMs = -1 },
        ]
        for breaker in breakers {
            var message = MessageFormatSamples.plain
            breaker(&message)
            #expect(!message.isEncodable)
        }
    }
}
