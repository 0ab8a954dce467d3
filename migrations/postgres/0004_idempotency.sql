-- Idempotency keys (docs/adr/0005-idempotency.md): written by the append
-- transaction with the events of the command that carried the key.
CREATE TABLE idempotency_keys (
    key          bytea       PRIMARY KEY CHECK (length(key) = 32),
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    result_id    text        NOT NULL,
    position     bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT ON idempotency_keys TO anamnesis_app;
