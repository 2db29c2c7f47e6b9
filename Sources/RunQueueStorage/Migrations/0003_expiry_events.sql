-- The expiry event log: one row per run that expired, appended by the
-- outbox applier in the same transaction that marks the run EXPIRED
-- (guarded by status, so a replayed outbox entry appends nothing). Appends
-- are serialised by a transaction-scoped advisory lock, so commit order
-- equals cursor order: a reader that has seen cursor N never later finds a
-- smaller cursor committed. SubscribeExpiry reads it by cursor; retention
-- deletes the oldest events by expired_at.
CREATE TABLE expiry_events (
    cursor           bigserial   PRIMARY KEY,
    run_id           text        NOT NULL,
    org_id           text        NOT NULL,
    project_id       text        NOT NULL,
    environment_id   text        NOT NULL,
    environment_type smallint    NOT NULL,
    queue            text        NOT NULL,
    concurrency_key  text        NOT NULL DEFAULT '',
    task_identifier  text        NOT NULL,
    ttl              text        NOT NULL DEFAULT '',
    expires_at       bigint,
    expired_at       bigint      NOT NULL
);

-- Retention prunes by age.
CREATE INDEX expiry_events_expired_at ON expiry_events (expired_at);
