-- Every event names its patient where it has one (issue 11): set by the
-- aggregate (`Subject`), covered by the event's hash when present, indexed so
-- that everything about one patient is one index range across aggregates.
-- Events written before this migration have none; a patient's own stream is
-- still found by its id (docs/adr/0010-patient-history.md).
ALTER TABLE events ADD COLUMN patient_id uuid;
CREATE INDEX events_by_patient ON events (patient_id, global_position)
    WHERE patient_id IS NOT NULL;
