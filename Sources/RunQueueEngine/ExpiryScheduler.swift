// ExpiryScheduler: the deadline-driven TTL system of one server instance.
//
// Per shard one timer, armed at the shard's next TTL deadline (what the
// expire script answers), never later than the poll interval, so a deadline
// written elsewhere (another instance, a rebuild) is seen within that bound.
// When it fires, expire.lua expires up to `batchSize` due runs of the shard in
// one step; while the answer says more is due, batches run back to back.
// After each call that expired something the OutboxApplier is kicked for that
// shard, so PostgreSQL shows the runs EXPIRED (and their events appended)
// within milliseconds rather than at the applier's next tick.
//
// Enqueues that arm a TTL nudge the timer (`deadlineArmed`), so a short TTL
// fires on time even when the timer was armed later.
//
// Several instances: each shard's timer is held by one instance at a time
// through a lease key in Redis (`{rqN}:ttllease`, SET NX PX, renewed by the
// holder), taken over within `leaseMs` when the holder dies and released at
// shutdown. The lease is an efficiency, not a correctness, device: the
// expire script is atomic, so two instances expiring one shard at once
// would still expire each run once.
//
// Operators: one log line per interval with a shard's expired count, the
// outbox length and the lateness of the oldest deadline expired (item 7).
// Loop thread only.
import Foundation
import Logging
import RunQueueCore
import RunQueueStorage
import UVLoop

final class ExpiryScheduler {
    struct Settings {
        var pollIntervalMs: UInt64 = 1000
        var batchSize = 100
        /// How long a lease lasts without renewal (the takeover bound).
        var leaseMs: Int64 = 5000
        var eventRetentionMs: Int64 = 7 * 86_400_000
        var statsIntervalMs: UInt64 = 10_000
    }

    private let loop: EventLoop
    private let store: QueueStore
    private let records: RunRecords
    private let clock: ServiceClock
    private let logger: Logger
    private let settings: Settings
    weak var applier: OutboxApplier?
    /// This instance's identity in the leases.
    let owner = UUID().uuidString
    private var shards: [ShardState]
    private var statsTimer: LoopTimer?
    private var pruneTimer: LoopTimer?
    private var closed = false

    private final class ShardState {
        let timer: LoopTimer
        /// Service-clock ms the timer is armed for (nil = not armed).
        var armedFor: Int64?
        /// A lease check or expire call is in progress.
        var running = false
        /// A deadline nudged in while running (armed when the pass ends).
        var pending: Int64?
        /// Until when (service clock) this instance holds the shard's lease.
        var leaseUntil: Int64 = 0
        var leaseRenewedAt: Int64 = 0
        // Counters since the last stats line.
        var expired = 0
        var maxLagMs: Int64 = 0
        var outboxLength = 0
        var failing = false
        init(timer: LoopTimer) { self.timer = timer }
    }

    init(loop: EventLoop, store: QueueStore, records: RunRecords, clock: ServiceClock, logger: Logger, settings: Settings) {
        self.loop = loop
        self.store = store
        self.records = records
        self.clock = clock
        self.logger = logger
        self.settings = settings
        shards = (0..<store.shards.shardCount).map { _ in ShardState(timer: LoopTimer(loop: loop)) }
    }

    /// Starts every shard's timer (staggered over the poll interval) and the stats and prune timers.
    func start() {
        let now = clock.nowMs()
        let count = max(1, shards.count)
        for shard in 0..<shards.count {
            arm(shard, at: now + Int64(settings.pollIntervalMs) * Int64(shard) / Int64(count))
        }
        let stats = LoopTimer(loop: loop)
        stats.start(afterMs: settings.statsIntervalMs, repeatMs: settings.statsIntervalMs) { [unowned self] in logStats() }
        statsTimer = stats
        let prune = LoopTimer(loop: loop)
        prune.start(afterMs: 60_000, repeatMs: 60_000) { [unowned self] in pruneEvents() }
        pruneTimer = prune
    }

    /// An enqueue armed a TTL deadline on `shard`: make sure the timer fires by then.
    func deadlineArmed(shard: Int, atMs deadline: Int64) {
        guard !closed, shard >= 0, shard < shards.count else { return }
        arm(shard, at: deadline)
    }

    func deadlineArmed(environmentID: String, atMs deadline: Int64) {
        deadlineArmed(shard: store.shards.shard(forEnvironment: environmentID), atMs: deadline)
    }

    /// Arms the shard's timer at `deadline` (capped by the poll interval)
    /// unless it is already armed for an earlier moment. During a pass the
    /// deadline is kept and considered when the pass re-arms.
    private func arm(_ shard: Int, at deadline: Int64) {
        let state = shards[shard]
        if state.running {
            state.pending = min(state.pending ?? .max, deadline)
            return
        }
        let target = min(deadline, clock.nowMs().addingSaturating(Int64(settings.pollIntervalMs)))
        if let armed = state.armedFor, armed <= target { return }
        state.armedFor = target
        state.timer.start(afterMs: clock.msUntil(target)) { [unowned self] in fire(shard) }
    }

    private func fire(_ shard: Int) {
        let state = shards[shard]
        state.timer.stop()
        state.armedFor = nil
        guard !closed else { return }
        if state.running {
            state.pending = min(state.pending ?? .max, clock.nowMs())
            return
        }
        state.running = true
        withLease(shard) { [unowned self] lease in
            guard !closed else { return }
            switch lease {
            case .held: pass(shard)
            // Another instance holds the shard: look again within the poll interval.
            case .heldElsewhere: finish(shard, next: .max)
            case .unreachable: finish(shard, next: retryAt())
            }
        }
    }

    enum Lease { case held, heldElsewhere, unreachable }

    /// When a pass that could not reach Redis tries again: within a second,
    /// so expiry resumes soon after Redis is back whatever the poll interval.
    private func retryAt() -> Int64 {
        clock.nowMs().addingSaturating(Int64(min(settings.pollIntervalMs, 1000)))
    }

    /// Calls `body(.held)` when this instance holds the shard's lease (renewing it when a third of it has passed).
    private func withLease(_ shard: Int, _ body: @escaping (Lease) -> Void) {
        let state = shards[shard]
        let now = clock.nowMs()
        if state.leaseUntil > now && now - state.leaseRenewedAt < settings.leaseMs / 3 {
            body(.held)
            return
        }
        store.expiryLease(shard: shard, owner: owner, ttlMs: settings.leaseMs) { [unowned self] result in
            switch result {
            case .success(true):
                if state.leaseUntil <= now { logger.debug("expiry lease taken", metadata: ["shard": "\(shard)", "owner": "\(owner)"]) }
                state.leaseUntil = now + settings.leaseMs
                state.leaseRenewedAt = now
                body(.held)
            case .success(false):
                state.leaseUntil = 0
                body(.heldElsewhere)
            case .failure:
                body(.unreachable)
            }
        }
    }

    private func pass(_ shard: Int) {
        let state = shards[shard]
        let now = clock.nowMs()
        store.expire(shard: shard, now: now, batch: settings.batchSize) { [unowned self] result in
            guard !closed else { return }
            switch result {
            case .failure(let error):
                if !state.failing {
                    logger.warning("expiry pass failed; retrying", metadata: ["shard": "\(shard)", "error": "\(error)"])
                }
                state.failing = true
                finish(shard, next: retryAt())
            case .success(let answer):
                state.failing = false
                state.outboxLength = answer.outboxLength
                if answer.expired > 0 {
                    state.expired += answer.expired
                    if let oldest = answer.oldestExpiredDeadlineMs { state.maxLagMs = max(state.maxLagMs, now - oldest) }
                    applier?.kick(shard)
                }
                // A next deadline <= now: the batch ran out with work due; go again at once.
                finish(shard, next: answer.nextDeadlineMs ?? .max)
            }
        }
    }

    private func finish(_ shard: Int, next: Int64) {
        let state = shards[shard]
        state.running = false
        let pending = state.pending ?? .max
        state.pending = nil
        guard !closed else { return }
        arm(shard, at: min(next, pending))
    }

    private func logStats() {
        for (shard, state) in shards.enumerated() where state.expired > 0 || state.outboxLength > 0 {
            logger.info("expiry", metadata: ["shard": "\(shard)", "expired": "\(state.expired)",
                                             "outbox_length": "\(state.outboxLength)", "max_lag_ms": "\(state.maxLagMs)"])
            state.expired = 0
            state.maxLagMs = 0
        }
    }

    private func pruneEvents() {
        records.pruneExpiryEvents(before: clock.nowMs() - settings.eventRetentionMs, limit: 1000) { [weak self] result in
            guard let self, case .success(let deleted) = result, deleted > 0 else { return }
            logger.info("pruned expiry events", metadata: ["rows": "\(deleted)"])
            if deleted == 1000 && !closed { pruneEvents() }
        }
    }

    /// Stops the timers and gives back the leases this instance holds, so
    /// another instance takes the shards over at once; `done` runs when Redis
    /// answered (or could not be asked), before the store connections close.
    func close(_ done: @escaping () -> Void = {}) {
        guard !closed else { done(); return }
        closed = true
        statsTimer?.close()
        pruneTimer?.close()
        var pending = 1
        let finished = { pending -= 1; if pending == 0 { done() } }
        for (shard, state) in shards.enumerated() {
            state.timer.close()
            if state.leaseUntil > clock.nowMs() {
                pending += 1
                store.releaseExpiryLease(shard: shard, owner: owner) { _ in finished() }
            }
        }
        finished()
    }
}
