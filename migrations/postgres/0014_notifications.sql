-- The in-app inbox of notifications (docs/adr/0019-notifications.md).
-- Times are whole seconds since the Unix epoch, as in 0007. Titles are
-- generic ("New result"): no patient data beyond the ids a client follows.

CREATE TABLE notifications (
    -- `<position>.<n>`: the event that caused it and its recipient's place,
    -- the same when rebuilt.
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
CREATE INDEX notifications_inbox ON notifications (recipient_id, position DESC);

-- What the notifier needs to know whom to tell, folded from the same events.
CREATE TABLE notify_users (
    user_id text   PRIMARY KEY,
    role    text   NOT NULL,
    active  bigint NOT NULL
);
CREATE TABLE notify_accounts (
    patient_id text PRIMARY KEY,
    user_id    text NOT NULL
);
CREATE TABLE notify_providers (
    provider_id text PRIMARY KEY,
    user_id     text NOT NULL
);
CREATE TABLE notify_appointments (
    appointment_id text PRIMARY KEY,
    patient_id     text NOT NULL,
    provider_id    text NOT NULL
);
CREATE TABLE notify_thread_members (
    thread_id text NOT NULL,
    user_id   text NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
CREATE TABLE notify_medications (
    medication_id text PRIMARY KEY,
    patient_id    text NOT NULL,
    prescriber_id text NOT NULL
);

-- Which notifications a user has read: written by the API, not the
-- projector, so a rebuild keeps it (ids are stable).
CREATE TABLE notification_reads (
    notification_id text   PRIMARY KEY,
    user_id         text   NOT NULL,
    read_at         bigint NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON notifications, notify_users, notify_accounts,
    notify_providers, notify_appointments, notify_thread_members, notify_medications,
    notification_reads TO anamnesis_app;
