-- The highest outbox sequence (T:seq, Sources/RunQueueStorage/Lua/lib.lua)
-- applied per shard. A shard whose Redis sequence is behind it went back in
-- time (restored from an older snapshot, a lagging replica promoted) and is
-- rebuilt from PostgreSQL.
CREATE TABLE IF NOT EXISTS shard_progress (
    shard       integer PRIMARY KEY,
    applied_seq bigint  NOT NULL
);
