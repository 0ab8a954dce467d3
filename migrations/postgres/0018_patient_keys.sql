-- Per-patient data keys (docs/adr/0024-encryption.md). The payload of every
-- event about a patient is stored encrypted with the patient's data key; the
-- key is kept here wrapped under the master key (which is never in the
-- database). Mutable on purpose: erasure destroys the wrapped key (the row
-- stays, with no key, so that nothing about the patient can be appended
-- again) in the transaction that appends the erasure event.
CREATE TABLE patient_keys (
    patient_id    uuid        PRIMARY KEY,
    master_key_id bytea       NOT NULL,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL,
    erased_at     timestamptz,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);
GRANT SELECT, INSERT, UPDATE ON patient_keys TO anamnesis_app;
