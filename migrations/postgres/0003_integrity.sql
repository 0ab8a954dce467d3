-- Integrity of the write side (docs/adr/0003-integrity.md).

-- Unique values held by at most one stream (a patient identifier, a slot).
-- Written by the append transaction under the head lock, with the events that
-- claim or release them. `key` is SHA-256(scope, 0, value): no identifier is
-- kept here in the clear.
CREATE TABLE unique_claims (
    key        bytea       PRIMARY KEY CHECK (length(key) = 32),
    scope      text        NOT NULL,
    owner      text        NOT NULL,
    claimed_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON unique_claims TO anamnesis_app;

-- The head may only ever name the last event of the log, with its hash, and
-- never move back. Checked at commit (the events are inserted in the same
-- statement), so an UPDATE of log_head outside the append path fails.
CREATE FUNCTION log_head_follows_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    IF NEW.position < OLD.position THEN
        RAISE EXCEPTION 'log_head cannot move backwards (from % to %)', OLD.position, NEW.position
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT COALESCE(max(global_position), 0) INTO last FROM events;
    IF last <> NEW.position THEN
        RAISE EXCEPTION 'log_head must name the last event (head %, last event %)', NEW.position, last
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.position > 0 AND NEW.hash IS DISTINCT FROM
            (SELECT hash FROM events WHERE global_position = NEW.position) THEN
        RAISE EXCEPTION 'log_head hash does not match event %', NEW.position
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER log_head_follows_events AFTER UPDATE ON log_head
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION log_head_follows_events();

-- `serve` as the least-privilege role checks that the schema is current
-- instead of migrating: it needs to read which migrations ran.
GRANT SELECT ON _sqlx_migrations TO anamnesis_app;
