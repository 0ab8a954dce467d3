//! Given/when/then tests of billing: the price list, coverage, the bill's
//! and the claim's state machines, balance arithmetic to the cent, and
//! refunds. Dates are always given.

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

// --- money -----------------------------------------------------------------------

#[test]
fn money_overflow_is_an_error_not_a_wrap() {
    assert_eq!(cents(i64::MAX).plus(cents(1)), Err(BillingError::Overflow));
    assert_eq!(cents(i64::MIN).minus(cents(1)), Err(BillingError::Overflow));
    assert_eq!(
        cents(i64::MAX / 2 + 1).times(2),
        Err(BillingError::Overflow)
    );
    assert_eq!(cents(250).times(3), Ok(cents(750)));
}

#[test]
fn an_amount_is_whole_minor_units_within_range() {
    assert_eq!(
        Money::parse("amount", -1),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(
        Money::parse("amount", MAX_AMOUNT + 1),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(
        Money::positive("amount", 0),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(serde_json::to_string(&cents(1999)).unwrap(), "1999");
}

#[test]
fn a_currency_is_three_capital_letters() {
    assert_eq!(usd().as_str(), "USD");
    for bad in ["usd", "US", "USDX", "U$D", ""] {
        assert_eq!(
            Currency::parse(bad),
            Err(BillingError::InvalidCurrency),
            "{bad}"
        );
    }
}

// --- price list ------------------------------------------------------------------

#[tokio::test]
async fn a_code_is_listed_upper_cased_with_its_price() {
    TestFramework::<PriceList>::with(())
        .given_no_previous_events()
        .when_async(PriceListCommand::Set {
            code: " lab-1 ".into(),
            description: "service LAB-1".into(),
            unit_price: 1_500,
        })
        .await
        .then_expect_events(vec![PriceListEvent::CodeSet(listed("LAB-1", 1_500))]);
}

#[tokio::test]
async fn a_code_of_another_shape_or_a_negative_price_is_refused() {
    for (code, price, error) in [
        ("99 213", 100, BillingError::InvalidCode("code")),
        ("A\u{0}", 100, BillingError::InvalidCharacters("code")),
        ("99213", -1, BillingError::InvalidAmount("unit_price")),
    ] {
        TestFramework::<PriceList>::with(())
            .given_no_previous_events()
            .when_async(PriceListCommand::Set {
                code: code.into(),
                description: "x".into(),
                unit_price: price,
            })
            .await
            .then_expect_error(error);
    }
}

#[tokio::test]
async fn an_unlisted_code_is_not_retired() {
    TestFramework::<PriceList>::with(())
        .given(vec![PriceListEvent::CodeSet(listed("99213", 12_000))])
        .when_async(PriceListCommand::Retire {
            code: "LAB-1".into(),
        })
        .await
        .then_expect_error(BillingError::UnknownCode);
}

#[test]
fn a_retired_code_is_no_longer_found() {
    let mut list = PriceList::default();
    list.apply(PriceListEvent::CodeSet(listed("99213", 12_000)));
    assert_eq!(list.find("99213"), Some(&listed("99213", 12_000)));
    list.apply(PriceListEvent::CodeRetired {
        code: "99213".into(),
    });
    assert_eq!(list.find("99213"), None);
}

// --- coverage ------------------------------------------------------------------

fn add_coverage(id: Uuid, rank: Rank, from: NaiveDate, to: Option<NaiveDate>) -> CoverageCommand {
    CoverageCommand::Add {
        coverage_id: id,
        payer: " Acme Health ".into(),
        member_id: "M-1".into(),
        plan: "Gold".into(),
        valid_from: from,
        valid_to: to,
        rank,
    }
}

#[tokio::test]
async fn a_coverage_is_recorded_trimmed() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(
            COVERAGE,
            Rank::Primary,
            day(2026, 1, 1),
            Some(day(2026, 12, 31)),
        ))
        .await
        .then_expect_events(vec![CoverageEvent::Added(coverage_entry())]);
}

#[tokio::test]
async fn a_coverage_ending_before_it_starts_is_refused() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(
            COVERAGE,
            Rank::Primary,
            day(2026, 2, 1),
            Some(day(2026, 1, 31)),
        ))
        .await
        .then_expect_error(BillingError::InvalidPeriod);
}

#[tokio::test]
async fn a_coverage_in_year_1800_is_refused() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(COVERAGE, Rank::Primary, day(1800, 1, 1), None))
        .await
        .then_expect_error(BillingError::ImplausibleDate("valid_from"));
}

#[tokio::test]
async fn two_primary_coverages_over_one_period_are_refused_a_secondary_is_not() {
    let given = vec![CoverageEvent::Added(coverage_entry())];
    TestFramework::<Coverage>::with(())
        .given(given.clone())
        .when_async(add_coverage(CLAIM, Rank::Primary, day(2026, 6, 1), None))
        .await
        .then_expect_error(BillingError::RankTaken);
    let mut expected = coverage_entry();
    expected.coverage_id = CLAIM;
    expected.rank = Rank::Secondary;
    expected.valid_from = day(2026, 6, 1);
    expected.valid_to = None;
    TestFramework::<Coverage>::with(())
        .given(given.clone())
        .when_async(add_coverage(CLAIM, Rank::Secondary, day(2026, 6, 1), None))
        .await
        .then_expect_events(vec![CoverageEvent::Added(expected)]);
    // Next year's primary does not overlap this year's.
    let mut next = coverage_entry();
    next.coverage_id = CLAIM;
    next.valid_from = day(2027, 1, 1);
    next.valid_to = None;
    TestFramework::<Coverage>::with(())
        .given(given)
        .when_async(add_coverage(CLAIM, Rank::Primary, day(2027, 1, 1), None))
        .await
        .then_expect_events(vec![CoverageEvent::Added(next)]);
}

#[tokio::test]
async fn an_ended_coverage_is_not_ended_again() {
    TestFramework::<Coverage>::with(())
        .given(vec![
            CoverageEvent::Added(coverage_entry()),
            CoverageEvent::Ended {
                coverage_id: COVERAGE,
                reason: "left the plan".into(),
            },
        ])
        .when_async(CoverageCommand::End {
            coverage_id: COVERAGE,
            reason: "again".into(),
        })
        .await
        .then_expect_error(BillingError::CoverageEnded);
}

// --- bill: draft, issue, void ----------------------------------------------------

#[tokio::test]
async fn a_bill_is_opened_for_the_patients_own_appointment_only() {
    let open = |patient| BillCommand::Open {
        patient_id: PATIENT,
        appointment: Some(AppointmentRef {
            appointment_id: APPOINTMENT,
            patient_id: patient,
        }),
        currency: usd(),
        service_date: today(),
    };
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

// --- claims ------------------------------------------------------------------

fn submit(amount: i64, coverage: Option<CoverageEntry>) -> BillCommand {
    BillCommand::SubmitClaim {
        claim_id: CLAIM,
        coverage,
        amount,
        today: today(),
    }
}

#[tokio::test]
async fn a_claim_is_submitted_to_the_coverages_payer() {
    bill(issued(), submit(10_000, Some(coverage_entry())))
        .await
        .then_expect_events(vec![submitted(10_000)]);
}

#[tokio::test]
async fn a_claim_needs_an_issued_bill_and_a_valid_coverage() {
    let mut draft = issued();
    draft.pop();
    bill(draft, submit(100, Some(coverage_entry())))
        .await
        .then_expect_error(BillingError::NotIssued);
    bill(issued(), submit(100, None))
        .await
        .then_expect_error(BillingError::UnknownCoverage);
    let mut expired = coverage_entry();
    expired.valid_to = Some(day(2026, 3, 1));
    bill(issued(), submit(100, Some(expired)))
        .await
        .then_expect_error(BillingError::CoverageNotValid);
    let mut ended = coverage_entry();
    ended.ended = true;
    bill(issued(), submit(100, Some(ended)))
        .await
        .then_expect_error(BillingError::CoverageEnded);
}

#[tokio::test]
async fn a_claim_cannot_exceed_what_is_owed() {
    bill(issued(), submit(15_001, Some(coverage_entry())))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(issued(), submit(0, Some(coverage_entry())))
        .await
        .then_expect_error(BillingError::InvalidAmount("amount"));
    // Two claims together cannot claim more than the bill.
    let mut second = submit(5_001, Some(coverage_entry()));
    if let BillCommand::SubmitClaim { claim_id, .. } = &mut second {
        *claim_id = CLAIM2;
    }
    bill(with(issued(), [submitted(10_000)]), second)
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
}

#[tokio::test]
async fn a_submitted_claim_is_accepted_or_rejected_with_reason_codes() {
    let given = with(issued(), [submitted(10_000)]);
    bill(given.clone(), BillCommand::AcceptClaim { claim_id: CLAIM })
        .await
        .then_expect_events(vec![BillEvent::ClaimAccepted { claim_id: CLAIM }]);
    bill(
        given.clone(),
        BillCommand::RejectClaim {
            claim_id: CLAIM,
            reason_codes: codes(&["co-16", "N290", "CO-16"]),
        },
    )
    .await
    .then_expect_events(vec![BillEvent::ClaimRejected {
        claim_id: CLAIM,
        reason_codes: codes(&["CO-16", "N290"]),
    }]);
    bill(
        given,
        BillCommand::RejectClaim {
            claim_id: CLAIM,
            reason_codes: vec![],
        },
    )
    .await
    .then_expect_error(BillingError::ReasonCodesRequired);
}

#[tokio::test]
async fn only_a_rejected_claim_is_resubmitted_or_withdrawn() {
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
    let resubmit = |amount| BillCommand::ResubmitClaim {
        claim_id: CLAIM,
        amount,
        today: today(),
    };
    bill(rejected.clone(), resubmit(15_000))
        .await
        .then_expect_events(vec![BillEvent::ClaimResubmitted {
            claim_id: CLAIM,
            amount: cents(15_000),
            submitted_on: today(),
        }]);
    bill(rejected.clone(), resubmit(15_001))
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
    bill(
        rejected,
        BillCommand::WithdrawClaim {
            claim_id: CLAIM,
            reason: "no coverage for this".into(),
        },
    )
    .await
    .then_expect_events(vec![BillEvent::ClaimWithdrawn {
        claim_id: CLAIM,
        reason: "no coverage for this".into(),
    }]);
    bill(with(issued(), [submitted(10_000)]), resubmit(100))
        .await
        .then_expect_error(BillingError::ClaimState {
            actual: "submitted",
            needed: "rejected",
        });
    bill(issued(), resubmit(100))
        .await
        .then_expect_error(BillingError::UnknownClaim);
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

fn adjudicate(paid: i64, reasons: &[&str]) -> BillCommand {
    BillCommand::Adjudicate {
        claim_id: CLAIM,
        paid,
        reason_codes: codes(reasons),
    }
}

#[tokio::test]
async fn an_accepted_claim_is_paid_partly_paid_or_denied_by_the_amount() {
    bill(accepted(10_000), adjudicate(10_000, &[]))
        .await
        .then_expect_events(vec![BillEvent::ClaimPaid {
            claim_id: CLAIM,
            amount: cents(10_000),
        }]);
    bill(accepted(10_000), adjudicate(8_000, &["CO-45"]))
        .await
        .then_expect_events(vec![BillEvent::ClaimPartlyPaid {
            claim_id: CLAIM,
            amount: cents(8_000),
            reason_codes: codes(&["CO-45"]),
        }]);
    bill(accepted(10_000), adjudicate(0, &["CO-50"]))
        .await
        .then_expect_events(vec![BillEvent::ClaimDenied {
            claim_id: CLAIM,
            reason_codes: codes(&["CO-50"]),
        }]);
}

#[tokio::test]
async fn a_payer_pays_no_more_than_claimed_and_states_why_it_pays_less() {
    bill(accepted(10_000), adjudicate(10_001, &[]))
        .await
        .then_expect_error(BillingError::MoreThanClaimed);
    bill(accepted(10_000), adjudicate(5_000, &[]))
        .await
        .then_expect_error(BillingError::ReasonCodesRequired);
    bill(with(issued(), [submitted(10_000)]), adjudicate(100, &["X"]))
        .await
        .then_expect_error(BillingError::ClaimState {
            actual: "submitted",
            needed: "accepted",
        });
}

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

fn paid(amount: i64) -> BillEvent {
    BillEvent::PaymentReceived {
        payment_id: PAYMENT,
        amount: cents(amount),
        method: "cash".into(),
        received_on: today(),
    }
}

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

// --- stored forms --------------------------------------------------------------

fn round_trip<E: StoredForm + PartialEq + std::fmt::Debug>(event: E, name: &str) {
    let stored = event.to_stored().unwrap();
    assert_eq!(stored.event_type, name);
    let back = E::from_stored(
        &stored.event_type,
        &stored.event_version,
        &stored.payload.to_string(),
    )
    .unwrap();
    assert_eq!(back, event);
}

#[test]
fn every_event_has_a_stable_stored_form() {
    let r = codes(&["CO-45"]);
    let bills = [
        (opened(), "bill.opened"),
        (
            BillEvent::LineAdded(line(LINE, "X", 1, 1)),
            "bill.line_added",
        ),
        (
            BillEvent::LineRemoved { line_id: LINE },
            "bill.line_removed",
        ),
        (issued().pop().unwrap(), "bill.issued"),
        (BillEvent::Voided { reason: "r".into() }, "bill.voided"),
        (submitted(1), "bill.claim_submitted"),
        (
            BillEvent::ClaimAccepted { claim_id: CLAIM },
            "bill.claim_accepted",
        ),
        (
            BillEvent::ClaimRejected {
                claim_id: CLAIM,
                reason_codes: r.clone(),
            },
            "bill.claim_rejected",
        ),
        (
            BillEvent::ClaimResubmitted {
                claim_id: CLAIM,
                amount: cents(1),
                submitted_on: today(),
            },
            "bill.claim_resubmitted",
        ),
        (
            BillEvent::ClaimWithdrawn {
                claim_id: CLAIM,
                reason: "r".into(),
            },
            "bill.claim_withdrawn",
        ),
        (
            BillEvent::ClaimPaid {
                claim_id: CLAIM,
                amount: cents(1),
            },
            "bill.claim_paid",
        ),
        (
            BillEvent::ClaimPartlyPaid {
                claim_id: CLAIM,
                amount: cents(1),
                reason_codes: r.clone(),
            },
            "bill.claim_partly_paid",
        ),
        (
            BillEvent::ClaimDenied {
                claim_id: CLAIM,
                reason_codes: r,
            },
            "bill.claim_denied",
        ),
        (paid(1), "bill.payment_received"),
        (
            BillEvent::Adjusted {
                adjustment_id: LINE,
                kind: AdjustmentKind::WriteOff,
                amount: cents(1),
                reason: "r".into(),
            },
            "bill.adjusted",
        ),
        (
            BillEvent::Refunded {
                refund_id: LINE,
                amount: cents(1),
                reason: "r".into(),
                refunded_on: today(),
            },
            "bill.refunded",
        ),
    ];
    for (event, name) in bills {
        round_trip(event, name);
    }
    round_trip(
        PriceListEvent::CodeSet(listed("A", 1)),
        "price_list.code_set",
    );
    round_trip(
        PriceListEvent::CodeRetired { code: "A".into() },
        "price_list.code_retired",
    );
    round_trip(CoverageEvent::Added(coverage_entry()), "coverage.added");
    round_trip(
        CoverageEvent::Ended {
            coverage_id: COVERAGE,
            reason: "r".into(),
        },
        "coverage.ended",
    );
}

#[test]
fn amounts_are_json_integers_in_every_event() {
    let stored = paid(1999).to_stored().unwrap();
    assert_eq!(stored.payload["amount"], serde_json::json!(1999));
    assert!(stored.payload["amount"].is_i64());
}
