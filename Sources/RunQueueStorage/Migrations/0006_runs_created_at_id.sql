-- The reconciler walks runs in (created_at, id) order from its watermark
-- (RunRecords.queuedPage). With an index on created_at alone each page had
-- to sort every row after the watermark to find the next 5,000; this index
-- gives that order directly. It replaces runs_created_at, which served the
-- same queries (and retention's created_at bound) with less.
CREATE INDEX IF NOT EXISTS runs_created_at_id ON runs (created_at, id);
DROP INDEX IF EXISTS runs_created_at;
