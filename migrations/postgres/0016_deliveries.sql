-- E-mail and webhook delivery of notifications (docs/adr/0023-deliveries.md).
-- Times are milliseconds since the Unix epoch (retries back off in
-- fractions of a second in tests). Not a projector's table: a rebuild of
-- `notifications` never replaces it, and its unique key keeps a rebuilt or
-- redelivered notification from being enqueued twice.

-- The channels this clinic delivers over, written by the server at start
-- from its settings, read by `deliveries::enqueue` inside a projector's
-- transaction. `max_age_ms`: a cause recorded longer ago is enqueued as
-- `expired` (never sent).
CREATE TABLE delivery_channels (
    channel    text   PRIMARY KEY,
    max_age_ms bigint NOT NULL
);

-- The outbox: one row per notification and channel.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    notification_id text   NOT NULL,
    channel         text   NOT NULL,
    recipient_id    text   NOT NULL,
    kind            text   NOT NULL,
    title           text   NOT NULL,
    urgent          bigint NOT NULL,
    patient_id      text,
    subject_type    text,
    subject_id      text,
    -- The log position of the notification (the admins' `delivery_failed`
    -- notification is filed there).
    position        bigint NOT NULL,
    caused_at_ms    bigint NOT NULL,
    enqueued_at_ms  bigint NOT NULL,
    -- pending, sending, sent, dead, expired, unknown or skipped.
    status          text   NOT NULL,
    attempts        bigint NOT NULL,
    next_at_ms      bigint NOT NULL,
    updated_at_ms   bigint NOT NULL,
    last_error      text,
    UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (status, urgent, next_at_ms);
CREATE INDEX deliveries_by_status ON deliveries (status, id);

-- Every attempt: started before the channel is called, finished after.
CREATE TABLE delivery_attempts (
    delivery_id    bigint NOT NULL,
    attempt        bigint NOT NULL,
    started_at_ms  bigint NOT NULL,
    finished_at_ms bigint,
    -- sent, failed, skipped, unknown or interrupted; NULL while under way.
    outcome        text,
    -- What went wrong, never patient data: an HTTP status, an SMTP code.
    error          text,
    PRIMARY KEY (delivery_id, attempt)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON delivery_channels, deliveries, delivery_attempts
    TO anamnesis_app;
GRANT USAGE, SELECT ON SEQUENCE deliveries_id_seq TO anamnesis_app;
