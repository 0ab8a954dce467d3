-- Second factors (docs/adr/0025-mfa.md). A TOTP secret is a credential like
-- a password hash: it lives here, mutable, and never in `events`. Written by
-- the append transaction together with the event that records the
-- enrolment (started, confirmed), its disabling or its reset. Recovery codes
-- are kept as SHA-256 digests (hex, comma-separated, in the order shown);
-- which were used is in the log (`user.recovery_code_used`, by number).
CREATE TABLE mfa_credentials (
    user_id        uuid        PRIMARY KEY,
    secret         text        NOT NULL,
    confirmed      boolean     NOT NULL,
    recovery_codes text        NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- Removed when the user disables their second factor or an admin resets it.
GRANT SELECT, INSERT, UPDATE, DELETE ON mfa_credentials TO anamnesis_app;
