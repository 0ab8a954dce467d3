-- Billing and insurance read models (docs/adr/0016-billing.md).
-- Money is whole minor units of the bill's currency (bigint), never a
-- float. Days are whole days since 1970-01-01 (so that aging is integer
-- arithmetic on both backends); times are whole seconds since the epoch.

-- The price list: one row per listed code (retired codes stay, inactive).
CREATE TABLE billing_price_list (
    code        text   PRIMARY KEY,
    description text   NOT NULL,
    unit_price  bigint NOT NULL,
    active      bigint NOT NULL,
    position    bigint NOT NULL
);

-- Each patient's coverage.
CREATE TABLE billing_coverage (
    coverage_id  text   PRIMARY KEY,
    patient_id   text   NOT NULL,
    payer        text   NOT NULL,
    member_id    text   NOT NULL,
    plan         text   NOT NULL,
    valid_from   bigint NOT NULL,
    valid_to     bigint,
    rank         text   NOT NULL,
    ended        bigint NOT NULL,
    ended_reason text,
    position     bigint NOT NULL
);
CREATE INDEX billing_coverage_patient ON billing_coverage (patient_id);

-- One row per bill: where it stands and its balance, split by who owes it.
CREATE TABLE billing_bills (
    bill_id        text   PRIMARY KEY,
    patient_id     text   NOT NULL,
    appointment_id text,
    currency       text   NOT NULL,
    status         text   NOT NULL,
    service_day    bigint NOT NULL,
    issued_day     bigint,
    void_reason    text,
    total          bigint NOT NULL,
    insurer_due    bigint NOT NULL,
    patient_due    bigint NOT NULL,
    payer_paid     bigint NOT NULL,
    patient_paid   bigint NOT NULL,
    adjusted       bigint NOT NULL,
    refunded       bigint NOT NULL,
    -- The bill as the domain folds it (JSON, amounts as integers): the
    -- projector applies each event to it with the domain's own rules.
    state          text   NOT NULL,
    opened_at      bigint NOT NULL,
    updated_at     bigint NOT NULL,
    position       bigint NOT NULL
);
CREATE INDEX billing_bills_patient ON billing_bills (patient_id, service_day);
CREATE INDEX billing_bills_status ON billing_bills (status, issued_day);
CREATE INDEX billing_bills_service ON billing_bills (service_day);

-- A bill's lines.
CREATE TABLE billing_lines (
    bill_id     text   NOT NULL,
    line_id     text   NOT NULL,
    ordinal     bigint NOT NULL,
    code        text   NOT NULL,
    description text   NOT NULL,
    quantity    bigint NOT NULL,
    unit_price  bigint NOT NULL,
    amount      bigint NOT NULL,
    PRIMARY KEY (bill_id, line_id)
);

-- Claims, by bill and by payer.
CREATE TABLE billing_claims (
    claim_id      text   PRIMARY KEY,
    bill_id       text   NOT NULL,
    patient_id    text   NOT NULL,
    coverage_id   text   NOT NULL,
    payer         text   NOT NULL,
    status        text   NOT NULL,
    amount        bigint NOT NULL,
    paid          bigint NOT NULL,
    -- Space-separated reason codes of the last rejection or decision.
    reason_codes  text   NOT NULL,
    submissions   bigint NOT NULL,
    submitted_day bigint NOT NULL
);
CREATE INDEX billing_claims_bill ON billing_claims (bill_id);
CREATE INDEX billing_claims_payer ON billing_claims (payer, bill_id);

-- Money moved on a bill other than by claims: payments, adjustments,
-- write-offs and refunds.
CREATE TABLE billing_movements (
    movement_id text   PRIMARY KEY,
    bill_id     text   NOT NULL,
    kind        text   NOT NULL,
    amount      bigint NOT NULL,
    -- The payment's method, or the adjustment's or refund's reason.
    note        text   NOT NULL,
    actor_id    text   NOT NULL,
    recorded_at bigint NOT NULL,
    position    bigint NOT NULL
);
CREATE INDEX billing_movements_bill ON billing_movements (bill_id, position);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON billing_price_list, billing_coverage, billing_bills, billing_lines, billing_claims,
       billing_movements
    TO anamnesis_app;
