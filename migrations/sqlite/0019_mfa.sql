-- Second factors (see migrations/postgres/0019_mfa.sql).
CREATE TABLE mfa_credentials (
    user_id        TEXT    PRIMARY KEY,
    secret         TEXT    NOT NULL,
    confirmed      INTEGER NOT NULL,
    recovery_codes TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
) STRICT;
