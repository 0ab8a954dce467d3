-- Credentials (see migrations/postgres/0006_credentials.sql).
CREATE TABLE credentials (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

-- Accounts of earlier releases, moved at start (see the Postgres migration).
CREATE TABLE legacy_user_streams (
    aggregate_id TEXT PRIMARY KEY
) STRICT;
INSERT INTO legacy_user_streams (aggregate_id)
SELECT DISTINCT aggregate_id FROM events
WHERE aggregate_type = 'user' AND event_type = 'user.created' AND event_version = '1';
