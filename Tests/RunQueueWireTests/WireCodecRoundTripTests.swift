import RunQueueCore
import RunQueueWire
import Testing

@Suite struct WireCodecRoundTripTests {
    @Test(arguments: WireCodecSamples.calls)
    func everyCallSurvivesEncodeThenDecode(call: Call) throws {
        let request = Request(callID: 0x0123_4567_89AB_CDEF, call: call)
        let bytes = WireCodec.encodeRequest(request)
        #expect(try WireCodec.decodeRequest(bytes) == request)
    }

    @Test(arguments: WireCodecSamples.results)
    func everyResultSurvivesEncodeThenDecode(result: ResponseResult) throws {
        let response = Response(callID: UInt64.max, status: Status(.ok, "fine"), endOfStream: true, result: result)
        let bytes = WireCodec.encodeResponse(response)
        #expect(try WireCodec.decodeResponse(bytes) == response)
    }

    @Test(arguments: StatusCode.allCases)
    func everyStatusCodeSurvivesEncodeThenDecode(code: StatusCode) throws {
        for message in ["", "run_id: must be 1..128 bytes of [A-Za-z0-9_.-]"] {
            let response = Response.error(callID: 42, code, message)
            #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(response)) == response)
        }
    }

    @Test func enumValuesSurviveEncodeThenDecode() throws {
        for type in EnvironmentType.allCases {
            var run = WireCodecSamples.run1
            run.environmentType = type
            let request = Request(callID: 1, call: .enqueue(EnqueueRequest(run: run)))
            #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(request)) == request)
        }
        for status in RunStatus.allCases {
            var record = WireCodecSamples.record
            record.status = status
            let response = Response(callID: 1, result: .getRun(GetRunResponse(run: record)))
            #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(response)) == response)
        }
        for source in MessageSource.allCases {
            let response = Response(callID: 1, result: .readMessage(ReadMessageResponse(message: nil, source: source)))
            #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(response)) == response)
        }
    }

    @Test func fenceDistinguishesZeroFromAbsent() throws {
        let zero = WireCodec.encodeRequest(Request(callID: 1, call: .ack(AckRequest(runID: "r", environmentID: "e", attempt: 0))))
        let absent = WireCodec.encodeRequest(Request(callID: 1, call: .ack(AckRequest(runID: "r", environmentID: "e", attempt: nil))))
        #expect(zero.count == absent.count + 2)  // the fence tag and a zero varint
        #expect(try WireCodec.decodeRequest(zero).call == .ack(AckRequest(runID: "r", environmentID: "e", attempt: 0)))
        #expect(try WireCodec.decodeRequest(absent).call == .ack(AckRequest(runID: "r", environmentID: "e", attempt: nil)))
    }

    @Test func defaultMessagesEncodeToAFramableBodyAndDecodeBack() throws {
        // proto3 would pack these to 0 bytes, which is not a legal frame.
        #expect(WireCodec.encodeRequest(Request()) == [0x08, 0x00])
        #expect(WireCodec.encodeResponse(Response()) == [0x08, 0x00])
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(Request())) == Request())
        #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(Response())) == Response())
        #expect(try WireCodec.decodeRequest([]) == Request())
        #expect(try WireCodec.decodeResponse([]) == Response())
    }

    @Test func defaultSubMessagesStayPresent() throws {
        // An all-default member still selects its oneof case on the wire.
        for call in [Call.hello(HelloRequest()), .enqueue(EnqueueRequest()), .enqueueBatch(EnqueueBatchRequest()),
                     .ack(AckRequest()), .subscribeExpiry(SubscribeExpiryRequest()), .cancel(CancelRequest())] {
            let request = Request(callID: 3, call: call)
            #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(request)) == request)
        }
        for result in [ResponseResult.setConcurrencyLimit(SetConcurrencyLimitResponse()), .ack(AckResponse()),
                        .expiryEvent(ExpiryEvent()), .dequeue(DequeueResponse()), .getRun(GetRunResponse())] {
            let response = Response(callID: 3, result: result)
            #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(response)) == response)
        }
    }

    @Test func unicodeStringsSurviveEncodeThenDecode() throws {
        let text = "émoji 🚀 ünïcode 日本語 \u{7F} \u{1E}"
        let request = Request(callID: 1, call: .hello(HelloRequest(token: text, clientName: text + text)))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(request)) == request)
    }

    @Test func longMultiByteStringsSurviveEncodeThenDecode() throws {
        // Longer than the small-string form, cut from a larger string, not ASCII.
        let long = String(repeating: "abc🚀", count: 300)
        let derived = String(long.dropFirst(4).prefix(600))
        let request = Request(callID: 1, call: .getRun(GetRunRequest(runID: derived)))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(request)) == request)
    }

    @Test func largeBatchesSpillFromTheInlineArenaIntact() throws {
        let runs = (0..<1000).map { i in
            var run = WireCodecSamples.run2
            run.runID = "run_\(i)"
            run.timestampMs = Int64(i)
            return run
        }
        let request = Request(callID: 9, call: .enqueueBatch(EnqueueBatchRequest(runs: runs)))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(request)) == request)

        let messages = (0..<1000).map { i in
            var message = WireCodecSamples.message1
            message.attempt = UInt32(i)
            return message
        }
        let response = Response(callID: 9, result: .dequeue(DequeueResponse(messages: messages)))
        #expect(try WireCodec.decodeResponse(WireCodec.encodeResponse(response)) == response)

        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let ping = Request(callID: 9, call: .ping(PingRequest(payload: payload)))
        #expect(try WireCodec.decodeRequest(WireCodec.encodeRequest(ping)) == ping)
    }

    @Test func appendFrameMatchesFrameEncoderOfTheBody() throws {
        var out: [UInt8] = [0xEE]
        let response = Response(callID: 5, result: .dequeue(DequeueResponse(messages: [WireCodecSamples.message1])))
        WireCodec.appendResponseFrame(response, to: &out)
        WireCodec.appendResponseFrame(Response(), to: &out)
        #expect(out == [0xEE] + FrameEncoder.frame(WireCodec.encodeResponse(response)) + [0, 0, 0, 2, 0x08, 0x00])

        var requestOut: [UInt8] = []
        let request = Request(callID: 6, call: WireCodecSamples.calls[3])
        WireCodec.appendRequestFrame(request, to: &requestOut)
        #expect(requestOut == FrameEncoder.frame(WireCodec.encodeRequest(request)))
    }

    @Test func decodesFromABufferSliceNotAtOffsetZero() throws {
        let request = Request(callID: 77, call: .ping(PingRequest(payload: [1, 2, 3])))
        let framed = [0xAA, 0xBB] + WireCodec.encodeRequest(request) + [0xCC]
        let decoded = try framed.withUnsafeBytes { raw in
            try WireCodec.decodeRequest(UnsafeRawBufferPointer(rebasing: raw[2..<(raw.count - 1)]))
        }
        #expect(decoded == request)
    }
}
