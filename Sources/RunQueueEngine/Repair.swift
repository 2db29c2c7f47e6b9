// Repair: rebuilds Redis from PostgreSQL with no server involved, with the
// same Rebuilder a server runs after a Redis loss (`runqueue repair`). Safe
// while servers run: only runs Redis holds in no form, and whose rows did
// not change meanwhile, are added; nothing is ever duplicated.
import Foundation
import PostgresDriver
import RedisDriver
import RunQueueCore
import RunQueueStorage
import UVLoop

public enum Repair {
    /// What a repair found and did.
    public struct Report: Sendable {
        /// Active rows (QUEUED, DEQUEUED) read from PostgreSQL.
        public var scanned: Int
        /// Runs re-added to Redis.
        public var added: Int
        /// Concurrency limits restored.
        public var limits: Int
    }

    /// Why a repair failed, in the protocol's terms.
    public struct Failure: Error, Sendable {
        public let code: StatusCode
        public let message: String
    }

    /// Connects to the stores of `config` (its URLs and shard count),
    /// re-adds every active run PostgreSQL records and Redis lacks, restores
    /// the stored limits and marks every shard rebuilt. `progress` gets the
    /// running totals after each page.
    public static func run(_ config: EngineConfig, progress: @escaping @Sendable (Report) -> Void = { _ in }) async throws(Failure) -> Report {
        let counts = ShardMap.configurableShardCounts
        guard counts.contains(config.shardCount) else {
            throw Failure(code: .invalidArgument, message: "the shard count must be \(counts.lowerBound)...\(counts.upperBound)")
        }
        let redisConfig: RedisConfig
        let writer: PostgresConnection
        let reader: PostgresConnection
        let loop: EventLoop
        do {
            redisConfig = try RedisConfig(url: config.redisURL)
            loop = try EventLoop(name: "repair")
            writer = try PostgresConnection(loop: loop, url: config.databaseURL)
            reader = try PostgresConnection(loop: loop, url: config.databaseURL)
        } catch {
            throw Failure(code: .invalidArgument, message: "invalid store configuration: \(error)")
        }
        defer { _ = loop.shutdown() }
        let redis = RedisConnection(loop: loop, config: redisConfig)
        loop.execute { redis.connect(); writer.connect(); reader.connect() }
        defer { loop.execute { redis.close(); writer.close(); reader.close() } }
        do {
            try await redis.waitUntilConnected(timeoutMs: 10_000)
            try await writer.connect()
            try await reader.connect()
        } catch {
            throw Failure(code: .unavailable, message: "cannot reach the stores: \(error)")
        }
        let store = QueueStore(redis: redis, shards: ShardMap(shardCount: config.shardCount), config: config.queue)
        let records = RunRecords(loop: loop, writer: writer, reader: reader)
        let shards = config.shardCount
        let result: Result<Rebuilder.Report, QueueStoreError> = await withCheckedContinuation { continuation in
            loop.execute {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                records.epoch(proposed: UUID().uuidString) { epoch in
                    switch epoch {
                    case .failure(let error):
                        continuation.resume(returning: .failure(error))
                    case .success(let epoch):
                        // Each shard's sequence ends at least where PostgreSQL's applied one is.
                        records.shardProgress { applied in
                            Rebuilder(store: store, records: records).rebuild(
                                shards: Set(0..<shards), appliedSequences: (try? applied.get()) ?? [:], epoch: epoch, now: now,
                                progress: { progress(Report($0)) }) { continuation.resume(returning: $0) }
                        }
                    }
                }
            }
        }
        switch result {
        case .success(let report): return Report(report)
        case .failure(let error): throw Failure(code: error.code, message: error.message)
        }
    }
}

extension Repair.Report {
    init(_ report: Rebuilder.Report) {
        self.init(scanned: report.scanned, added: report.added, limits: report.limits)
    }
}
