-- The clinical record's read models (docs/adr/0013-clinical-record.md).
-- Times are whole seconds since the Unix epoch, as in 0007.

-- One row per chart entry: its current version and where it stands.
CREATE TABLE chart_entries (
    entry_id       text   PRIMARY KEY,
    patient_id     text   NOT NULL,
    kind           text   NOT NULL,
    status         text   NOT NULL,
    author_id      text   NOT NULL,
    appointment_id text,
    title          text   NOT NULL,
    -- Lower-cased title and text, for free-text search.
    search         text   NOT NULL,
    -- The current version as JSON (with derived values, such as BMI).
    body           text   NOT NULL,
    versions       bigint NOT NULL,
    critical       bigint NOT NULL,
    -- The clinical time (taken, specimen, performed, given) or, where the
    -- kind has none, when it was first written: the timeline's order.
    effective_at   bigint NOT NULL,
    recorded_at    bigint NOT NULL,
    updated_at     bigint NOT NULL,
    signed_at      bigint,
    signed_by      text,
    withdrawn_reason text,
    position       bigint NOT NULL
);
CREATE INDEX chart_entries_timeline ON chart_entries (patient_id, effective_at DESC, entry_id DESC);

-- Every version of every entry.
CREATE TABLE chart_versions (
    entry_id    text   NOT NULL,
    version     bigint NOT NULL,
    event_type  text   NOT NULL,
    body        text   NOT NULL,
    reason      text,
    actor_id    text   NOT NULL,
    actor_role  text   NOT NULL,
    recorded_at bigint NOT NULL,
    position    bigint NOT NULL,
    PRIMARY KEY (entry_id, version)
);

-- Explicit care-team assignments (appointments are the other way in).
CREATE TABLE care_team_members (
    patient_id text   NOT NULL,
    user_id    text   NOT NULL,
    reason     text   NOT NULL,
    added_by   text   NOT NULL,
    added_at   bigint NOT NULL,
    PRIMARY KEY (patient_id, user_id)
);

-- Every break-the-glass grant, for compliance.
CREATE TABLE break_glass_grants (
    grant_id   text   PRIMARY KEY,
    patient_id text   NOT NULL,
    user_id    text   NOT NULL,
    user_role  text   NOT NULL,
    reason     text   NOT NULL,
    granted_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    position   bigint NOT NULL
);
CREATE INDEX break_glass_by_time ON break_glass_grants (position);

GRANT SELECT, INSERT, UPDATE, DELETE ON chart_entries, chart_versions, care_team_members,
    break_glass_grants TO anamnesis_app;
