import RunQueueCore

/// Values with every field set to something other than its default, for the
/// WireCodec tests. Kept in one place so a new field is added once.
enum WireCodecSamples {
    static let run1 = RunDescriptor(
        runID: "run_1", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .production, queue: "task/emails", concurrencyKey: "tenant-42",
        taskIdentifier: "send-email", workerQueue: "wq-main", timestampMs: 1_700_000_000_123,
        priorityMs: -5_000, ttl: "30m"
    )
    static let run2 = RunDescriptor(
        runID: "run_2", orgID: "org_2", projectID: "proj_2", environmentID: "env_2",
        environmentType: .development, queue: "q2", concurrencyKey: "k|ü🚀", taskIdentifier: "t2",
        workerQueue: "wq2", timestampMs: Int64.max, priorityMs: Int64.min, ttl: "1h30m"
    )
    static let run3 = RunDescriptor(
        runID: String(repeating: "r", count: 128), orgID: "o3", projectID: "p3", environmentID: "e3",
        environmentType: .staging, queue: "q3", concurrencyKey: "k3", taskIdentifier: "t3",
        workerQueue: "w3", timestampMs: 1, priorityMs: 1, ttl: "0s"
    )

    static let message1 = RunMessage(
        runID: "run_1", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .preview, queue: "task/emails", concurrencyKey: "tenant-42",
        taskIdentifier: "send-email", workerQueue: "wq-main", timestampMs: 1_700_000_000_123,
        attempt: 3, leaseExpiresAtMs: 1_700_000_060_000
    )
    static let message2 = RunMessage(
        runID: "run_2", orgID: "org_2", projectID: "proj_2", environmentID: "env_2",
        environmentType: .production, queue: "q2", concurrencyKey: "c2", taskIdentifier: "t2",
        workerQueue: "wq2", timestampMs: -1, attempt: UInt32.max, leaseExpiresAtMs: Int64.max
    )

    static let record = RunRecord(
        runID: "run_1", orgID: "org_1", projectID: "proj_1", environmentID: "env_1",
        environmentType: .staging, queue: "task/emails", concurrencyKey: "tenant-42",
        taskIdentifier: "send-email", workerQueue: "wq-main", timestampMs: 1_700_000_000_123,
        attempt: 12, leaseExpiresAtMs: 1_700_000_060_000, status: .deadLettered, ttl: "7d",
        expiresAtMs: 1_700_604_800_123, createdAtMs: 1_700_000_000_001, updatedAtMs: 1_700_000_000_002,
        completedAtMs: 1_700_000_000_003, expiredAtMs: 1_700_000_000_004
    )

    static let filter = ExpiryFilter(orgID: "org_1", projectID: "proj_1", environmentID: "env_1", queue: "task/emails")

    static let event = ExpiryEvent(
        cursor: UInt64.max - 1, runID: "run_9", orgID: "org_9", projectID: "proj_9", environmentID: "env_9",
        environmentType: .development, queue: "q9", concurrencyKey: "ck9", taskIdentifier: "t9", ttl: "5m",
        expiresAtMs: 1_700_000_300_000, expiredAtMs: 1_700_000_300_017
    )

    /// Every `Call` case, several twice to cover both sides of a oneof or Optional.
    static let calls: [Call] = [
        .hello(HelloRequest(token: "tok_secret", clientName: "swift-tests/1.0 ✓")),
        .ping(PingRequest(payload: [0x00, 0xFF, 0x00, 0x7F, 0x80, 0xFF])),
        .enqueue(EnqueueRequest(run: run1)),
        .enqueueBatch(EnqueueBatchRequest(runs: [run1, run2, run3])),
        .dequeue(DequeueRequest(workerQueue: "wq-main", maxRuns: 1000, waitMs: 30_000, leaseMs: 86_400_000)),
        .ack(AckRequest(runID: "run_1", environmentID: "env_1", attempt: 7)),
        .ack(AckRequest(runID: "run_1", environmentID: "env_1", attempt: 0)),
        .ack(AckRequest(runID: "run_1", environmentID: "env_1", attempt: nil)),
        .nack(NackRequest(runID: "run_1", environmentID: "env_1", retryAtMs: 1_700_000_001_000, keepAttempt: true, attempt: 3)),
        .nack(NackRequest(runID: "run_1", environmentID: "env_1", retryAtMs: -1, keepAttempt: true, attempt: 0)),
        .nack(NackRequest(runID: "run_1", environmentID: "env_1", retryAtMs: 5, keepAttempt: true, attempt: nil)),
        .heartbeat(HeartbeatRequest(runID: "run_1", environmentID: "env_1", leaseMs: 60_000, attempt: UInt32.max)),
        .heartbeat(HeartbeatRequest(runID: "run_1", environmentID: "env_1", leaseMs: 1000, attempt: 0)),
        .heartbeat(HeartbeatRequest(runID: "run_1", environmentID: "env_1", leaseMs: 1000, attempt: nil)),
        .readMessage(ReadMessageRequest(runID: "run_1", environmentID: "env_1")),
        .getRun(GetRunRequest(runID: "run_1")),
        .queueStats(QueueStatsRequest(environmentID: "env_1", queue: "task/emails", concurrencyKey: "tenant-42")),
        .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: "env_1", queue: "q", value: .limit(25), burstFactor: 1.5)),
        .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: "env_1", queue: "q", value: .limit(0), burstFactor: -0.25)),
        .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: "env_1", queue: "q", value: .clear, burstFactor: 2)),
        .setConcurrencyLimit(SetConcurrencyLimitRequest(environmentID: "env_1", queue: "q", value: nil, burstFactor: 3)),
        .redrive(RedriveRequest(runID: "run_1", environmentID: "env_1")),
        .subscribeExpiry(SubscribeExpiryRequest(filter: filter, resumeAfter: UInt64.max, replay: true)),
        .cancel(CancelRequest(targetCallID: UInt64.max)),
    ]

    /// Every `ResponseResult` case, Optionals both present and absent.
    static let results: [ResponseResult] = [
        .hello(HelloResponse(serverVersion: "runqueued 0.1.0", maxFrameBytes: 1 << 20, shardCount: 16)),
        .ping(PingResponse(payload: [0xFF, 0x00, 0x00, 0xFE])),
        .enqueue(EnqueueResponse(created: true, expiresAtMs: 1_700_000_000_999)),
        .enqueueBatch(EnqueueBatchResponse(results: [
            EnqueueResult(status: .ok, created: true, expiresAtMs: 1_700_000_000_999),
            EnqueueResult(status: Status(.invalidArgument, "ttl: cannot parse \"abc\""), created: false, expiresAtMs: 0),
            EnqueueResult(status: Status(.ok, "already existed"), created: false, expiresAtMs: -7),
        ])),
        .dequeue(DequeueResponse(messages: [message1, message2])),
        .ack(AckResponse(acked: true)),
        .nack(NackResponse(requeued: true, attempt: 4, deadLettered: true)),
        .heartbeat(HeartbeatResponse(leaseExpiresAtMs: 1_700_000_120_000)),
        .readMessage(ReadMessageResponse(message: message1, source: .redisV4)),
        .readMessage(ReadMessageResponse(message: nil, source: .postgres)),
        .getRun(GetRunResponse(run: record)),
        .getRun(GetRunResponse(run: nil)),
        .queueStats(QueueStatsResponse(length: UInt64.max, due: 12, inFlight: 3, oldestAgeMs: -1, concurrencyLimit: UInt32.max)),
        .setConcurrencyLimit(SetConcurrencyLimitResponse()),
        .redrive(RedriveResponse(requeued: true)),
        .subscribeExpiry(SubscribeExpiryResponse(liveFromCursor: 123_456_789_012)),
        .cancel(CancelResponse(cancelled: true)),
        .expiryEvent(event),
    ]
}
