-- Read model: patients, searchable by name prefix, birth date and identifier.
-- Built by the `patients` projector (projections/src/patients.rs).
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
    identifiers   text        NOT NULL,
    allergies     text        NOT NULL,
    conditions    text        NOT NULL,
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
    patient_id text NOT NULL,
    system     text NOT NULL,
    value      text NOT NULL,
    PRIMARY KEY (patient_id, system)
);
CREATE INDEX patient_identifiers_by_value ON patient_identifiers (value, system);

GRANT SELECT, INSERT, UPDATE, DELETE ON patients, patient_identifiers TO anamnesis_app;
