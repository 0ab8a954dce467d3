-- Per-patient data keys (see migrations/postgres/0018_patient_keys.sql).
CREATE TABLE patient_keys (
    patient_id    TEXT PRIMARY KEY,
    master_key_id BLOB NOT NULL,
    wrapped_key   BLOB,
    created_at    TEXT NOT NULL,
    erased_at     TEXT,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
) STRICT;
