-- Secure messaging's read models (see migrations/postgres/0013_messaging.sql).

CREATE TABLE message_threads (
    thread_id       TEXT    PRIMARY KEY,
    patient_id      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    started_by      TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL,
    message_count   INTEGER NOT NULL,
    position        INTEGER NOT NULL
) STRICT;
CREATE INDEX message_threads_by_patient ON message_threads (patient_id);

CREATE TABLE thread_participants (
    thread_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    party      TEXT    NOT NULL,
    read_up_to INTEGER NOT NULL,
    archived   INTEGER NOT NULL,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (thread_id, user_id)
) STRICT;
CREATE INDEX thread_participants_inbox ON thread_participants (user_id, archived);

CREATE TABLE thread_messages (
    thread_id   TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    author_id   TEXT    NOT NULL,
    author_role TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    posted_at   INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (thread_id, number)
) STRICT;
