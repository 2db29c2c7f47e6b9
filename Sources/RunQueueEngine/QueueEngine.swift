// QueueEngine: the protocol's queue methods on top of QueueStore (Redis, the
// live state machine) and RunRecords (PostgreSQL, the durable record).
//
// Each handler validates its request completely before touching a store (bad
// input answers INVALID_ARGUMENT naming the field and changes nothing).
// Creation goes to PostgreSQL first (Enqueue, EnqueueBatch, Redrive), then
// to Redis if absent; every later change is one script whose outbox entry
// the OutboxApplier writes to PostgreSQL; Ack and Nack answer once theirs is
// applied. Dequeue and its long poll live in DequeueCoordinator. Loop thread only.
import RunQueueCore
import RunQueueExpiry
import RunQueueStorage

final class QueueEngine {
    let store: QueueStore
    let records: RunRecords
    let applier: OutboxApplier
    let clock: ServiceClock
    let expiry: ExpiryPolicy
    let dequeue: DequeueCoordinator
    /// Acks arriving together go to Redis as one script call per shard.
    let acks: AckBatcher
    let config: EngineConfig
    /// True once PostgreSQL is connected, migrated and agrees on the shard count.
    let recordsReady: () -> Bool
    /// False with RUN_ENGINE_TTL_SYSTEM_DISABLED: deadlines are recorded but
    /// not armed in Redis (nothing expires; the runs dequeue normally).
    var armsTTLs = true
    /// Called for each run added to Redis with a TTL deadline (environment, deadline ms):
    /// the expiry scheduler arms its shard's timer.
    var onTTLArmed: ((String, Int64) -> Void)?

    init(store: QueueStore, records: RunRecords, applier: OutboxApplier, clock: ServiceClock, config: EngineConfig,
         dequeue: DequeueCoordinator, recordsReady: @escaping () -> Bool) {
        self.store = store
        self.records = records
        self.applier = applier
        self.clock = clock
        self.config = config
        expiry = ExpiryPolicy(defaultMaxTTLMs: config.defaultMaxTTLMs)
        self.dequeue = dequeue
        acks = AckBatcher(loop: dequeue.loop, store: store, clock: clock)
        self.recordsReady = recordsReady
    }

    static let notQueuedYet = "recorded, not yet queued; retry with the same run_id"

    private func requireRecords(_ context: any EngineCall) -> Bool {
        if recordsReady() { return true }
        context.fail(.unavailable, "PostgreSQL is not ready (connecting or migrating); nothing was written; retry")
        return false
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

    /// The creation path shared by Enqueue and EnqueueBatch: rows first (one
    /// group commit), then the runs PostgreSQL shows QUEUED are added to Redis
    /// if absent. One outcome per item, in order.
    private enum Admission {
        case created(expiresAtMs: Int64)
        case existed(expiresAtMs: Int64)
        case failed(StatusCode, String)
    }

    private func admit(_ items: [QueueStore.EnqueueItem], now: Int64, _ completion: @escaping ([Admission]) -> Void) {
        let newRuns = items.map { RunRecords.NewRun(run: $0.run, expiresAtMs: $0.expiresAtMs, createdAtMs: now) }
        records.create(newRuns) { [self] outcomes in
            var admissions = [Admission](repeating: .failed(.internal, "not answered"), count: items.count)
            var toQueue: [(index: Int, item: QueueStore.EnqueueItem, created: Bool, expiresAtMs: Int64)] = []
            for (index, outcome) in outcomes.enumerated() {
                switch outcome {
                case .failure(let error):
                    admissions[index] = .failed(error.code, error.message)
                case .success(.created):
                    toQueue.append((index, items[index], true, items[index].expiresAtMs ?? 0))
                case .success(.exists(let stored)):
                    let run = items[index].run
                    let record = stored.record
                    guard record.orgID == run.orgID && record.projectID == run.projectID && record.environmentID == run.environmentID else {
                        admissions[index] = .failed(.alreadyExists, "run_id already exists")
                        continue
                    }
                    if record.status == .queued {
                        // Recorded earlier but perhaps never queued: add it back if absent.
                        toQueue.append((index, stored.enqueueItem, false, record.expiresAtMs))
                    } else {
                        admissions[index] = .existed(expiresAtMs: record.expiresAtMs)
                    }
                }
            }
            guard !toQueue.isEmpty else { completion(admissions); return }
            let armed = armsTTLs
            let redisItems = armed ? toQueue.map(\.item) : toQueue.map { QueueStore.EnqueueItem(run: $0.item.run, expiresAtMs: nil) }
            store.enqueue(redisItems, now: now) { [dequeue, onTTLArmed] results in
                for (entry, result) in zip(toQueue, results) {
                    let expires = entry.expiresAtMs
                    switch result {
                    case .success(let added):
                        if added { dequeue.runsAdded(workerQueue: entry.item.run.workerQueue, environmentID: entry.item.run.environmentID) }
                        if added && armed, let deadline = entry.item.expiresAtMs { onTTLArmed?(entry.item.run.environmentID, deadline) }
                        admissions[entry.index] = entry.created ? .created(expiresAtMs: expires) : .existed(expiresAtMs: expires)
                    case .failure(let error) where error.code == .unavailable:
                        admissions[entry.index] = .failed(.unavailable, Self.notQueuedYet)
                    case .failure(let error):
                        admissions[entry.index] = .failed(error.code, error.message)
                    }
                }
                completion(admissions)
            }
        }
    }

    func enqueue(_ request: EnqueueRequest, _ context: any EngineCall) {
        let now = clock.nowMs()
        switch prepare(request.run, now: now) {
        case .failure(let failure):
            context.fail(.invalidArgument, failure.message)
        case .success(let item):
            guard requireRecords(context) else { return }
            admit([item], now: now) { admissions in
                switch admissions.first {
                case .created(let expires)?: context.reply(.enqueue(EnqueueResponse(created: true, expiresAtMs: expires)))
                case .existed(let expires)?: context.reply(.enqueue(EnqueueResponse(created: false, expiresAtMs: expires)))
                case .failed(let code, let message)?: context.fail(code, message)
                case nil: context.fail(.internal, "enqueue produced no result")
                }
            }
        }
    }

    func enqueueBatch(_ request: EnqueueBatchRequest, _ context: any EngineCall) {
        guard (1...1000).contains(request.runs.count) else {
            context.fail(.invalidArgument, "runs must hold 1..1000 runs, got \(request.runs.count)")
            return
        }
        guard requireRecords(context) else { return }
        let now = clock.nowMs()
        var results = [EnqueueResult](repeating: EnqueueResult(), count: request.runs.count)
        var items: [QueueStore.EnqueueItem] = []
        var itemSlots: [Int] = []
        // The first occurrence of a run id in the batch is admitted; every
        // repeat is judged against the run as stored after it: the same
        // identity answers created=false, another ALREADY_EXISTS.
        var firstByID: [String: Int] = [:]
        var repeats: [(index: Int, item: QueueStore.EnqueueItem, of: Int)] = []
        for (index, run) in request.runs.enumerated() {
            switch prepare(run, now: now) {
            case .failure(let failure):
                results[index].status = Status(.invalidArgument, "runs[\(index)]: \(failure.message)")
            case .success(let item):
                if let first = firstByID[run.runID] {
                    repeats.append((index, item, first))
                    continue
                }
                firstByID[run.runID] = items.count
                items.append(item)
                itemSlots.append(index)
            }
        }
        guard !items.isEmpty else {
            context.reply(.enqueueBatch(EnqueueBatchResponse(results: results)))
            return
        }
        func record(_ admission: Admission, at index: Int, created: Bool = true) {
            switch admission {
            case .created(let expires): results[index] = EnqueueResult(status: .ok, created: created, expiresAtMs: expires)
            case .existed(let expires): results[index] = EnqueueResult(status: .ok, created: false, expiresAtMs: expires)
            case .failed(let code, let message): results[index].status = Status(code, "runs[\(index)]: \(message)")
            }
        }
        admit(items, now: now) { [self] admissions in
            for (offset, admission) in admissions.enumerated() { record(admission, at: itemSlots[offset]) }
            // A repeat whose first occurrence conflicted with the stored run
            // may itself match it: it is admitted on its own, against the row.
            var again: [(index: Int, item: QueueStore.EnqueueItem)] = []
            for (index, item, of) in repeats {
                let first = items[of].run
                let sameAsFirst = first.orgID == item.run.orgID && first.projectID == item.run.projectID
                    && first.environmentID == item.run.environmentID
                switch admissions[of] {
                case .failed(.alreadyExists, _) where !sameAsFirst:
                    again.append((index, item))
                case .created, .existed:
                    if sameAsFirst { record(admissions[of], at: index, created: false) } else {
                        results[index].status = Status(.alreadyExists, "runs[\(index)]: run_id already exists")
                    }
                case .failed:
                    record(admissions[of], at: index)
                }
            }
            guard !again.isEmpty else {
                context.reply(.enqueueBatch(EnqueueBatchResponse(results: results)))
                return
            }
            admit(again.map(\.item), now: now) { admissions in
                for (entry, admission) in zip(again, admissions) { record(admission, at: entry.index, created: false) }
                context.reply(.enqueueBatch(EnqueueBatchResponse(results: results)))
            }
        }
    }

    // MARK: Ack / Nack / Heartbeat

    private func validateRun(_ runID: String, _ environmentID: String, _ context: any EngineCall) -> Bool {
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

    func ack(_ request: AckRequest, _ context: any EngineCall) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        let shard = store.shards.shard(forEnvironment: request.environmentID)
        acks.ack(QueueStore.AckItem(runID: request.runID, environmentID: request.environmentID, fence: request.attempt)) { [self, dequeue, applier] result in
            switch result {
            case .success(.done(let ack)):
                if !ack.alreadyCompleted { dequeue.slotFreed(environmentID: request.environmentID) }
                applier.waitApplied(shard: shard, entryID: ack.entryID, entry: ack.entry) { applied in
                    if applied {
                        context.reply(.ack(AckResponse(acked: true)))
                    } else {
                        context.fail(.unavailable, "the ack is done in Redis but PostgreSQL has not recorded it yet; retry with the same attempt")
                    }
                }
            case .success(.notInFlight):
                ackFromRecord(request, context)
            case .success(.fenceMismatch(let current)):
                context.fail(.failedPrecondition, Self.fenceMessage(request.attempt, current))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    /// Redis no longer holds the run. A retry of an ack whose entry was
    /// applied meanwhile (its finishing mark is gone, e.g. after a PostgreSQL
    /// outage that made the first call answer UNAVAILABLE) answers as the
    /// first call would have: `acked = true` when the row shows the run
    /// COMPLETED at the fenced attempt. Without a fence, or any other row:
    /// not in flight.
    private func ackFromRecord(_ request: AckRequest, _ context: any EngineCall) {
        guard let fence = request.attempt, recordsReady() else {
            context.reply(.ack(AckResponse(acked: false)))
            return
        }
        records.get(runID: request.runID) { result in
            switch result {
            case .success(let stored):
                let record = stored?.record
                let done = record?.environmentID == request.environmentID && record?.status == .completed && record?.attempt == fence
                context.reply(.ack(AckResponse(acked: done)))
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    func nack(_ request: NackRequest, _ context: any EngineCall) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        guard request.retryAtMs >= 0, request.retryAtMs <= Validation.maxTimestampMs else {
            context.fail(.invalidArgument, "retry_at_ms must be 0 (backoff) or 1..\(Validation.maxTimestampMs) (Unix milliseconds), got \(request.retryAtMs)")
            return
        }
        let shard = store.shards.shard(forEnvironment: request.environmentID)
        store.nack(runID: request.runID, environmentID: request.environmentID, fence: request.attempt,
                   retryAtMs: request.retryAtMs, keepAttempt: request.keepAttempt, now: clock.nowMs(),
                   random: Double.random(in: 0..<1)) { [dequeue, applier] result in
            switch result {
            case .success(.done(let outcome)):
                dequeue.slotFreed(environmentID: request.environmentID)
                applier.waitApplied(shard: shard, entryID: outcome.entryID) { applied in
                    if applied {
                        context.reply(.nack(NackResponse(requeued: !outcome.deadLettered, attempt: outcome.attempt,
                                                         deadLettered: outcome.deadLettered)))
                    } else {
                        context.fail(.unavailable, "the nack is done in Redis but PostgreSQL has not recorded it yet")
                    }
                }
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
    func leaseMs(_ requested: UInt32, _ context: any EngineCall) -> Int64? {
        if requested == 0 { return store.config.defaultLeaseMs }
        guard (1000...86_400_000).contains(requested) else {
            context.fail(.invalidArgument, "lease_ms must be 0 (server default) or 1000..86400000, got \(requested)")
            return nil
        }
        return Int64(requested)
    }

    func heartbeat(_ request: HeartbeatRequest, _ context: any EngineCall) {
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

    func readMessage(_ request: ReadMessageRequest, _ context: any EngineCall) {
        guard validateRun(request.runID, request.environmentID, context) else { return }
        store.read(runID: request.runID, environmentID: request.environmentID, now: clock.nowMs()) { [self] result in
            switch result {
            case .success(let found?):
                context.reply(.readMessage(ReadMessageResponse(message: found.message, source: found.source)))
            case .success(nil):
                self.readFromRecord(request, context)
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    /// The run data fallback: Redis has no message for the run; the row
    /// rebuilds it, with exactly the queue (and concurrency key) it was
    /// enqueued on. Finished runs are not messages any more.
    private func readFromRecord(_ request: ReadMessageRequest, _ context: any EngineCall) {
        let notFound = "run \(request.runID) is not queued or in flight in environment \(request.environmentID)"
        guard recordsReady() else { context.fail(.notFound, notFound); return }
        records.get(runID: request.runID) { result in
            switch result {
            case .success(let stored?) where stored.record.environmentID == request.environmentID
                && (stored.record.status == .queued || stored.record.status == .dequeued):
                let r = stored.record
                let message = RunMessage(runID: r.runID, orgID: r.orgID, projectID: r.projectID, environmentID: r.environmentID,
                                         environmentType: r.environmentType, queue: r.queue, concurrencyKey: r.concurrencyKey,
                                         taskIdentifier: r.taskIdentifier, workerQueue: r.workerQueue,
                                         timestampMs: r.timestampMs, attempt: r.attempt, leaseExpiresAtMs: 0)
                context.reply(.readMessage(ReadMessageResponse(message: message, source: .postgres)))
            case .success:
                context.fail(.notFound, notFound)
            case .failure(let error):
                context.fail(error.code, error.message)
            }
        }
    }

    func getRun(_ request: GetRunRequest, _ context: any EngineCall) {
        do {
            try Validation.identifier(request.runID, field: "run_id")
        } catch {
            context.fail(.invalidArgument, error.message)
            return
        }
        guard requireRecords(context) else { return }
        records.get(runID: request.runID) { result in
            switch result {
            case .success(let stored?): context.reply(.getRun(GetRunResponse(run: stored.record)))
            case .success(nil): context.fail(.notFound, "run \(request.runID) does not exist")
            case .failure(let error): context.fail(error.code, error.message)
            }
        }
    }

    func queueStats(_ request: QueueStatsRequest, _ context: any EngineCall) {
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

    func setConcurrencyLimit(_ request: SetConcurrencyLimitRequest, _ context: any EngineCall) {
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
        guard requireRecords(context) else { return }
        let stored: (limit: UInt32?, burst: Double?)
        switch change {
        case .set(let limit, let burst): stored = (limit, burst > 0 ? burst : nil)
        case .clear: stored = (nil, nil)
        }
        records.setLimit(environmentID: request.environmentID, queue: request.queue, limit: stored.limit,
                         burstFactor: stored.burst, now: clock.nowMs()) { [store, dequeue] recorded in
            if case .failure(let error) = recorded {
                context.fail(error.code, error.message)
                return
            }
            store.setLimit(environmentID: request.environmentID, queue: request.queue, change: change) { result in
                switch result {
                case .success:
                    dequeue.slotFreed(environmentID: request.environmentID)
                    context.reply(.setConcurrencyLimit(SetConcurrencyLimitResponse()))
                case .failure(let error):
                    context.fail(error.code, "the limit is stored but Redis did not take it (\(error.message)); retry")
                }
            }
        }
    }

    func redrive(_ request: RedriveRequest, _ context: any EngineCall) {
        guard validateRun(request.runID, request.environmentID, context), requireRecords(context) else { return }
        let now = clock.nowMs()
        records.redrive(runID: request.runID, environmentID: request.environmentID, now: now) { [self] result in
            switch result {
            case .failure(let error):
                context.fail(error.code, error.message)
            case .success(nil):
                redriveAgain(request, now: now, context)
            case .success(let stored?):
                queueRedriven(stored, now: now, refusedIfPresent: nil, context)
            }
        }
    }
}

extension QueueEngine {
    /// The row is not DEAD_LETTERED (any more). A retry of a Redrive whose
    /// first call updated the row and then failed in Redis finds it QUEUED
    /// and missing from Redis: the run is added now and the answer is the
    /// first call's, requeued = true. A run Redis holds in any form (queued,
    /// in flight, finishing) is not dead-lettered: FAILED_PRECONDITION.
    func redriveAgain(_ request: RedriveRequest, now: Int64, _ context: any EngineCall) {
        let refused = "run \(request.runID) is not dead-lettered in environment \(request.environmentID)"
        records.get(runID: request.runID) { [self] result in
            switch result {
            case .failure(let error):
                context.fail(error.code, error.message)
            case .success(let stored?) where stored.record.status == .queued && stored.record.environmentID == request.environmentID:
                queueRedriven(stored, now: now, refusedIfPresent: refused, context)
            case .success:
                context.fail(.failedPrecondition, refused)
            }
        }
    }

    /// Adds a redriven run to Redis and answers the Redrive. Right after the
    /// row moved back from DEAD_LETTERED (`refusedIfPresent` nil) the script
    /// runs in redrive mode, which clears the dead letter's stale finishing
    /// mark; on a retry a run Redis already holds is refused with that message.
    private func queueRedriven(_ stored: RunRecords.StoredRun, now: Int64, refusedIfPresent: String?, _ context: any EngineCall) {
        let item = QueueStore.EnqueueItem(run: stored.descriptor, expiresAtMs: nil)
        store.enqueue([item], now: now, redrive: refusedIfPresent == nil) { [dequeue] results in
            switch results.first {
            case .success(let added)?:
                if !added, let refusedIfPresent {
                    context.fail(.failedPrecondition, refusedIfPresent)
                    return
                }
                dequeue.runsAdded(workerQueue: item.run.workerQueue, environmentID: item.run.environmentID)
                context.reply(.redrive(RedriveResponse(requeued: true)))
            case .failure(let error)?:
                context.fail(.unavailable, "\(Self.notQueuedYet) (\(error.message))")
            case nil:
                context.fail(.internal, "redrive produced no result")
            }
        }
    }

    func dequeue(_ request: DequeueRequest, _ context: any EngineCall) {
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
