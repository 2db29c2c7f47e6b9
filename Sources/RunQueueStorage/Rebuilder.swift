// Rebuilder: restores Redis from PostgreSQL after Redis lost its state (the
// epoch check found a shard without the deployment's epoch), and is the
// engine of `runqueue repair`.
//
// It pages through QUEUED and DEQUEUED rows in id order, once for every
// shard being rebuilt, reading the next page while it writes the current one,
// and re-adds the runs of those shards that Redis holds in no form (queued,
// in flight or finishing). A row is re-added only if, after Redis was checked, it is
// still active with the same last_seq: a change applied in between (an ack
// whose finishing mark was just cleared) is never undone. So a rebuild never
// duplicates a run and can run while servers serve. QUEUED runs keep
// their TTL only if they were never dequeued (attempt 0); DEQUEUED runs come
// back queued, with the attempt they had (their lease is not counted as a
// failure). The stored concurrency limits are restored, and finally each
// shard's epoch is set, which lets claims serve it again.
import RunQueueCore

public final class Rebuilder {
    let store: QueueStore
    let records: RunRecords
    public var pageSize = 5000

    public init(store: QueueStore, records: RunRecords) {
        self.store = store
        self.records = records
    }

    public struct Report: Sendable {
        public var scanned = 0
        public var added = 0
        public var limits = 0
    }

    /// Rebuilds `shards`; `progress` is called after every page. The shards
    /// in `wipe` (their Redis went back in time) are emptied first, so none
    /// of their stale state stays; each shard's sequence ends at least at
    /// `appliedSequences` (what PostgreSQL applied last).
    public func rebuild(shards: Set<Int>, wipe: Set<Int> = [], appliedSequences: [Int: Int64] = [:], epoch: String, now: Int64,
                        progress: @escaping (Report) -> Void = { _ in },
                        _ completion: @escaping (Result<Report, QueueStoreError>) -> Void) {
        var report = Report()
        // Pipelined: the next page is read while this one is written to Redis.
        func handle(_ result: Result<RunRecords.ActivePage, QueueStoreError>) {
            let active: RunRecords.ActivePage
            switch result {
            case .failure(let error):
                completion(.failure(error))
                return
            case .success(let page):
                active = page
            }
            report.scanned += active.rows.count
            let mine = active.rows.filter { shards.contains(store.shards.shard(forEnvironment: $0.run.record.environmentID)) }
            var next: Result<RunRecords.ActivePage, QueueStoreError>?
            var written = false
            func advance() {
                guard written, let next else { return }
                handle(next)
            }
            if let after = active.next {
                records.activeRuns(after: after, within: active.spanEnd, limit: pageSize) { result in
                    next = result
                    advance()
                }
            }
            readd(mine, now: now) { result in
                switch result {
                case .failure(let error):
                    completion(.failure(error))
                case .success(let added):
                    report.added += added
                    progress(report)
                    written = true
                    if active.next == nil { restoreLimits() } else { advance() }
                }
            }
        }
        func restoreLimits() {
            records.limits { [self] result in
                switch result {
                case .failure(let error):
                    completion(.failure(error))
                case .success(let limits):
                    let mine = limits.filter { shards.contains(store.shards.shard(forEnvironment: $0.environmentID)) }
                    var left = mine.count
                    if left == 0 { setEpochs(); return }
                    for limit in mine {
                        store.setLimit(environmentID: limit.environmentID, queue: limit.queue,
                                       change: .set(limit: limit.limit, burstFactor: limit.burstFactor ?? 0)) { _ in
                            report.limits += 1
                            left -= 1
                            if left == 0 { setEpochs() }
                        }
                    }
                }
            }
        }
        func setEpochs() {
            var left = shards.count
            if left == 0 { completion(.success(report)); return }
            var failed: QueueStoreError?
            for shard in shards {
                store.setEpoch(shard: shard, epoch, appliedSequence: appliedSequences[shard] ?? 0) { result in
                    if case .failure(let error) = result { failed = error }
                    left -= 1
                    if left == 0 { completion(failed.map { .failure($0) } ?? .success(report)) }
                }
            }
        }
        let wiped = wipe.intersection(shards)
        guard !wiped.isEmpty else {
            records.activeRuns(after: "", within: nil, limit: pageSize, handle)
            return
        }
        var left = wiped.count
        var failed: QueueStoreError?
        for shard in wiped {
            store.wipe(shard: shard) { [self] result in
                if case .failure(let error) = result { failed = error }
                left -= 1
                guard left == 0 else { return }
                if let failed { completion(.failure(failed)) } else { records.activeRuns(after: "", within: nil, limit: pageSize, handle) }
            }
        }
    }

    /// Re-adds the runs of these rows that Redis holds in no form and whose
    /// rows did not change meanwhile; returns how many were added.
    public func readd(_ rows: [RunRecords.SequencedRun], now: Int64, _ completion: @escaping (Result<Int, QueueStoreError>) -> Void) {
        var byShard: [Int: [RunRecords.SequencedRun]] = [:]
        for row in rows { byShard[store.shards.shard(forEnvironment: row.run.record.environmentID), default: []].append(row) }
        // One presence check per shard and `QueueStore.maxRunsPerScript` runs.
        let checks = QueueStore.scriptCalls(byShard)
        var left = checks.count
        var added = 0
        var failure: QueueStoreError?
        if left == 0 { completion(.success(0)); return }
        func done(_ result: Result<Int, QueueStoreError>) {
            switch result {
            case .success(let n): added += n
            case .failure(let error): failure = error
            }
            left -= 1
            if left == 0 { completion(failure.map { .failure($0) } ?? .success(added)) }
        }
        for (shard, list) in checks {
            store.present(shard: shard, runs: list.map { $0.run.descriptor }) { [self] result in
                guard case .success(let flags) = result else { done(result.map { _ in 0 }); return }
                let absent = zip(list, flags).filter { !$0.1 }.map(\.0)
                guard !absent.isEmpty else { done(.success(0)); return }
                records.stillQueued(absent.map { ($0.run.record.runID, $0.lastSeq) }) { [self] result in
                    guard case .success(let ids) = result else { done(result.map { _ in 0 }); return }
                    let items = absent.filter { ids.contains($0.run.record.runID) }.map(\.run.enqueueItem)
                    guard !items.isEmpty else { done(.success(0)); return }
                    store.enqueue(items, now: now) { results in
                        if let error = results.compactMap({ if case .failure(let e) = $0 { e } else { nil } }).first {
                            done(.failure(error))
                        } else {
                            done(.success(results.filter { (try? $0.get()) == true }.count))
                        }
                    }
                }
            }
        }
    }
}
