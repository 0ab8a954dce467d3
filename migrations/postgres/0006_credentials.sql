-- Credentials (docs/adr/0006-credentials.md). Secrets are not audit data: a
-- password hash lives here, mutable, and never in `events`. Written by the
-- append transaction together with the event that records that the password
-- was set, changed or reset (and by whom).
CREATE TABLE credentials (
    user_id       uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- Set and replaced, never deleted: an account is deactivated, not removed.
GRANT SELECT, INSERT, UPDATE ON credentials TO anamnesis_app;

-- Accounts written by earlier releases kept their stream under the username
-- and their password hash in the log. They are listed here once; at start
-- the server moves each to a stream under its user id, with its username
-- claimed and its last hash in `credentials` (ADR 0006). The old events stay
-- as they are: the log is never rewritten.
CREATE TABLE legacy_user_streams (
    aggregate_id text PRIMARY KEY
);
INSERT INTO legacy_user_streams (aggregate_id)
SELECT DISTINCT aggregate_id FROM events
WHERE aggregate_type = 'user' AND event_type = 'user.created' AND event_version = '1';
GRANT SELECT ON legacy_user_streams TO anamnesis_app;
