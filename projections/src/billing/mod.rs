//! Billing's read models (migration 0012): the price list, coverage, bills
//! with their balance split by who owes it, their lines, claims and money
//! movements; and their queries: bills by patient, status, payer and date
//! of service with totals, and receivables aging.
//!
//! A bill's row keeps the bill as the domain folds it (`state`, JSON with
//! integer amounts): each event is applied with the domain's own `apply`
//! and the balance computed by the domain's own arithmetic, so that the
//! read model cannot disagree with the write side to the cent. An event
//! that does not fit the bill it is about is an error, never skipped.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use anamnesis_domain::billing::{Balance, Bill, BillEvent, CoverageEvent, Opening, PriceListEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};

use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

mod queries;

pub use queries::{
    aging, bill, bills, coverage_of, price_list_view, AgingBucket, BillDetail, BillQuery,
    BillSummary, ClaimView, CoverageView, LineView, MovementView, PriceView, Totals,
};

/// The projector's checkpoint name.
pub const NAME: &str = "billing";

/// An event of the price list, a coverage or a bill.
#[derive(Debug, Clone, PartialEq)]
pub enum BillingEvent {
    PriceList(PriceListEvent),
    Coverage(CoverageEvent),
    Bill(BillEvent),
}

impl Decode for BillingEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        Ok(match event_type.split('.').next().unwrap_or("") {
            "price_list" => {
                Self::PriceList(PriceListEvent::from_stored(event_type, version, payload)?)
            }
            "coverage" => Self::Coverage(CoverageEvent::from_stored(event_type, version, payload)?),
            "bill" => Self::Bill(BillEvent::from_stored(event_type, version, payload)?),
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Projects the price list, coverage and bills.
#[derive(Debug, Clone, Copy, Default)]
pub struct Billing;

impl Projector for Billing {
    type Event = BillingEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["price_list", "coverage", "bill"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "billing_price_list",
            "billing_coverage",
            "billing_bills",
            "billing_lines",
            "billing_claims",
            "billing_movements",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<BillingEvent>],
    ) -> Result<(), ProjectionError> {
        // Bills touched by the batch: read in one statement, folded in
        // memory, written together at the end.
        let mut first: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for e in events {
            if let BillingEvent::Bill(_) = e.event {
                let at = (e.position(), e.stored.recorded_at.timestamp());
                first.entry(e.id()).or_insert(at);
            }
        }
        let mut bills = if first.is_empty() {
            BTreeMap::new()
        } else {
            load(tx, first).await?
        };
        let mut movements = sql::Run::new_rows(
            "billing_movements (movement_id, bill_id, kind, amount, note, actor_id, recorded_at, \
             position)",
            "movement_id",
            "a payment, adjustment or refund recorded twice",
        );
        // Coverage added is one insert, up to the next coverage ended.
        let mut covered = sql::Run::new_rows(
            "billing_coverage (coverage_id, patient_id, payer, member_id, plan, valid_from, \
             valid_to, rank, ended, position)",
            "coverage_id",
            "a coverage added twice",
        );
        // Each run is written before the next statement on its table; the
        // price list, coverage and bills are tables of their own.
        for e in events {
            match &e.event {
                BillingEvent::PriceList(event) => price_list(tx, e, event).await?,
                BillingEvent::Coverage(event) => coverage(tx, e, event, &mut covered).await?,
                BillingEvent::Bill(event) => {
                    let folded = bills
                        .get_mut(e.id())
                        .ok_or_else(|| damaged(e, "a bill lost from the batch"))?;
                    fold(tx, e, event, folded, &mut movements).await?;
                }
            }
        }
        movements.flush(tx).await?;
        covered.flush(tx).await?;
        if !bills.is_empty() {
            write(tx, &bills).await?;
        }
        Ok(())
    }

    /// Bills, their lines, claims and movements, and coverage go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
            "DELETE FROM billing_lines WHERE bill_id IN (SELECT bill_id FROM billing_bills WHERE patient_id = $1)",
            "DELETE FROM billing_movements WHERE bill_id IN (SELECT bill_id FROM billing_bills WHERE patient_id = $1)",
            "DELETE FROM billing_claims WHERE patient_id = $1",
            "DELETE FROM billing_bills WHERE patient_id = $1",
            "DELETE FROM billing_coverage WHERE patient_id = $1",
            ],
            patient,
        )
        .await?;
        Ok(())
    }
}

fn damaged(e: &Envelope<BillingEvent>, detail: impl Into<String>) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.into(),
    }
}

/// Whole days since 1970-01-01.
pub fn day_number(d: NaiveDate) -> i64 {
    d.signed_duration_since(NaiveDate::default()).num_days()
}

/// The date of a day number.
pub(crate) fn date_of(days: i64) -> Result<NaiveDate, sqlx::Error> {
    DateTime::<Utc>::from_timestamp(days.saturating_mul(86_400), 0)
        .map(|t| t.date_naive())
        .ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "day".into(),
            source: format!("{days} is no day").into(),
        })
}

async fn price_list(
    tx: &mut Tx,
    e: &Envelope<BillingEvent>,
    event: &PriceListEvent,
) -> Result<(), ProjectionError> {
    match event {
        PriceListEvent::CodeSet(listed) => {
            sql::execute(
                tx,
                "INSERT INTO billing_price_list (code, description, unit_price, active, position) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT (code) DO UPDATE SET \
                 description = excluded.description, unit_price = excluded.unit_price, \
                 active = 1, position = excluded.position",
                &[
                    listed.code.as_str().into(),
                    listed.description.as_str().into(),
                    listed.unit_price.get().into(),
                    e.position().into(),
                ],
            )
            .await?;
        }
        PriceListEvent::CodeRetired { code } => {
            let n = sql::execute(
                tx,
                "UPDATE billing_price_list SET active = 0, position = $2 WHERE code = $1",
                &[code.as_str().into(), e.position().into()],
            )
            .await?;
            if n == 0 {
                return Err(damaged(e, "a code retired that was never listed"));
            }
        }
    }
    Ok(())
}

/// Applies a coverage event; coverage added goes into the run `covered`
/// (a coverage the table holds already stops the projector at the event
/// that added it again).
async fn coverage(
    tx: &mut Tx,
    e: &Envelope<BillingEvent>,
    event: &CoverageEvent,
    covered: &mut sql::Run,
) -> Result<(), ProjectionError> {
    match event {
        CoverageEvent::Added(c) => {
            let id = c.coverage_id.to_string();
            let row = vec![
                id.as_str().into(),
                e.id().into(),
                c.payer.as_str().into(),
                c.member_id.as_str().into(),
                c.plan.as_str().into(),
                day_number(c.valid_from).into(),
                Value::Int(c.valid_to.map(day_number)),
                c.rank.as_str().into(),
                0_i64.into(),
                e.position().into(),
            ];
            covered.push(id, e.position(), row);
        }
        CoverageEvent::Ended {
            coverage_id,
            reason,
        } => {
            covered.flush(tx).await?;
            let n = sql::execute(
                tx,
                "UPDATE billing_coverage SET ended = 1, ended_reason = $3, position = $4 \
                 WHERE coverage_id = $1 AND patient_id = $2",
                &[
                    coverage_id.to_string().into(),
                    e.id().into(),
                    reason.as_str().into(),
                    e.position().into(),
                ],
            )
            .await?;
            if n == 0 {
                return Err(damaged(e, "a coverage ended that was never added"));
            }
        }
    }
    Ok(())
}

/// A bill as folded so far in a batch.
struct Folded {
    bill: Bill,
    opened_at: i64,
    updated_at: i64,
    position: i64,
    /// Whether the batch changed its lines or its claims (else their rows stand).
    lines_changed: bool,
    claims_changed: bool,
}

/// The bills of a batch as the read model holds them, in one statement:
/// each id with the position and time (seconds) of its first event in the
/// batch. A bill not held yet starts empty, opened at that time.
async fn load(
    tx: &mut Tx,
    first: BTreeMap<&str, (i64, i64)>,
) -> Result<BTreeMap<String, Folded>, ProjectionError> {
    let keys: Vec<Vec<Value>> = first.keys().map(|id| vec![(*id).into()]).collect();
    let earliest = first.values().map(|(p, _)| *p).min().unwrap_or_default();
    // When it was opened, a space, the folded bill.
    let mut stored = sql::select_by_key(
        tx,
        "bill_id",
        &keys,
        "SELECT b.bill_id || ' ' || CAST(b.opened_at AS TEXT) || ' ' || b.state \
         FROM billing_bills b JOIN v ON b.bill_id = v.bill_id",
        earliest,
    )
    .await?;
    let mut folded = BTreeMap::new();
    for (id, (position, at)) in first {
        let damaged = |detail: String| ProjectionError::Event { position, detail };
        let (bill, opened_at) = match stored.remove(id) {
            None => (Bill::default(), at),
            Some(row) => {
                let (opened_at, state) = row
                    .split_once(' ')
                    .and_then(|(t, s)| Some((t.parse::<i64>().ok()?, s)))
                    .ok_or_else(|| damaged("a bill row without its opening time".into()))?;
                let bill: Bill = serde_json::from_str(state).map_err(|err| {
                    // Never serde's own message: it may quote a value (a payer, a reason).
                    damaged(format!(
                        "bill state: {}",
                        anamnesis_domain::codec::describe_json_error(&err)
                    ))
                })?;
                (bill, opened_at)
            }
        };
        folded.insert(
            id.to_owned(),
            Folded {
                bill,
                opened_at,
                updated_at: at,
                position,
                lines_changed: false,
                claims_changed: false,
            },
        );
    }
    Ok(folded)
}

/// Whether `event` can happen to `bill` as it stands (the write side
/// decided it so; anything else is damage).
fn fits(bill: &Bill, event: &BillEvent) -> bool {
    use BillEvent as E;
    let claim = |id: &uuid::Uuid| bill.claims().iter().any(|c| c.claim_id == *id);
    match event {
        E::Opened { .. } => bill.opening().is_none(),
        _ if bill.opening().is_none() => false,
        E::LineAdded(l) => !bill.lines().iter().any(|x| x.line_id == l.line_id),
        E::LineRemoved { line_id } => bill.lines().iter().any(|x| x.line_id == *line_id),
        E::ClaimSubmitted { claim_id, .. } => !claim(claim_id),
        E::ClaimAccepted { claim_id }
        | E::ClaimRejected { claim_id, .. }
        | E::ClaimResubmitted { claim_id, .. }
        | E::ClaimWithdrawn { claim_id, .. }
        | E::ClaimPaid { claim_id, .. }
        | E::ClaimPartlyPaid { claim_id, .. }
        | E::ClaimDenied { claim_id, .. } => claim(claim_id),
        _ => true,
    }
}

/// Folds a bill event into `folded`; a new movement goes into the run
/// `movements`, a settled one is updated after the run is written.
async fn fold(
    tx: &mut Tx,
    e: &Envelope<BillingEvent>,
    event: &BillEvent,
    folded: &mut Folded,
    movements: &mut sql::Run,
) -> Result<(), ProjectionError> {
    if !fits(&folded.bill, event) {
        return Err(damaged(e, "a bill event that does not fit its bill"));
    }
    // A payment the patient started is a movement from the start; its
    // confirmation or failure changes its kind.
    let settled = match event {
        BillEvent::PaymentReceived { payment_id, .. } => folded
            .bill
            .started_payment(*payment_id)
            .map(|_| (payment_id, "payment")),
        BillEvent::PaymentFailed { payment_id, .. } => Some((payment_id, "payment_failed")),
        _ => None,
    };
    if let Some((id, kind)) = settled {
        movements.flush(tx).await?;
        let n = sql::execute(
            tx,
            "UPDATE billing_movements SET kind = $2, position = $3 \
             WHERE movement_id = $1 AND kind = 'payment_started'",
            &[id.to_string().into(), kind.into(), e.position().into()],
        )
        .await?;
        if n == 0 {
            return Err(damaged(e, "a payment settled that was not started"));
        }
    }
    let movement = match event {
        BillEvent::PaymentReceived { .. } if settled.is_some() => None,
        BillEvent::PaymentReceived {
            payment_id,
            amount,
            method,
            ..
        } => Some((payment_id, "payment", amount, method)),
        BillEvent::PaymentStarted {
            payment_id,
            amount,
            method,
            ..
        } => Some((payment_id, "payment_started", amount, method)),
        BillEvent::Adjusted {
            adjustment_id,
            kind,
            amount,
            reason,
        } => Some((adjustment_id, kind.as_str(), amount, reason)),
        BillEvent::Refunded {
            refund_id,
            amount,
            reason,
            ..
        } => Some((refund_id, "refund", amount, reason)),
        _ => None,
    };
    if let Some((id, kind, amount, note)) = movement {
        movements.push(
            id.to_string(),
            e.position(),
            vec![
                id.to_string().into(),
                e.id().into(),
                kind.into(),
                amount.get().into(),
                note.as_str().into(),
                e.stored.actor_id.as_str().into(),
                e.stored.recorded_at.timestamp().into(),
                e.position().into(),
            ],
        );
    }
    match event {
        BillEvent::LineAdded(_) | BillEvent::LineRemoved { .. } => folded.lines_changed = true,
        BillEvent::ClaimSubmitted { .. }
        | BillEvent::ClaimAccepted { .. }
        | BillEvent::ClaimRejected { .. }
        | BillEvent::ClaimResubmitted { .. }
        | BillEvent::ClaimWithdrawn { .. }
        | BillEvent::ClaimPaid { .. }
        | BillEvent::ClaimPartlyPaid { .. }
        | BillEvent::ClaimDenied { .. } => folded.claims_changed = true,
        _ => {}
    }
    folded.bill.fold(event.clone());
    folded
        .bill
        .balance()
        .map_err(|err| damaged(e, err.to_string()))?;
    folded.updated_at = e.stored.recorded_at.timestamp();
    folded.position = e.position();
    Ok(())
}

/// What every bill row is made of: the opening, the balance and the
/// folded bill as JSON; a bill never opened or whose sums overflow is
/// damage at `position`.
pub(crate) fn row_parts(
    bill: &Bill,
    position: i64,
) -> Result<(&Opening, Balance, String), ProjectionError> {
    let damaged = |detail: String| ProjectionError::Event { position, detail };
    let opening = bill
        .opening()
        .ok_or_else(|| damaged("a bill never opened".into()))?;
    let balance = bill.balance().map_err(|e| damaged(e.to_string()))?;
    let state = serde_json::to_string(bill).map_err(|e| damaged(e.to_string()))?;
    Ok((opening, balance, state))
}

/// Writes the bills a batch folded: one upsert of every bill; the lines
/// and the claims of the bills whose lines or claims changed replaced in
/// two statements each.
async fn write(tx: &mut Tx, bills: &BTreeMap<String, Folded>) -> Result<(), ProjectionError> {
    let mut rows = Vec::with_capacity(bills.len());
    let (mut relined, mut lines) = (Vec::new(), Vec::new());
    let (mut reclaimed, mut claims) = (Vec::new(), Vec::new());
    for (id, folded) in bills {
        let bill = &folded.bill;
        let (opening, balance, state) = row_parts(bill, folded.position)?;
        let patient = opening.patient_id.to_string();
        if folded.lines_changed {
            relined.push(vec![id.as_str().into()]);
            for (i, l) in bill.lines().iter().enumerate() {
                lines.push(vec![
                    id.as_str().into(),
                    l.line_id.to_string().into(),
                    (i as i64).into(),
                    l.code.as_str().into(),
                    l.description.as_str().into(),
                    l.quantity.into(),
                    l.unit_price.get().into(),
                    l.amount.get().into(),
                ]);
            }
        }
        if folded.claims_changed {
            reclaimed.push(vec![id.as_str().into()]);
            for c in bill.claims() {
                claims.push(vec![
                    c.claim_id.to_string().into(),
                    id.as_str().into(),
                    patient.as_str().into(),
                    c.coverage_id.to_string().into(),
                    c.payer.as_str().into(),
                    c.status.as_str().into(),
                    c.amount.get().into(),
                    c.paid.get().into(),
                    c.reason_codes.join(" ").into(),
                    c.submissions.into(),
                    day_number(c.submitted_on).into(),
                ]);
            }
        }
        rows.push(vec![
            id.as_str().into(),
            patient.into(),
            Value::Text(opening.appointment_id.map(|a| a.to_string())),
            opening.currency.as_str().into(),
            bill.status().as_str().into(),
            day_number(opening.service_date).into(),
            Value::Int(bill.issued_on().map(day_number)),
            Value::Text(bill.void_reason().map(str::to_owned)),
            balance.total.get().into(),
            balance.insurer.get().into(),
            balance.patient.get().into(),
            balance.payer_paid.get().into(),
            balance.patient_paid.get().into(),
            balance.adjusted.get().into(),
            balance.refunded.get().into(),
            state.into(),
            folded.opened_at.into(),
            folded.updated_at.into(),
            folded.position.into(),
        ]);
    }
    sql::insert_rows(
        tx,
        "billing_bills (bill_id, patient_id, appointment_id, currency, status, service_day, \
         issued_day, void_reason, total, insurer_due, patient_due, payer_paid, patient_paid, \
         adjusted, refunded, state, opened_at, updated_at, position)",
        "ON CONFLICT (bill_id) DO UPDATE SET status = excluded.status, \
         issued_day = excluded.issued_day, void_reason = excluded.void_reason, \
         total = excluded.total, insurer_due = excluded.insurer_due, \
         patient_due = excluded.patient_due, payer_paid = excluded.payer_paid, \
         patient_paid = excluded.patient_paid, adjusted = excluded.adjusted, \
         refunded = excluded.refunded, state = excluded.state, \
         updated_at = excluded.updated_at, position = excluded.position",
        &rows,
    )
    .await?;
    sql::with_values(
        tx,
        "bill_id",
        &relined,
        "DELETE FROM billing_lines WHERE bill_id IN (SELECT bill_id FROM v)",
    )
    .await?;
    sql::insert_rows(
        tx,
        "billing_lines (bill_id, line_id, ordinal, code, description, quantity, unit_price, amount)",
        "",
        &lines,
    )
    .await?;
    sql::with_values(
        tx,
        "bill_id",
        &reclaimed,
        "DELETE FROM billing_claims WHERE bill_id IN (SELECT bill_id FROM v)",
    )
    .await?;
    sql::insert_rows(
        tx,
        "billing_claims (claim_id, bill_id, patient_id, coverage_id, payer, status, amount, paid, \
         reason_codes, submissions, submitted_day)",
        "",
        &claims,
    )
    .await?;
    Ok(())
}
