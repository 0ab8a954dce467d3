-- Every event names its patient (see migrations/postgres/0008_event_patient.sql).
ALTER TABLE events ADD COLUMN patient_id TEXT;
CREATE INDEX events_by_patient ON events (patient_id, global_position)
    WHERE patient_id IS NOT NULL;
