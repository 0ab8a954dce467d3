-- De-identified analytics (docs/adr/0021-analytics.md), folded by the
-- `analytics` projector. No names, contact details, birth dates, free text
-- or identifiers of any patient: opaque ids (to fold, and to count distinct
-- patients for small-cell suppression), age band, sex and region. The
-- analyst API never answers an id of a patient. Days are day numbers
-- (days since 1970-01-01) of the clinic's local date; times whole seconds
-- since the Unix epoch; money integer minor units.

-- Lookups: a patient's attributes, a provider's specialty.
CREATE TABLE analytics_patients (
    patient_id text   PRIMARY KEY,
    -- 0-17, 18-34, 35-49, 50-64, 65-79, 80+: at the date of the patient's
    -- latest demographics event (registration or update).
    age_band   text   NOT NULL,
    sex        text   NOT NULL,
    -- The first three letters or digits of the postal code, upper-cased;
    -- `unknown` without an address.
    region     text   NOT NULL,
    deceased   bigint NOT NULL,
    position   bigint NOT NULL
);
CREATE TABLE analytics_providers (
    provider_id text PRIMARY KEY,
    -- Lower-cased, as the slot search matches it.
    specialty   text NOT NULL
);

-- Facts: one row per appointment, prescription, bill and claim.
CREATE TABLE analytics_appointments (
    appointment_id text   PRIMARY KEY,
    patient_id     text   NOT NULL,
    provider_id    text   NOT NULL,
    specialty      text   NOT NULL,
    -- The local day of its (current) start.
    day            bigint NOT NULL,
    starts_at      bigint NOT NULL,
    booked_at      bigint NOT NULL,
    status         text   NOT NULL,
    late           bigint NOT NULL,
    position       bigint NOT NULL
);
CREATE INDEX analytics_appointments_day ON analytics_appointments (day);

CREATE TABLE analytics_prescriptions (
    medication_id text   PRIMARY KEY,
    patient_id    text   NOT NULL,
    -- A class of the built-in drug-class table, or `other`: never the name.
    drug_class    text   NOT NULL,
    -- The local day it was prescribed.
    day           bigint NOT NULL,
    status        text   NOT NULL,
    position      bigint NOT NULL
);
CREATE INDEX analytics_prescriptions_day ON analytics_prescriptions (day);

CREATE TABLE analytics_bills (
    bill_id       text   PRIMARY KEY,
    patient_id    text   NOT NULL,
    service_day   bigint NOT NULL,
    -- `YYYY-MM` of the date of service.
    service_month text   NOT NULL,
    status        text   NOT NULL,
    total         bigint NOT NULL,
    insurer_due   bigint NOT NULL,
    patient_due   bigint NOT NULL,
    payer_paid    bigint NOT NULL,
    patient_paid  bigint NOT NULL,
    adjusted      bigint NOT NULL,
    -- The bill as the domain folds it, from its events with every free
    -- text blanked (reasons, line descriptions, payment methods).
    state         text   NOT NULL,
    position      bigint NOT NULL
);
CREATE INDEX analytics_bills_day ON analytics_bills (service_day);

CREATE TABLE analytics_claims (
    claim_id      text   PRIMARY KEY,
    bill_id       text   NOT NULL,
    patient_id    text   NOT NULL,
    payer         text   NOT NULL,
    status        text   NOT NULL,
    amount        bigint NOT NULL,
    paid          bigint NOT NULL,
    service_day   bigint NOT NULL,
    service_month text   NOT NULL
);
CREATE INDEX analytics_claims_bill ON analytics_claims (bill_id);
CREATE INDEX analytics_claims_day ON analytics_claims (service_day);

GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_patients, analytics_providers,
    analytics_appointments, analytics_prescriptions, analytics_bills, analytics_claims
    TO anamnesis_app;
