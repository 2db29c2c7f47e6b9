import ArgumentParser
import Foundation
import PostgresDriver
import RedisDriver
import RunQueueCore
import RunQueueStorage
import UVLoop

/// `runqueue repair`: rebuilds Redis from PostgreSQL directly (no server
/// involved), with the same code a server runs after a Redis loss. Safe while
/// servers run: only runs Redis holds in no form, and whose rows did not
/// change meanwhile, are added; nothing is ever duplicated.
struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Re-add to Redis every active run PostgreSQL records and Redis lacks.",
        discussion: """
            Connects to Redis and PostgreSQL directly (RUNQUEUE_REDIS_URL and \
            RUNQUEUE_DATABASE_URL, or the flags), walks every QUEUED and DEQUEUED \
            row, re-adds the runs Redis holds in no form (queued runs keep a TTL only \
            if never dequeued; dequeued runs come back queued at their attempt), \
            restores the stored concurrency limits and marks every shard rebuilt. \
            Prints progress and a final count. Safe while servers run.

            Example:
              RUNQUEUE_REDIS_URL=redis://127.0.0.1:6379 \\
              RUNQUEUE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres runqueue repair
            """
    )

    @Option(help: "Redis, redis://host:port[/db] (default: $RUNQUEUE_REDIS_URL).")
    var redisURL: String?

    @Option(help: "PostgreSQL, postgres://user@host:port/db (default: $RUNQUEUE_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Queue shards (default: $RUN_ENGINE_RUN_QUEUE_SHARD_COUNT or 16); must match the servers'.")
    var shardCount: Int?

    @Flag(help: "Print the final report as one JSON object.")
    var json = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let redisURL = redisURL ?? environment["RUNQUEUE_REDIS_URL"],
              let databaseURL = databaseURL ?? environment["RUNQUEUE_DATABASE_URL"] else {
            throw ValidationError("repair needs --redis-url and --database-url (or RUNQUEUE_REDIS_URL and RUNQUEUE_DATABASE_URL)")
        }
        let shards = shardCount ?? environment["RUN_ENGINE_RUN_QUEUE_SHARD_COUNT"].flatMap(Int.init) ?? ShardMap.defaultShardCount
        guard (1...1024).contains(shards) else { throw ValidationError("--shard-count must be 1...1024") }
        let redisConfig: RedisConfig
        do { redisConfig = try RedisConfig(url: redisURL) } catch { throw ValidationError("invalid Redis URL: \(error)") }

        let loop = try EventLoop(name: "repair")
        defer { _ = loop.shutdown() }
        let redis = RedisConnection(loop: loop, config: redisConfig)
        let writer = try PostgresConnection(loop: loop, url: databaseURL)
        let reader = try PostgresConnection(loop: loop, url: databaseURL)
        loop.execute { redis.connect(); writer.connect(); reader.connect() }
        defer { loop.execute { redis.close(); writer.close(); reader.close() } }
        do {
            try await redis.waitUntilConnected(timeoutMs: 10_000)
            try await writer.connect()
            try await reader.connect()
        } catch {
            Output.error("error: UNAVAILABLE: cannot reach the stores: \(error)")
            throw ExitCode(ExitStatus.callFailed)
        }
        let store = QueueStore(redis: redis, shards: ShardMap(shardCount: shards), config: QueueConfig())
        let records = RunRecords(loop: loop, writer: writer, reader: reader)
        let json = self.json
        let result: Result<Rebuilder.Report, QueueStoreError> = await withCheckedContinuation { continuation in
            loop.execute {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                records.epoch(proposed: UUID().uuidString) { epoch in
                    switch epoch {
                    case .failure(let error):
                        continuation.resume(returning: .failure(error))
                    case .success(let epoch):
                        Rebuilder(store: store, records: records).rebuild(
                            shards: Set(0..<shards), epoch: epoch, now: now,
                            progress: { report in
                                if !json { FileHandle.standardError.write(Data("scanned \(report.scanned) rows, re-added \(report.added)\n".utf8)) }
                            }) { continuation.resume(returning: $0) }
                    }
                }
            }
        }
        switch result {
        case .success(let report):
            if json {
                print("{\"scanned\":\(report.scanned),\"added\":\(report.added),\"limits\":\(report.limits),\"shards\":\(shards)}")
            } else {
                print("repair done: scanned \(report.scanned) active rows, re-added \(report.added) runs, restored \(report.limits) limits on \(shards) shards")
            }
        case .failure(let error):
            Output.error("error: \(error.code.name): \(error.message)")
            throw ExitCode(ExitStatus.callFailed)
        }
    }
}
