-- The patients read model keeps its lists in child tables
-- (see migrations/postgres/0005_patient_lists.sql).
DROP TABLE patient_identifiers;
DROP TABLE patients;
DELETE FROM checkpoints WHERE name = 'patients';

CREATE TABLE patients (
    patient_id    TEXT    PRIMARY KEY,
    family_name   TEXT    NOT NULL,
    given_name    TEXT    NOT NULL,
    family_key    TEXT    NOT NULL,
    given_key     TEXT    NOT NULL,
    birth_date    TEXT    NOT NULL,
    sex           TEXT    NOT NULL,
    phone         TEXT,
    email         TEXT,
    address       TEXT,
    deceased_on   TEXT,
    user_id       TEXT,
    registered_at TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    version       INTEGER NOT NULL
) STRICT;
CREATE INDEX patients_by_family ON patients (family_key, patient_id);
CREATE INDEX patients_by_given ON patients (given_key, patient_id);
CREATE INDEX patients_by_birth_date ON patients (birth_date, patient_id);

CREATE TABLE patient_identifiers (
    patient_id TEXT    NOT NULL,
    system     TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    ordinal    INTEGER NOT NULL,
    PRIMARY KEY (patient_id, system)
) STRICT;
CREATE INDEX patient_identifiers_by_value ON patient_identifiers (value, system);

CREATE TABLE patient_allergies (
    allergy_id  TEXT    PRIMARY KEY,
    patient_id  TEXT    NOT NULL,
    substance   TEXT    NOT NULL,
    reaction    TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    recorded_by TEXT    NOT NULL,
    position    INTEGER NOT NULL
) STRICT;
CREATE INDEX patient_allergies_by_patient ON patient_allergies (patient_id, position);

CREATE TABLE patient_conditions (
    condition_id TEXT    PRIMARY KEY,
    patient_id   TEXT    NOT NULL,
    code         TEXT,
    description  TEXT    NOT NULL,
    onset        TEXT,
    resolved_on  TEXT,
    recorded_by  TEXT    NOT NULL,
    position     INTEGER NOT NULL
) STRICT;
CREATE INDEX patient_conditions_by_patient ON patient_conditions (patient_id, position);
