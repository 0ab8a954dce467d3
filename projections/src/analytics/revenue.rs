//! Revenue, receivables and claims for the analyst (ADR 0021), with the
//! same cells and suppression as the other questions.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use anamnesis_commands::Db;

use super::queries::{grouped, rate_over, rows, total_of, Count, Rate};

/// How billing is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingGroup {
    /// The month of the date of service.
    Month,
    /// The payer of a claim (claims only).
    Payer,
}

#[derive(sqlx::FromRow)]
struct BillSums {
    key: String,
    bills: i64,
    bills_patients: i64,
    billed: i64,
    billed_patients: i64,
    patient_paid: i64,
    patient_paid_patients: i64,
    adjusted: i64,
    adjusted_patients: i64,
    receivable: i64,
    receivable_patients: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimSums {
    key: String,
    claims: i64,
    claims_patients: i64,
    claimed: i64,
    claimed_patients: i64,
    payer_paid: i64,
    payer_paid_patients: i64,
    approved: i64,
    approved_patients: i64,
    denied: i64,
    denied_patients: i64,
    adjudicated: i64,
    adjudicated_patients: i64,
    pending: i64,
    pending_patients: i64,
    pending_amount: i64,
    pending_amount_patients: i64,
    withdrawn_patients: i64,
}

/// Money and claims of one month or payer; amounts in minor units.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BillingRow {
    /// `YYYY-MM` (month of service) or the payer's name.
    pub key: String,
    /// Distinct patients billed (month) or claimed for (payer).
    pub patients: Count,
    /// Issued bills (not drafts, not void); by month only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bills: Option<Count>,
    /// Their totals: revenue billed; by month only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billed: Option<Count>,
    /// What patients paid on them (net of refunds); by month only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_paid: Option<Count>,
    /// Adjustments and write-offs; by month only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjusted: Option<Count>,
    /// Still owed on them, by insurers and patients; by month only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivable: Option<Count>,
    /// Claims submitted (withdrawn ones too).
    pub claims: Count,
    /// Their amounts.
    pub claimed: Count,
    /// What payers paid on them.
    pub payer_paid: Count,
    /// Paid in full or in part.
    pub approved: Count,
    pub denied: Count,
    /// Submitted, accepted or rejected: waiting on the payer or on staff.
    pub pending: Count,
    /// The amounts of pending claims: owed by insurers.
    pub pending_amount: Count,
    /// Approved / (approved + denied).
    pub approval_rate: Rate,
    /// Denied / (approved + denied).
    pub denial_rate: Rate,
}

/// Bills and claims whose date of service is `from` to `to`, grouped.
pub async fn billing(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
    group: BillingGroup,
) -> Result<Vec<BillingRow>, sqlx::Error> {
    let range = [
        crate::billing::day_number(from),
        crate::billing::day_number(to),
    ];
    let claim_key = match group {
        BillingGroup::Month => "service_month",
        BillingGroup::Payer => "payer",
    };
    let pending = "status IN ('submitted', 'accepted', 'rejected')";
    let claims_sql = grouped(
        claim_key,
        "analytics_claims",
        "service_day BETWEEN $1 AND $2",
        &[
            ("claims", "1 = 1", "1"),
            ("claimed", "1 = 1", "amount"),
            ("payer_paid", "1 = 1", "paid"),
            ("approved", "status IN ('paid', 'partly_paid')", "1"),
            ("denied", "status = 'denied'", "1"),
            (
                "adjudicated",
                "status IN ('paid', 'partly_paid', 'denied')",
                "1",
            ),
            ("pending", pending, "1"),
            ("pending_amount", pending, "amount"),
            ("withdrawn", "status = 'withdrawn'", "1"),
        ],
    );
    let claims: Vec<ClaimSums> = rows(db, &claims_sql, &range).await?;
    let mut bills: BTreeMap<String, BillSums> = BTreeMap::new();
    if group == BillingGroup::Month {
        let bills_sql = grouped(
            "service_month",
            "analytics_bills",
            "status = 'issued' AND service_day BETWEEN $1 AND $2",
            &[
                ("bills", "1 = 1", "1"),
                ("billed", "1 = 1", "total"),
                ("patient_paid", "1 = 1", "patient_paid"),
                ("adjusted", "1 = 1", "adjusted"),
                ("receivable", "1 = 1", "insurer_due + patient_due"),
            ],
        );
        let found: Vec<BillSums> = rows(db, &bills_sql, &range).await?;
        bills = found.into_iter().map(|b| (b.key.clone(), b)).collect();
    }
    let mut claims: BTreeMap<String, ClaimSums> =
        claims.into_iter().map(|c| (c.key.clone(), c)).collect();
    let keys: Vec<String> = bills.keys().chain(claims.keys()).cloned().collect();
    let mut out: Vec<BillingRow> = Vec::new();
    for key in keys {
        if out.iter().any(|r| r.key == key) {
            continue;
        }
        let b = bills.remove(&key);
        let c = claims.remove(&key).unwrap_or(ClaimSums {
            key: key.clone(),
            claims: 0,
            claims_patients: 0,
            claimed: 0,
            claimed_patients: 0,
            payer_paid: 0,
            payer_paid_patients: 0,
            approved: 0,
            approved_patients: 0,
            denied: 0,
            denied_patients: 0,
            adjudicated: 0,
            adjudicated_patients: 0,
            pending: 0,
            pending_patients: 0,
            pending_amount: 0,
            pending_amount_patients: 0,
            withdrawn_patients: 0,
        });
        let patients = b.as_ref().map_or(c.claims_patients, |b| b.bills_patients);
        let approved = Count::of(c.approved, c.approved_patients);
        let denied = Count::of(c.denied, c.denied_patients);
        let pending = Count::of(c.pending, c.pending_patients);
        let adjudicated = Count::of(c.adjudicated, c.adjudicated_patients);
        let payer_paid = Count::of(c.payer_paid, c.payer_paid_patients);
        let patient_paid = b
            .as_ref()
            .map(|b| Count::of(b.patient_paid, b.patient_paid_patients));
        let adjusted = b
            .as_ref()
            .map(|b| Count::of(b.adjusted, b.adjusted_patients));
        let receivable = b
            .as_ref()
            .map(|b| Count::of(b.receivable, b.receivable_patients));
        // Billed = receivable + paid by patients + by payers + adjusted.
        let money: Vec<Count> = [patient_paid, adjusted, receivable, Some(payer_paid)]
            .into_iter()
            .flatten()
            .collect();
        out.push(BillingRow {
            key,
            patients: Count::of(patients, patients),
            bills: b.as_ref().map(|b| Count::of(b.bills, b.bills_patients)),
            billed: b
                .as_ref()
                .map(|b| total_of(Count::of(b.billed, b.billed_patients), &money, 0)),
            patient_paid,
            adjusted,
            receivable,
            // Claims = approved + denied + pending + withdrawn (not shown).
            claims: total_of(
                Count::of(c.claims, c.claims_patients),
                &[approved, denied, pending],
                c.withdrawn_patients,
            ),
            claimed: Count::of(c.claimed, c.claimed_patients),
            payer_paid,
            approved,
            denied,
            pending,
            pending_amount: Count::of(c.pending_amount, c.pending_amount_patients),
            approval_rate: rate_over(approved, adjudicated, &[approved, denied]),
            denial_rate: rate_over(denied, adjudicated, &[approved, denied]),
        });
    }
    // A month with claims only (its bills void or drafts) still has every
    // column, zero where nothing was billed.
    if group == BillingGroup::Month {
        let zero = Some(Count::of(0, 0));
        for r in &mut out {
            r.bills = r.bills.or(zero);
            r.billed = r.billed.or(zero);
            r.patient_paid = r.patient_paid.or(zero);
            r.adjusted = r.adjusted.or(zero);
            r.receivable = r.receivable.or(zero);
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
