-- Prescriptions' read models (see migrations/postgres/0011_medications.sql).

-- One row per medication order: the order as now in effect.
CREATE TABLE medications (
    medication_id    TEXT   PRIMARY KEY,
    patient_id       TEXT   NOT NULL,
    -- The drug's name as compared (lower case, single spaces), and as written.
    drug_key         TEXT   NOT NULL,
    name             TEXT   NOT NULL,
    rxnorm           TEXT,
    status           TEXT   NOT NULL,
    -- The order (drug, dose, route, frequency, course, refills, instructions) as JSON.
    body             TEXT   NOT NULL,
    versions         INTEGER NOT NULL,
    refills          INTEGER NOT NULL,
    refills_used     INTEGER NOT NULL,
    pending_refill   TEXT,
    -- The allergies overridden and why, as JSON, where there were any.
    allergy_override TEXT,
    prescriber_id    TEXT   NOT NULL,
    prescribed_at    INTEGER NOT NULL,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER,
    ended_reason     TEXT,
    updated_at       INTEGER NOT NULL,
    position         INTEGER NOT NULL
) STRICT;
CREATE INDEX medications_by_patient ON medications (patient_id, status, drug_key);

-- Every event of every order, in order: its history.
CREATE TABLE medication_history (
    position      INTEGER PRIMARY KEY,
    medication_id TEXT   NOT NULL,
    event_type    TEXT   NOT NULL,
    -- What the event says, as JSON.
    detail        TEXT   NOT NULL,
    actor_id      TEXT   NOT NULL,
    actor_role    TEXT   NOT NULL,
    recorded_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX medication_history_by_order ON medication_history (medication_id, position);

-- Every dose given, held or refused.
CREATE TABLE medication_administrations (
    administration_id TEXT   PRIMARY KEY,
    medication_id     TEXT   NOT NULL,
    patient_id        TEXT   NOT NULL,
    outcome           TEXT   NOT NULL,
    given_at          INTEGER NOT NULL,
    note              TEXT,
    actor_id          TEXT   NOT NULL,
    recorded_at       INTEGER NOT NULL,
    position          INTEGER NOT NULL
) STRICT;
CREATE INDEX medication_administrations_by_patient
    ON medication_administrations (patient_id, given_at);
