-- E-mail and webhook delivery of notifications (see
-- migrations/postgres/0016_deliveries.sql).

CREATE TABLE delivery_channels (
    channel    TEXT    PRIMARY KEY,
    max_age_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    recipient_id    TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    urgent          INTEGER NOT NULL,
    patient_id      TEXT,
    subject_type    TEXT,
    subject_id      TEXT,
    position        INTEGER NOT NULL,
    caused_at_ms    INTEGER NOT NULL,
    enqueued_at_ms  INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_at_ms      INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    last_error      TEXT,
    UNIQUE (notification_id, channel)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (status, urgent, next_at_ms);
CREATE INDEX deliveries_by_status ON deliveries (status, id);

CREATE TABLE delivery_attempts (
    delivery_id    INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT,
    error          TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;
