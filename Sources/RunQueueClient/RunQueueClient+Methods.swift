// One method per protocol method (docs/protocol.md, "Methods"). Each takes an
// optional `timeout` (else the configuration's `defaultTimeout`) and throws
// `RunQueueError` with the status the call failed with.
import RunQueueCore

extension RunQueueClient {
    /// `Hello` on one of the pool's connections (every connection already
    /// sends one when it connects, with the configured token).
    public func hello(timeout: Duration? = nil) async throws(RunQueueError) -> HelloResponse {
        let request = HelloRequest(token: configuration.token, clientName: configuration.clientName)
        guard case .hello(let answer)? = try await call(.hello(request), timeout: timeout) else { throw Self.shape("Hello") }
        return answer
    }

    /// `Ping`: the server echoes `payload`.
    public func ping(_ payload: [UInt8] = [], timeout: Duration? = nil) async throws(RunQueueError) -> [UInt8] {
        guard case .ping(let answer)? = try await call(.ping(PingRequest(payload: payload)), timeout: timeout) else { throw Self.shape("Ping") }
        return answer.payload
    }

    /// `Enqueue` one run. `created` is false when the run id already existed
    /// (nothing changed); `expiresAtMs` is the TTL deadline (0 = none).
    public func enqueue(_ run: RunDescriptor, timeout: Duration? = nil) async throws(RunQueueError) -> EnqueueResponse {
        guard case .enqueue(let answer)? = try await call(.enqueue(EnqueueRequest(run: run)), timeout: timeout) else {
            throw Self.shape("Enqueue")
        }
        return answer
    }

    /// Enqueues any number of runs with `EnqueueBatch` calls of at most 1000
    /// runs and `Hello.max_frame_bytes` each, sent concurrently. Returns one
    /// result per run, in order; a bad run gets its own status and does not
    /// stop the others. A call that fails as a whole throws (the runs of the
    /// other calls may be enqueued: enqueueing again with the same run ids is safe).
    public func enqueueBatch(_ runs: [RunDescriptor], timeout: Duration? = nil) async throws(RunQueueError) -> [EnqueueResult] {
        guard !runs.isEmpty else { return [] }
        if serverInfo == nil { try await connect() }
        let plan = EnqueueBatchPlan(runs: runs, maxFrameBytes: maxFrameBytes)
        var results = [EnqueueResult](repeating: EnqueueResult(), count: runs.count)
        for index in plan.oversized {
            results[index] = EnqueueResult(status: Status(.resourceExhausted,
                "run \(index) (run_id \(runs[index].runID.prefix(128))) does not fit in one frame of max_frame_bytes \(maxFrameBytes)"))
        }
        let deadline = deadline(for: timeout)
        let outcome: Result<[(Range<Int>, [EnqueueResult])], RunQueueError> = await withTaskGroup(
            of: Result<(Range<Int>, [EnqueueResult]), RunQueueError>.self
        ) { group in
            for chunk in plan.chunks {
                let batch = Array(runs[chunk])
                group.addTask {
                    do throws(RunQueueError) {
                        guard case .enqueueBatch(let answer)? = try await self.perform(
                            .enqueueBatch(EnqueueBatchRequest(runs: batch)), deadline: deadline)
                        else { return .failure(Self.shape("EnqueueBatch")) }
                        guard answer.results.count == batch.count else {
                            return .failure(RunQueueError(.internal, "EnqueueBatch answered \(answer.results.count) results for \(batch.count) runs"))
                        }
                        return .success((chunk, answer.results))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var done: [(Range<Int>, [EnqueueResult])] = []
            for await item in group {
                switch item {
                case .success(let value): done.append(value)
                case .failure(let error):
                    group.cancelAll()
                    return .failure(error)
                }
            }
            return .success(done)
        }
        for (chunk, answer) in try outcome.get() {
            results.replaceSubrange(chunk, with: answer)
        }
        return results
    }

    /// `Dequeue`: up to `maxRuns` (1...1000) runs from `workerQueue`, leased
    /// for `leaseMs` (0 = server default). With `waitMs` > 0 (at most 30000)
    /// it long-polls when nothing is available. Without a `timeout`, the
    /// default timeout is extended by `waitMs`.
    public func dequeue(workerQueue: String, maxRuns: UInt32 = 1, waitMs: UInt32 = 0, leaseMs: UInt32 = 0,
                        timeout: Duration? = nil) async throws(RunQueueError) -> [RunMessage] {
        let request = DequeueRequest(workerQueue: workerQueue, maxRuns: maxRuns, waitMs: waitMs, leaseMs: leaseMs)
        guard case .dequeue(let answer)? = try await perform(
            .dequeue(request), deadline: deadline(for: timeout, extra: .milliseconds(Int64(waitMs))))
        else { throw Self.shape("Dequeue") }
        return answer.messages
    }

    /// `Ack`: the run is done. False when it was not in flight (nothing
    /// changed). `attempt` fences the ack to that attempt (FAILED_PRECONDITION otherwise).
    public func ack(runID: String, environmentID: String, attempt: UInt32? = nil,
                    timeout: Duration? = nil) async throws(RunQueueError) -> Bool {
        let request = AckRequest(runID: runID, environmentID: environmentID, attempt: attempt)
        guard case .ack(let answer)? = try await call(.ack(request), timeout: timeout) else { throw Self.shape("Ack") }
        return answer.acked
    }

    /// `Ack` of a dequeued message, fenced to the attempt it was delivered with.
    public func ack(_ message: RunMessage, timeout: Duration? = nil) async throws(RunQueueError) -> Bool {
        try await ack(runID: message.runID, environmentID: message.environmentID, attempt: message.attempt, timeout: timeout)
    }

    /// `Nack`: the attempt failed. `retryAtMs` 0 = backoff; `keepAttempt`
    /// does not count the failure. The answer says whether the run was
    /// requeued or dead-lettered, and its attempt now.
    public func nack(runID: String, environmentID: String, retryAtMs: Int64 = 0, keepAttempt: Bool = false,
                     attempt: UInt32? = nil, timeout: Duration? = nil) async throws(RunQueueError) -> NackResponse {
        let request = NackRequest(runID: runID, environmentID: environmentID, retryAtMs: retryAtMs,
                                  keepAttempt: keepAttempt, attempt: attempt)
        guard case .nack(let answer)? = try await call(.nack(request), timeout: timeout) else { throw Self.shape("Nack") }
        return answer
    }

    /// `Nack` of a dequeued message, fenced to the attempt it was delivered with.
    public func nack(_ message: RunMessage, retryAtMs: Int64 = 0, keepAttempt: Bool = false,
                     timeout: Duration? = nil) async throws(RunQueueError) -> NackResponse {
        try await nack(runID: message.runID, environmentID: message.environmentID, retryAtMs: retryAtMs,
                       keepAttempt: keepAttempt, attempt: message.attempt, timeout: timeout)
    }

    /// `Heartbeat`: extends the lease by `leaseMs` (0 = server default);
    /// returns the new lease deadline (Unix ms). FAILED_PRECONDITION when the
    /// run is not in flight (or the fence does not match).
    public func heartbeat(runID: String, environmentID: String, leaseMs: UInt32 = 0, attempt: UInt32? = nil,
                          timeout: Duration? = nil) async throws(RunQueueError) -> Int64 {
        let request = HeartbeatRequest(runID: runID, environmentID: environmentID, leaseMs: leaseMs, attempt: attempt)
        guard case .heartbeat(let answer)? = try await call(.heartbeat(request), timeout: timeout) else { throw Self.shape("Heartbeat") }
        return answer.leaseExpiresAtMs
    }

    /// `ReadMessage`: the run's message and where it was found.
    public func readMessage(runID: String, environmentID: String,
                            timeout: Duration? = nil) async throws(RunQueueError) -> ReadMessageResponse {
        let request = ReadMessageRequest(runID: runID, environmentID: environmentID)
        guard case .readMessage(let answer)? = try await call(.readMessage(request), timeout: timeout) else { throw Self.shape("ReadMessage") }
        return answer
    }

    /// `GetRun`: the run's record from PostgreSQL.
    public func getRun(runID: String, timeout: Duration? = nil) async throws(RunQueueError) -> RunRecord {
        guard case .getRun(let answer)? = try await call(.getRun(GetRunRequest(runID: runID)), timeout: timeout) else {
            throw Self.shape("GetRun")
        }
        guard let run = answer.run else { throw RunQueueError(.internal, "GetRun answered OK without a run") }
        return run
    }

    /// `QueueStats` of an environment, one of its queues (`queue`), or one
    /// concurrency key of a queue.
    public func queueStats(environmentID: String, queue: String = "", concurrencyKey: String = "",
                           timeout: Duration? = nil) async throws(RunQueueError) -> QueueStatsResponse {
        let request = QueueStatsRequest(environmentID: environmentID, queue: queue, concurrencyKey: concurrencyKey)
        guard case .queueStats(let answer)? = try await call(.queueStats(request), timeout: timeout) else { throw Self.shape("QueueStats") }
        return answer
    }

    /// `SetConcurrencyLimit` of a queue, or of the environment (`queue`
    /// empty; only then may `burstFactor` be set, 0 = unchanged). `.clear`
    /// removes a queue's limit or resets the environment to the defaults.
    public func setConcurrencyLimit(environmentID: String, queue: String = "", _ value: LimitValue, burstFactor: Double = 0,
                                    timeout: Duration? = nil) async throws(RunQueueError) {
        let request = SetConcurrencyLimitRequest(environmentID: environmentID, queue: queue, value: value, burstFactor: burstFactor)
        guard case .setConcurrencyLimit? = try await call(.setConcurrencyLimit(request), timeout: timeout) else {
            throw Self.shape("SetConcurrencyLimit")
        }
    }

    /// `Redrive`: requeues a dead-lettered run with attempt 0
    /// (FAILED_PRECONDITION when it is not dead-lettered).
    public func redrive(runID: String, environmentID: String, timeout: Duration? = nil) async throws(RunQueueError) -> Bool {
        let request = RedriveRequest(runID: runID, environmentID: environmentID)
        guard case .redrive(let answer)? = try await call(.redrive(request), timeout: timeout) else { throw Self.shape("Redrive") }
        return answer.requeued
    }

    /// `SubscribeExpiry`: the expiry events matching `filter`, as an async
    /// sequence that reconnects after a disconnect and resumes after the last
    /// cursor it delivered (no gap, no duplicate). Starts live (events after
    /// the subscription started), after `resumeAfter` when > 0, or at the
    /// oldest retained event with `replay`. See `ExpirySubscription`.
    public func subscribeExpiry(filter: ExpiryFilter = ExpiryFilter(), resumeAfter: UInt64 = 0,
                                replay: Bool = false) -> ExpirySubscription {
        ExpirySubscription(configuration: configuration,
                           request: SubscribeExpiryRequest(filter: filter, resumeAfter: resumeAfter, replay: replay))
    }

    static func shape(_ method: String) -> RunQueueError {
        RunQueueError(.internal, "\(method) answered with another method's result")
    }
}
