-- Idempotency keys (see migrations/postgres/0004_idempotency.sql).
CREATE TABLE idempotency_keys (
    key          BLOB    PRIMARY KEY CHECK (length(key) = 32),
    request_hash BLOB    NOT NULL,
    status       INTEGER NOT NULL,
    result_id    TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    recorded_at  TEXT    NOT NULL
) STRICT;
