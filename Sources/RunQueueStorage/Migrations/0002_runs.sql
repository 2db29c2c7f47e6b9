-- The durable record of every run. A row is created before the run reaches
-- Redis (Enqueue, EnqueueBatch); every later change arrives through a
-- shard's outbox and is applied guarded by last_seq (the outbox entry's
-- position), so a replayed or late entry changes nothing.
--
-- Updates happen in place: no index covers a column that changes (status,
-- attempt, timestamps), so they stay HOT updates, and the fill factor leaves
-- room on each page for the new versions.
CREATE TYPE run_status AS ENUM ('QUEUED', 'DEQUEUED', 'COMPLETED', 'EXPIRED', 'DEAD_LETTERED');

CREATE TABLE runs (
    id               text        PRIMARY KEY,
    org_id           text        NOT NULL,
    project_id       text        NOT NULL,
    environment_id   text        NOT NULL,
    environment_type smallint    NOT NULL CHECK (environment_type BETWEEN 1 AND 4),
    queue            text        NOT NULL,
    concurrency_key  text        NOT NULL DEFAULT '',
    task_identifier  text        NOT NULL,
    worker_queue     text        NOT NULL,
    attempt          integer     NOT NULL DEFAULT 0,
    queue_timestamp  bigint      NOT NULL,
    priority_ms      bigint      NOT NULL DEFAULT 0,
    ttl              text        NOT NULL DEFAULT '',
    expires_at       bigint,
    status           run_status  NOT NULL DEFAULT 'QUEUED',
    last_seq         bigint      NOT NULL DEFAULT 0,
    created_at       bigint      NOT NULL,
    updated_at       bigint      NOT NULL,
    completed_at     bigint,
    expired_at       bigint
) WITH (fillfactor = 80);

-- The reconciler reads recently created rows; retention deletes old ones.
CREATE INDEX runs_created_at ON runs (created_at);

-- Concurrency limits set through SetConcurrencyLimit (queue '' = the environment).
CREATE TABLE concurrency_limits (
    environment_id text   NOT NULL,
    queue          text   NOT NULL,
    limit_value    integer NOT NULL,
    burst_factor   double precision,
    updated_at     bigint NOT NULL,
    PRIMARY KEY (environment_id, queue)
);
