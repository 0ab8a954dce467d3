-- The event log: one append-only, hash-chained table (docs/adr/0001-event-log.md).
-- Same shape as migrations/postgres/0001_event_log.sql, in SQLite's types:
-- uuids and timestamps as text, hashes as blobs.

-- One row: the position and hash of the last committed event, updated in the
-- same write transaction (BEGIN IMMEDIATE) that appends.
CREATE TABLE log_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    position  INTEGER NOT NULL CHECK (position >= 0),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO log_head (id, position, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE events (
    global_position INTEGER PRIMARY KEY CHECK (global_position > 0),
    event_id        TEXT    NOT NULL UNIQUE,
    aggregate_type  TEXT    NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id    TEXT    NOT NULL CHECK (aggregate_id <> ''),
    sequence        INTEGER NOT NULL CHECK (sequence > 0),
    event_type      TEXT    NOT NULL CHECK (event_type GLOB '[a-z]*' AND event_type NOT GLOB '*[^a-z0-9_.]*'),
    event_version   TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL CHECK (actor_id <> ''),
    actor_role      TEXT    NOT NULL CHECK (actor_role <> ''),
    reason          TEXT,
    correlation_id  TEXT,
    causation_id    TEXT,
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE INDEX events_by_actor ON events (actor_id, global_position);
CREATE INDEX events_by_recorded_at ON events (recorded_at);

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is refused');
END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE on events is refused');
END;

CREATE TABLE checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL
) STRICT;

CREATE TABLE activity (
    global_position INTEGER PRIMARY KEY,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL,
    actor_role      TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL
) STRICT;
CREATE INDEX activity_by_record ON activity (aggregate_type, aggregate_id, global_position);
CREATE INDEX activity_by_actor ON activity (actor_id, global_position);
