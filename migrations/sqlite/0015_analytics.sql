-- De-identified analytics (see migrations/postgres/0015_analytics.sql and
-- docs/adr/0021-analytics.md).

-- Lookups: a patient's attributes, a provider's specialty.
CREATE TABLE analytics_patients (
    patient_id TEXT   PRIMARY KEY,
    -- 0-17, 18-34, 35-49, 50-64, 65-79, 80+: at the date of the patient's
    -- latest demographics event (registration or update).
    age_band   TEXT   NOT NULL,
    sex        TEXT   NOT NULL,
    -- The first three letters or digits of the postal code, upper-cased;
    -- `unknown` without an address.
    region     TEXT   NOT NULL,
    deceased   INTEGER NOT NULL,
    position   INTEGER NOT NULL
) STRICT;
CREATE TABLE analytics_providers (
    provider_id TEXT PRIMARY KEY,
    -- Lower-cased, as the slot search matches it.
    specialty   TEXT NOT NULL
) STRICT;

-- Facts: one row per appointment, prescription, bill and claim.
CREATE TABLE analytics_appointments (
    appointment_id TEXT   PRIMARY KEY,
    patient_id     TEXT   NOT NULL,
    provider_id    TEXT   NOT NULL,
    specialty      TEXT   NOT NULL,
    -- The local day of its (current) start.
    day            INTEGER NOT NULL,
    starts_at      INTEGER NOT NULL,
    booked_at      INTEGER NOT NULL,
    status         TEXT   NOT NULL,
    late           INTEGER NOT NULL,
    position       INTEGER NOT NULL
) STRICT;
CREATE INDEX analytics_appointments_day ON analytics_appointments (day);

CREATE TABLE analytics_prescriptions (
    medication_id TEXT   PRIMARY KEY,
    patient_id    TEXT   NOT NULL,
    -- A class of the built-in drug-class table, or `other`: never the name.
    drug_class    TEXT   NOT NULL,
    -- The local day it was prescribed.
    day           INTEGER NOT NULL,
    status        TEXT   NOT NULL,
    position      INTEGER NOT NULL
) STRICT;
CREATE INDEX analytics_prescriptions_day ON analytics_prescriptions (day);

CREATE TABLE analytics_bills (
    bill_id       TEXT   PRIMARY KEY,
    patient_id    TEXT   NOT NULL,
    service_day   INTEGER NOT NULL,
    -- `YYYY-MM` of the date of service.
    service_month TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    total         INTEGER NOT NULL,
    insurer_due   INTEGER NOT NULL,
    patient_due   INTEGER NOT NULL,
    payer_paid    INTEGER NOT NULL,
    patient_paid  INTEGER NOT NULL,
    adjusted      INTEGER NOT NULL,
    -- The bill as the domain folds it, from its events with every free
    -- TEXT blanked (reasons, line descriptions, payment methods).
    state         TEXT   NOT NULL,
    position      INTEGER NOT NULL
) STRICT;
CREATE INDEX analytics_bills_day ON analytics_bills (service_day);

CREATE TABLE analytics_claims (
    claim_id      TEXT   PRIMARY KEY,
    bill_id       TEXT   NOT NULL,
    patient_id    TEXT   NOT NULL,
    payer         TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    amount        INTEGER NOT NULL,
    paid          INTEGER NOT NULL,
    service_day   INTEGER NOT NULL,
    service_month TEXT   NOT NULL
) STRICT;
CREATE INDEX analytics_claims_bill ON analytics_claims (bill_id);
CREATE INDEX analytics_claims_day ON analytics_claims (service_day);
