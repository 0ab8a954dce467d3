-- The event log: one append-only, hash-chained table (docs/adr/0001-event-log.md).

-- One row: the position and hash of the last committed event. The append
-- transaction locks it (SELECT ... FOR UPDATE), so positions and the chain are
-- assigned under one lock and become visible in commit order, without gaps.
CREATE TABLE log_head (
    id        smallint PRIMARY KEY CHECK (id = 1),
    position  bigint   NOT NULL CHECK (position >= 0),
    hash      bytea    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO log_head (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE events (
    global_position bigint      PRIMARY KEY CHECK (global_position > 0),
    event_id        uuid        NOT NULL UNIQUE,
    aggregate_type  text        NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id    text        NOT NULL CHECK (aggregate_id <> ''),
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    event_type      text        NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]*$'),
    event_version   text        NOT NULL,
    -- `json`, not `jsonb`: json keeps the exact text, which the hash covers.
    payload         json        NOT NULL,
    metadata        json        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    actor_id        text        NOT NULL CHECK (actor_id <> ''),
    actor_role      text        NOT NULL CHECK (actor_role <> ''),
    reason          text,
    correlation_id  uuid,
    causation_id    uuid,
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_by_actor ON events (actor_id, global_position);
CREATE INDEX events_by_recorded_at ON events (recorded_at);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Privileges: the application should connect as a member of `anamnesis_app`,
-- not as the owner. The role may append and read events, never change them.
-- Roles are cluster-wide, so creating it tolerates another database having done so.
DO $$
BEGIN
    CREATE ROLE anamnesis_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
REVOKE ALL ON events FROM PUBLIC;
REVOKE ALL ON log_head FROM PUBLIC;
GRANT SELECT, INSERT ON events TO anamnesis_app;
GRANT SELECT, UPDATE ON log_head TO anamnesis_app;

-- Catch-up subscribers (projectors, relay, consumers) keep their position here,
-- committed in the same transaction as their output.
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON checkpoints TO anamnesis_app;

-- Read model: one row per event, without payloads: who did what to which
-- record, and when. Answers "what happened to this record" and "what did this
-- user do" without scanning the log.
CREATE TABLE activity (
    global_position bigint      PRIMARY KEY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    event_type      text        NOT NULL,
    actor_id        text        NOT NULL,
    actor_role      text        NOT NULL,
    recorded_at     timestamptz NOT NULL
);
CREATE INDEX activity_by_record ON activity (aggregate_type, aggregate_id, global_position);
CREATE INDEX activity_by_actor ON activity (actor_id, global_position);
GRANT SELECT, INSERT, UPDATE, DELETE ON activity TO anamnesis_app;
