-- Consumers, alerts and reminders (see migrations/postgres/0017_consumers.sql).
-- Times are whole seconds since the Unix epoch.

-- Every event a consumer applied, written in the transaction of its output:
-- an event delivered twice is applied once.
CREATE TABLE processed_events (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    position     INTEGER NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) STRICT;

-- Urgent alerts: the inbox's rows made by the `alerts` consumer.
CREATE TABLE alerts (
    notification_id TEXT   PRIMARY KEY,
    recipient_id    TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    title           TEXT   NOT NULL,
    patient_id      TEXT,
    subject_type    TEXT   NOT NULL,
    subject_id      TEXT   NOT NULL,
    urgent          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    position        INTEGER NOT NULL
) STRICT;
CREATE INDEX alerts_inbox ON alerts (recipient_id, position DESC);
CREATE TABLE alert_users (
    user_id TEXT   PRIMARY KEY,
    role    TEXT   NOT NULL,
    active  INTEGER NOT NULL
) STRICT;
-- The alerts consumer makes these again, with the same ids (read marks stay).
DELETE FROM notifications WHERE kind IN ('critical_result', 'break_glass');

-- Reminders, one row per (appointment or medication, occurrence, offset):
-- scheduled by the notifications consumer, sent by the reminder sender,
-- which re-checks the record on the log first. Not a rebuilt table: a
-- rebuild never sends a reminder again.
CREATE TABLE reminders (
    reminder_id  TEXT   PRIMARY KEY,
    kind         TEXT   NOT NULL,
    title        TEXT   NOT NULL,
    subject_type TEXT   NOT NULL,
    subject_id   TEXT   NOT NULL,
    patient_id   TEXT   NOT NULL,
    occurrence   INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    -- pending, sent, cancelled, missed (due while nothing ran, and too late)
    -- or no_account (the patient has no account to tell)
    status       TEXT   NOT NULL,
    recipient_id TEXT,
    decided_at   INTEGER,
    position     INTEGER
) STRICT;
CREATE INDEX reminders_due ON reminders (status, due_at);
CREATE INDEX reminders_subject ON reminders (subject_id);
CREATE INDEX reminders_inbox ON reminders (recipient_id, position DESC);

