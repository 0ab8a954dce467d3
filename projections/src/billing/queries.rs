//! Billing's queries: bills by patient, status, payer and date of service
//! with totals, one bill with its lines, claims and movements, receivables
//! aging, the price list and a patient's coverage. Amounts are integers of
//! minor units, summed in SQL as integers.

use chrono::NaiveDate;
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::billing::BillStatus;

use super::{date_of, day_number};

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
    /// Payments the patient started that wait for staff to confirm them
    /// (minor units): not yet paid, held from other payments.
    pub pending: i64,
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
    /// payment, payment_started (waiting for confirmation),
    /// payment_failed, adjustment, write_off or refund.
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
    let pending = movements
        .iter()
        .filter(|m| m.kind == "payment_started")
        .map(|m| m.amount)
        .sum();
    Ok(Some(BillDetail {
        bill: row.view()?,
        lines,
        claims,
        movements,
        pending,
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
