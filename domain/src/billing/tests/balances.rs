//! Balances to the cent, payments, adjustments and refunds.

use super::*;

// --- balances ------------------------------------------------------------------

#[test]
fn what_is_claimed_is_the_insurers_and_what_the_payer_does_not_pay_the_patients() {
    let b = folded(with(issued(), [submitted(10_000)]));
    let balance = b.balance().unwrap();
    assert_eq!(balance.total, cents(15_000));
    assert_eq!(balance.insurer, cents(10_000));
    assert_eq!(balance.patient, cents(5_000));

    let b = folded(with(
        accepted(10_000),
        [BillEvent::ClaimPartlyPaid {
            claim_id: CLAIM,
            amount: cents(7_333),
            reason_codes: codes(&["CO-45"]),
        }],
    ));
    let balance = b.balance().unwrap();
    assert_eq!(balance.insurer, Money::ZERO);
    assert_eq!(balance.payer_paid, cents(7_333));
    assert_eq!(balance.patient, cents(7_667));

    let b = folded(with(
        accepted(10_000),
        [BillEvent::ClaimDenied {
            claim_id: CLAIM,
            reason_codes: codes(&["CO-50"]),
        }],
    ));
    assert_eq!(b.balance().unwrap().patient, cents(15_000));
}

#[test]
fn a_rejected_claim_stays_the_insurers_until_withdrawn() {
    let rejected = with(
        issued(),
        [
            submitted(10_000),
            BillEvent::ClaimRejected {
                claim_id: CLAIM,
                reason_codes: codes(&["CO-16"]),
            },
        ],
    );
    assert_eq!(
        folded(rejected.clone()).balance().unwrap().insurer,
        cents(10_000)
    );
    let withdrawn = with(
        rejected,
        [BillEvent::ClaimWithdrawn {
            claim_id: CLAIM,
            reason: "x".into(),
        }],
    );
    let balance = folded(withdrawn).balance().unwrap();
    assert_eq!(balance.insurer, Money::ZERO);
    assert_eq!(balance.patient, cents(15_000));
}

#[tokio::test]
async fn the_patient_pays_no_more_than_they_owe() {
    let partly = with(
        accepted(10_000),
        [BillEvent::ClaimPartlyPaid {
            claim_id: CLAIM,
            amount: cents(7_333),
            reason_codes: codes(&["CO-45"]),
        }],
    );
    bill(partly.clone(), pay(7_668))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(partly.clone(), pay(7_667))
        .await
        .then_expect_events(vec![BillEvent::PaymentReceived {
            payment_id: PAYMENT,
            amount: cents(7_667),
            method: "card".into(),
            received_on: today(),
        }]);
    // The insurer's part is not the patient's to pay.
    bill(with(issued(), [submitted(10_000)]), pay(5_001))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    let paid = with(
        partly,
        [BillEvent::PaymentReceived {
            payment_id: PAYMENT,
            amount: cents(7_667),
            method: "card".into(),
            received_on: today(),
        }],
    );
    let balance = folded(paid.clone()).balance().unwrap();
    assert_eq!(
        (balance.insurer, balance.patient),
        (Money::ZERO, Money::ZERO)
    );
    bill(paid, pay(1))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
}

#[tokio::test]
async fn an_adjustment_or_write_off_needs_a_reason_and_no_more_than_is_owed() {
    let adjust = |amount, reason: &str| BillCommand::Adjust {
        adjustment_id: LINE,
        kind: AdjustmentKind::WriteOff,
        amount,
        reason: reason.into(),
    };
    bill(issued(), adjust(15_000, "uncollectable"))
        .await
        .then_expect_events(vec![BillEvent::Adjusted {
            adjustment_id: LINE,
            kind: AdjustmentKind::WriteOff,
            amount: cents(15_000),
            reason: "uncollectable".into(),
        }]);
    bill(issued(), adjust(15_001, "x"))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(issued(), adjust(100, ""))
        .await
        .then_expect_error(BillingError::EmptyField("reason"));
    let b = folded(with(
        issued(),
        [BillEvent::Adjusted {
            adjustment_id: LINE,
            kind: AdjustmentKind::Adjustment,
            amount: cents(2_501),
            reason: "courtesy".into(),
        }],
    ));
    assert_eq!(b.balance().unwrap().patient, cents(12_499));
}

// --- refunds -------------------------------------------------------------------

fn refund(amount: i64) -> BillCommand {
    BillCommand::Refund {
        refund_id: Uuid::from_u128(50),
        amount,
        reason: "returned".into(),
        today: today(),
    }
}

#[tokio::test]
async fn a_refund_returns_no_more_than_the_patient_paid() {
    let given = with(issued(), [paid(4_000)]);
    bill(given.clone(), refund(4_001))
        .await
        .then_expect_error(BillingError::MoreThanPaid);
    bill(given.clone(), refund(1_000))
        .await
        .then_expect_events(vec![BillEvent::Refunded {
            refund_id: Uuid::from_u128(50),
            amount: cents(1_000),
            reason: "returned".into(),
            refunded_on: today(),
        }]);
    bill(issued(), refund(1))
        .await
        .then_expect_error(BillingError::MoreThanPaid);
}

#[test]
fn a_void_leaves_the_patients_payments_as_a_credit_that_a_refund_settles() {
    let void = with(
        issued(),
        [
            paid(4_000),
            BillEvent::Voided {
                reason: "billed twice".into(),
            },
        ],
    );
    let balance = folded(void.clone()).balance().unwrap();
    assert_eq!(balance.patient, cents(-4_000));
    let settled = with(
        void,
        [BillEvent::Refunded {
            refund_id: Uuid::from_u128(50),
            amount: cents(4_000),
            reason: "returned".into(),
            refunded_on: today(),
        }],
    );
    let balance = folded(settled).balance().unwrap();
    assert_eq!(balance.patient, Money::ZERO);
    assert_eq!(balance.refunded, cents(4_000));
}

#[test]
fn a_refund_of_a_payment_makes_it_owed_again() {
    let b = folded(with(
        issued(),
        [
            paid(15_000),
            BillEvent::Refunded {
                refund_id: Uuid::from_u128(50),
                amount: cents(2_000),
                reason: "wrong card".into(),
                refunded_on: today(),
            },
        ],
    ));
    assert_eq!(b.balance().unwrap().patient, cents(2_000));
}

#[test]
fn a_bill_is_about_its_patient() {
    use crate::subject::Subject;
    assert_eq!(folded(issued()).patient("x"), Some(PATIENT));
    assert_eq!(Bill::default().patient("x"), None);
    assert_eq!(
        Coverage::default().patient(&PATIENT.to_string()),
        Some(PATIENT)
    );
    assert_eq!(PriceList::default().patient(PRICE_LIST_ID), None);
}

fn start(amount: i64) -> BillCommand {
    BillCommand::StartPayment {
        payment_id: PAYMENT,
        amount,
        method: "card".into(),
        today: today(),
    }
}

fn started(amount: i64) -> BillEvent {
    BillEvent::PaymentStarted {
        payment_id: PAYMENT,
        amount: cents(amount),
        method: "card".into(),
        started_on: today(),
    }
}

fn settle(arrived: bool, reason: Option<&str>) -> BillCommand {
    BillCommand::SettlePayment {
        payment_id: PAYMENT,
        arrived,
        reason: reason.map(Into::into),
        today: today(),
    }
}

#[tokio::test]
async fn a_payment_the_patient_starts_counts_once_staff_confirm_it_arrived() {
    // Issued at 150.00, nothing claimed: the patient owes it all.
    bill(issued(), start(15_001))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(issued(), start(10_000))
        .await
        .then_expect_events(vec![started(10_000)]);
    let waiting = with(issued(), [started(10_000)]);
    let balance = folded(waiting.clone()).balance().unwrap();
    assert_eq!(
        (balance.patient, balance.pending, balance.patient_paid),
        (cents(15_000), cents(10_000), Money::ZERO),
        "started is not paid"
    );
    // What is started is held: no other payment may take it.
    bill(waiting.clone(), pay(5_001))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(waiting.clone(), settle(true, None))
        .await
        .then_expect_events(vec![BillEvent::PaymentReceived {
            payment_id: PAYMENT,
            amount: cents(10_000),
            method: "card".into(),
            received_on: today(),
        }]);
    let arrived = with(
        waiting.clone(),
        [BillEvent::PaymentReceived {
            payment_id: PAYMENT,
            amount: cents(10_000),
            method: "card".into(),
            received_on: today(),
        }],
    );
    let balance = folded(arrived.clone()).balance().unwrap();
    assert_eq!(
        (balance.patient, balance.pending, balance.patient_paid),
        (cents(5_000), Money::ZERO, cents(10_000))
    );
    // Settled once only.
    bill(arrived, settle(true, None))
        .await
        .then_expect_error(BillingError::UnknownPayment);
}

#[tokio::test]
async fn a_payment_that_did_not_arrive_is_settled_with_a_reason_and_frees_the_balance() {
    let waiting = with(issued(), [started(10_000)]);
    bill(waiting.clone(), settle(false, None))
        .await
        .then_expect_error(BillingError::EmptyField("reason"));
    bill(waiting.clone(), settle(false, Some("card declined")))
        .await
        .then_expect_events(vec![BillEvent::PaymentFailed {
            payment_id: PAYMENT,
            reason: "card declined".into(),
        }]);
    let failed = with(
        waiting,
        [BillEvent::PaymentFailed {
            payment_id: PAYMENT,
            reason: "card declined".into(),
        }],
    );
    let balance = folded(failed.clone()).balance().unwrap();
    assert_eq!(
        (balance.patient, balance.pending),
        (cents(15_000), Money::ZERO)
    );
    bill(failed, pay(15_000))
        .await
        .then_expect_events(vec![paid_by_card(15_000)]);
}

fn paid_by_card(amount: i64) -> BillEvent {
    BillEvent::PaymentReceived {
        payment_id: PAYMENT,
        amount: cents(amount),
        method: "card".into(),
        received_on: today(),
    }
}
