-- The access log read model (see migrations/postgres/0009_access_log.sql).
CREATE TABLE access_log (
    position    INTEGER PRIMARY KEY,
    patient_id  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    actor_role  TEXT    NOT NULL,
    what        TEXT    NOT NULL,
    break_glass INTEGER NOT NULL,
    recorded_at TEXT    NOT NULL
) STRICT;
CREATE INDEX access_log_by_patient ON access_log (patient_id, position);
CREATE INDEX access_log_by_actor ON access_log (actor_id, position);
CREATE INDEX access_log_by_time ON access_log (recorded_at, position);
