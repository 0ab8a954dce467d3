-- The patients read model keeps its lists (identifiers, allergies,
-- conditions) in child tables, one row per item, so that the projector
-- writes a batch with a few multi-row statements instead of rewriting a JSON
-- array per event (docs/adr/0007-batch-projectors.md). Read models are
-- derived: the tables are rebuilt from the log by resetting the checkpoint.
DROP TABLE patient_identifiers;
DROP TABLE patients;
DELETE FROM checkpoints WHERE name = 'patients';

CREATE TABLE patients (
    patient_id    text        PRIMARY KEY,
    family_name   text        NOT NULL,
    given_name    text        NOT NULL,
    -- Lowercased names for prefix search; "C" collation so that a prefix
    -- range scan matches byte order.
    family_key    text        COLLATE "C" NOT NULL,
    given_key     text        COLLATE "C" NOT NULL,
    birth_date    date        NOT NULL,
    sex           text        NOT NULL,
    phone         text,
    email         text,
    address       text,
    deceased_on   date,
    user_id       text,
    registered_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- Global position of the last event applied: replays never go backwards.
    version       bigint      NOT NULL
);
CREATE INDEX patients_by_family ON patients (family_key, patient_id);
CREATE INDEX patients_by_given ON patients (given_key, patient_id);
CREATE INDEX patients_by_birth_date ON patients (birth_date, patient_id);

CREATE TABLE patient_identifiers (
    patient_id text   NOT NULL,
    system     text   NOT NULL,
    value      text   NOT NULL,
    -- Order within the patient's demographics.
    ordinal    bigint NOT NULL,
    PRIMARY KEY (patient_id, system)
);
CREATE INDEX patient_identifiers_by_value ON patient_identifiers (value, system);

CREATE TABLE patient_allergies (
    allergy_id  text        PRIMARY KEY,
    patient_id  text        NOT NULL,
    substance   text        NOT NULL,
    reaction    text        NOT NULL,
    severity    text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    recorded_by text        NOT NULL,
    -- Position of the event that recorded it: the list's order.
    position    bigint      NOT NULL
);
CREATE INDEX patient_allergies_by_patient ON patient_allergies (patient_id, position);

CREATE TABLE patient_conditions (
    condition_id text   PRIMARY KEY,
    patient_id   text   NOT NULL,
    code         text,
    description  text   NOT NULL,
    onset        date,
    resolved_on  date,
    recorded_by  text   NOT NULL,
    position     bigint NOT NULL
);
CREATE INDEX patient_conditions_by_patient ON patient_conditions (patient_id, position);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON patients, patient_identifiers, patient_allergies, patient_conditions TO anamnesis_app;
