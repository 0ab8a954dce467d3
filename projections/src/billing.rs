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
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::billing::{Bill, BillEvent, BillStatus, CoverageEvent, PriceListEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};

use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

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
        // Bills touched by the batch, folded in memory and written once each.
        let mut bills: BTreeMap<String, Folded> = BTreeMap::new();
        for e in events {
            match &e.event {
                BillingEvent::PriceList(event) => price_list(tx, e, event).await?,
                BillingEvent::Coverage(event) => coverage(tx, e, event).await?,
                BillingEvent::Bill(event) => {
                    if !bills.contains_key(e.id()) {
                        let loaded = load(tx, e).await?;
                        bills.insert(e.id().to_owned(), loaded);
                    }
                    let folded = bills
                        .get_mut(e.id())
                        .ok_or_else(|| damaged(e, "a bill lost from the batch"))?;
                    fold(tx, e, event, folded).await?;
                }
            }
        }
        for (id, folded) in bills {
            write(tx, &id, &folded).await?;
        }
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
fn date_of(days: i64) -> Result<NaiveDate, sqlx::Error> {
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

async fn coverage(
    tx: &mut Tx,
    e: &Envelope<BillingEvent>,
    event: &CoverageEvent,
) -> Result<(), ProjectionError> {
    match event {
        CoverageEvent::Added(c) => {
            let n = sql::execute(
                tx,
                "INSERT INTO billing_coverage (coverage_id, patient_id, payer, member_id, plan, \
                 valid_from, valid_to, rank, ended, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9) ON CONFLICT (coverage_id) DO NOTHING",
                &[
                    c.coverage_id.to_string().into(),
                    e.id().into(),
                    c.payer.as_str().into(),
                    c.member_id.as_str().into(),
                    c.plan.as_str().into(),
                    day_number(c.valid_from).into(),
                    Value::Int(c.valid_to.map(day_number)),
                    c.rank.as_str().into(),
                    e.position().into(),
                ],
            )
            .await?;
            if n == 0 {
                return Err(damaged(e, "a coverage added twice"));
            }
        }
        CoverageEvent::Ended {
            coverage_id,
            reason,
        } => {
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

async fn load(tx: &mut Tx, e: &Envelope<BillingEvent>) -> Result<Folded, ProjectionError> {
    // One round trip: when it was opened, a space, the folded bill.
    let row = sql::returning(
        tx,
        "SELECT CAST(opened_at AS TEXT) || ' ' || state FROM billing_bills WHERE bill_id = $1",
        &[e.id().into()],
    )
    .await?;
    let at = e.stored.recorded_at.timestamp();
    let Some(row) = row.first() else {
        return Ok(Folded {
            bill: Bill::default(),
            opened_at: at,
            updated_at: at,
            position: e.position(),
            lines_changed: false,
            claims_changed: false,
        });
    };
    let (opened_at, state) = row
        .split_once(' ')
        .and_then(|(t, s)| Some((t.parse::<i64>().ok()?, s)))
        .ok_or_else(|| damaged(e, "a bill row without its opening time"))?;
    let bill: Bill =
        serde_json::from_str(state).map_err(|err| damaged(e, format!("bill state: {err}")))?;
    Ok(Folded {
        bill,
        opened_at,
        updated_at: at,
        position: e.position(),
        lines_changed: false,
        claims_changed: false,
    })
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

async fn fold(
    tx: &mut Tx,
    e: &Envelope<BillingEvent>,
    event: &BillEvent,
    folded: &mut Folded,
) -> Result<(), ProjectionError> {
    if !fits(&folded.bill, event) {
        return Err(damaged(e, "a bill event that does not fit its bill"));
    }
    let movement = match event {
        BillEvent::PaymentReceived {
            payment_id,
            amount,
            method,
            ..
        } => Some((payment_id, "payment", amount, method)),
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
        let n = sql::execute(
            tx,
            "INSERT INTO billing_movements (movement_id, bill_id, kind, amount, note, actor_id, \
             recorded_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (movement_id) DO NOTHING",
            &[
                id.to_string().into(),
                e.id().into(),
                kind.into(),
                amount.get().into(),
                note.as_str().into(),
                e.stored.actor_id.as_str().into(),
                e.stored.recorded_at.timestamp().into(),
                e.position().into(),
            ],
        )
        .await?;
        if n == 0 {
            return Err(damaged(e, "a payment, adjustment or refund recorded twice"));
        }
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

async fn write(tx: &mut Tx, id: &str, folded: &Folded) -> Result<(), ProjectionError> {
    let bill = &folded.bill;
    let damaged = |detail: String| ProjectionError::Event {
        position: folded.position,
        detail,
    };
    let opening = bill
        .opening()
        .ok_or_else(|| damaged("a bill never opened".into()))?;
    let balance = bill.balance().map_err(|e| damaged(e.to_string()))?;
    let state = serde_json::to_string(bill).map_err(|e| damaged(e.to_string()))?;
    sql::execute(
        tx,
        "INSERT INTO billing_bills (bill_id, patient_id, appointment_id, currency, status, \
         service_day, issued_day, void_reason, total, insurer_due, patient_due, payer_paid, \
         patient_paid, adjusted, refunded, state, opened_at, updated_at, position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (bill_id) DO UPDATE SET status = excluded.status, \
         issued_day = excluded.issued_day, void_reason = excluded.void_reason, \
         total = excluded.total, insurer_due = excluded.insurer_due, \
         patient_due = excluded.patient_due, payer_paid = excluded.payer_paid, \
         patient_paid = excluded.patient_paid, adjusted = excluded.adjusted, \
         refunded = excluded.refunded, state = excluded.state, \
         updated_at = excluded.updated_at, position = excluded.position",
        &[
            id.into(),
            opening.patient_id.to_string().into(),
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
        ],
    )
    .await?;
    if folded.lines_changed {
        lines(tx, id, bill).await?;
    }
    if folded.claims_changed {
        claims(tx, id, bill).await?;
    }
    Ok(())
}

/// Replaces a bill's lines.
async fn lines(tx: &mut Tx, id: &str, bill: &Bill) -> Result<(), ProjectionError> {
    sql::execute(
        tx,
        "DELETE FROM billing_lines WHERE bill_id = $1",
        &[id.into()],
    )
    .await?;
    let lines: Vec<Vec<Value>> = bill
        .lines()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            vec![
                id.into(),
                l.line_id.to_string().into(),
                (i as i64).into(),
                l.code.as_str().into(),
                l.description.as_str().into(),
                l.quantity.into(),
                l.unit_price.get().into(),
                l.amount.get().into(),
            ]
        })
        .collect();
    sql::insert_rows(
        tx,
        "billing_lines (bill_id, line_id, ordinal, code, description, quantity, unit_price, amount)",
        "",
        &lines,
    )
    .await?;
    Ok(())
}

/// Replaces a bill's claims.
async fn claims(tx: &mut Tx, id: &str, bill: &Bill) -> Result<(), ProjectionError> {
    let patient = bill
        .opening()
        .map(|o| o.patient_id.to_string())
        .unwrap_or_default();
    sql::execute(
        tx,
        "DELETE FROM billing_claims WHERE bill_id = $1",
        &[id.into()],
    )
    .await?;
    let claims: Vec<Vec<Value>> = bill
        .claims()
        .iter()
        .map(|c| {
            vec![
                c.claim_id.to_string().into(),
                id.into(),
                patient.as_str().into(),
                c.coverage_id.to_string().into(),
                c.payer.as_str().into(),
                c.status.as_str().into(),
                c.amount.get().into(),
                c.paid.get().into(),
                c.reason_codes.join(" ").into(),
                c.submissions.into(),
                day_number(c.submitted_on).into(),
            ]
        })
        .collect();
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

// --- queries ---------------------------------------------------------------------

/// A bill in a list, with its balance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BillSummary {
    pub bill_id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    /// ISO 4217; every amount of the bill is in its minor units.
    pub currency: String,
    #[schema(value_type = String)]
    pub status: String,
    pub service_date: NaiveDate,
    pub issued_on: Option<NaiveDate>,
    pub void_reason: Option<String>,
    /// The sum of the lines, in minor units.
    pub total: i64,
    /// Claimed and not yet decided by payers.
    pub insurer_due: i64,
    /// What the patient owes (below zero: a credit to refund).
    pub patient_due: i64,
    pub payer_paid: i64,
    /// What the patient paid, less refunds.
    pub patient_paid: i64,
    /// Adjustments and write-offs.
    pub adjusted: i64,
    pub refunded: i64,
    /// Log position of its last event.
    pub position: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    bill_id: String,
    patient_id: String,
    appointment_id: Option<String>,
    currency: String,
    status: String,
    service_day: i64,
    issued_day: Option<i64>,
    void_reason: Option<String>,
    total: i64,
    insurer_due: i64,
    patient_due: i64,
    payer_paid: i64,
    patient_paid: i64,
    adjusted: i64,
    refunded: i64,
    position: i64,
}

const SUMMARY_COLUMNS: &str = "bill_id, patient_id, appointment_id, currency, status, \
    service_day, issued_day, void_reason, total, insurer_due, patient_due, payer_paid, \
    patient_paid, adjusted, refunded, position";

impl SummaryRow {
    fn view(self) -> Result<BillSummary, sqlx::Error> {
        Ok(BillSummary {
            bill_id: self.bill_id,
            patient_id: self.patient_id,
            appointment_id: self.appointment_id,
            currency: self.currency,
            status: self.status,
            service_date: date_of(self.service_day)?,
            issued_on: self.issued_day.map(date_of).transpose()?,
            void_reason: self.void_reason,
            total: self.total,
            insurer_due: self.insurer_due,
            patient_due: self.patient_due,
            payer_paid: self.payer_paid,
            patient_paid: self.patient_paid,
            adjusted: self.adjusted,
            refunded: self.refunded,
            position: self.position,
        })
    }
}

/// Which bills to list.
#[derive(Debug, Clone, Default)]
pub struct BillQuery {
    pub patient_id: Option<String>,
    /// draft, issued or void.
    pub status: Option<BillStatus>,
    /// Bills with a claim to this payer.
    pub payer: Option<String>,
    /// Date of service at or after.
    pub from: Option<NaiveDate>,
    /// Date of service at or before.
    pub to: Option<NaiveDate>,
    /// The last row of the previous page: (service day, bill id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// The sums of every bill a query matches (not only the page's), in
/// minor units, summed in SQL as integers.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Totals {
    pub bills: i64,
    pub total: i64,
    pub insurer_due: i64,
    pub patient_due: i64,
    pub payer_paid: i64,
    pub patient_paid: i64,
    pub adjusted: i64,
}

const FILTER: &str = "($1 IS NULL OR patient_id = $1) AND ($2 IS NULL OR status = $2) \
    AND ($3 IS NULL OR bill_id IN (SELECT bill_id FROM billing_claims WHERE payer = $3)) \
    AND ($4 IS NULL OR service_day >= $4) AND ($5 IS NULL OR service_day <= $5)";

/// A page of bills, newest date of service first, and the totals of all
/// that match; one more than `limit` tells whether there is more.
pub async fn bills(
    db: &Db,
    q: &BillQuery,
) -> Result<(Vec<BillSummary>, Totals, bool), sqlx::Error> {
    let status = q.status.map(|s| s.as_str());
    let from = q.from.map(day_number);
    let to = q.to.map(day_number);
    let (before_day, before_id) = match &q.before {
        Some((d, id)) => (Some(*d), Some(id.as_str())),
        None => (None, None),
    };
    let page = format!(
        "SELECT {SUMMARY_COLUMNS} FROM billing_bills WHERE {FILTER} \
         AND ($6 IS NULL OR service_day < $6 OR (service_day = $6 AND bill_id < $7)) \
         ORDER BY service_day DESC, bill_id DESC LIMIT $8"
    );
    let sums = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS bills, \
         CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(insurer_due), 0) AS BIGINT) AS insurer_due, \
         CAST(COALESCE(SUM(patient_due), 0) AS BIGINT) AS patient_due, \
         CAST(COALESCE(SUM(payer_paid), 0) AS BIGINT) AS payer_paid, \
         CAST(COALESCE(SUM(patient_paid), 0) AS BIGINT) AS patient_paid, \
         CAST(COALESCE(SUM(adjusted), 0) AS BIGINT) AS adjusted \
         FROM billing_bills WHERE {FILTER}"
    );
    macro_rules! run {
        ($pool:expr) => {{
            let rows: Vec<SummaryRow> = sqlx::query_as(&page)
                .bind(q.patient_id.as_deref())
                .bind(status)
                .bind(q.payer.as_deref())
                .bind(from)
                .bind(to)
                .bind(before_day)
                .bind(before_id)
                .bind(q.limit + 1)
                .fetch_all($pool)
                .await?;
            let totals: Totals = sqlx::query_as(&sums)
                .bind(q.patient_id.as_deref())
                .bind(status)
                .bind(q.payer.as_deref())
                .bind(from)
                .bind(to)
                .fetch_one($pool)
                .await?;
            (rows, totals)
        }};
    }
    let (rows, totals) = match db {
        Db::Postgres(p) => run!(p),
        Db::Sqlite(p) => run!(p),
    };
    let more = rows.len() as i64 > q.limit;
    let items = rows
        .into_iter()
        .take(q.limit as usize)
        .map(SummaryRow::view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, totals, more))
}

/// A bill with its lines, claims and money movements.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BillDetail {
    #[serde(flatten)]
    pub bill: BillSummary,
    pub lines: Vec<LineView>,
    pub claims: Vec<ClaimView>,
    pub movements: Vec<MovementView>,
}

/// A line of a bill (amounts in minor units).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct LineView {
    pub line_id: String,
    pub code: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub amount: i64,
}

/// A claim (amounts in minor units).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClaimView {
    pub claim_id: String,
    pub coverage_id: String,
    pub payer: String,
    /// submitted, accepted, rejected, withdrawn, paid, partly_paid or denied.
    pub status: String,
    pub amount: i64,
    pub paid: i64,
    pub reason_codes: Vec<String>,
    pub submissions: i64,
    pub submitted_on: NaiveDate,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    claim_id: String,
    coverage_id: String,
    payer: String,
    status: String,
    amount: i64,
    paid: i64,
    reason_codes: String,
    submissions: i64,
    submitted_day: i64,
}

/// A payment, adjustment, write-off or refund.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MovementView {
    pub movement_id: String,
    /// payment, adjustment, write_off or refund.
    pub kind: String,
    pub amount: i64,
    /// The payment's method, or the reason.
    pub note: String,
    pub actor_id: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: crate::chart::Seconds,
}

/// One bill, if the read model holds it.
pub async fn bill(db: &Db, bill_id: &str) -> Result<Option<BillDetail>, sqlx::Error> {
    let one = format!("SELECT {SUMMARY_COLUMNS} FROM billing_bills WHERE bill_id = $1");
    let lines_sql = "SELECT line_id, code, description, quantity, unit_price, amount \
                     FROM billing_lines WHERE bill_id = $1 ORDER BY ordinal";
    let claims_sql = "SELECT claim_id, coverage_id, payer, status, amount, paid, reason_codes, \
                      submissions, submitted_day FROM billing_claims WHERE bill_id = $1 \
                      ORDER BY submitted_day, claim_id";
    let movements_sql = "SELECT movement_id, kind, amount, note, actor_id, recorded_at \
                         FROM billing_movements WHERE bill_id = $1 ORDER BY position";
    macro_rules! run {
        ($pool:expr) => {{
            let row: Option<SummaryRow> = sqlx::query_as(&one)
                .bind(bill_id)
                .fetch_optional($pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let lines: Vec<LineView> = sqlx::query_as(lines_sql)
                .bind(bill_id)
                .fetch_all($pool)
                .await?;
            let claims: Vec<ClaimRow> = sqlx::query_as(claims_sql)
                .bind(bill_id)
                .fetch_all($pool)
                .await?;
            let movements: Vec<MovementView> = sqlx::query_as(movements_sql)
                .bind(bill_id)
                .fetch_all($pool)
                .await?;
            (row, lines, claims, movements)
        }};
    }
    let (row, lines, claims, movements) = match db {
        Db::Postgres(p) => run!(p),
        Db::Sqlite(p) => run!(p),
    };
    let claims = claims
        .into_iter()
        .map(|c| {
            Ok(ClaimView {
                claim_id: c.claim_id,
                coverage_id: c.coverage_id,
                payer: c.payer,
                status: c.status,
                amount: c.amount,
                paid: c.paid,
                reason_codes: c
                    .reason_codes
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                submissions: c.submissions,
                submitted_on: date_of(c.submitted_day)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(BillDetail {
        bill: row.view()?,
        lines,
        claims,
        movements,
    }))
}

/// One aging bucket of the receivables.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AgingBucket {
    /// 0-30, 31-60, 61-90 or 90+ (days since issue).
    pub bucket: String,
    pub bills: i64,
    pub insurer_due: i64,
    pub patient_due: i64,
}

/// Receivables aging as of `as_of`: issued bills with something owed, by
/// days since issue. Amounts are what is owed now. Always four buckets.
pub async fn aging(db: &Db, as_of: NaiveDate) -> Result<Vec<AgingBucket>, sqlx::Error> {
    let sql = "SELECT bucket, CAST(COUNT(*) AS BIGINT) AS bills, \
               CAST(COALESCE(SUM(insurer_due), 0) AS BIGINT) AS insurer_due, \
               CAST(COALESCE(SUM(CASE WHEN patient_due > 0 THEN patient_due ELSE 0 END), 0) AS BIGINT) AS patient_due \
               FROM (SELECT insurer_due, patient_due, CASE \
                   WHEN $1 - issued_day <= 30 THEN '0-30' \
                   WHEN $1 - issued_day <= 60 THEN '31-60' \
                   WHEN $1 - issued_day <= 90 THEN '61-90' \
                   ELSE '90+' END AS bucket \
                 FROM billing_bills WHERE status = 'issued' AND issued_day <= $1 \
                   AND (insurer_due > 0 OR patient_due > 0)) owed \
               GROUP BY bucket";
    let day = day_number(as_of);
    let rows: Vec<AgingBucket> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(day).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(day).fetch_all(p).await?,
    };
    Ok(["0-30", "31-60", "61-90", "90+"]
        .into_iter()
        .map(|b| {
            rows.iter()
                .find(|r| r.bucket == b)
                .cloned()
                .unwrap_or(AgingBucket {
                    bucket: b.to_owned(),
                    ..AgingBucket::default()
                })
        })
        .collect())
}

/// A listed service code (price in minor units).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct PriceView {
    pub code: String,
    pub description: String,
    pub unit_price: i64,
}

/// The price list's active codes, by code.
pub async fn price_list_view(db: &Db) -> Result<Vec<PriceView>, sqlx::Error> {
    let sql = "SELECT code, description, unit_price FROM billing_price_list \
               WHERE active = 1 ORDER BY code";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
    })
}

/// A coverage of a patient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CoverageView {
    pub coverage_id: String,
    pub payer: String,
    pub member_id: String,
    pub plan: String,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
    /// primary or secondary.
    pub rank: String,
    pub ended: bool,
    pub ended_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CoverageRow {
    coverage_id: String,
    payer: String,
    member_id: String,
    plan: String,
    valid_from: i64,
    valid_to: Option<i64>,
    rank: String,
    ended: i64,
    ended_reason: Option<String>,
}

/// A patient's coverage, primary first.
pub async fn coverage_of(db: &Db, patient_id: &str) -> Result<Vec<CoverageView>, sqlx::Error> {
    let sql = "SELECT coverage_id, payer, member_id, plan, valid_from, valid_to, rank, ended, \
               ended_reason FROM billing_coverage WHERE patient_id = $1 \
               ORDER BY rank, valid_from, coverage_id";
    let rows: Vec<CoverageRow> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
    };
    rows.into_iter()
        .map(|r| {
            Ok(CoverageView {
                coverage_id: r.coverage_id,
                payer: r.payer,
                member_id: r.member_id,
                plan: r.plan,
                valid_from: date_of(r.valid_from)?,
                valid_to: r.valid_to.map(date_of).transpose()?,
                rank: r.rank,
                ended: r.ended != 0,
                ended_reason: r.ended_reason,
            })
        })
        .collect()
}
