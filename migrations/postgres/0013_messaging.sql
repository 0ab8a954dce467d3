-- Secure messaging's read models (docs/adr/0017-messaging.md).
-- Times are whole seconds since the Unix epoch, as in 0007.

-- One row per thread: whom it is about, its subject, how many messages.
CREATE TABLE message_threads (
    thread_id       text   PRIMARY KEY,
    patient_id      text   NOT NULL,
    subject         text   NOT NULL,
    started_by      text   NOT NULL,
    started_at      bigint NOT NULL,
    last_message_at bigint NOT NULL,
    message_count   bigint NOT NULL,
    position        bigint NOT NULL
);
CREATE INDEX message_threads_by_patient ON message_threads (patient_id);

-- Who takes part, how far each has read (the receipt), whether they
-- archived it: the inbox is this table by user, joined to the threads.
CREATE TABLE thread_participants (
    thread_id  text   NOT NULL,
    user_id    text   NOT NULL,
    party      text   NOT NULL,
    read_up_to bigint NOT NULL,
    archived   bigint NOT NULL,
    joined_at  bigint NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX thread_participants_inbox ON thread_participants (user_id, archived);

-- Every message, numbered from 1 in its thread.
CREATE TABLE thread_messages (
    thread_id   text   NOT NULL,
    number      bigint NOT NULL,
    author_id   text   NOT NULL,
    author_role text   NOT NULL,
    body        text   NOT NULL,
    posted_at   bigint NOT NULL,
    position    bigint NOT NULL,
    PRIMARY KEY (thread_id, number)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON message_threads, thread_participants, thread_messages
    TO anamnesis_app;
