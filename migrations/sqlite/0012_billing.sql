-- Billing and insurance read models (see migrations/postgres/0012_billing.sql).
-- Money is whole minor units of the bill's currency (INTEGER), never a
-- float. Days are whole days since 1970-01-01 (so that aging is integer
-- arithmetic on both backends); times are whole seconds since the epoch.

-- The price list: one row per listed code (retired codes stay, inactive).
CREATE TABLE billing_price_list (
    code        TEXT   PRIMARY KEY,
    description TEXT   NOT NULL,
    unit_price  INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    position    INTEGER NOT NULL
) STRICT;

-- Each patient's coverage.
CREATE TABLE billing_coverage (
    coverage_id  TEXT   PRIMARY KEY,
    patient_id   TEXT   NOT NULL,
    payer        TEXT   NOT NULL,
    member_id    TEXT   NOT NULL,
    plan         TEXT   NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_to     INTEGER,
    rank         TEXT   NOT NULL,
    ended        INTEGER NOT NULL,
    ended_reason TEXT,
    position     INTEGER NOT NULL
) STRICT;
CREATE INDEX billing_coverage_patient ON billing_coverage (patient_id);

-- One row per bill: where it stands and its balance, split by who owes it.
CREATE TABLE billing_bills (
    bill_id        TEXT   PRIMARY KEY,
    patient_id     TEXT   NOT NULL,
    appointment_id TEXT,
    currency       TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    service_day    INTEGER NOT NULL,
    issued_day     INTEGER,
    void_reason    TEXT,
    total          INTEGER NOT NULL,
    insurer_due    INTEGER NOT NULL,
    patient_due    INTEGER NOT NULL,
    payer_paid     INTEGER NOT NULL,
    patient_paid   INTEGER NOT NULL,
    adjusted       INTEGER NOT NULL,
    refunded       INTEGER NOT NULL,
    -- The bill as the domain folds it (JSON, amounts as integers): the
    -- projector applies each event to it with the domain's own rules.
    state          TEXT   NOT NULL,
    opened_at      INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    position       INTEGER NOT NULL
) STRICT;
CREATE INDEX billing_bills_patient ON billing_bills (patient_id, service_day);
CREATE INDEX billing_bills_status ON billing_bills (status, issued_day);
CREATE INDEX billing_bills_service ON billing_bills (service_day);

-- A bill's lines.
CREATE TABLE billing_lines (
    bill_id     TEXT   NOT NULL,
    line_id     TEXT   NOT NULL,
    ordinal     INTEGER NOT NULL,
    code        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    quantity    INTEGER NOT NULL,
    unit_price  INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    PRIMARY KEY (bill_id, line_id)
) STRICT;

-- Claims, by bill and by payer.
CREATE TABLE billing_claims (
    claim_id      TEXT   PRIMARY KEY,
    bill_id       TEXT   NOT NULL,
    patient_id    TEXT   NOT NULL,
    coverage_id   TEXT   NOT NULL,
    payer         TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    amount        INTEGER NOT NULL,
    paid          INTEGER NOT NULL,
    -- Space-separated reason codes of the last rejection or decision.
    reason_codes  TEXT   NOT NULL,
    submissions   INTEGER NOT NULL,
    submitted_day INTEGER NOT NULL
) STRICT;
CREATE INDEX billing_claims_bill ON billing_claims (bill_id);
CREATE INDEX billing_claims_payer ON billing_claims (payer, bill_id);

-- Money moved on a bill other than by claims: payments, adjustments,
-- write-offs and refunds.
CREATE TABLE billing_movements (
    movement_id TEXT   PRIMARY KEY,
    bill_id     TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    amount      INTEGER NOT NULL,
    -- The payment's method, or the adjustment's or refund's reason.
    note        TEXT   NOT NULL,
    actor_id    TEXT   NOT NULL,
    recorded_at INTEGER NOT NULL,
    position    INTEGER NOT NULL
) STRICT;
CREATE INDEX billing_movements_bill ON billing_movements (bill_id, position);
