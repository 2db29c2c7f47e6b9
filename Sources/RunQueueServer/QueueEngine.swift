// QueueEngine: the protocol's queue methods on top of QueueStore.
//
// Each handler validates its request completely before touching Redis (bad
// input answers INVALID_ARGUMENT naming the field and changes nothing), then
// runs one script per shard and maps the outcome to the wire. Dequeue and its
// long poll live in DequeueCoordinator. Loop thread only.
import RunQueueCore
import RunQueueExpiry
import RunQueueStorage

final class QueueEngine {
    let store: QueueStore
    let clock: ServiceClock
    let expiry: ExpiryPolicy
    let dequeue: DequeueCoordinator
    let config: ServerConfig

    init(store: QueueStore, clock: ServiceClock, config: ServerConfig, dequeue: DequeueCoordinator) {
        self.store = store
        self.clock = clock
        self.config = config
        expiry = ExpiryPolicy(defaultMaxTTLMs: config.defaultMaxTTLMs)
        self.dequeue = dequeue
    }

    // MARK: Enqueue

    /// Validates one descriptor and resolves its timestamp and deadline.
    private func prepare(_ run: RunDescriptor, now: Int64) -> Result<QueueStore.EnqueueItem, ValidationFailure> {
        do {
            try Validation.runDescriptor(run)
        } catch {
            return .failure(ValidationFailure(error.message))
        }
        let ttlMs: Int64?
        do {
            ttlMs = try TTLParser.milliseconds(run.ttl)
        } catch {
            return .failure(ValidationFailure(error.message))
        }
        var resolved = run
        if resolved.timestampMs == 0 { resolved.timestampMs = now }
        let expiresAt = expiry.expiresAt(enqueueTimeMs: now, timestampMs: resolved.timestampMs, ttlMs: ttlMs)
        return .success(QueueStore.EnqueueItem(run: resolved, expiresAtMs: expiresAt))
    }

    struct ValidationFailure: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    func enqueue(_ request: EnqueueRequest, _ context: CallContext) {
        let now = clock.nowMs()
        switch prepare(request.run, now: now) {
        case .failure(let failure):
            context.fail(.invalidArgument, failure.message)
        case .success(let item):
            store.enqueue([item], now: now) { [dequeue] results in
                switch results.first {
                case .success(let created)?:
                    if created { dequeue.runsAdded(workerQueue: item.run.workerQueue, environmentID: item.run.environmentID) }
                    context.reply(.enqueue(EnqueueResponse(created: created, expiresAtMs: created ? item.expiresAtMs ?? 0 : 0)))
                case .failure(let error)?:
                    context.fail(error.code, error.message)
                case nil:
                    context.fail(.internal, "enqueue produced no result")
                }
            }
        }
    }

    func enqueueBatch(_ request: EnqueueBatchRequest, _ context: CallContext) {
        guard (1...1000).contains(request.runs.count) else {
            context.fail(.invalidArgument, "runs must hold 1..1000 runs, got \(request.runs.count)")
            return
        }
        let now = clock.nowMs()
        var results = [EnqueueResult](repeating: EnqueueResult(), count: request.runs.count)
        var items: [QueueStore.EnqueueItem] = []
        var itemSlots: [Int] = []
        // The first occurrence of a run id in the batch decides; a repeat with
        // the same identity answers created=false, with another identity ALREADY_EXISTS.
        var firstByID: [String: RunDescriptor] = [:]
        for (index, run) in request.runs.enumerated() {
            switch prepare(run, now: now) {
            case .failure(let failure):
                results[index].status = Status(.invalidArgument, "runs[\(index)]: \(failure.message)")
            case .success(let item):
                if let first = firstByID[run.runID] {
                    if first.orgID == run.orgID && first.projectID == run.projectID && first.environmentID == run.environmentID {
                        results[index] = EnqueueResult(status: .ok, created: false, expiresAtMs: 0)
                    } else {
                        results[index].status = Status(.alreadyExists, "runs[\(index)]: run_id already exists")
                    }
                    continue
                }
                firstByID[run.runID] = run
                items.append(item)
                itemSlots.append(index)
            }
        }
        guard !items.isEmpty else {
            context.reply(.enqueueBatch(EnqueueBatchResponse(results: results)))
            return
        }
        store.enqueue(items, now: now) { [dequeue] stored in
            for (offset, outcome) in stored.enumerated() {
                let index = itemSlots[offset]
                switch outcome {
                case .success(let created):
                    if created { dequeue.runsAdded(workerQueue: items[offset].run.workerQueue, environmentID: items[offset].run.environmentID) }
                    results[index] = EnqueueResult(status: .ok, created: created,
                                                   expiresAtMs: created ? items[offset].expiresAtMs ?? 0 : 0)
                case .failure(let error):
                    results[index].status = Status(error.code, error.message)
                }
            }
            context.reply(.enqueueBatch(EnqueueBatchResponse(results: results)))
        }
    }

    // MARK: Ack / Nack / Heartbeat

    private func validateRun(_ runID: String, _ environmentID: String, _ context: CallContext) -> Bool {
        do {
            try Validation.identifier(runID, field: "run_id")
            try Validation.identifier(environmentID, field: "environment_id")
            return true
        } catch {
            context.fail(.invalidArgument, error.message)
            return false
        }
    }

    private static func fenceMessage(_ fence: UInt32?, _ current: UInt32) -> String {
        "attempt \(fence.map(String.init) ?? "?") does not match the run's current attempt \(current)"
    }

    func ack(_ request: AckRequest, _ context: CallContext) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        store.ack(runID: request.runID, environmentID: request.environmentID, fence: request.attempt, now: clock.nowMs()) { [dequeue] result in
            switch result {
            case .success(.done):
                dequeue.slotFreed(environmentID: request.environmentID)
                context.reply(.ack(AckResponse(acked: true)))
            case .success(.notInFlight):
                context.reply(.ack(AckResponse(acked: false)))
            case .success(.fenceMismatch(let current)):
                context.fail(.failedPrecondition, Self.fenceMessage(request.attempt, current))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    func nack(_ request: NackRequest, _ context: CallContext) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        guard request.retryAtMs >= 0 else {
            context.fail(.invalidArgument, "retry_at_ms must be 0 (backoff) or a time in ms, got \(request.retryAtMs)")
            return
        }
        store.nack(runID: request.runID, environmentID: request.environmentID, fence: request.attempt,
                   retryAtMs: request.retryAtMs, keepAttempt: request.keepAttempt, now: clock.nowMs(),
                   random: Double.random(in: 0..<1)) { [dequeue] result in
            switch result {
            case .success(.done(let outcome)):
                dequeue.slotFreed(environmentID: request.environmentID)
                context.reply(.nack(NackResponse(requeued: !outcome.deadLettered, attempt: outcome.attempt,
                                                 deadLettered: outcome.deadLettered)))
            case .success(.notInFlight):
                context.reply(.nack(NackResponse(requeued: false, attempt: 0, deadLettered: false)))
            case .success(.fenceMismatch(let current)):
                context.fail(.failedPrecondition, Self.fenceMessage(request.attempt, current))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    /// lease_ms: 0 = the default, else 1 s .. 24 h.
    func leaseMs(_ requested: UInt32, _ context: CallContext) -> Int64? {
        if requested == 0 { return store.config.defaultLeaseMs }
        guard (1000...86_400_000).contains(requested) else {
            context.fail(.invalidArgument, "lease_ms must be 0 (server default) or 1000..86400000, got \(requested)")
            return nil
        }
        return Int64(requested)
    }

    func heartbeat(_ request: HeartbeatRequest, _ context: CallContext) {
        guard validateRun(request.runID, request.environmentID, context), let lease = leaseMs(request.leaseMs, context) else { return }
        let now = clock.nowMs()
        store.heartbeat(runID: request.runID, environmentID: request.environmentID, fence: request.attempt,
                        leaseDeadlineMs: now + lease, now: now) { result in
            switch result {
            case .success(.done(let deadline)):
                context.reply(.heartbeat(HeartbeatResponse(leaseExpiresAtMs: deadline)))
            case .success(.notInFlight):
                context.fail(.failedPrecondition, "run \(request.runID) is not in flight (never dequeued, finished, or its lease lapsed)")
            case .success(.fenceMismatch(let current)):
                context.fail(.failedPrecondition, Self.fenceMessage(request.attempt, current))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    // MARK: ReadMessage / QueueStats / SetConcurrencyLimit / Redrive

    func readMessage(_ request: ReadMessageRequest, _ context: CallContext) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        store.read(runID: request.runID, environmentID: request.environmentID, now: clock.nowMs()) { result in
            switch result {
            case .success(let found?):
                context.reply(.readMessage(ReadMessageResponse(message: found.message, source: found.source)))
            case .success(nil):
                context.fail(.notFound, "run \(request.runID) is not queued or in flight in environment \(request.environmentID)")
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    func queueStats(_ request: QueueStatsRequest, _ context: CallContext) {
        do {
            try Validation.identifier(request.environmentID, field: "environment_id")
            if !request.queue.isEmpty { try Validation.queueName(request.queue) }
            try Validation.concurrencyKey(request.concurrencyKey)
        } catch {
            context.fail(.invalidArgument, error.message)
            return
        }
        store.stats(environmentID: request.environmentID, queue: request.queue, concurrencyKey: request.concurrencyKey,
                    now: clock.nowMs()) { result in
            switch result {
            case .success(let stats): context.reply(.queueStats(stats))
            case .failure(let error): context.fail(error.code, error.message)
            }
        }
    }

    func setConcurrencyLimit(_ request: SetConcurrencyLimitRequest, _ context: CallContext) {
        do {
            try Validation.identifier(request.environmentID, field: "environment_id")
            if !request.queue.isEmpty { try Validation.queueName(request.queue) }
        } catch {
            context.fail(.invalidArgument, error.message)
            return
        }
        if !request.queue.isEmpty && request.burstFactor != 0 {
            context.fail(.invalidArgument, "burst_factor applies to an environment only; leave it 0 when queue is set")
            return
        }
        guard request.burstFactor == 0 || (request.burstFactor.isFinite && request.burstFactor >= 1 && request.burstFactor <= 100) else {
            context.fail(.invalidArgument, "burst_factor must be 0 (unchanged) or 1..100, got \(request.burstFactor)")
            return
        }
        let change: QueueStore.LimitChange
        switch request.value {
        case .limit(let limit)?:
            guard limit <= 1_000_000 else {
                context.fail(.invalidArgument, "limit must be 0..1000000, got \(limit)")
                return
            }
            change = .set(limit: limit, burstFactor: request.burstFactor)
        case .clear?:
            change = .clear
        case nil:
            context.fail(.invalidArgument, "one of limit or clear is required")
            return
        }
        store.setLimit(environmentID: request.environmentID, queue: request.queue, change: change) { [dequeue] result in
            switch result {
            case .success:
                dequeue.slotFreed(environmentID: request.environmentID)
                context.reply(.setConcurrencyLimit(SetConcurrencyLimitResponse()))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    func redrive(_ request: RedriveRequest, _ context: CallContext) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        store.redrive(runID: request.runID, environmentID: request.environmentID, now: clock.nowMs()) { [dequeue] result in
            switch result {
            case .success(true):
                dequeue.slotFreed(environmentID: request.environmentID)
                context.reply(.redrive(RedriveResponse(requeued: true)))
            case .success(false):
                context.fail(.failedPrecondition, "run \(request.runID) is not dead-lettered in environment \(request.environmentID)")
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }
}

extension QueueEngine {
    func dequeue(_ request: DequeueRequest, _ context: CallContext) {
        do {
            try Validation.identifier(request.workerQueue, field: "worker_queue")
        } catch {
            context.fail(.invalidArgument, error.message)
            return
        }
        guard (1...1000).contains(request.maxRuns) else {
            context.fail(.invalidArgument, "max_runs must be 1..1000, got \(request.maxRuns)")
            return
        }
        guard request.waitMs <= 30_000 else {
            context.fail(.invalidArgument, "wait_ms must be 0..30000, got \(request.waitMs)")
            return
        }
        guard let lease = leaseMs(request.leaseMs, context) else { return }
        dequeue.dequeue(request, leaseMs: lease, context)
    }
}
