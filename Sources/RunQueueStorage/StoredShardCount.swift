// The shard count a deployment was created with, recorded in each store
// (first writer wins). Claims and keys map environments to shards by this
// count, so a server started with another count must refuse to run against
// these stores instead of silently using the wrong shards.
import PostgresDriver
import RedisDriver

extension QueueStore {
    /// Records `shardCount` in Redis unless a count is there already;
    /// answers what Redis holds (nil when Redis holds nothing there).
    public static func storedShardCount(proposing shardCount: Int, on redis: RedisConnection,
                                        _ completion: @escaping (Result<String?, QueueStoreError>) -> Void) {
        let key = "{rq0}:meta:shard-count"
        redis.send("SET", key, String(shardCount), "NX") { _ in
            redis.send("GET", key) { result in
                completion(result.map { $0.string }.mapError { map($0, doing: "read the stored shard count") })
            }
        }
    }
}

extension RunRecords {
    /// Records `shardCount` in PostgreSQL unless a count is there already;
    /// answers what PostgreSQL holds.
    public static func storedShardCount(proposing shardCount: Int, on connection: PostgresConnection,
                                        _ completion: @escaping (Result<String?, QueueStoreError>) -> Void) {
        let sql = """
            WITH ins AS (INSERT INTO runqueue_meta (key, value) VALUES ('shard_count', $1)
                         ON CONFLICT (key) DO NOTHING RETURNING value)
            SELECT value FROM ins UNION ALL SELECT value FROM runqueue_meta WHERE key = 'shard_count' LIMIT 1
            """
        connection.query(sql, [.text(String(shardCount))]) { result in
            completion(result.map { $0.scalar }.mapError { map($0, doing: "read the stored shard count") })
        }
    }
}
