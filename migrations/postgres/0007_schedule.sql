-- The scheduling read models (docs/adr/0008-scheduling.md). Times are
-- instants as whole seconds since the Unix epoch (UTC): the same integers on
-- both backends, compared and ranged without time-zone arithmetic. The
-- write side decides bookings from the log, never from these tables.
CREATE TABLE providers (
    provider_id     text   PRIMARY KEY,
    user_id         text   NOT NULL,
    kind            text   NOT NULL,
    display_name    text   NOT NULL,
    specialty       text   NOT NULL,
    -- Lowercased specialty for search; "C" collation for byte-order ranges.
    specialty_key   text   COLLATE "C" NOT NULL,
    default_minutes bigint NOT NULL,
    -- Slot length of the current working hours; NULL until hours are set.
    slot_minutes    bigint,
    version         bigint NOT NULL
);
CREATE INDEX providers_by_specialty ON providers (specialty_key, provider_id);
CREATE UNIQUE INDEX providers_by_user ON providers (user_id);

-- Clinic holidays (provider_id NULL) and providers' time off.
CREATE TABLE closures (
    closure_id  text   PRIMARY KEY,
    provider_id text,
    starts_at   bigint NOT NULL,
    ends_at     bigint NOT NULL,
    whole_days  bigint NOT NULL,
    reason      text   NOT NULL,
    position    bigint NOT NULL
);
CREATE INDEX closures_by_time ON closures (starts_at);

CREATE TABLE appointments (
    appointment_id   text   PRIMARY KEY,
    provider_id      text   NOT NULL,
    patient_id       text   NOT NULL,
    starts_at        bigint NOT NULL,
    ends_at          bigint NOT NULL,
    status           text   NOT NULL,
    reason_for_visit text   NOT NULL,
    overbook_reason  text,
    cancel_reason    text,
    -- 1 when cancelled less than 24 h ahead; 1 when a closure cancelled it.
    late             bigint NOT NULL,
    by_clinic        bigint NOT NULL,
    booked_by        text   NOT NULL,
    booked_position  bigint NOT NULL,
    version          bigint NOT NULL
);
CREATE INDEX appointments_by_provider ON appointments (provider_id, starts_at);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_by_time ON appointments (starts_at, appointment_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON providers, closures, appointments TO anamnesis_app;
