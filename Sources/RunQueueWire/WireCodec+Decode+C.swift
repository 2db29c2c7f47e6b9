internal import CProtobufC
internal import CRunQueueProto
import RunQueueCore

// protoc-c structs (unpacked into a WireArena) -> Swift values. Everything is
// copied out before the arena is released. Absent sub-messages (NULL pointers)
// decode as their defaults (or nil where the Swift field is Optional); unknown
// enum numbers and unknown oneof members follow the rules in WireCodec.swift.

extension WireCodec {
    static func swiftRequest(_ m: Runqueue__V1__Request) -> Request {
        let call: Call?
        switch m.call_case {
        case RUNQUEUE__V1__REQUEST__CALL_HELLO: call = .hello(decode(m.hello, HelloRequest.init(c:), default: HelloRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_PING: call = .ping(decode(m.ping, PingRequest.init(c:), default: PingRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_ENQUEUE: call = .enqueue(decode(m.enqueue, EnqueueRequest.init(c:), default: EnqueueRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_ENQUEUE_BATCH:
            call = .enqueueBatch(decode(m.enqueue_batch, EnqueueBatchRequest.init(c:), default: EnqueueBatchRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_DEQUEUE: call = .dequeue(decode(m.dequeue, DequeueRequest.init(c:), default: DequeueRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_ACK: call = .ack(decode(m.ack, AckRequest.init(c:), default: AckRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_NACK: call = .nack(decode(m.nack, NackRequest.init(c:), default: NackRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_HEARTBEAT: call = .heartbeat(decode(m.heartbeat, HeartbeatRequest.init(c:), default: HeartbeatRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_READ_MESSAGE:
            call = .readMessage(decode(m.read_message, ReadMessageRequest.init(c:), default: ReadMessageRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_GET_RUN: call = .getRun(decode(m.get_run, GetRunRequest.init(c:), default: GetRunRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_QUEUE_STATS:
            call = .queueStats(decode(m.queue_stats, QueueStatsRequest.init(c:), default: QueueStatsRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_SET_CONCURRENCY_LIMIT:
            call = .setConcurrencyLimit(decode(m.set_concurrency_limit, SetConcurrencyLimitRequest.init(c:), default: SetConcurrencyLimitRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_REDRIVE: call = .redrive(decode(m.redrive, RedriveRequest.init(c:), default: RedriveRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_SUBSCRIBE_EXPIRY:
            call = .subscribeExpiry(decode(m.subscribe_expiry, SubscribeExpiryRequest.init(c:), default: SubscribeExpiryRequest()))
        case RUNQUEUE__V1__REQUEST__CALL_CANCEL: call = .cancel(decode(m.cancel, CancelRequest.init(c:), default: CancelRequest()))
        default: call = nil  // NOT_SET; an unknown field number lands in unknown_fields instead
        }
        return Request(callID: m.call_id, call: call)
    }

    static func swiftResponse(_ m: Runqueue__V1__Response) -> Response {
        let result: ResponseResult?
        switch m.result_case {
        case RUNQUEUE__V1__RESPONSE__RESULT_HELLO: result = .hello(decode(m.hello, HelloResponse.init(c:), default: HelloResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_PING: result = .ping(decode(m.ping, PingResponse.init(c:), default: PingResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_ENQUEUE: result = .enqueue(decode(m.enqueue, EnqueueResponse.init(c:), default: EnqueueResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_ENQUEUE_BATCH:
            result = .enqueueBatch(decode(m.enqueue_batch, EnqueueBatchResponse.init(c:), default: EnqueueBatchResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_DEQUEUE: result = .dequeue(decode(m.dequeue, DequeueResponse.init(c:), default: DequeueResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_ACK: result = .ack(decode(m.ack, AckResponse.init(c:), default: AckResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_NACK: result = .nack(decode(m.nack, NackResponse.init(c:), default: NackResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_HEARTBEAT:
            result = .heartbeat(decode(m.heartbeat, HeartbeatResponse.init(c:), default: HeartbeatResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_READ_MESSAGE:
            result = .readMessage(decode(m.read_message, ReadMessageResponse.init(c:), default: ReadMessageResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_GET_RUN: result = .getRun(decode(m.get_run, GetRunResponse.init(c:), default: GetRunResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_QUEUE_STATS:
            result = .queueStats(decode(m.queue_stats, QueueStatsResponse.init(c:), default: QueueStatsResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_SET_CONCURRENCY_LIMIT:
            result = .setConcurrencyLimit(SetConcurrencyLimitResponse())
        case RUNQUEUE__V1__RESPONSE__RESULT_REDRIVE: result = .redrive(decode(m.redrive, RedriveResponse.init(c:), default: RedriveResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_SUBSCRIBE_EXPIRY:
            result = .subscribeExpiry(decode(m.subscribe_expiry, SubscribeExpiryResponse.init(c:), default: SubscribeExpiryResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_CANCEL: result = .cancel(decode(m.cancel, CancelResponse.init(c:), default: CancelResponse()))
        case RUNQUEUE__V1__RESPONSE__RESULT_EXPIRY_EVENT:
            result = .expiryEvent(decode(m.expiry_event, ExpiryEvent.init(c:), default: ExpiryEvent()))
        default: result = nil
        }
        return Response(
            callID: m.call_id,
            status: m.status.map { Status(c: $0.pointee) } ?? .ok,
            endOfStream: m.end_of_stream != 0,
            result: result
        )
    }
}

// MARK: field helpers

/// A present sub-message converted, or the Swift default for an absent one.
/// (unpack always allocates a set oneof member; the nil branch is defence.)
@inline(__always)
private func decode<C, T>(
    _ pointer: UnsafeMutablePointer<C>?, _ convert: (C) -> T, default fallback: @autoclosure () -> T
) -> T {
    guard let pointer else { return fallback() }
    return convert(pointer.pointee)
}

/// A `char *` as a Swift String. protobuf-c 1.4 does not validate UTF-8, so
/// ill-formed sequences are repaired to U+FFFD here rather than trusted.
@inline(__always)
private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer, pointer.pointee != 0 else { return "" }
    return String(cString: pointer)
}

@inline(__always)
private func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard data.len > 0, let base = data.data else { return [] }
    return Array(UnsafeBufferPointer(start: base, count: data.len))
}

/// A repeated message field, element by element; NULL elements (never produced
/// by unpack) decode as defaults.
@inline(__always)
private func repeated<C, T>(
    _ count: Int, _ elements: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?, _ convert: (C) -> T,
    default fallback: @autoclosure () -> T
) -> [T] {
    guard count > 0, let elements else { return [] }
    var out: [T] = []
    out.reserveCapacity(count)
    for i in 0..<count { out.append(decode(elements[i], convert, default: fallback())) }
    return out
}

// MARK: shared messages

extension Status {
    fileprivate init(c m: Runqueue__V1__Status) {
        self.init(StatusCode(wireValue: Int32(truncatingIfNeeded: m.code.rawValue)), string(m.message))
    }
}

extension RunDescriptor {
    fileprivate init(c m: Runqueue__V1__RunDescriptor) {
        self.init(
            runID: string(m.run_id),
            orgID: string(m.org_id),
            projectID: string(m.project_id),
            environmentID: string(m.environment_id),
            environmentType: EnvironmentType(wireValue: Int32(truncatingIfNeeded: m.environment_type.rawValue)),
            queue: string(m.queue),
            concurrencyKey: string(m.concurrency_key),
            taskIdentifier: string(m.task_identifier),
            workerQueue: string(m.worker_queue),
            timestampMs: m.timestamp_ms,
            priorityMs: m.priority_ms,
            ttl: string(m.ttl)
        )
    }
}

extension RunMessage {
    fileprivate init(c m: Runqueue__V1__RunMessage) {
        self.init(
            runID: string(m.run_id),
            orgID: string(m.org_id),
            projectID: string(m.project_id),
            environmentID: string(m.environment_id),
            environmentType: EnvironmentType(wireValue: Int32(truncatingIfNeeded: m.environment_type.rawValue)),
            queue: string(m.queue),
            concurrencyKey: string(m.concurrency_key),
            taskIdentifier: string(m.task_identifier),
            workerQueue: string(m.worker_queue),
            timestampMs: m.timestamp_ms,
            attempt: m.attempt,
            leaseExpiresAtMs: m.lease_expires_at_ms
        )
    }
}

extension RunRecord {
    fileprivate init(c m: Runqueue__V1__RunRecord) {
        self.init(
            runID: string(m.run_id),
            orgID: string(m.org_id),
            projectID: string(m.project_id),
            environmentID: string(m.environment_id),
            environmentType: EnvironmentType(wireValue: Int32(truncatingIfNeeded: m.environment_type.rawValue)),
            queue: string(m.queue),
            concurrencyKey: string(m.concurrency_key),
            taskIdentifier: string(m.task_identifier),
            workerQueue: string(m.worker_queue),
            timestampMs: m.timestamp_ms,
            attempt: m.attempt,
            leaseExpiresAtMs: m.lease_expires_at_ms,
            status: RunStatus(wireValue: Int32(truncatingIfNeeded: m.status.rawValue)),
            ttl: string(m.ttl),
            expiresAtMs: m.expires_at_ms,
            createdAtMs: m.created_at_ms,
            updatedAtMs: m.updated_at_ms,
            completedAtMs: m.completed_at_ms,
            expiredAtMs: m.expired_at_ms
        )
    }
}

extension ExpiryFilter {
    fileprivate init(c m: Runqueue__V1__ExpiryFilter) {
        self.init(
            orgID: string(m.org_id),
            projectID: string(m.project_id),
            environmentID: string(m.environment_id),
            queue: string(m.queue)
        )
    }
}

extension ExpiryEvent {
    fileprivate init(c m: Runqueue__V1__ExpiryEvent) {
        self.init(
            cursor: m.cursor,
            runID: string(m.run_id),
            orgID: string(m.org_id),
            projectID: string(m.project_id),
            environmentID: string(m.environment_id),
            environmentType: EnvironmentType(wireValue: Int32(truncatingIfNeeded: m.environment_type.rawValue)),
            queue: string(m.queue),
            concurrencyKey: string(m.concurrency_key),
            taskIdentifier: string(m.task_identifier),
            ttl: string(m.ttl),
            expiresAtMs: m.expires_at_ms,
            expiredAtMs: m.expired_at_ms
        )
    }
}

// MARK: requests

extension HelloRequest {
    fileprivate init(c m: Runqueue__V1__HelloRequest) {
        self.init(token: string(m.token), clientName: string(m.client_name))
    }
}

extension PingRequest {
    fileprivate init(c m: Runqueue__V1__PingRequest) {
        self.init(payload: bytes(m.payload))
    }
}

extension EnqueueRequest {
    fileprivate init(c m: Runqueue__V1__EnqueueRequest) {
        self.init(run: decode(m.run, RunDescriptor.init(c:), default: RunDescriptor()))
    }
}

extension EnqueueBatchRequest {
    fileprivate init(c m: Runqueue__V1__EnqueueBatchRequest) {
        self.init(runs: repeated(m.n_runs, m.runs, RunDescriptor.init(c:), default: RunDescriptor()))
    }
}

extension DequeueRequest {
    fileprivate init(c m: Runqueue__V1__DequeueRequest) {
        self.init(workerQueue: string(m.worker_queue), maxRuns: m.max_runs, waitMs: m.wait_ms, leaseMs: m.lease_ms)
    }
}

extension AckRequest {
    fileprivate init(c m: Runqueue__V1__AckRequest) {
        self.init(
            runID: string(m.run_id),
            environmentID: string(m.environment_id),
            attempt: m.fence_case == RUNQUEUE__V1__ACK_REQUEST__FENCE_ATTEMPT ? m.attempt : nil
        )
    }
}

extension NackRequest {
    fileprivate init(c m: Runqueue__V1__NackRequest) {
        self.init(
            runID: string(m.run_id),
            environmentID: string(m.environment_id),
            retryAtMs: m.retry_at_ms,
            keepAttempt: m.keep_attempt != 0,
            attempt: m.fence_case == RUNQUEUE__V1__NACK_REQUEST__FENCE_ATTEMPT ? m.attempt : nil
        )
    }
}

extension HeartbeatRequest {
    fileprivate init(c m: Runqueue__V1__HeartbeatRequest) {
        self.init(
            runID: string(m.run_id),
            environmentID: string(m.environment_id),
            leaseMs: m.lease_ms,
            attempt: m.fence_case == RUNQUEUE__V1__HEARTBEAT_REQUEST__FENCE_ATTEMPT ? m.attempt : nil
        )
    }
}

extension ReadMessageRequest {
    fileprivate init(c m: Runqueue__V1__ReadMessageRequest) {
        self.init(runID: string(m.run_id), environmentID: string(m.environment_id))
    }
}

extension GetRunRequest {
    fileprivate init(c m: Runqueue__V1__GetRunRequest) {
        self.init(runID: string(m.run_id))
    }
}

extension QueueStatsRequest {
    fileprivate init(c m: Runqueue__V1__QueueStatsRequest) {
        self.init(
            environmentID: string(m.environment_id),
            queue: string(m.queue),
            concurrencyKey: string(m.concurrency_key)
        )
    }
}

extension SetConcurrencyLimitRequest {
    fileprivate init(c m: Runqueue__V1__SetConcurrencyLimitRequest) {
        let value: LimitValue?
        switch m.value_case {
        case RUNQUEUE__V1__SET_CONCURRENCY_LIMIT_REQUEST__VALUE_LIMIT: value = .limit(m.limit)
        // `clear = false` (which e.g. Python sends for `clear=False`) asks for
        // nothing: it decodes as no value, so the server rejects the call as
        // missing `limit`/`clear` instead of clearing a limit on a false flag.
        case RUNQUEUE__V1__SET_CONCURRENCY_LIMIT_REQUEST__VALUE_CLEAR: value = m.clear != 0 ? .clear : nil
        default: value = nil
        }
        self.init(
            environmentID: string(m.environment_id),
            queue: string(m.queue),
            value: value,
            burstFactor: m.burst_factor
        )
    }
}

extension RedriveRequest {
    fileprivate init(c m: Runqueue__V1__RedriveRequest) {
        self.init(runID: string(m.run_id), environmentID: string(m.environment_id))
    }
}

extension SubscribeExpiryRequest {
    fileprivate init(c m: Runqueue__V1__SubscribeExpiryRequest) {
        self.init(
            filter: decode(m.filter, ExpiryFilter.init(c:), default: ExpiryFilter()),
            resumeAfter: m.resume_after,
            replay: m.replay != 0
        )
    }
}

extension CancelRequest {
    fileprivate init(c m: Runqueue__V1__CancelRequest) {
        self.init(targetCallID: m.target_call_id)
    }
}

// MARK: responses

extension HelloResponse {
    fileprivate init(c m: Runqueue__V1__HelloResponse) {
        self.init(serverVersion: string(m.server_version), maxFrameBytes: m.max_frame_bytes, shardCount: m.shard_count)
    }
}

extension PingResponse {
    fileprivate init(c m: Runqueue__V1__PingResponse) {
        self.init(payload: bytes(m.payload))
    }
}

extension EnqueueResponse {
    fileprivate init(c m: Runqueue__V1__EnqueueResponse) {
        self.init(created: m.created != 0, expiresAtMs: m.expires_at_ms)
    }
}

extension EnqueueResult {
    fileprivate init(c m: Runqueue__V1__EnqueueResult) {
        self.init(
            status: m.status.map { Status(c: $0.pointee) } ?? .ok,
            created: m.created != 0,
            expiresAtMs: m.expires_at_ms
        )
    }
}

extension EnqueueBatchResponse {
    fileprivate init(c m: Runqueue__V1__EnqueueBatchResponse) {
        self.init(results: repeated(m.n_results, m.results, EnqueueResult.init(c:), default: EnqueueResult()))
    }
}

extension DequeueResponse {
    fileprivate init(c m: Runqueue__V1__DequeueResponse) {
        self.init(messages: repeated(m.n_messages, m.messages, RunMessage.init(c:), default: RunMessage()))
    }
}

extension AckResponse {
    fileprivate init(c m: Runqueue__V1__AckResponse) {
        self.init(acked: m.acked != 0)
    }
}

extension NackResponse {
    fileprivate init(c m: Runqueue__V1__NackResponse) {
        self.init(requeued: m.requeued != 0, attempt: m.attempt, deadLettered: m.dead_lettered != 0)
    }
}

extension HeartbeatResponse {
    fileprivate init(c m: Runqueue__V1__HeartbeatResponse) {
        self.init(leaseExpiresAtMs: m.lease_expires_at_ms)
    }
}

extension ReadMessageResponse {
    fileprivate init(c m: Runqueue__V1__ReadMessageResponse) {
        self.init(
            message: m.message.map { RunMessage(c: $0.pointee) },
            source: MessageSource(wireValue: Int32(truncatingIfNeeded: m.source.rawValue))
        )
    }
}

extension GetRunResponse {
    fileprivate init(c m: Runqueue__V1__GetRunResponse) {
        self.init(run: m.run.map { RunRecord(c: $0.pointee) })
    }
}

extension QueueStatsResponse {
    fileprivate init(c m: Runqueue__V1__QueueStatsResponse) {
        self.init(
            length: m.length,
            due: m.due,
            inFlight: m.in_flight,
            oldestAgeMs: m.oldest_age_ms,
            concurrencyLimit: m.concurrency_limit
        )
    }
}

extension RedriveResponse {
    fileprivate init(c m: Runqueue__V1__RedriveResponse) {
        self.init(requeued: m.requeued != 0)
    }
}

extension SubscribeExpiryResponse {
    fileprivate init(c m: Runqueue__V1__SubscribeExpiryResponse) {
        self.init(liveFromCursor: m.live_from_cursor)
    }
}

extension CancelResponse {
    fileprivate init(c m: Runqueue__V1__CancelResponse) {
        self.init(cancelled: m.cancelled != 0)
    }
}
