-- The access log read model (docs/adr/0012-access-log.md): one row per
-- recorded read of a patient's data, from the `access.read` events.
CREATE TABLE access_log (
    position    bigint      PRIMARY KEY,
    patient_id  text        NOT NULL,
    actor_id    text        NOT NULL,
    actor_role  text        NOT NULL,
    what        text        NOT NULL,
    break_glass bigint      NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX access_log_by_patient ON access_log (patient_id, position);
CREATE INDEX access_log_by_actor ON access_log (actor_id, position);
CREATE INDEX access_log_by_time ON access_log (recorded_at, position);
GRANT SELECT, INSERT, UPDATE, DELETE ON access_log TO anamnesis_app;
