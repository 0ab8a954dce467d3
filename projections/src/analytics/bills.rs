//! Bills in analytics: folded with the domain's own `apply` and `balance`
//! from events whose free text is blanked first, and written as a bill row
//! and its claims' rows.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use anamnesis_domain::billing::{Bill, BillEvent, Line};

use crate::billing::day_number;
use crate::runner::{ProjectionError, Tx};
use crate::sql::{self, Value};

/// `event` with every free text blanked (reasons, line descriptions,
/// payment methods): what the folded bill keeps is amounts, statuses,
/// dates, codes and the payer. Each variant is taken apart whole, so a
/// field added to an event does not compile until it is decided here.
pub fn blanked(event: BillEvent) -> BillEvent {
    use BillEvent as E;
    let none = String::new;
    match event {
        E::Opened {
            patient_id,
            appointment_id,
            currency,
            service_date,
        } => E::Opened {
            patient_id,
            appointment_id,
            currency,
            service_date,
        },
        E::LineAdded(Line {
            line_id,
            code,
            description: _,
            quantity,
            unit_price,
            amount,
        }) => E::LineAdded(Line {
            line_id,
            code,
            description: none(),
            quantity,
            unit_price,
            amount,
        }),
        E::LineRemoved { line_id } => E::LineRemoved { line_id },
        E::Issued { issued_on, total } => E::Issued { issued_on, total },
        E::Voided { reason: _ } => E::Voided { reason: none() },
        E::ClaimSubmitted {
            claim_id,
            coverage_id,
            payer,
            amount,
            submitted_on,
        } => E::ClaimSubmitted {
            claim_id,
            coverage_id,
            payer,
            amount,
            submitted_on,
        },
        E::ClaimAccepted { claim_id } => E::ClaimAccepted { claim_id },
        E::ClaimRejected {
            claim_id,
            reason_codes,
        } => E::ClaimRejected {
            claim_id,
            reason_codes,
        },
        E::ClaimResubmitted {
            claim_id,
            amount,
            submitted_on,
        } => E::ClaimResubmitted {
            claim_id,
            amount,
            submitted_on,
        },
        E::ClaimWithdrawn {
            claim_id,
            reason: _,
        } => E::ClaimWithdrawn {
            claim_id,
            reason: none(),
        },
        E::ClaimPaid { claim_id, amount } => E::ClaimPaid { claim_id, amount },
        E::ClaimPartlyPaid {
            claim_id,
            amount,
            reason_codes,
        } => E::ClaimPartlyPaid {
            claim_id,
            amount,
            reason_codes,
        },
        E::ClaimDenied {
            claim_id,
            reason_codes,
        } => E::ClaimDenied {
            claim_id,
            reason_codes,
        },
        E::PaymentReceived {
            payment_id,
            amount,
            method: _,
            received_on,
        } => E::PaymentReceived {
            payment_id,
            amount,
            method: none(),
            received_on,
        },
        E::PaymentStarted {
            payment_id,
            amount,
            method: _,
            started_on,
        } => E::PaymentStarted {
            payment_id,
            amount,
            method: none(),
            started_on,
        },
        E::PaymentFailed {
            payment_id,
            reason: _,
        } => E::PaymentFailed {
            payment_id,
            reason: none(),
        },
        E::Adjusted {
            adjustment_id,
            kind,
            amount,
            reason: _,
        } => E::Adjusted {
            adjustment_id,
            kind,
            amount,
            reason: none(),
        },
        E::Refunded {
            refund_id,
            amount,
            reason: _,
            refunded_on,
        } => E::Refunded {
            refund_id,
            amount,
            reason: none(),
            refunded_on,
        },
    }
}

/// A bill as folded so far in a batch.
pub(super) struct Folded {
    pub(super) bill: Bill,
    pub(super) position: i64,
}

/// The bills of a batch as analytics holds them, in one statement: `ids`
/// are the bills' ids, each with the position of its first event in the
/// batch (named when its stored state is damaged). A bill analytics does
/// not hold yet starts empty.
pub(super) async fn load(
    tx: &mut Tx,
    ids: Vec<(String, i64)>,
) -> Result<BTreeMap<String, Folded>, ProjectionError> {
    let keys: Vec<Vec<Value>> = ids.iter().map(|(id, _)| vec![id.as_str().into()]).collect();
    let first = ids.iter().map(|(_, p)| *p).min().unwrap_or_default();
    let mut stored = sql::select_by_key(
        tx,
        "bill_id",
        &keys,
        "SELECT b.bill_id || ' ' || b.state FROM analytics_bills b \
         JOIN v ON b.bill_id = v.bill_id",
        first,
    )
    .await?;
    let mut folded = BTreeMap::new();
    for (id, position) in ids {
        let bill = match stored.remove(id.as_str()) {
            None => Bill::default(),
            Some(state) => serde_json::from_str(&state).map_err(|err| ProjectionError::Event {
                position,
                detail: format!(
                    "bill state: {}",
                    anamnesis_domain::codec::describe_json_error(&err)
                ),
            })?,
        };
        folded.insert(id, Folded { bill, position });
    }
    Ok(folded)
}

/// Whether `event` can happen to `bill` as it stands.
pub(super) fn fits(bill: &Bill, event: &BillEvent) -> bool {
    use BillEvent as E;
    let claim = |id: &uuid::Uuid| bill.claims().iter().any(|c| c.claim_id == *id);
    match event {
        E::Opened { .. } => bill.opening().is_none(),
        _ if bill.opening().is_none() => false,
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

/// `YYYY-MM` of `date`.
pub fn month_of(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// Writes the bills a batch folded: one upsert of every bill, their
/// claims replaced in two statements.
pub(super) async fn write(
    tx: &mut Tx,
    bills: &BTreeMap<String, Folded>,
) -> Result<(), ProjectionError> {
    let mut rows = Vec::with_capacity(bills.len());
    let mut keys = Vec::with_capacity(bills.len());
    let mut claims: Vec<Vec<Value>> = Vec::new();
    for (id, folded) in bills {
        let bill = &folded.bill;
        let (opening, balance, state) = crate::billing::row_parts(bill, folded.position)?;
        let patient = opening.patient_id.to_string();
        let day = day_number(opening.service_date);
        let month = month_of(opening.service_date);
        for c in bill.claims() {
            claims.push(vec![
                c.claim_id.to_string().into(),
                id.as_str().into(),
                patient.as_str().into(),
                c.payer.as_str().into(),
                c.status.as_str().into(),
                c.amount.get().into(),
                c.paid.get().into(),
                day.into(),
                month.as_str().into(),
            ]);
        }
        keys.push(vec![id.as_str().into()]);
        rows.push(vec![
            id.as_str().into(),
            patient.into(),
            day.into(),
            month.into(),
            bill.status().as_str().into(),
            balance.total.get().into(),
            balance.insurer.get().into(),
            balance.patient.get().into(),
            balance.payer_paid.get().into(),
            balance.patient_paid.get().into(),
            balance.adjusted.get().into(),
            state.into(),
            folded.position.into(),
        ]);
    }
    sql::insert_rows(
        tx,
        "analytics_bills (bill_id, patient_id, service_day, service_month, status, \
         total, insurer_due, patient_due, payer_paid, patient_paid, adjusted, state, position)",
        "ON CONFLICT (bill_id) DO UPDATE SET status = excluded.status, total = excluded.total, \
         insurer_due = excluded.insurer_due, patient_due = excluded.patient_due, \
         payer_paid = excluded.payer_paid, patient_paid = excluded.patient_paid, \
         adjusted = excluded.adjusted, state = excluded.state, position = excluded.position",
        &rows,
    )
    .await?;
    sql::with_values(
        tx,
        "bill_id",
        &keys,
        "DELETE FROM analytics_claims WHERE bill_id IN (SELECT bill_id FROM v)",
    )
    .await?;
    sql::insert_rows(
        tx,
        "analytics_claims (claim_id, bill_id, patient_id, payer, status, amount, paid, \
         service_day, service_month)",
        "",
        &claims,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn blanking_keeps_the_arithmetic_and_drops_the_words() {
        use anamnesis_domain::billing::Money;
        let refund = BillEvent::Refunded {
            refund_id: uuid::Uuid::nil(),
            amount: Money::cents(100),
            reason: "Mrs Smith paid twice".into(),
            refunded_on: date("2026-11-30"),
        };
        let text = serde_json::to_string(&blanked(refund)).expect("a blanked refund serializes");
        assert!(!text.contains("Smith"), "{text}");
        assert!(text.contains("2026-11-30"), "{text}");
    }
}
