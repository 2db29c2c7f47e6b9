// DequeueCoordinator: Dequeue across shards, and its long poll.
//
// A claim takes the shards in a rotating order per worker queue (the start
// moves by one each call) and asks them at once, pipelined, for shares that
// add up to exactly what is still wanted (remaining / shards, the first ones
// one more; with fewer wanted than shards, only the first ones are asked).
// A shard that gave less than its share is remembered as empty for that
// worker queue and skipped until something may have changed there; the next
// pass asks the shards not asked yet, then those that gave their full share,
// until the request is filled or a pass finds nothing more ("never fewer
// when more are available"). Asking at once instead of one shard after
// another keeps a Dequeue to about one Redis round trip.
//
// Wake-ups instead of polling: a waiting Dequeue is served again when a run
// may have become claimable for its worker queue: a local enqueue, an
// announcement from any instance's script on the wake channel (new due runs,
// freed slots, an earlier due time), or a shard's next due time (a delayed
// run, a retry, a lease deadline) reached on a timer. A housekeeping pass
// every second applies lapses on every shard and forgets the empty-shard
// hints, which bounds how long a lost announcement can delay a run.
//
// Gate: Redis is checked against PostgreSQL (and rebuilt where it lost its
// state) before Dequeue is served (docs/durability.md). Until the start-up
// checks are done (epochs, rebuilds, the reconciler's first pass), a
// Dequeue, whatever its wait_ms, is held, at most `gateMs`
// (RUNQUEUE_REBUILD_HOLD_MS): an answer of "nothing" from a Redis not yet
// rebuilt would tell a worker there is no work. Later, shards found lost are
// rebuilt while the others serve: a Dequeue that finds runs answers at once;
// one that finds nothing while shards are being rebuilt is held until their
// rebuild ends (at most `gateMs`), then looks again.
//
// A claim whose call was cancelled or whose connection closed while the
// script ran gives its runs back at once (release.lua: no extra attempt), so
// nothing is leased that is not delivered.
internal import DequeModule
import Logging
import RunQueueCore
import RunQueueStorage
import UVLoop

final class DequeueCoordinator {
    /// Upper bound of one RunMessage on the wire: nine fields of at most 128
    /// bytes (with tag and length) plus the numbers and the repeated-field header.
    static let maxRunMessageBytes = 1250

    let loop: EventLoop
    private let store: QueueStore
    private let clock: ServiceClock
    private let logger: Logger
    private let shardCount: Int
    let maxRunsPerFrame: Int
    private var rotation: [String: Int] = [:]
    private var emptyHint: [String: Set<Int>] = [:]
    private var waiters: [String: Deque<Waiter>] = [:]
    private var serving: Set<String> = []
    private var shardWake: [Int: Int64] = [:]
    private var wakeTimer: LoopTimer?
    private var housekeeping: LoopTimer?
    private var closed = false
    private var draining = false
    private var freedShards: Set<Int> = []
    private var freedTimer: LoopTimer?
    /// Dequeues held until Redis is checked (and rebuilt); nil while the gate is open.
    /// `held`: the call was already sent back to the gate once by a claim
    /// that met a lost Redis (it is not held a second time: a rebuild that
    /// keeps failing must not keep a call forever).
    private var gated: [(request: DequeueRequest, leaseMs: Int64, context: any EngineCall, held: Bool)]? = []
    private var gateTimer: LoopTimer?
    /// Shards being rebuilt from PostgreSQL after Redis was found lost.
    private var rebuildingShards: Set<Int> = []
    /// Dequeues that found nothing while shards were being rebuilt.
    private var awaitingRebuild: [(request: DequeueRequest, leaseMs: Int64, context: any EngineCall)] = []
    private var rebuildHoldTimer: LoopTimer?
    /// Longest a Dequeue is held at the gate.
    private let gateMs: UInt64
    /// Writes the outbox entries claims, lapses and releases append.
    var applier: OutboxApplier?
    /// A claim met a shard whose epoch does not match (its Redis state was lost).
    var onEpochMismatch: ((Int) -> Void)?
    /// Some server armed a TTL deadline in a shard (the wake channel's "x").
    var onTTLArmed: ((Int, Int64) -> Void)?

    final class Waiter {
        let context: any EngineCall
        let workerQueue: String
        let count: Int
        let leaseMs: Int64
        let waitMs: UInt32
        var timer: LoopTimer?
        var timedOut = false
        var waiting = false

        init(context: any EngineCall, workerQueue: String, count: Int, leaseMs: Int64, waitMs: UInt32) {
            self.context = context
            self.workerQueue = workerQueue
            self.count = count
            self.leaseMs = leaseMs
            self.waitMs = waitMs
        }
    }

    init(loop: EventLoop, store: QueueStore, clock: ServiceClock, logger: Logger, maxFrameBytes: Int, housekeepingMs: UInt64,
         gateMs: UInt64) {
        self.loop = loop
        self.gateMs = gateMs
        self.store = store
        self.clock = clock
        self.logger = logger
        shardCount = store.shards.shardCount
        maxRunsPerFrame = max(1, (maxFrameBytes - 64) / Self.maxRunMessageBytes)
        let housekeeping = LoopTimer(loop: loop)
        housekeeping.start(afterMs: 0, repeatMs: housekeepingMs) { [unowned self] in housekeep() }
        self.housekeeping = housekeeping
        wakeTimer = LoopTimer(loop: loop)
        armGateTimer()
    }

    /// Long polls waiting for runs now.
    var waitingCount: Int { waiters.values.reduce(0) { $0 + $1.count } }

    /// Every shard is being checked (Redis reconnected): hold Dequeues until `openGate`.
    func closeGate() {
        guard gated == nil, !draining else { return }
        gated = []
        armGateTimer()
    }

    /// Shards found lost; their rebuild is coming.
    func rebuildStarted(_ shards: Set<Int>) {
        rebuildingShards.formUnion(shards)
    }

    private func armGateTimer() {
        gateTimer = loop.schedule(afterMs: gateMs) { [unowned self] in
            gateTimer = nil
            if gated != nil { logger.warning("serving Dequeue before the check or rebuild of Redis finished") }
            openGate()
        }
    }

    /// Redis is checked (and rebuilt where needed): serve what waited for it.
    func openGate() {
        gateTimer?.close()
        gateTimer = nil
        guard let waiting = gated else { return }
        gated = nil
        for call in waiting where !call.context.isCancelled {
            dequeue(call.request, leaseMs: call.leaseMs, call.context, held: call.held)
        }
        for workerQueue in Array(waiters.keys) { serve(workerQueue) }
    }

    // MARK: Dequeue

    func dequeue(_ request: DequeueRequest, leaseMs: Int64, _ context: any EngineCall, held: Bool = false) {
        if gated != nil, !draining {
            gated?.append((request, leaseMs, context, held))
            return
        }
        let waiter = Waiter(context: context, workerQueue: request.workerQueue,
                            count: min(Int(request.maxRuns), maxRunsPerFrame), leaseMs: leaseMs, waitMs: request.waitMs)
        context.onCancel = { [unowned self] in drop(waiter) }
        claim(for: waiter) { [unowned self] result in
            switch result {
            case .failure(let error):
                context.fail(error.code, error.message)
            case .success(let runs) where runs.isEmpty && gated != nil && !held && !context.isCancelled:
                // Its claim met a Redis being checked at start: served once the check is done.
                context.onCancel = nil
                gated?.append((request, leaseMs, context, true))
            case .success(let runs) where runs.isEmpty && !rebuildingShards.isEmpty && !held && !context.isCancelled:
                // Nothing here, and shards are being rebuilt: it looks again once they are.
                context.onCancel = nil
                awaitRebuild(request, leaseMs, context)
            case .success(let runs) where !runs.isEmpty || request.waitMs == 0:
                context.reply(.dequeue(DequeueResponse(messages: runs)))
            case .success:
                wait(waiter)
            }
        }
    }

    private func wait(_ waiter: Waiter) {
        guard !waiter.context.isCancelled else { return }
        if draining {
            waiter.context.reply(.dequeue(DequeueResponse(messages: [])))
            return
        }
        waiter.waiting = true
        waiters[waiter.workerQueue, default: []].append(waiter)
        waiter.timer = loop.schedule(afterMs: UInt64(waiter.waitMs)) { [unowned self] in
            // A claim in flight for it answers with what it finds.
            waiter.timer = nil
            waiter.timedOut = true
            if waiter.waiting {
                remove(waiter)
                waiter.context.reply(.dequeue(DequeueResponse(messages: [])))
            }
        }
    }

    private func remove(_ waiter: Waiter) {
        waiter.waiting = false
        waiter.timer?.close()
        waiter.timer = nil
        waiters[waiter.workerQueue]?.removeAll { $0 === waiter }
        if waiters[waiter.workerQueue]?.isEmpty == true { waiters[waiter.workerQueue] = nil }
    }

    /// The call was cancelled or its connection closed: forget it. A claim in
    /// flight for it releases its runs when it returns.
    private func drop(_ waiter: Waiter) {
        remove(waiter)
    }

    /// Serves the waiters of `workerQueue` in arrival order while claims find runs.
    private func serve(_ workerQueue: String) {
        // While the gate is closed no claim runs: it opens with a pass over every waiter.
        guard gated == nil, !serving.contains(workerQueue), let waiter = waiters[workerQueue]?.popFirst() else { return }
        if waiters[workerQueue]?.isEmpty == true { waiters[workerQueue] = nil }
        waiter.waiting = false
        serving.insert(workerQueue)
        claim(for: waiter) { [unowned self] result in
            serving.remove(workerQueue)
            if waiter.context.isCancelled {
                serve(workerQueue)
                return
            }
            switch result {
            case .failure(let error):
                waiter.timer?.close()
                waiter.context.fail(error.code, error.message)
                serve(workerQueue)
            case .success(let runs) where !runs.isEmpty || waiter.timedOut:
                waiter.timer?.close()
                waiter.context.reply(.dequeue(DequeueResponse(messages: runs)))
                serve(workerQueue)
            case .success:
                // Nothing for the first in line: nothing for the others either.
                waiter.waiting = true
                waiters[workerQueue, default: []].prepend(waiter)
            }
        }
    }

    // MARK: Claims across shards

    private func claim(for waiter: Waiter, _ completion: @escaping (Result<[RunMessage], QueueStoreError>) -> Void) {
        let workerQueue = waiter.workerQueue
        let start = rotation[workerQueue, default: 0]
        rotation[workerQueue] = (start + 1) % shardCount
        let order = ClaimPlan.order(shardCount: shardCount, start: start, skipping: emptyHint[workerQueue] ?? [])
        let leaseDeadline = clock.nowMs() + waiter.leaseMs
        var collected: [RunMessage] = []

        func finish(_ result: Result<[RunMessage], QueueStoreError>) {
            if waiter.context.isCancelled, case .success(let runs) = result, !runs.isEmpty {
                giveBack(runs)
                completion(.success([]))
                return
            }
            completion(result)
        }

        // One pass asks its shards at once (pipelined on the connection);
        // ClaimPlan says which and for how many.
        func pass(_ shards: [Int]) {
            // A call cancelled between passes asks no more shards: a later
            // pass could lease a run enqueued after the CANCELLED answer.
            guard !waiter.context.isCancelled, let plan = ClaimPlan(remaining: waiter.count - collected.count, shards: shards) else {
                finish(.success(collected))
                return
            }
            var given = [Int](repeating: 0, count: plan.visits.count)
            var left = plan.visits.count
            var failure: QueueStoreError?
            let now = clock.nowMs()
            for (index, visit) in plan.visits.enumerated() {
                let (shard, share) = (visit.shard, visit.share)
                store.claim(shard: shard, workerQueue: workerQueue, count: share, leaseDeadlineMs: leaseDeadline, now: now,
                            seed: UInt64.random(in: 0...UInt64(UInt32.max))) { [unowned self] result in
                    switch result {
                    case .failure(let error):
                        failure = error
                    case .success(let claim) where !claim.epochMatched:
                        // Not served until rebuilt from PostgreSQL; counts as empty.
                        onEpochMismatch?(shard)
                        emptyHint[workerQueue, default: []].insert(shard)
                    case .success(let claim):
                        if let wake = claim.nextWakeMs { noteWake(shard: shard, at: wake) }
                        if !claim.messages.isEmpty { applier?.kick(shard) }
                        collected.append(contentsOf: claim.messages)
                        given[index] = claim.messages.count
                        if claim.messages.count < share { emptyHint[workerQueue, default: []].insert(shard) }
                    }
                    left -= 1
                    guard left == 0 else { return }
                    if let failure {
                        finish(collected.isEmpty ? .failure(failure) : .success(collected))
                        return
                    }
                    pass(plan.nextShards(given: given))
                }
            }
        }
        pass(order)
    }

    private func giveBack(_ runs: [RunMessage]) {
        var byShard: [Int: [String]] = [:]
        for run in runs { byShard[store.shards.shard(forEnvironment: run.environmentID), default: []].append(run.runID) }
        for (shard, ids) in byShard {
            store.release(shard: shard, runIDs: ids, now: clock.nowMs()) { [unowned self] result in
                switch result {
                case .success:
                    applier?.kick(shard)
                    shardChanged(shard)
                case .failure(let error):
                    logger.warning("could not release undelivered runs; their leases will lapse",
                                   metadata: ["shard": "\(shard)", "error": "\(error)"])
                }
            }
        }
    }

    // MARK: Wake-ups

    /// A local enqueue added due runs for `workerQueue`.
    func runsAdded(workerQueue: String, environmentID: String) {
        emptyHint[workerQueue]?.remove(store.shards.shard(forEnvironment: environmentID))
        serve(workerQueue)
    }

    /// Slots were freed or limits changed in an environment: any worker queue
    /// of its shard may have claimable work. Coalesced per loop iteration:
    /// a batch of acks frees many slots at once.
    func slotFreed(environmentID: String) {
        freedShards.insert(store.shards.shard(forEnvironment: environmentID))
        guard freedTimer == nil, !closed else { return }
        freedTimer = loop.schedule(afterMs: 0) { [unowned self] in
            freedTimer = nil
            let shards = freedShards
            freedShards.removeAll()
            for shard in shards { shardChanged(shard) }
        }
    }

    /// An announcement from the wake channel (any instance's script).
    func announcement(_ payload: [UInt8]) {
        let parts = String(decoding: payload, as: UTF8.self).split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let shard = store.shard(fromTag: parts[1]) else { return }
        switch parts[0] {
        case "w":
            let workerQueue = String(parts[2])
            emptyHint[workerQueue]?.remove(shard)
            serve(workerQueue)
        case "s":
            if let at = Int64(parts[2]) { noteWake(shard: shard, at: at) }
        case "x":
            if let at = Int64(parts[2]) { onTTLArmed?(shard, at) }
        default:
            break
        }
    }

    /// Shards were rebuilt from PostgreSQL (or runs re-added): look again.
    func shardsRebuilt(_ shards: Set<Int>) {
        rebuildingShards.subtract(shards)
        for shard in shards { shardChanged(shard) }
        if rebuildingShards.isEmpty { releaseAwaitingRebuild() }
    }

    /// The reconciler added runs to these shards.
    func runsAdded(shards: Set<Int>) {
        for shard in shards { shardChanged(shard) }
    }

    private func awaitRebuild(_ request: DequeueRequest, _ leaseMs: Int64, _ context: any EngineCall) {
        awaitingRebuild.append((request, leaseMs, context))
        guard rebuildHoldTimer == nil else { return }
        rebuildHoldTimer = loop.schedule(afterMs: gateMs) { [unowned self] in
            rebuildHoldTimer = nil
            if !awaitingRebuild.isEmpty { logger.warning("serving Dequeue before the rebuild of Redis finished") }
            releaseAwaitingRebuild()
        }
    }

    private func releaseAwaitingRebuild() {
        rebuildHoldTimer?.close()
        rebuildHoldTimer = nil
        let waiting = awaitingRebuild
        awaitingRebuild.removeAll()
        for call in waiting where !call.context.isCancelled {
            dequeue(call.request, leaseMs: call.leaseMs, call.context, held: true)
        }
    }

    /// The wake channel reconnected: announcements may have been missed.
    func forgetHints() {
        emptyHint.removeAll()
        for workerQueue in Array(waiters.keys) { serve(workerQueue) }
    }

    private func shardChanged(_ shard: Int) {
        for key in Array(emptyHint.keys) { emptyHint[key]?.remove(shard) }
        for workerQueue in Array(waiters.keys) { serve(workerQueue) }
    }

    private func noteWake(shard: Int, at: Int64) {
        if let known = shardWake[shard], known <= at { return }
        shardWake[shard] = at
        armWakeTimer()
    }

    private func armWakeTimer() {
        guard !closed, let next = shardWake.values.min(), let timer = wakeTimer else { return }
        timer.start(afterMs: clock.msUntil(next)) { [unowned self] in wakeDueShards() }
    }

    private func wakeDueShards() {
        let now = clock.nowMs()
        let due = shardWake.filter { $0.value <= now }.map(\.key)
        for shard in due {
            shardWake[shard] = nil
            lapse(shard: shard)
            shardChanged(shard)
        }
        armWakeTimer()
    }

    private func lapse(shard: Int) {
        store.lapse(shard: shard, now: clock.nowMs()) { [unowned self] result in
            switch result {
            case .success(let wake?): noteWake(shard: shard, at: wake)
            case .success(nil): break
            case .failure(let error):
                logger.debug("lapse pass failed", metadata: ["shard": "\(shard)", "error": "\(error)"])
            }
        }
    }

    private func housekeep() {
        guard store.redis.isConnected else { return }
        emptyHint.removeAll()
        for shard in 0..<shardCount { lapse(shard: shard) }
        for workerQueue in Array(waiters.keys) { serve(workerQueue) }
    }

    /// The server is shutting down: waiting long polls answer now with
    /// nothing, and new ones do not wait.
    func drain() {
        draining = true
        openGate()
        rebuildHoldTimer?.close()
        rebuildHoldTimer = nil
        let held = awaitingRebuild
        awaitingRebuild.removeAll()
        for call in held where !call.context.isCancelled { call.context.reply(.dequeue(DequeueResponse(messages: []))) }
        let all = waiters.values.flatMap { $0 }
        waiters.removeAll()
        for waiter in all {
            waiter.waiting = false
            waiter.timer?.close()
            waiter.timer = nil
            waiter.context.reply(.dequeue(DequeueResponse(messages: [])))
        }
    }

    func close() {
        drain()
        closed = true
        freedTimer?.close()
        freedTimer = nil
        housekeeping?.close()
        housekeeping = nil
        wakeTimer?.close()
        wakeTimer = nil
    }
}
