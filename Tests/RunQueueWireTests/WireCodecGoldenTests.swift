import RunQueueCore
import RunQueueWire
import Testing

/// Bytes produced by Python's `google.protobuf` from the generated
/// clients/python/runqueue_client/_gen/runqueue/v1/runqueue_pb2.py, e.g.
/// `pb.Request(call_id=5, ping=pb.PingRequest(payload=b'x')).SerializeToString()`.
/// Each must be what we encode and must decode to the same value: another
/// implementation of the .proto agrees with us byte for byte.
@Suite struct WireCodecGoldenTests {
    static let requests: [(Request, [UInt8])] = [
        // Request(call_id=5, ping=PingRequest(payload=b'x'))
        (Request(callID: 5, call: .ping(PingRequest(payload: [0x78]))),
         [0x08, 0x05, 0x5a, 0x03, 0x0a, 0x01, 0x78]),
        // Request(call_id=7, ack=AckRequest(run_id='r1', environment_id='e', attempt=0))
        (Request(callID: 7, call: .ack(AckRequest(runID: "r1", environmentID: "e", attempt: 0))),
         [0x08, 0x07, 0x7a, 0x09, 0x0a, 0x02, 0x72, 0x31, 0x12, 0x01, 0x65, 0x18, 0x00]),
        // Request(call_id=7, ack=AckRequest(run_id='r1', environment_id='e'))
        (Request(callID: 7, call: .ack(AckRequest(runID: "r1", environmentID: "e", attempt: nil))),
         [0x08, 0x07, 0x7a, 0x07, 0x0a, 0x02, 0x72, 0x31, 0x12, 0x01, 0x65]),
        // Request(call_id=300, set_concurrency_limit=SetConcurrencyLimitRequest(environment_id='env', clear=True, burst_factor=1.5))
        (Request(callID: 300, call: .setConcurrencyLimit(
            SetConcurrencyLimitRequest(environmentID: "env", value: .clear, burstFactor: 1.5))),
         [0x08, 0xac, 0x02, 0xaa, 0x01, 0x10, 0x0a, 0x03, 0x65, 0x6e, 0x76, 0x20, 0x01,
          0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f]),
        // Request(call_id=2, enqueue=EnqueueRequest(run=RunDescriptor(run_id='run_1',
        //         environment_type=PRODUCTION, priority_ms=-5, ttl='1h')))
        (Request(callID: 2, call: .enqueue(EnqueueRequest(
            run: RunDescriptor(runID: "run_1", environmentType: .production, priorityMs: -5, ttl: "1h")))),
         [0x08, 0x02, 0x62, 0x1a, 0x0a, 0x18, 0x0a, 0x05, 0x72, 0x75, 0x6e, 0x5f, 0x31, 0x28, 0x04,
          0x58, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x62, 0x02, 0x31, 0x68]),
    ]

    static let responses: [(Response, [UInt8])] = [
        // Response(call_id=9, status=Status(code=NOT_FOUND, message='no run'), get_run=GetRunResponse())
        (Response(callID: 9, status: Status(.notFound, "no run"), result: .getRun(GetRunResponse(run: nil))),
         [0x08, 0x09, 0x12, 0x0a, 0x08, 0x05, 0x12, 0x06, 0x6e, 0x6f, 0x20, 0x72, 0x75, 0x6e, 0x9a, 0x01, 0x00]),
        // Response(call_id=1, set_concurrency_limit=SetConcurrencyLimitResponse())
        (Response(callID: 1, result: .setConcurrencyLimit(SetConcurrencyLimitResponse())),
         [0x08, 0x01, 0xaa, 0x01, 0x00]),
        // Response(call_id=3, enqueue_batch=EnqueueBatchResponse(results=[
        //     EnqueueResult(created=True, expires_at_ms=1000),
        //     EnqueueResult(status=Status(code=INVALID_ARGUMENT, message='ttl'))]))
        (Response(callID: 3, result: .enqueueBatch(EnqueueBatchResponse(results: [
            EnqueueResult(status: .ok, created: true, expiresAtMs: 1000),
            EnqueueResult(status: Status(.invalidArgument, "ttl"), created: false, expiresAtMs: 0),
         ]))),
         [0x08, 0x03, 0x6a, 0x12, 0x0a, 0x05, 0x10, 0x01, 0x18, 0xe8, 0x07,
          0x0a, 0x09, 0x0a, 0x07, 0x08, 0x03, 0x12, 0x03, 0x74, 0x74, 0x6c]),
        // Response(call_id=4, end_of_stream=True, status=Status(code=CANCELLED))
        (Response.error(callID: 4, .cancelled, "", endOfStream: true),
         [0x08, 0x04, 0x12, 0x02, 0x08, 0x01, 0x18, 0x01]),
    ]

    @Test func requestsEncodeToPythonBytes() {
        for (request, bytes) in Self.requests {
            #expect(WireCodec.encodeRequest(request) == bytes, "\(request)")
        }
    }

    @Test func pythonRequestBytesDecode() throws {
        for (request, bytes) in Self.requests {
            #expect(try WireCodec.decodeRequest(bytes) == request)
        }
    }

    @Test func responsesEncodeToPythonBytes() {
        for (response, bytes) in Self.responses {
            #expect(WireCodec.encodeResponse(response) == bytes, "\(response)")
        }
    }

    @Test func pythonResponseBytesDecode() throws {
        for (response, bytes) in Self.responses {
            #expect(try WireCodec.decodeResponse(bytes) == response)
        }
    }

    @Test func explicitOKStatusFromAnotherEncoderDecodesAsOK() throws {
        // Response(call_id=1, status=Status()) from Python: present but empty.
        #expect(try WireCodec.decodeResponse([0x08, 0x01, 0x12, 0x00]) == Response(callID: 1))
    }
}
