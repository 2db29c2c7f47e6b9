// Rebuilder: restores Redis from PostgreSQL after Redis lost its state (the
// epoch check found a shard without the deployment's epoch), and is the
// engine of `runqueue repair`.
//
// It pages through QUEUED and DEQUEUED rows in id order and adds the runs of
// the shards being rebuilt through the enqueue script, which adds only runs
// absent from Redis (queued, in flight or finishing), so a rebuild never
// duplicates a run and can run while the server serves. QUEUED runs keep
// their TTL only if they were never dequeued (attempt 0); DEQUEUED runs come
// back queued, with the attempt they had (their lease is not counted as a
// failure). The stored concurrency limits are restored, and finally each
// shard's epoch is set, which lets claims serve it again.
import RunQueueCore

public final class Rebuilder {
    let store: QueueStore
    let records: RunRecords
    public var pageSize = 1000

    public init(store: QueueStore, records: RunRecords) {
        self.store = store
        self.records = records
    }

    public struct Report: Sendable {
        public var scanned = 0
        public var added = 0
        public var limits = 0
    }

    /// Rebuilds `shards`; `progress` is called after every page.
    public func rebuild(shards: Set<Int>, epoch: String, now: Int64,
                        progress: @escaping (Report) -> Void = { _ in },
                        _ completion: @escaping (Result<Report, QueueStoreError>) -> Void) {
        var report = Report()
        func page(after: String) {
            records.activeRuns(after: after, limit: pageSize) { [self] result in
                switch result {
                case .failure(let error):
                    completion(.failure(error))
                case .success(let rows):
                    report.scanned += rows.count
                    let items = rows.filter { shards.contains(store.shards.shard(forEnvironment: $0.record.environmentID)) }.map { stored in
                        let r = stored.record
                        let neverDequeued = r.status == .queued && r.attempt == 0
                        return QueueStore.EnqueueItem(run: stored.descriptor,
                                                      expiresAtMs: neverDequeued && r.expiresAtMs > 0 ? r.expiresAtMs : nil,
                                                      attempt: r.attempt)
                    }
                    let next = { [self] in
                        progress(report)
                        if rows.count < pageSize { restoreLimits() } else { page(after: rows.last!.record.runID) }
                    }
                    guard !items.isEmpty else { next(); return }
                    store.enqueue(items, now: now) { results in
                        for result in results {
                            switch result {
                            case .success(let added): if added { report.added += 1 }
                            case .failure(let error): completion(.failure(error)); return
                            }
                        }
                        next()
                    }
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
                store.setEpoch(shard: shard, epoch) { result in
                    if case .failure(let error) = result { failed = error }
                    left -= 1
                    if left == 0 { completion(failed.map { .failure($0) } ?? .success(report)) }
                }
            }
        }
        page(after: "")
    }
}
