//! Given/when/then tests of billing: the price list, coverage, the bill's
//! and the claim's state machines, balance arithmetic to the cent, and
//! refunds. Dates are always given.

mod balances;
mod bills;
mod claims;
mod lists;
mod stored;

use chrono::NaiveDate;
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::Aggregate;
use uuid::Uuid;

use super::*;
use crate::codec::StoredForm;

const PATIENT: Uuid = Uuid::from_u128(1);
const OTHER: Uuid = Uuid::from_u128(2);
const APPOINTMENT: Uuid = Uuid::from_u128(3);
const LINE: Uuid = Uuid::from_u128(10);
const LINE2: Uuid = Uuid::from_u128(11);
const COVERAGE: Uuid = Uuid::from_u128(20);
const CLAIM: Uuid = Uuid::from_u128(30);
const CLAIM2: Uuid = Uuid::from_u128(31);
const PAYMENT: Uuid = Uuid::from_u128(40);

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn today() -> NaiveDate {
    day(2026, 3, 2)
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn cents(c: i64) -> Money {
    Money::cents(c)
}

fn listed(code: &str, price: i64) -> ListedPrice {
    ListedPrice {
        code: code.into(),
        description: format!("service {code}"),
        unit_price: cents(price),
    }
}

fn line(id: Uuid, code: &str, quantity: i64, price: i64) -> Line {
    Line {
        line_id: id,
        code: code.into(),
        description: format!("service {code}"),
        quantity,
        unit_price: cents(price),
        amount: cents(quantity * price),
    }
}

fn coverage_entry() -> CoverageEntry {
    CoverageEntry {
        coverage_id: COVERAGE,
        payer: "Acme Health".into(),
        member_id: "M-1".into(),
        plan: "Gold".into(),
        valid_from: day(2026, 1, 1),
        valid_to: Some(day(2026, 12, 31)),
        rank: Rank::Primary,
        ended: false,
    }
}

fn opened() -> BillEvent {
    BillEvent::Opened {
        patient_id: PATIENT,
        appointment_id: None,
        currency: usd(),
        service_date: today(),
    }
}

/// A bill of 150.00 (one visit at 120.00, a test at 30.00), issued.
fn issued() -> Vec<BillEvent> {
    vec![
        opened(),
        BillEvent::LineAdded(line(LINE, "99213", 1, 12_000)),
        BillEvent::LineAdded(line(LINE2, "LAB-1", 2, 1_500)),
        BillEvent::Issued {
            issued_on: today(),
            total: cents(15_000),
        },
    ]
}

fn submitted(amount: i64) -> BillEvent {
    BillEvent::ClaimSubmitted {
        claim_id: CLAIM,
        coverage_id: COVERAGE,
        payer: "Acme Health".into(),
        amount: cents(amount),
        submitted_on: today(),
    }
}

fn with(mut events: Vec<BillEvent>, more: impl IntoIterator<Item = BillEvent>) -> Vec<BillEvent> {
    events.extend(more);
    events
}

async fn bill(events: Vec<BillEvent>, command: BillCommand) -> AggregateResultValidator<Bill> {
    TestFramework::<Bill>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn folded(events: Vec<BillEvent>) -> Bill {
    let mut b = Bill::default();
    for e in events {
        b.apply(e);
    }
    b
}

fn pay(amount: i64) -> BillCommand {
    BillCommand::Pay {
        payment_id: PAYMENT,
        amount,
        method: "card".into(),
        today: today(),
    }
}

fn codes(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

fn accepted(amount: i64) -> Vec<BillEvent> {
    with(
        issued(),
        [
            submitted(amount),
            BillEvent::ClaimAccepted { claim_id: CLAIM },
        ],
    )
}

fn paid(amount: i64) -> BillEvent {
    BillEvent::PaymentReceived {
        payment_id: PAYMENT,
        amount: cents(amount),
        method: "cash".into(),
        received_on: today(),
    }
}
