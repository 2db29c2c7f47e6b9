import Foundation
import RunQueueClient
import RunQueueServer
import Testing
import TestSupport

/// The stores record the shard count they were first used with; a server
/// started with another count against them stops with a fatal error (exit
/// code 2 for runqueued) instead of mapping environments to the wrong shards.
@Suite(.tags(.integration), .needsServices) struct ShardCountTests {
    @Test func aServerWithAnotherShardCountThanEitherStoreRecordsStops() async throws {
        let redis = try OwnRedis()
        let database = try OwnDatabase()
        defer { database.drop() }
        let stores: (inout ServerConfig) -> Void = {
            $0.redisURL = redis.url
            $0.databaseURL = database.url
        }
        let (first, client) = try await TestServer.started(stores)
        await client.close()
        #expect(await first.server.stop() == 0)

        // Both stores hold 16.
        let both = try await TestServer.start { stores(&$0); $0.shardCount = 8 }
        let bothReport = await both.server.waitUntilStopped()
        #expect(bothReport.fatalError?.contains("16 shards") == true, "\(String(describing: bothReport.fatalError))")
        #expect(bothReport.fatalError?.contains("RUN_ENGINE_RUN_QUEUE_SHARD_COUNT is 8") == true)

        // Redis emptied: only PostgreSQL still records 16.
        try redisCLI(port: redis.port, ["FLUSHALL"])
        let postgresOnly = try await TestServer.start { stores(&$0); $0.shardCount = 8 }
        let postgresReport = await postgresOnly.server.waitUntilStopped()
        #expect(postgresReport.fatalError?.hasPrefix("PostgreSQL records 16 shards") == true, "\(String(describing: postgresReport.fatalError))")
    }
}
