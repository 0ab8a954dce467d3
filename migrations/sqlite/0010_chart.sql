-- The clinical record's read models (see migrations/postgres/0010_chart.sql).

-- One row per chart entry: its current version and where it stands.
CREATE TABLE chart_entries (
    entry_id       TEXT   PRIMARY KEY,
    patient_id     TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    author_id      TEXT   NOT NULL,
    appointment_id TEXT,
    title          TEXT   NOT NULL,
    -- Lower-cased title and text, for free-text search.
    search         TEXT   NOT NULL,
    -- The current version as JSON (with derived values, such as BMI).
    body           TEXT   NOT NULL,
    versions       INTEGER NOT NULL,
    critical       INTEGER NOT NULL,
    -- The clinical time (taken, specimen, performed, given) or, where the
    -- kind has none, when it was first written: the timeline's order.
    effective_at   INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    signed_at      INTEGER,
    signed_by      TEXT,
    withdrawn_reason TEXT,
    position       INTEGER NOT NULL
) STRICT;
CREATE INDEX chart_entries_timeline ON chart_entries (patient_id, effective_at DESC, entry_id DESC);

-- Every version of every entry.
CREATE TABLE chart_versions (
    entry_id    TEXT   NOT NULL,
    version     INTEGER NOT NULL,
    event_type  TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    reason      TEXT,
    actor_id    TEXT   NOT NULL,
    actor_role  TEXT   NOT NULL,
    recorded_at INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (entry_id, version)
) STRICT;

-- Explicit care-team assignments (appointments are the other way in).
CREATE TABLE care_team_members (
    patient_id TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    added_by   TEXT   NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (patient_id, user_id)
) STRICT;

-- Every break-the-glass grant, for compliance.
CREATE TABLE break_glass_grants (
    grant_id   TEXT   PRIMARY KEY,
    patient_id TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    user_role  TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    position   INTEGER NOT NULL
) STRICT;
CREATE INDEX break_glass_by_time ON break_glass_grants (position);

