import RunQueueCore
import RunQueueWire
import Testing
import TestSupport

/// Whatever a peer sends, decoding either yields a value or throws WireError;
/// it never traps, leaks or reads out of bounds (run under ASan to check the last two).
@Suite struct WireCodecMalformedInputTests {
    /// SplitMix64: a fixed seed gives the same inputs on every run and machine.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Decodes as both envelopes; returns how many of the two were rejected.
    @discardableResult
    private func decodeBoth(_ bytes: [UInt8]) -> Int {
        var rejected = 0
        do { _ = try WireCodec.decodeRequest(bytes) } catch {
            // Unparsable, or a string field that is not UTF-8 without NUL.
            #expect(error == .invalidRequest || error.message.hasSuffix(" is not valid UTF-8")
                    || error.message.contains(" holds a NUL byte"), "\(error)")
            rejected += 1
        }
        do { _ = try WireCodec.decodeResponse(bytes) } catch { #expect(error == .invalidResponse); rejected += 1 }
        return rejected
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SeededGenerator(state: 0x5EED_0001)
        var rejected = 0
        for _ in 0..<10_000 {
            let count = Int.random(in: 1...64, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            rejected += decodeBoth(bytes)
        }
        #expect(rejected > 10_000)  // most random bodies are not valid messages
    }

    @Test func mutatedValidMessagesNeverCrashTheDecoder() {
        // Random bytes rarely get past the first tag; flipping bytes of real
        // messages reaches the sub-message, string, repeated and oneof paths.
        var rng = SeededGenerator(state: 0x5EED_0002)
        let seeds = WireCodecSamples.calls.map { WireCodec.encodeRequest(Request(callID: 1, call: $0)) }
            + WireCodecSamples.results.map { WireCodec.encodeResponse(Response(callID: 1, result: $0)) }
        for i in 0..<10_000 {
            var bytes = seeds[i % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                default: if bytes.count > 1 { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng)) }
                }
            }
            decodeBoth(bytes)
        }
    }

    @Test func everyTruncationOfValidMessagesIsHandled() throws {
        for call in WireCodecSamples.calls {
            let bytes = WireCodec.encodeRequest(Request(callID: 1, call: call))
            for end in 1..<bytes.count { decodeBoth(Array(bytes[..<end])) }
        }
        for result in WireCodecSamples.results {
            let bytes = WireCodec.encodeResponse(Response(callID: 1, result: result))
            for end in 1..<bytes.count { decodeBoth(Array(bytes[..<end])) }
        }
        // A cut inside the ping sub-message: its declared length runs past the end.
        #expect(throws: WireError.invalidRequest) { try WireCodec.decodeRequest([0x08, 0x05, 0x5a, 0x03, 0x0a, 0x01]) }
        // A cut inside a varint.
        #expect(throws: WireError.invalidRequest) { try WireCodec.decodeRequest([0x08, 0xFF]) }
    }

    @Test func wrongWireTypeIsRejected() {
        // call_id (a varint field) sent length-delimited.
        #expect(throws: WireError.invalidRequest) { try WireCodec.decodeRequest([0x0a, 0x01, 0x00]) }
        // ping (a message field) sent as a varint.
        #expect(throws: WireError.invalidRequest) { try WireCodec.decodeRequest([0x08, 0x01, 0x58, 0x01]) }
        // status (a message field) sent as fixed64.
        #expect(throws: WireError.invalidResponse) {
            try WireCodec.decodeResponse([0x08, 0x01, 0x11, 0, 0, 0, 0, 0, 0, 0, 0])
        }
    }

    @Test func requestWithoutCallDecodesWithNilCall() throws {
        #expect(try WireCodec.decodeRequest([0x08, 0x05]) == Request(callID: 5, call: nil))
    }

    @Test func unknownCallFieldNumberDecodesWithNilCall() throws {
        // Field 99, length-delimited, empty: a method from a newer protocol revision.
        #expect(try WireCodec.decodeRequest([0x08, 0x01, 0x9a, 0x06, 0x00]) == Request(callID: 1, call: nil))
        // Field 99 carrying bytes, after a known call: the known call survives.
        let bytes = WireCodec.encodeRequest(Request(callID: 2, call: .getRun(GetRunRequest(runID: "r"))))
            + [0x9a, 0x06, 0x02, 0x41, 0x42]
        #expect(try WireCodec.decodeRequest(bytes) == Request(callID: 2, call: .getRun(GetRunRequest(runID: "r"))))
    }

    @Test func unknownResultFieldNumberDecodesWithNilResult() throws {
        #expect(try WireCodec.decodeResponse([0x08, 0x01, 0x9a, 0x06, 0x00]) == Response(callID: 1))
    }

    @Test func unknownEnumNumbersDecodeAsUnspecified() throws {
        // Status code 99.
        #expect(try WireCodec.decodeResponse([0x08, 0x01, 0x12, 0x02, 0x08, 0x63]).status.code == .unknown)
        // RunDescriptor.environment_type 99 inside an Enqueue.
        let request = try WireCodec.decodeRequest([0x08, 0x01, 0x62, 0x04, 0x0a, 0x02, 0x28, 0x63])
        #expect(request.call == .enqueue(EnqueueRequest(run: RunDescriptor(environmentType: .unspecified))))
        // ReadMessageResponse.source -1 (a 10-byte varint).
        let response = try WireCodec.decodeResponse(
            [0x08, 0x01, 0x92, 0x01, 0x0b, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
        #expect(response.result == .readMessage(ReadMessageResponse(message: nil, source: .unspecified)))
    }

    @Test func illFormedUTF8IsRefusedNotRepaired() throws {
        // Hello token = FF 'a' (not UTF-8): protobuf-c 1.4 would pass it through, to become U+FFFD.
        #expect(throws: WireError("hello.token is not valid UTF-8", callID: 1)) {
            try WireCodec.decodeRequest([0x08, 0x01, 0x52, 0x04, 0x0a, 0x02, 0xff, 0x61])
        }
    }

    /// `request` encoded, with the first byte of the one "~~~~" in it made NUL
    /// (the encoder takes Swift strings through C strings, so it cannot carry one).
    static func withNUL(_ request: Request) throws -> [UInt8] {
        try #require(WireCodec.encodeRequest(request).settingFirstByte(of: "~~~~", to: 0))
    }

    @Test func aStringWithANULByteIsRefusedNamingItsFieldNeverCut() throws {
        let getRun = try Self.withNUL(Request(callID: 7, call: .getRun(GetRunRequest(runID: "ab~~~~cd"))))
        do {
            _ = try WireCodec.decodeRequest(getRun)
            Issue.record("a NUL inside run_id was accepted")
        } catch {
            #expect(error.message.contains("get_run.run_id holds a NUL byte"), "\(error)")
            #expect(error.callID == 7)
        }
        // Received as raw bytes: call_id 1, get_run { run_id: "a\0b" }.
        #expect(throws: WireError.self) { try WireCodec.decodeRequest([0x08, 0x01, 0x9a, 0x01, 0x05, 0x0a, 0x03, 0x61, 0x00, 0x62]) }
        // Nested and repeated: the third run of an EnqueueBatch.
        var runs = (0..<3).map { RunDescriptor(runID: "r\($0)", orgID: "o", projectID: "p", environmentID: "e",
                                                environmentType: .production, queue: "q", workerQueue: "w") }
        runs[2].projectID = "p~~~~x"
        let batch = try Self.withNUL(Request(callID: 9, call: .enqueueBatch(EnqueueBatchRequest(runs: runs))))
        do {
            _ = try WireCodec.decodeRequest(batch)
            Issue.record("a NUL inside a batch run's project_id was accepted")
        } catch {
            #expect(error.message.contains("enqueue_batch.runs.project_id holds a NUL byte"), "\(error)")
            #expect(error.callID == 9)
        }
    }

    @Test func aStringThatIsNotUTF8IsRefusedNamingItsField() throws {
        // call_id 3, get_run { run_id: 0x61 0xFF }.
        do {
            _ = try WireCodec.decodeRequest([0x08, 0x03, 0x9a, 0x01, 0x04, 0x0a, 0x02, 0x61, 0xFF])
            Issue.record("ill-formed UTF-8 was accepted")
        } catch {
            #expect(error.message.contains("get_run.run_id is not valid UTF-8"), "\(error)")
            #expect(error.callID == 3)
        }
        // Multi-byte UTF-8 and bytes fields pass as they are.
        let fine = Request(callID: 4, call: .getRun(GetRunRequest(runID: "r\u{e9}\u{1F600}")))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(fine)) == fine)
        let ping = Request(callID: 5, call: .ping(PingRequest(payload: [0, 0xFF, 0])))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(ping)) == ping)
    }

    @Test func clearFalseDecodesAsNoLimitValue() throws {
        // SetConcurrencyLimitRequest(environment_id='e', clear=False) from Python.
        let request = try WireCodec.decodeRequest([0x08, 0x01, 0xaa, 0x01, 0x05, 0x0a, 0x01, 0x65, 0x20, 0x00])
        #expect(request.call == .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: "e", value: nil)))
    }

    @Test func repeatedScalarOneofMembersKeepTheLast() throws {
        // limit=5 then clear=true: proto3 says the last member seen wins.
        let bytes: [UInt8] = [0x08, 0x01, 0xaa, 0x01, 0x04, 0x18, 0x05, 0x20, 0x01]
        let request = try WireCodec.decodeRequest(bytes)
        #expect(request.call == .setConcurrencyLimit(SetConcurrencyLimitRequest(value: .clear)))
    }
}
