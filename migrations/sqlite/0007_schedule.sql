-- The scheduling read models (see migrations/postgres/0007_schedule.sql).
CREATE TABLE providers (
    provider_id     TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    specialty       TEXT    NOT NULL,
    specialty_key   TEXT    NOT NULL,
    default_minutes INTEGER NOT NULL,
    slot_minutes    INTEGER,
    version         INTEGER NOT NULL
) STRICT;
CREATE INDEX providers_by_specialty ON providers (specialty_key, provider_id);
CREATE UNIQUE INDEX providers_by_user ON providers (user_id);

CREATE TABLE closures (
    closure_id  TEXT    PRIMARY KEY,
    provider_id TEXT,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    whole_days  INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    position    INTEGER NOT NULL
) STRICT;
CREATE INDEX closures_by_time ON closures (starts_at);

CREATE TABLE appointments (
    appointment_id   TEXT    PRIMARY KEY,
    provider_id      TEXT    NOT NULL,
    patient_id       TEXT    NOT NULL,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    reason_for_visit TEXT    NOT NULL,
    overbook_reason  TEXT,
    cancel_reason    TEXT,
    late             INTEGER NOT NULL,
    by_clinic        INTEGER NOT NULL,
    booked_by        TEXT    NOT NULL,
    booked_position  INTEGER NOT NULL,
    version          INTEGER NOT NULL
) STRICT;
CREATE INDEX appointments_by_provider ON appointments (provider_id, starts_at);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_by_time ON appointments (starts_at, appointment_id);
