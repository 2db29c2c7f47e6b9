// Maintenance: the background work that keeps Redis and PostgreSQL honest.
//
// - Epoch: at start the deployment's epoch is read from PostgreSQL (created
//   on first start); every shard whose Redis epoch differs is rebuilt from
//   PostgreSQL (Rebuilder) before its claims serve again. Claims report a
//   mismatch they meet later (Redis lost while running) and that shard is
//   rebuilt the same way.
// - Reconciler: QUEUED rows that Redis holds in no form are added back (an
//   Enqueue whose Redis step failed after the row was committed, or whose
//   server died in between). It walks rows by (created_at, id) from a
//   durable watermark in PostgreSQL (runqueue_meta 'reconcile_watermark'):
//   every row created before it has been looked at, however long ago, so a
//   row committed just before a crash is found however long the server
//   stayed down. At start, the first pass walks from the watermark to now
//   before Dequeue is served (the gate of DequeueCoordinator). Later passes
//   run every `reconcileIntervalMs` and read up to the rows created 5 s ago
//   (older than any commit still on its way) and before the oldest
//   transaction still writing began (a slow commit); the watermark never
//   moves past that point, so the start pass's youngest rows are read
//   again. A pass reads at most `reconcilePages` pages of `reconcileSpan`
//   rows (of any status: a bounded walk of the (created_at, id) index); a
//   pass that stopped there is behind, and the next one starts at once. A
//   row is re-added only if it is still QUEUED with the same last_seq after
//   Redis was checked, so a change applied meanwhile is never undone. A
//   failed pass leaves the watermark where it was.
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
    private let reconcileSpan = 5000
    private let reconcilePages = 10
    /// Rows younger than this may still be on their way to Redis.
    private let reconcileGraceMs: Int64 = 5_000
    private var reconciling = false
    private var epochKnown = false
    private var rebuilding: Set<Int> = []
    /// Shards found lost while a rebuild pass runs: the next pass takes them.
    private var pending: Set<Int> = []
    private var checkingShards = false
    /// The highest outbox sequence PostgreSQL applied per shard, as last read.
    private var appliedSequences: [Int: Int64] = [:]
    /// Where the next pass starts (the durable watermark once read).
    private var reconcileCursor: RunRecords.RowPosition?
    /// The start-up checks (epochs, rebuilds, the first reconciler pass) are done.
    private var started = false
    private var closed = false
    /// False only for the benchmark mode that discards the applier's writes.
    private let reconciles: Bool
    /// The benchmark baseline: a pass per lost shard (EngineConfig.benchmarkPerShardRebuild).
    var perShardRebuild = false
    private var timers: [LoopTimer] = []
    /// Starts the next pass at once when the last one stopped behind.
    private let catchUp: LoopTimer
    /// Called with the shards a rebuild pass ended for, rebuilt or not
    /// (claims waiting for them look again).
    var onRebuilt: ((Set<Int>) -> Void)?
    /// Called with the shards the reconciler added runs to.
    var onRunsAdded: ((Set<Int>) -> Void)?
    /// Called when every shard is about to be checked again (Redis
    /// reconnected): Dequeues wait for `onRedisChecked`.
    var onCheckStarted: (() -> Void)?
    /// Called with shards found lost (a rebuild of them is coming): a claim
    /// that finds nothing waits for them instead of answering empty.
    var onRebuildStarted: ((Set<Int>) -> Void)?
    /// Called once the start-up checks are done (every shard's epoch checked,
    /// the shards that lacked it rebuilt or their rebuild failed, the first
    /// reconciler pass from the watermark done or failed), and again
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
        catchUp = LoopTimer(loop: loop)
        let reconciler = LoopTimer(loop: loop)
        reconciler.start(afterMs: reconcileIntervalMs, repeatMs: reconcileIntervalMs) { [unowned self] in reconcile() }
        let pruner = LoopTimer(loop: loop)
        pruner.start(afterMs: 60_000, repeatMs: 60_000) { [unowned self] in prune() }
        timers = [reconciler, pruner, catchUp]
    }

    /// PostgreSQL is ready: learn the epoch and the watermark, rebuild shards
    /// that lack the epoch, then reconcile from the watermark.
    func postgresReady() {
        let proposed = UUID().uuidString
        records.epoch(proposed: proposed) { [self] result in
            switch result {
            case .failure(let error):
                logger.warning("cannot read the epoch; claims wait", metadata: ["error": "\(error)"])
            case .success(let epoch):
                store.epoch = epoch
                records.reconcileWatermark { [self] result in
                    switch result {
                    case .failure(let error):
                        logger.warning("cannot read the reconciler's watermark; claims wait", metadata: ["error": "\(error)"])
                    case .success(let watermark):
                        if reconcileCursor == nil { reconcileCursor = watermark ?? .start }
                        epochKnown = true
                        checkEpochs()
                    }
                }
            }
        }
    }

    private func checkEpochs() {
        checkShards { [self] check in
            if check.stale.isEmpty { startupPass() } else { rebuild(check.stale, wipe: check.behind) }
        }
    }

    /// What a check of every shard found: shards without the deployment's
    /// epoch (lost), and shards with it whose sequence is behind what
    /// PostgreSQL applied (restored from an older snapshot).
    private struct ShardCheck {
        var lost: Set<Int> = []
        var behind: Set<Int> = []
        var stale: Set<Int> { lost.union(behind) }
    }

    /// Reads what PostgreSQL applied per shard, then every shard's epoch and
    /// sequence at once (pipelined). A shard Redis does not answer for counts
    /// as neither (its claims will tell).
    private func checkShards(_ completion: @escaping (ShardCheck) -> Void) {
        records.shardProgress { [self] result in
            if case .success(let applied) = result { appliedSequences = applied }
            var check = ShardCheck()
            var left = store.shards.shardCount
            for shard in 0..<store.shards.shardCount {
                store.epoch(shard: shard) { [self] result in
                    if case .success(let state) = result {
                        if state.epoch != store.epoch {
                            check.lost.insert(shard)
                        } else if state.sequence < appliedSequences[shard] ?? 0 {
                            check.behind.insert(shard)
                        }
                    }
                    left -= 1
                    if left == 0 { completion(check) }
                }
            }
        }
    }

    /// Redis answered again after a disconnect: it may have restarted from an
    /// older snapshot (its epoch intact, its sequences behind). Dequeues are
    /// held while every shard is checked, and stale shards are rebuilt.
    func redisReconnected() {
        guard started, epochKnown, !closed else { return }
        onCheckStarted?()
        checkShards { [self] check in
            if !check.behind.isEmpty {
                logger.warning("Redis went back in time: shards behind what PostgreSQL applied", metadata: ["shards": "\(check.behind.sorted())"])
            }
            if check.stale.isEmpty {
                if rebuilding.isEmpty { onRedisChecked?() }
            } else {
                rebuild(check.stale, wipe: check.behind)
            }
        }
    }

    /// A claim found a shard whose epoch does not match: Redis lost (some of)
    /// its state. Every shard is checked, and all that lost it are rebuilt
    /// in one pass over the active rows; shards found while a pass runs wait
    /// for the next one (never one full scan per shard).
    func epochMismatch(shard: Int) {
        guard epochKnown, !rebuilding.contains(shard) else { return }
        if perShardRebuild {
            rebuild([shard], wipe: [])
            return
        }
        if !pending.contains(shard) {
            pending.insert(shard)
            onRebuildStarted?([shard])
        }
        startPendingRebuild()
    }

    private func startPendingRebuild() {
        guard rebuilding.isEmpty, !checkingShards, !pending.isEmpty, !closed else { return }
        checkingShards = true
        checkShards { [self] check in
            checkingShards = false
            let todo = pending.union(check.stale)
            pending = []
            rebuild(todo, wipe: check.behind)
        }
    }

    /// Rebuilds `shards` in one pass; those in `wipe` are emptied first.
    private func rebuild(_ shards: Set<Int>, wipe: Set<Int>) {
        let todo = shards.subtracting(rebuilding)
        guard !todo.isEmpty else { return }
        rebuilding.formUnion(todo)
        onRebuildStarted?(todo)
        logger.notice("rebuilding Redis shards from PostgreSQL", metadata: ["shards": "\(todo.sorted())", "wiped_first": "\(wipe.sorted())"])
        let begun = clock.nowMs()
        var logged = 0
        let progress: (Rebuilder.Report) -> Void = { [self] report in
            guard report.scanned >= logged + 100_000 else { return }
            logged = report.scanned
            logger.info("rebuild progress", metadata: ["shards": "\(todo.count)", "scanned": "\(report.scanned)", "added": "\(report.added)",
                                                        "elapsed_ms": "\(clock.nowMs() - begun)"])
        }
        rebuilder.rebuild(shards: todo, wipe: wipe, appliedSequences: appliedSequences, epoch: store.epoch, now: clock.nowMs(),
                          progress: progress) { [self] result in
            rebuilding.subtract(todo)
            switch result {
            case .success(let report):
                logger.notice("rebuild done", metadata: ["shards": "\(todo.sorted())", "scanned": "\(report.scanned)",
                                                         "added": "\(report.added)", "limits": "\(report.limits)",
                                                         "elapsed_ms": "\(clock.nowMs() - begun)"])
            case .failure(let error):
                logger.error("rebuild failed; retrying on the next claim", metadata: ["error": "\(error)"])
            }
            // Held Dequeues look again either way (after a failure their claims find the shard lost again).
            onRebuilt?(todo)
            if !pending.isEmpty {
                startPendingRebuild()
            } else if rebuilding.isEmpty {
                if started { onRedisChecked?() } else { startupPass() }
            }
        }
    }

    /// The start-up pass: from the watermark to now, every page, before the
    /// gate opens. Whatever its outcome the gate opens after it (a failed
    /// pass is taken up by the next timer).
    private func startupPass() {
        guard !started else { return }
        guard reconciles, !reconciling, let cursor = reconcileCursor else {
            finishStartup()
            return
        }
        reconciling = true
        logger.info("reconciling from the watermark", metadata: ["created_after_ms": "\(cursor.createdAt)"])
        settledPoint { [self] now, settled in
            reconcilePage(from: cursor, before: now, settled: settled, pagesLeft: .max, seen: 0, added: 0) { [self] in
                finishStartup()
            }
        }
    }

    /// Now, and the creation time before which every row is committed or
    /// never will be: 5 s back (a commit still on its way), and no later than
    /// the start of the oldest transaction still writing (a slow commit).
    private func settledPoint(_ body: @escaping (_ now: Int64, _ settled: Int64) -> Void) {
        records.oldestWriteInProgress { [self] result in
            let now = clock.nowMs()
            let oldest = (try? result.get()).flatMap { $0 } ?? now
            body(now, min(now, oldest) - reconcileGraceMs)
        }
    }

    private func finishStartup() {
        guard !started else { return }
        started = true
        onRedisChecked?()
    }

    private func reconcile() {
        // While a rebuild runs it re-adds the same rows: no second walk beside it.
        guard reconciles, started, !closed, !reconciling, rebuilding.isEmpty, let cursor = reconcileCursor else { return }
        reconciling = true
        settledPoint { [self] _, settled in
            reconcilePage(from: cursor, before: settled, settled: settled, pagesLeft: reconcilePages, seen: 0, added: 0) {}
        }
    }

    /// Walks pages from `cursor` to rows created before `before`; the
    /// watermark advances with it up to `settled` at most.
    private func reconcilePage(from cursor: RunRecords.RowPosition, before: Int64, settled: Int64, pagesLeft: Int,
                               seen: Int, added: Int, _ done: @escaping () -> Void) {
        func end(behind: Bool, seen: Int, added: Int) {
            reconciling = false
            if seen > 0 || added > 0 {
                logger.info("reconciler pass", metadata: ["queued_rows": "\(seen)", "re_added": "\(added)", "behind": "\(behind)"])
            }
            if let watermark = reconcileCursor {
                records.advanceReconcileWatermark(to: watermark) { [logger] result in
                    if case .failure(let error) = result { logger.warning("cannot store the reconciler's watermark", metadata: ["error": "\(error)"]) }
                }
            }
            done()
            // Stopped at the page budget with rows left: the next pass starts now.
            if behind && !closed { catchUp.start(afterMs: 0) { [unowned self] in reconcile() } }
        }
        records.queuedPage(after: cursor, before: before, span: reconcileSpan) { [self] result in
            guard case .success(let page) = result else { reconciling = false; done(); return }
            rebuilder.readd(page.queued, now: clock.nowMs()) { [self] result in
                guard case .success(let readded) = result else { reconciling = false; done(); return }
                if readded > 0 {
                    logger.notice("reconciler re-added runs missing from Redis", metadata: ["runs": "\(readded)"])
                    onRunsAdded?(Set(page.queued.map { store.shards.shard(forEnvironment: $0.run.record.environmentID) }))
                }
                let limit = RunRecords.RowPosition(createdAt: settled, id: "")
                reconcileCursor = max(reconcileCursor ?? cursor, min(page.end, limit))
                let (seen, added) = (seen + page.queued.count, added + readded)
                guard let next = page.next else { end(behind: false, seen: seen, added: added); return }
                guard pagesLeft > 1 else { end(behind: true, seen: seen, added: added); return }
                reconcilePage(from: next, before: before, settled: settled, pagesLeft: pagesLeft - 1, seen: seen, added: added, done)
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
        closed = true
        for timer in timers { timer.close() }
        timers.removeAll()
    }
}
