-- Prescriptions' read models (docs/adr/0015-prescriptions.md).
-- Times are whole seconds since the Unix epoch, as in 0007. A dose is a
-- decimal amount: it stays in the order's JSON, never in a float column.

-- One row per medication order: the order as now in effect.
CREATE TABLE medications (
    medication_id    text   PRIMARY KEY,
    patient_id       text   NOT NULL,
    -- The drug's name as compared (lower case, single spaces), and as written.
    drug_key         text   NOT NULL,
    name             text   NOT NULL,
    rxnorm           text,
    status           text   NOT NULL,
    -- The order (drug, dose, route, frequency, course, refills, instructions) as JSON.
    body             text   NOT NULL,
    versions         bigint NOT NULL,
    refills          bigint NOT NULL,
    refills_used     bigint NOT NULL,
    pending_refill   text,
    -- The allergies overridden and why, as JSON, where there were any.
    allergy_override text,
    prescriber_id    text   NOT NULL,
    prescribed_at    bigint NOT NULL,
    starts_at        bigint NOT NULL,
    ends_at          bigint,
    ended_reason     text,
    updated_at       bigint NOT NULL,
    position         bigint NOT NULL
);
CREATE INDEX medications_by_patient ON medications (patient_id, status, drug_key);

-- Every event of every order, in order: its history.
CREATE TABLE medication_history (
    position      bigint PRIMARY KEY,
    medication_id text   NOT NULL,
    event_type    text   NOT NULL,
    -- What the event says, as JSON.
    detail        text   NOT NULL,
    actor_id      text   NOT NULL,
    actor_role    text   NOT NULL,
    recorded_at   bigint NOT NULL
);
CREATE INDEX medication_history_by_order ON medication_history (medication_id, position);

-- Every dose given, held or refused.
CREATE TABLE medication_administrations (
    administration_id text   PRIMARY KEY,
    medication_id     text   NOT NULL,
    patient_id        text   NOT NULL,
    outcome           text   NOT NULL,
    given_at          bigint NOT NULL,
    note              text,
    actor_id          text   NOT NULL,
    recorded_at       bigint NOT NULL,
    position          bigint NOT NULL
);
CREATE INDEX medication_administrations_by_patient
    ON medication_administrations (patient_id, given_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON medications, medication_history,
    medication_administrations TO anamnesis_app;
