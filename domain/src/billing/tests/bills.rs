//! A bill's draft, issue and void.

use super::*;
use crate::unique::UniqueKeys;

// --- bill: draft, issue, void ----------------------------------------------------

#[tokio::test]
async fn a_bill_is_opened_for_the_patients_own_appointment_only() {
    let open_as = |patient, cancelled| BillCommand::Open {
        patient_id: PATIENT,
        appointment: Some(AppointmentRef {
            appointment_id: APPOINTMENT,
            patient_id: patient,
            cancelled,
        }),
        currency: usd(),
        service_date: today(),
    };
    let open = |patient| open_as(patient, false);
    bill(vec![], open_as(Some(PATIENT), true))
        .await
        .then_expect_error(BillingError::AppointmentCancelled);
    bill(vec![], open(Some(PATIENT)))
        .await
        .then_expect_events(vec![BillEvent::Opened {
            patient_id: PATIENT,
            appointment_id: Some(APPOINTMENT),
            currency: usd(),
            service_date: today(),
        }]);
    bill(vec![], open(Some(OTHER)))
        .await
        .then_expect_error(BillingError::UnknownAppointment);
    bill(vec![], open(None))
        .await
        .then_expect_error(BillingError::UnknownAppointment);
}

#[test]
fn a_bill_holds_its_appointment_until_it_is_void() {
    let with_visit = vec![BillEvent::Opened {
        patient_id: PATIENT,
        appointment_id: Some(APPOINTMENT),
        currency: usd(),
        service_date: today(),
    }];
    let keys = folded(with_visit.clone()).unique_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scope, APPOINTMENT_SCOPE);
    assert_eq!(keys[0].key, APPOINTMENT.to_string());
    let void = with(
        with_visit,
        [BillEvent::Voided {
            reason: "billed twice".into(),
        }],
    );
    assert!(folded(void).unique_keys().is_empty());
}

#[tokio::test]
async fn a_line_takes_the_listed_price_unless_one_is_given() {
    bill(
        vec![opened()],
        BillCommand::AddLine {
            line_id: LINE,
            listed: Some(listed("LAB-1", 1_500)),
            quantity: 3,
            unit_price: None,
        },
    )
    .await
    .then_expect_events(vec![BillEvent::LineAdded(line(LINE, "LAB-1", 3, 1_500))]);
    bill(
        vec![opened()],
        BillCommand::AddLine {
            line_id: LINE,
            listed: Some(listed("LAB-1", 1_500)),
            quantity: 2,
            unit_price: Some(999),
        },
    )
    .await
    .then_expect_events(vec![BillEvent::LineAdded(line(LINE, "LAB-1", 2, 999))]);
}

#[tokio::test]
async fn a_line_needs_a_listed_code_and_a_sane_quantity() {
    let add = |listed, quantity| BillCommand::AddLine {
        line_id: LINE,
        listed,
        quantity,
        unit_price: None,
    };
    bill(vec![opened()], add(None, 1))
        .await
        .then_expect_error(BillingError::UnknownCode);
    for q in [0, -1, 1001] {
        bill(vec![opened()], add(Some(listed("LAB-1", 1)), q))
            .await
            .then_expect_error(BillingError::InvalidQuantity);
    }
}

#[tokio::test]
async fn a_line_whose_amount_overflows_is_refused() {
    bill(
        vec![
            opened(),
            BillEvent::LineAdded(line(LINE2, "X", 1, i64::MAX - 10)),
        ],
        BillCommand::AddLine {
            line_id: LINE,
            listed: Some(listed("LAB-1", 100)),
            quantity: 1,
            unit_price: None,
        },
    )
    .await
    .then_expect_error(BillingError::Overflow);
}

#[tokio::test]
async fn lines_change_only_in_draft() {
    bill(issued(), BillCommand::RemoveLine { line_id: LINE })
        .await
        .then_expect_error(BillingError::NotADraft);
    bill(
        issued(),
        BillCommand::AddLine {
            line_id: Uuid::from_u128(99),
            listed: Some(listed("LAB-1", 1)),
            quantity: 1,
            unit_price: None,
        },
    )
    .await
    .then_expect_error(BillingError::NotADraft);
    bill(vec![opened()], BillCommand::RemoveLine { line_id: LINE })
        .await
        .then_expect_error(BillingError::UnknownLine);
}

#[tokio::test]
async fn a_bill_is_issued_with_its_total() {
    let mut draft = issued();
    draft.pop();
    bill(draft, BillCommand::Issue { today: today() })
        .await
        .then_expect_events(vec![BillEvent::Issued {
            issued_on: today(),
            total: cents(15_000),
        }]);
    bill(vec![opened()], BillCommand::Issue { today: today() })
        .await
        .then_expect_error(BillingError::NoLines);
    bill(issued(), BillCommand::Issue { today: today() })
        .await
        .then_expect_error(BillingError::NotADraft);
    bill(vec![], BillCommand::Issue { today: today() })
        .await
        .then_expect_error(BillingError::UnknownBill);
}

#[tokio::test]
async fn a_bill_is_voided_with_a_reason_once() {
    bill(
        issued(),
        BillCommand::Void {
            reason: " billed twice ".into(),
        },
    )
    .await
    .then_expect_events(vec![BillEvent::Voided {
        reason: "billed twice".into(),
    }]);
    bill(issued(), BillCommand::Void { reason: " ".into() })
        .await
        .then_expect_error(BillingError::EmptyField("reason"));
    let void = with(issued(), [BillEvent::Voided { reason: "x".into() }]);
    bill(void.clone(), BillCommand::Void { reason: "y".into() })
        .await
        .then_expect_error(BillingError::Void);
    bill(void, pay(100))
        .await
        .then_expect_error(BillingError::Void);
}

#[tokio::test]
async fn a_bill_with_an_open_claim_is_not_voided() {
    bill(
        with(issued(), [submitted(10_000)]),
        BillCommand::Void { reason: "x".into() },
    )
    .await
    .then_expect_error(BillingError::ClaimsOnBill);
}

#[tokio::test]
async fn a_bill_is_opened_once() {
    bill(
        vec![opened()],
        BillCommand::Open {
            patient_id: PATIENT,
            appointment: None,
            currency: usd(),
            service_date: today(),
        },
    )
    .await
    .then_expect_error(BillingError::AlreadyExists);
}

#[tokio::test]
async fn a_bill_holds_at_most_200_lines() {
    let mut given = vec![opened()];
    given.extend(
        (0..MAX_LINES as u128)
            .map(|i| BillEvent::LineAdded(line(Uuid::from_u128(1_000 + i), "X", 1, 1))),
    );
    bill(
        given,
        BillCommand::AddLine {
            line_id: LINE,
            listed: Some(listed("LAB-1", 1)),
            quantity: 1,
            unit_price: None,
        },
    )
    .await
    .then_expect_error(BillingError::TooManyLines);
}

#[tokio::test]
async fn a_void_reason_over_500_characters_is_refused() {
    bill(
        issued(),
        BillCommand::Void {
            reason: "x".repeat(501),
        },
    )
    .await
    .then_expect_error(BillingError::TooLong("reason"));
}

#[tokio::test]
async fn a_draft_is_voided_too() {
    bill(
        vec![opened()],
        BillCommand::Void {
            reason: "opened by mistake".into(),
        },
    )
    .await
    .then_expect_events(vec![BillEvent::Voided {
        reason: "opened by mistake".into(),
    }]);
}

#[test]
fn a_draft_is_owed_by_no_one_until_it_is_issued() {
    let draft = vec![
        opened(),
        BillEvent::LineAdded(line(LINE, "99213", 1, 12_000)),
    ];
    let balance = folded(draft).balance().unwrap();
    assert_eq!(balance.total, cents(12_000));
    assert_eq!(
        (balance.insurer, balance.patient),
        (Money::ZERO, Money::ZERO)
    );
    assert_eq!(folded(issued()).balance().unwrap().patient, cents(15_000));
}
