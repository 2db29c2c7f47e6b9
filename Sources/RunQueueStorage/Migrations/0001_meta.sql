-- Facts every server must agree on (e.g. the queue shard count), checked at start.
CREATE TABLE IF NOT EXISTS runqueue_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
