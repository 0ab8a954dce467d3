-- The in-app inbox of notifications (see migrations/postgres/0014_notifications.sql).

CREATE TABLE notifications (
    -- `<position>.<n>`: the event that caused it and its recipient's place,
    -- the same when rebuilt.
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
CREATE INDEX notifications_inbox ON notifications (recipient_id, position DESC);

-- What the notifier needs to know whom to tell, folded from the same events.
CREATE TABLE notify_users (
    user_id TEXT   PRIMARY KEY,
    role    TEXT   NOT NULL,
    active  INTEGER NOT NULL
) STRICT;
CREATE TABLE notify_accounts (
    patient_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL
) STRICT;
CREATE TABLE notify_providers (
    provider_id TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL
) STRICT;
CREATE TABLE notify_appointments (
    appointment_id TEXT PRIMARY KEY,
    patient_id     TEXT NOT NULL,
    provider_id    TEXT NOT NULL
) STRICT;
CREATE TABLE notify_thread_members (
    thread_id TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
) STRICT;
CREATE TABLE notify_medications (
    medication_id TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL,
    prescriber_id TEXT NOT NULL
) STRICT;

-- Which notifications a user has read: written by the API, not the
-- projector, so a rebuild keeps it (ids are stable).
CREATE TABLE notification_reads (
    notification_id TEXT   PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    read_at         INTEGER NOT NULL
) STRICT;
