import ArgumentParser
import Foundation
import RunQueueCore
import RunQueueEngine

/// `runqueue repair`: rebuilds Redis from PostgreSQL directly (no server
/// involved) through the engine's `Repair` (Sources/RunQueueEngine/Repair.swift).
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
        var config = EngineConfig()
        guard let redisURL = redisURL ?? environment["RUNQUEUE_REDIS_URL"],
              let databaseURL = databaseURL ?? environment["RUNQUEUE_DATABASE_URL"] else {
            throw ValidationError("repair needs --redis-url and --database-url (or RUNQUEUE_REDIS_URL and RUNQUEUE_DATABASE_URL)")
        }
        config.redisURL = redisURL
        config.databaseURL = databaseURL
        config.shardCount = shardCount ?? environment["RUN_ENGINE_RUN_QUEUE_SHARD_COUNT"].flatMap(Int.init) ?? ShardMap.defaultShardCount
        let counts = ShardMap.configurableShardCounts
        guard counts.contains(config.shardCount) else {
            throw ValidationError("--shard-count must be \(counts.lowerBound)...\(counts.upperBound)")
        }
        let json = self.json
        do {
            let report = try await Repair.run(config) { report in
                if !json { FileHandle.standardError.write(Data("scanned \(report.scanned) rows, re-added \(report.added)\n".utf8)) }
            }
            if json {
                print("{\"scanned\":\(report.scanned),\"added\":\(report.added),\"limits\":\(report.limits),\"shards\":\(config.shardCount)}")
            } else {
                print("repair done: scanned \(report.scanned) active rows, re-added \(report.added) runs, restored \(report.limits) limits on \(config.shardCount) shards")
            }
        } catch {
            Output.error("error: \(error.code.name): \(error.message)")
            throw ExitCode(ExitStatus.callFailed)
        }
    }
}
