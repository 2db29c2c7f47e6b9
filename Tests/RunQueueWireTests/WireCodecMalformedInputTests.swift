import RunQueueCore
import RunQueueWire
import Testing

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
        do { _ = try WireCodec.decodeRequest(bytes) } catch { #expect(error == .invalidRequest); rejected += 1 }
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

    @Test func illFormedUTF8IsRepairedNotTrusted() throws {
        // Hello token = FF 'a' (not UTF-8); protobuf-c 1.4 passes it through.
        let request = try WireCodec.decodeRequest([0x08, 0x01, 0x52, 0x04, 0x0a, 0x02, 0xff, 0x61])
        #expect(request.call == .hello(HelloRequest(token: "\u{FFFD}a")))
    }

    @Test func embeddedNULTruncatesTheCString() throws {
        // Documented limit of protobuf-c: strings are NUL-terminated on the C side.
        let sent = Request(callID: 1, call: .getRun(GetRunRequest(runID: "ab\u{0}cd")))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(sent)).call == .getRun(GetRunRequest(runID: "ab")))
        // Received: a NUL inside the string's bytes ends it the same way.
        let received = try WireCodec.decodeRequest([0x08, 0x01, 0x9a, 0x01, 0x05, 0x0a, 0x03, 0x61, 0x00, 0x62])
        #expect(received.call == .getRun(GetRunRequest(runID: "a")))
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
