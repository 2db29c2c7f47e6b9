// Maintenance: the background work that keeps Redis and PostgreSQL honest.
//
// - Epoch: at start the deployment's epoch is read from PostgreSQL (created
//   on first start); every shard whose Redis epoch differs is rebuilt from
//   PostgreSQL (Rebuilder) before its claims serve again. Claims report a
//   mismatch they meet later (Redis lost while running) and that shard is
//   rebuilt the same way.
// - Reconciler: every `reconcileIntervalMs`, QUEUED rows that Redis holds in
//   no form are added back (an Enqueue whose Redis step failed after the row
//   was committed, or whose server died in between). It walks rows by
//   (created_at, id) from a cursor that only moves forward: the first pass
//   starts 10 minutes back, each pass reads up to the rows created 5 s ago
//   (older than any commit still on its way), so every row is looked at once
//   instead of the whole window every pass (at 20,000 runs/s a 10-minute
//   window is 12 million rows). A row is re-added only if it is still QUEUED
//   with the same last_seq after Redis was checked, so a change applied
//   meanwhile is never undone. At most `reconcilePages` pages of
//   `reconcileBatch` rows per pass; a cursor more than 10 minutes behind
//   skips ahead (rows that old are not "recent"). A failed pass leaves the
//   cursor where it was.
// - Retention: finished rows older than `retentionMs` are deleted in bounded
//   batches every minute.
import Foundation
import Logging
import RunQueueStorage
import UVLoop

final class Maintenance {
    private let loop: EventLoop
    private let store: QueueStore
    private let records: RunRecords
    private let clock: ServiceClock
    private let logger: Logger
    private let rebuilder: Rebuilder
    private let retentionMs: Int64
    private let reconcileBatch = 500
    private let reconcilePages = 10
    private let reconcileWindowMs: Int64 = 600_000
    /// Rows younger than this may still be on their way to Redis.
    private let reconcileGraceMs: Int64 = 5_000
    private var reconciling = false
    private var epochKnown = false
    private var rebuilding: Set<Int> = []
    private var reconcileCursor: (createdAt: Int64, id: String)?
    /// False only for the benchmark mode that discards the applier's writes.
    private let reconciles: Bool
    private var timers: [LoopTimer] = []
    /// Called with the shards a rebuild restored (waiting claims may look again).
    var onRebuilt: ((Set<Int>) -> Void)?
    /// Called when a rebuild starts (claims should wait for it).
    var onRebuildStarted: (() -> Void)?
    /// Called once the start-up check of every shard's epoch is done (and the
    /// shards that lacked it rebuilt, or their rebuild failed), and again
    /// whenever no rebuild is running any more.
    var onRedisChecked: (() -> Void)?

    init(loop: EventLoop, store: QueueStore, records: RunRecords, clock: ServiceClock, logger: Logger,
         retentionMs: Int64, reconcileIntervalMs: UInt64, reconciles: Bool = true) {
        self.loop = loop
        self.reconciles = reconciles
        self.store = store
        self.records = records
        self.clock = clock
        self.logger = logger
        self.retentionMs = retentionMs
        rebuilder = Rebuilder(store: store, records: records)
        let reconciler = LoopTimer(loop: loop)
        reconciler.start(afterMs: reconcileIntervalMs, repeatMs: reconcileIntervalMs) { [unowned self] in reconcile() }
        let pruner = LoopTimer(loop: loop)
        pruner.start(afterMs: 60_000, repeatMs: 60_000) { [unowned self] in prune() }
        timers = [reconciler, pruner]
    }

    /// PostgreSQL is ready: learn the epoch, rebuild shards that lack it, then
    /// reconcile (a rebuild already re-adds every active row of its shards,
    /// so after one the reconciler waits for its timer).
    func postgresReady() {
        let proposed = UUID().uuidString
        records.epoch(proposed: proposed) { [self] result in
            switch result {
            case .failure(let error):
                logger.warning("cannot read the epoch; claims wait", metadata: ["error": "\(error)"])
            case .success(let epoch):
                store.epoch = epoch
                epochKnown = true
                checkEpochs()
            }
        }
    }

    private func checkEpochs() {
        var stale: Set<Int> = []
        var left = store.shards.shardCount
        for shard in 0..<store.shards.shardCount {
            store.epoch(shard: shard) { [self] result in
                if case .success(let value) = result, value != store.epoch { stale.insert(shard) }
                left -= 1
                guard left == 0 else { return }
                if stale.isEmpty {
                    onRedisChecked?()
                    reconcile()
                } else {
                    rebuild(stale)
                }
            }
        }
    }

    /// A claim found a shard whose epoch does not match.
    func epochMismatch(shard: Int) {
        guard epochKnown else { return }
        rebuild([shard])
    }

    private func rebuild(_ shards: Set<Int>) {
        let todo = shards.subtracting(rebuilding)
        guard !todo.isEmpty else { return }
        rebuilding.formUnion(todo)
        onRebuildStarted?()
        logger.notice("rebuilding Redis shards from PostgreSQL", metadata: ["shards": "\(todo.sorted())"])
        rebuilder.rebuild(shards: todo, epoch: store.epoch, now: clock.nowMs()) { [self] result in
            rebuilding.subtract(todo)
            switch result {
            case .success(let report):
                logger.notice("rebuild done", metadata: ["shards": "\(todo.sorted())", "scanned": "\(report.scanned)",
                                                         "added": "\(report.added)", "limits": "\(report.limits)"])
                onRebuilt?(todo)
            case .failure(let error):
                logger.error("rebuild failed; retrying on the next claim", metadata: ["error": "\(error)"])
            }
            if rebuilding.isEmpty { onRedisChecked?() }
        }
    }

    private func reconcile() {
        // While a rebuild runs it re-adds the same rows: no second walk beside it.
        guard reconciles, epochKnown, !reconciling, rebuilding.isEmpty else { return }
        let now = clock.nowMs()
        var cursor = reconcileCursor ?? (now - reconcileWindowMs, "")
        if cursor.createdAt < now - reconcileWindowMs { cursor = (now - reconcileWindowMs, "") }
        reconciling = true
        reconcilePage(from: cursor, before: now - reconcileGraceMs, pagesLeft: reconcilePages)
    }

    private func reconcilePage(from cursor: (createdAt: Int64, id: String), before: Int64, pagesLeft: Int) {
        guard cursor.createdAt < before, pagesLeft > 0 else {
            reconciling = false
            return
        }
        records.recentQueued(after: cursor, before: before, limit: reconcileBatch) { [self] result in
            guard case .success(let rows) = result else {
                reconciling = false
                return
            }
            rebuilder.readd(rows, now: clock.nowMs()) { [self] result in
                guard case .success(let added) = result else {
                    reconciling = false
                    return
                }
                if added > 0 {
                    logger.notice("reconciler re-added runs missing from Redis", metadata: ["runs": "\(added)"])
                    let shards = Set(rows.map { store.shards.shard(forEnvironment: $0.run.record.environmentID) })
                    onRebuilt?(shards)
                }
                guard rows.count == reconcileBatch, let last = rows.last else {
                    // Every row created before `before` has been looked at.
                    reconcileCursor = (before, "")
                    reconciling = false
                    return
                }
                let next = (last.run.record.createdAtMs, last.run.record.runID)
                reconcileCursor = next
                reconcilePage(from: next, before: before, pagesLeft: pagesLeft - 1)
            }
        }
    }

    private func prune() {
        records.pruneFinished(before: clock.nowMs() - retentionMs, limit: 1000) { [self] result in
            if case .success(let deleted) = result, deleted > 0 {
                logger.info("pruned finished runs", metadata: ["rows": "\(deleted)"])
                if deleted == 1000 { prune() }
            }
        }
    }

    func close() {
        for timer in timers { timer.close() }
        timers.removeAll()
    }
}
