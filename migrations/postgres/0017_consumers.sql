-- Consumers fed by NATS, urgent alerts and reminders (docs/adr/0020-consumers.md).
-- Times are whole seconds since the Unix epoch.

-- Every event a consumer applied, written in the transaction of its output:
-- an event delivered twice is applied once.
CREATE TABLE processed_events (
    consumer     text   NOT NULL,
    event_id     text   NOT NULL,
    position     bigint NOT NULL,
    processed_at bigint NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Urgent alerts: the inbox's rows made by the `alerts` consumer.
CREATE TABLE alerts (
    notification_id text   PRIMARY KEY,
    recipient_id    text   NOT NULL,
    kind            text   NOT NULL,
    title           text   NOT NULL,
    patient_id      text,
    subject_type    text   NOT NULL,
    subject_id      text   NOT NULL,
    urgent          bigint NOT NULL,
    created_at      bigint NOT NULL,
    position        bigint NOT NULL
);
CREATE INDEX alerts_inbox ON alerts (recipient_id, position DESC);
CREATE TABLE alert_users (
    user_id text   PRIMARY KEY,
    role    text   NOT NULL,
    active  bigint NOT NULL
);
-- The alerts consumer makes these again, with the same ids (read marks stay).
DELETE FROM notifications WHERE kind IN ('critical_result', 'break_glass');

-- Reminders, one row per (appointment or medication, occurrence, offset):
-- scheduled by the notifications consumer, sent by the reminder sender,
-- which re-checks the record on the log first. Not a rebuilt table: a
-- rebuild never sends a reminder again.
CREATE TABLE reminders (
    reminder_id  text   PRIMARY KEY,
    kind         text   NOT NULL,
    title        text   NOT NULL,
    subject_type text   NOT NULL,
    subject_id   text   NOT NULL,
    patient_id   text   NOT NULL,
    occurrence   bigint NOT NULL,
    due_at       bigint NOT NULL,
    -- pending, sent, cancelled, missed (due while nothing ran, and too late)
    -- or no_account (the patient has no account to tell)
    status       text   NOT NULL,
    recipient_id text,
    decided_at   bigint,
    position     bigint
);
CREATE INDEX reminders_due ON reminders (status, due_at);
CREATE INDEX reminders_subject ON reminders (subject_id);
CREATE INDEX reminders_inbox ON reminders (recipient_id, position DESC);

GRANT SELECT, INSERT, UPDATE, DELETE ON processed_events, alerts, alert_users, reminders
    TO anamnesis_app;
