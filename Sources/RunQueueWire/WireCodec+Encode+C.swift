internal import CProtobufC
internal import CRunQueueProto
import RunQueueCore

// Swift values -> protoc-c structs, allocated in a WireArena (see WireCodec.swift).
// Every builder starts from the struct's `*_init` (proto3 defaults: empty strings
// point at protobuf_c_empty_string, numbers 0, oneofs NOT_SET) and sets only
// non-default fields, so `*_pack` writes exactly what proto3 would.

extension WireCodec {
    static func cRequest(_ request: Request, in arena: WireArena) -> UnsafeMutablePointer<Runqueue__V1__Request> {
        let m = arena.new(Runqueue__V1__Request.self, runqueue__v1__request__init)
        m.pointee.call_id = request.callID
        switch request.call {
        case nil:
            break
        case .hello(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_HELLO
            m.pointee.hello = arena.make(x)
        case .ping(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_PING
            m.pointee.ping = arena.make(x)
        case .enqueue(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_ENQUEUE
            m.pointee.enqueue = arena.make(x)
        case .enqueueBatch(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_ENQUEUE_BATCH
            m.pointee.enqueue_batch = arena.make(x)
        case .dequeue(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_DEQUEUE
            m.pointee.dequeue = arena.make(x)
        case .ack(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_ACK
            m.pointee.ack = arena.make(x)
        case .nack(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_NACK
            m.pointee.nack = arena.make(x)
        case .heartbeat(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_HEARTBEAT
            m.pointee.heartbeat = arena.make(x)
        case .readMessage(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_READ_MESSAGE
            m.pointee.read_message = arena.make(x)
        case .getRun(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_GET_RUN
            m.pointee.get_run = arena.make(x)
        case .queueStats(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_QUEUE_STATS
            m.pointee.queue_stats = arena.make(x)
        case .setConcurrencyLimit(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_SET_CONCURRENCY_LIMIT
            m.pointee.set_concurrency_limit = arena.make(x)
        case .redrive(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_REDRIVE
            m.pointee.redrive = arena.make(x)
        case .subscribeExpiry(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_SUBSCRIBE_EXPIRY
            m.pointee.subscribe_expiry = arena.make(x)
        case .cancel(let x):
            m.pointee.call_case = RUNQUEUE__V1__REQUEST__CALL_CANCEL
            m.pointee.cancel = arena.make(x)
        }
        return m
    }

    static func cResponse(_ response: Response, in arena: WireArena) -> UnsafeMutablePointer<Runqueue__V1__Response> {
        let m = arena.new(Runqueue__V1__Response.self, runqueue__v1__response__init)
        m.pointee.call_id = response.callID
        m.pointee.status = arena.makeUnlessOK(response.status)
        m.pointee.end_of_stream = cBool(response.endOfStream)
        switch response.result {
        case nil:
            break
        case .hello(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_HELLO
            m.pointee.hello = arena.make(x)
        case .ping(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_PING
            m.pointee.ping = arena.make(x)
        case .enqueue(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_ENQUEUE
            m.pointee.enqueue = arena.make(x)
        case .enqueueBatch(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_ENQUEUE_BATCH
            m.pointee.enqueue_batch = arena.make(x)
        case .dequeue(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_DEQUEUE
            m.pointee.dequeue = arena.make(x)
        case .ack(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_ACK
            m.pointee.ack = arena.make(x)
        case .nack(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_NACK
            m.pointee.nack = arena.make(x)
        case .heartbeat(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_HEARTBEAT
            m.pointee.heartbeat = arena.make(x)
        case .readMessage(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_READ_MESSAGE
            m.pointee.read_message = arena.make(x)
        case .getRun(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_GET_RUN
            m.pointee.get_run = arena.make(x)
        case .queueStats(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_QUEUE_STATS
            m.pointee.queue_stats = arena.make(x)
        case .setConcurrencyLimit(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_SET_CONCURRENCY_LIMIT
            m.pointee.set_concurrency_limit = arena.make(x)
        case .redrive(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_REDRIVE
            m.pointee.redrive = arena.make(x)
        case .subscribeExpiry(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_SUBSCRIBE_EXPIRY
            m.pointee.subscribe_expiry = arena.make(x)
        case .cancel(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_CANCEL
            m.pointee.cancel = arena.make(x)
        case .expiryEvent(let x):
            m.pointee.result_case = RUNQUEUE__V1__RESPONSE__RESULT_EXPIRY_EVENT
            m.pointee.expiry_event = arena.make(x)
        }
        return m
    }
}

@inline(__always)
private func cBool(_ value: Bool) -> protobuf_c_boolean { value ? 1 : 0 }

extension WireArena {
    /// Sets a `char *` field unless `value` is empty (the field then keeps
    /// protobuf_c_empty_string from `*_init`, and proto3 leaves it off the wire).
    @inline(__always)
    fileprivate func set(_ field: inout UnsafeMutablePointer<CChar>?, _ value: String) {
        if !value.isEmpty { field = cString(value) }
    }

    /// nil (field absent) for `.ok` with no message, the proto3 default: saves
    /// two bytes on every successful response.
    fileprivate func makeUnlessOK(_ x: Status) -> UnsafeMutablePointer<Runqueue__V1__Status>? {
        if x.code == .ok && x.message.isEmpty { return nil }
        let m = new(Runqueue__V1__Status.self, runqueue__v1__status__init)
        m.pointee.code = .init(rawValue: .init(truncatingIfNeeded: x.code.rawValue))
        set(&m.pointee.message, x.message)
        return m
    }

    // MARK: shared messages

    fileprivate func make(_ x: RunDescriptor) -> UnsafeMutablePointer<Runqueue__V1__RunDescriptor> {
        let m = new(Runqueue__V1__RunDescriptor.self, runqueue__v1__run_descriptor__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.org_id, x.orgID)
        set(&m.pointee.project_id, x.projectID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.environment_type = .init(rawValue: .init(truncatingIfNeeded: x.environmentType.rawValue))
        set(&m.pointee.queue, x.queue)
        set(&m.pointee.concurrency_key, x.concurrencyKey)
        set(&m.pointee.task_identifier, x.taskIdentifier)
        set(&m.pointee.worker_queue, x.workerQueue)
        m.pointee.timestamp_ms = x.timestampMs
        m.pointee.priority_ms = x.priorityMs
        set(&m.pointee.ttl, x.ttl)
        return m
    }

    fileprivate func make(_ x: RunMessage) -> UnsafeMutablePointer<Runqueue__V1__RunMessage> {
        let m = new(Runqueue__V1__RunMessage.self, runqueue__v1__run_message__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.org_id, x.orgID)
        set(&m.pointee.project_id, x.projectID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.environment_type = .init(rawValue: .init(truncatingIfNeeded: x.environmentType.rawValue))
        set(&m.pointee.queue, x.queue)
        set(&m.pointee.concurrency_key, x.concurrencyKey)
        set(&m.pointee.task_identifier, x.taskIdentifier)
        set(&m.pointee.worker_queue, x.workerQueue)
        m.pointee.timestamp_ms = x.timestampMs
        m.pointee.attempt = x.attempt
        m.pointee.lease_expires_at_ms = x.leaseExpiresAtMs
        return m
    }

    fileprivate func make(_ x: RunRecord) -> UnsafeMutablePointer<Runqueue__V1__RunRecord> {
        let m = new(Runqueue__V1__RunRecord.self, runqueue__v1__run_record__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.org_id, x.orgID)
        set(&m.pointee.project_id, x.projectID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.environment_type = .init(rawValue: .init(truncatingIfNeeded: x.environmentType.rawValue))
        set(&m.pointee.queue, x.queue)
        set(&m.pointee.concurrency_key, x.concurrencyKey)
        set(&m.pointee.task_identifier, x.taskIdentifier)
        set(&m.pointee.worker_queue, x.workerQueue)
        m.pointee.timestamp_ms = x.timestampMs
        m.pointee.attempt = x.attempt
        m.pointee.lease_expires_at_ms = x.leaseExpiresAtMs
        m.pointee.status = .init(rawValue: .init(truncatingIfNeeded: x.status.rawValue))
        set(&m.pointee.ttl, x.ttl)
        m.pointee.expires_at_ms = x.expiresAtMs
        m.pointee.created_at_ms = x.createdAtMs
        m.pointee.updated_at_ms = x.updatedAtMs
        m.pointee.completed_at_ms = x.completedAtMs
        m.pointee.expired_at_ms = x.expiredAtMs
        return m
    }

    fileprivate func make(_ x: ExpiryFilter) -> UnsafeMutablePointer<Runqueue__V1__ExpiryFilter> {
        let m = new(Runqueue__V1__ExpiryFilter.self, runqueue__v1__expiry_filter__init)
        set(&m.pointee.org_id, x.orgID)
        set(&m.pointee.project_id, x.projectID)
        set(&m.pointee.environment_id, x.environmentID)
        set(&m.pointee.queue, x.queue)
        return m
    }

    fileprivate func make(_ x: ExpiryEvent) -> UnsafeMutablePointer<Runqueue__V1__ExpiryEvent> {
        let m = new(Runqueue__V1__ExpiryEvent.self, runqueue__v1__expiry_event__init)
        m.pointee.cursor = x.cursor
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.org_id, x.orgID)
        set(&m.pointee.project_id, x.projectID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.environment_type = .init(rawValue: .init(truncatingIfNeeded: x.environmentType.rawValue))
        set(&m.pointee.queue, x.queue)
        set(&m.pointee.concurrency_key, x.concurrencyKey)
        set(&m.pointee.task_identifier, x.taskIdentifier)
        set(&m.pointee.ttl, x.ttl)
        m.pointee.expires_at_ms = x.expiresAtMs
        m.pointee.expired_at_ms = x.expiredAtMs
        return m
    }

    // MARK: requests

    fileprivate func make(_ x: HelloRequest) -> UnsafeMutablePointer<Runqueue__V1__HelloRequest> {
        let m = new(Runqueue__V1__HelloRequest.self, runqueue__v1__hello_request__init)
        set(&m.pointee.token, x.token)
        set(&m.pointee.client_name, x.clientName)
        return m
    }

    fileprivate func make(_ x: PingRequest) -> UnsafeMutablePointer<Runqueue__V1__PingRequest> {
        let m = new(Runqueue__V1__PingRequest.self, runqueue__v1__ping_request__init)
        m.pointee.payload = binary(x.payload)
        return m
    }

    fileprivate func make(_ x: EnqueueRequest) -> UnsafeMutablePointer<Runqueue__V1__EnqueueRequest> {
        let m = new(Runqueue__V1__EnqueueRequest.self, runqueue__v1__enqueue_request__init)
        // Always present, even when all-default, so the server sees that a run was sent.
        m.pointee.run = make(x.run)
        return m
    }

    fileprivate func make(_ x: EnqueueBatchRequest) -> UnsafeMutablePointer<Runqueue__V1__EnqueueBatchRequest> {
        let m = new(Runqueue__V1__EnqueueBatchRequest.self, runqueue__v1__enqueue_batch_request__init)
        if !x.runs.isEmpty {
            let runs = pointerArray(of: Runqueue__V1__RunDescriptor.self, count: x.runs.count)
            for (i, run) in x.runs.enumerated() { runs[i] = make(run) }
            m.pointee.n_runs = x.runs.count
            m.pointee.runs = runs
        }
        return m
    }

    fileprivate func make(_ x: DequeueRequest) -> UnsafeMutablePointer<Runqueue__V1__DequeueRequest> {
        let m = new(Runqueue__V1__DequeueRequest.self, runqueue__v1__dequeue_request__init)
        set(&m.pointee.worker_queue, x.workerQueue)
        m.pointee.max_runs = x.maxRuns
        m.pointee.wait_ms = x.waitMs
        m.pointee.lease_ms = x.leaseMs
        return m
    }

    fileprivate func make(_ x: AckRequest) -> UnsafeMutablePointer<Runqueue__V1__AckRequest> {
        let m = new(Runqueue__V1__AckRequest.self, runqueue__v1__ack_request__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.environment_id, x.environmentID)
        if let attempt = x.attempt {
            m.pointee.fence_case = RUNQUEUE__V1__ACK_REQUEST__FENCE_ATTEMPT
            m.pointee.attempt = attempt
        }
        return m
    }

    fileprivate func make(_ x: NackRequest) -> UnsafeMutablePointer<Runqueue__V1__NackRequest> {
        let m = new(Runqueue__V1__NackRequest.self, runqueue__v1__nack_request__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.retry_at_ms = x.retryAtMs
        m.pointee.keep_attempt = cBool(x.keepAttempt)
        if let attempt = x.attempt {
            m.pointee.fence_case = RUNQUEUE__V1__NACK_REQUEST__FENCE_ATTEMPT
            m.pointee.attempt = attempt
        }
        return m
    }

    fileprivate func make(_ x: HeartbeatRequest) -> UnsafeMutablePointer<Runqueue__V1__HeartbeatRequest> {
        let m = new(Runqueue__V1__HeartbeatRequest.self, runqueue__v1__heartbeat_request__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.environment_id, x.environmentID)
        m.pointee.lease_ms = x.leaseMs
        if let attempt = x.attempt {
            m.pointee.fence_case = RUNQUEUE__V1__HEARTBEAT_REQUEST__FENCE_ATTEMPT
            m.pointee.attempt = attempt
        }
        return m
    }

    fileprivate func make(_ x: ReadMessageRequest) -> UnsafeMutablePointer<Runqueue__V1__ReadMessageRequest> {
        let m = new(Runqueue__V1__ReadMessageRequest.self, runqueue__v1__read_message_request__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.environment_id, x.environmentID)
        return m
    }

    fileprivate func make(_ x: GetRunRequest) -> UnsafeMutablePointer<Runqueue__V1__GetRunRequest> {
        let m = new(Runqueue__V1__GetRunRequest.self, runqueue__v1__get_run_request__init)
        set(&m.pointee.run_id, x.runID)
        return m
    }

    fileprivate func make(_ x: QueueStatsRequest) -> UnsafeMutablePointer<Runqueue__V1__QueueStatsRequest> {
        let m = new(Runqueue__V1__QueueStatsRequest.self, runqueue__v1__queue_stats_request__init)
        set(&m.pointee.environment_id, x.environmentID)
        set(&m.pointee.queue, x.queue)
        set(&m.pointee.concurrency_key, x.concurrencyKey)
        return m
    }

    fileprivate func make(_ x: SetConcurrencyLimitRequest) -> UnsafeMutablePointer<Runqueue__V1__SetConcurrencyLimitRequest> {
        let m = new(Runqueue__V1__SetConcurrencyLimitRequest.self, runqueue__v1__set_concurrency_limit_request__init)
        set(&m.pointee.environment_id, x.environmentID)
        set(&m.pointee.queue, x.queue)
        switch x.value {
        case nil:
            break
        case .limit(let limit):
            m.pointee.value_case = RUNQUEUE__V1__SET_CONCURRENCY_LIMIT_REQUEST__VALUE_LIMIT
            m.pointee.limit = limit
        case .clear:
            m.pointee.value_case = RUNQUEUE__V1__SET_CONCURRENCY_LIMIT_REQUEST__VALUE_CLEAR
            m.pointee.clear = 1
        }
        m.pointee.burst_factor = x.burstFactor
        return m
    }

    fileprivate func make(_ x: RedriveRequest) -> UnsafeMutablePointer<Runqueue__V1__RedriveRequest> {
        let m = new(Runqueue__V1__RedriveRequest.self, runqueue__v1__redrive_request__init)
        set(&m.pointee.run_id, x.runID)
        set(&m.pointee.environment_id, x.environmentID)
        return m
    }

    fileprivate func make(_ x: SubscribeExpiryRequest) -> UnsafeMutablePointer<Runqueue__V1__SubscribeExpiryRequest> {
        let m = new(Runqueue__V1__SubscribeExpiryRequest.self, runqueue__v1__subscribe_expiry_request__init)
        m.pointee.filter = make(x.filter)
        m.pointee.resume_after = x.resumeAfter
        m.pointee.replay = cBool(x.replay)
        return m
    }

    fileprivate func make(_ x: CancelRequest) -> UnsafeMutablePointer<Runqueue__V1__CancelRequest> {
        let m = new(Runqueue__V1__CancelRequest.self, runqueue__v1__cancel_request__init)
        m.pointee.target_call_id = x.targetCallID
        return m
    }

    // MARK: responses

    fileprivate func make(_ x: HelloResponse) -> UnsafeMutablePointer<Runqueue__V1__HelloResponse> {
        let m = new(Runqueue__V1__HelloResponse.self, runqueue__v1__hello_response__init)
        set(&m.pointee.server_version, x.serverVersion)
        m.pointee.max_frame_bytes = x.maxFrameBytes
        m.pointee.shard_count = x.shardCount
        return m
    }

    fileprivate func make(_ x: PingResponse) -> UnsafeMutablePointer<Runqueue__V1__PingResponse> {
        let m = new(Runqueue__V1__PingResponse.self, runqueue__v1__ping_response__init)
        m.pointee.payload = binary(x.payload)
        return m
    }

    fileprivate func make(_ x: EnqueueResponse) -> UnsafeMutablePointer<Runqueue__V1__EnqueueResponse> {
        let m = new(Runqueue__V1__EnqueueResponse.self, runqueue__v1__enqueue_response__init)
        m.pointee.created = cBool(x.created)
        m.pointee.expires_at_ms = x.expiresAtMs
        return m
    }

    fileprivate func make(_ x: EnqueueResult) -> UnsafeMutablePointer<Runqueue__V1__EnqueueResult> {
        let m = new(Runqueue__V1__EnqueueResult.self, runqueue__v1__enqueue_result__init)
        m.pointee.status = makeUnlessOK(x.status)
        m.pointee.created = cBool(x.created)
        m.pointee.expires_at_ms = x.expiresAtMs
        return m
    }

    fileprivate func make(_ x: EnqueueBatchResponse) -> UnsafeMutablePointer<Runqueue__V1__EnqueueBatchResponse> {
        let m = new(Runqueue__V1__EnqueueBatchResponse.self, runqueue__v1__enqueue_batch_response__init)
        if !x.results.isEmpty {
            let results = pointerArray(of: Runqueue__V1__EnqueueResult.self, count: x.results.count)
            for (i, result) in x.results.enumerated() { results[i] = make(result) }
            m.pointee.n_results = x.results.count
            m.pointee.results = results
        }
        return m
    }

    fileprivate func make(_ x: DequeueResponse) -> UnsafeMutablePointer<Runqueue__V1__DequeueResponse> {
        let m = new(Runqueue__V1__DequeueResponse.self, runqueue__v1__dequeue_response__init)
        if !x.messages.isEmpty {
            let messages = pointerArray(of: Runqueue__V1__RunMessage.self, count: x.messages.count)
            for (i, message) in x.messages.enumerated() { messages[i] = make(message) }
            m.pointee.n_messages = x.messages.count
            m.pointee.messages = messages
        }
        return m
    }

    fileprivate func make(_ x: AckResponse) -> UnsafeMutablePointer<Runqueue__V1__AckResponse> {
        let m = new(Runqueue__V1__AckResponse.self, runqueue__v1__ack_response__init)
        m.pointee.acked = cBool(x.acked)
        return m
    }

    fileprivate func make(_ x: NackResponse) -> UnsafeMutablePointer<Runqueue__V1__NackResponse> {
        let m = new(Runqueue__V1__NackResponse.self, runqueue__v1__nack_response__init)
        m.pointee.requeued = cBool(x.requeued)
        m.pointee.attempt = x.attempt
        m.pointee.dead_lettered = cBool(x.deadLettered)
        return m
    }

    fileprivate func make(_ x: HeartbeatResponse) -> UnsafeMutablePointer<Runqueue__V1__HeartbeatResponse> {
        let m = new(Runqueue__V1__HeartbeatResponse.self, runqueue__v1__heartbeat_response__init)
        m.pointee.lease_expires_at_ms = x.leaseExpiresAtMs
        return m
    }

    fileprivate func make(_ x: ReadMessageResponse) -> UnsafeMutablePointer<Runqueue__V1__ReadMessageResponse> {
        let m = new(Runqueue__V1__ReadMessageResponse.self, runqueue__v1__read_message_response__init)
        if let message = x.message { m.pointee.message = make(message) }
        m.pointee.source = .init(rawValue: .init(truncatingIfNeeded: x.source.rawValue))
        return m
    }

    fileprivate func make(_ x: GetRunResponse) -> UnsafeMutablePointer<Runqueue__V1__GetRunResponse> {
        let m = new(Runqueue__V1__GetRunResponse.self, runqueue__v1__get_run_response__init)
        if let run = x.run { m.pointee.run = make(run) }
        return m
    }

    fileprivate func make(_ x: QueueStatsResponse) -> UnsafeMutablePointer<Runqueue__V1__QueueStatsResponse> {
        let m = new(Runqueue__V1__QueueStatsResponse.self, runqueue__v1__queue_stats_response__init)
        m.pointee.length = x.length
        m.pointee.due = x.due
        m.pointee.in_flight = x.inFlight
        m.pointee.oldest_age_ms = x.oldestAgeMs
        m.pointee.concurrency_limit = x.concurrencyLimit
        return m
    }

    fileprivate func make(_ x: SetConcurrencyLimitResponse) -> UnsafeMutablePointer<Runqueue__V1__SetConcurrencyLimitResponse> {
        new(Runqueue__V1__SetConcurrencyLimitResponse.self, runqueue__v1__set_concurrency_limit_response__init)
    }

    fileprivate func make(_ x: RedriveResponse) -> UnsafeMutablePointer<Runqueue__V1__RedriveResponse> {
        let m = new(Runqueue__V1__RedriveResponse.self, runqueue__v1__redrive_response__init)
        m.pointee.requeued = cBool(x.requeued)
        return m
    }

    fileprivate func make(_ x: SubscribeExpiryResponse) -> UnsafeMutablePointer<Runqueue__V1__SubscribeExpiryResponse> {
        let m = new(Runqueue__V1__SubscribeExpiryResponse.self, runqueue__v1__subscribe_expiry_response__init)
        m.pointee.live_from_cursor = x.liveFromCursor
        return m
    }

    fileprivate func make(_ x: CancelResponse) -> UnsafeMutablePointer<Runqueue__V1__CancelResponse> {
        let m = new(Runqueue__V1__CancelResponse.self, runqueue__v1__cancel_response__init)
        m.pointee.cancelled = cBool(x.cancelled)
        return m
    }
}
