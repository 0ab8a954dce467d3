-- Read model: patients (see migrations/postgres/0002_patients.sql).
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
    identifiers   TEXT    NOT NULL,
    allergies     TEXT    NOT NULL,
    conditions    TEXT    NOT NULL,
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
    patient_id TEXT NOT NULL,
    system     TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (patient_id, system)
) STRICT;
CREATE INDEX patient_identifiers_by_value ON patient_identifiers (value, system);
