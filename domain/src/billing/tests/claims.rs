//! The claim's state machine.

use super::*;

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
    // Two claims (to the primary and the secondary coverage) together
    // cannot claim more than the bill.
    let secondary = CoverageEntry {
        coverage_id: Uuid::from_u128(21),
        rank: Rank::Secondary,
        ..coverage_entry()
    };
    let mut second = submit(5_001, Some(secondary));
    if let BillCommand::SubmitClaim { claim_id, .. } = &mut second {
        *claim_id = CLAIM2;
    }
    bill(with(issued(), [submitted(10_000)]), second)
        .await
        .then_expect_error(BillingError::MoreThanOwed("amount"));
}

#[tokio::test]
async fn a_bill_has_one_claim_per_coverage_until_it_is_withdrawn() {
    let mut second = submit(1_000, Some(coverage_entry()));
    if let BillCommand::SubmitClaim { claim_id, .. } = &mut second {
        *claim_id = CLAIM2;
    }
    bill(with(issued(), [submitted(5_000)]), second.clone())
        .await
        .then_expect_error(BillingError::CoverageClaimed);
    let withdrawn = with(
        issued(),
        [
            submitted(5_000),
            BillEvent::ClaimRejected {
                claim_id: CLAIM,
                reason_codes: codes(&["CO-16"]),
            },
            BillEvent::ClaimWithdrawn {
                claim_id: CLAIM,
                reason: "wrong payer".into(),
            },
        ],
    );
    bill(withdrawn, second)
        .await
        .then_expect_events(vec![BillEvent::ClaimSubmitted {
            claim_id: CLAIM2,
            coverage_id: COVERAGE,
            payer: "Acme Health".into(),
            amount: cents(1_000),
            submitted_on: today(),
        }]);
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
        coverage: Some(coverage_entry()),
    };
    // The coverage is checked again: ended, gone or not valid then, refused.
    let again = |coverage| BillCommand::ResubmitClaim {
        claim_id: CLAIM,
        amount: 100,
        today: today(),
        coverage,
    };
    bill(
        rejected.clone(),
        again(Some(CoverageEntry {
            ended: true,
            ..coverage_entry()
        })),
    )
    .await
    .then_expect_error(BillingError::CoverageEnded);
    bill(rejected.clone(), again(None))
        .await
        .then_expect_error(BillingError::UnknownCoverage);
    bill(
        rejected.clone(),
        again(Some(CoverageEntry {
            valid_to: Some(day(2026, 1, 31)),
            ..coverage_entry()
        })),
    )
    .await
    .then_expect_error(BillingError::CoverageNotValid);
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

#[tokio::test]
async fn reason_codes_have_a_shape_and_a_limit() {
    let reject = |reason_codes: Vec<String>| BillCommand::RejectClaim {
        claim_id: CLAIM,
        reason_codes,
    };
    let given = with(issued(), [submitted(10_000)]);
    bill(given.clone(), reject(codes(&["CO 16"])))
        .await
        .then_expect_error(BillingError::InvalidCode("reason_codes"));
    bill(given.clone(), reject(codes(&["CO-16-TOO-LONG"])))
        .await
        .then_expect_error(BillingError::TooLong("reason_codes"));
    let eleven: Vec<String> = (0..11).map(|i| format!("N{i}")).collect();
    bill(given, reject(eleven))
        .await
        .then_expect_error(BillingError::InvalidCode("reason_codes"));
}

#[tokio::test]
async fn a_withdrawn_claim_is_not_resubmitted() {
    bill(
        with(
            issued(),
            [
                submitted(10_000),
                BillEvent::ClaimRejected {
                    claim_id: CLAIM,
                    reason_codes: codes(&["CO-16"]),
                },
                BillEvent::ClaimWithdrawn {
                    claim_id: CLAIM,
                    reason: "x".into(),
                },
            ],
        ),
        BillCommand::ResubmitClaim {
            claim_id: CLAIM,
            amount: 100,
            today: today(),
            coverage: Some(coverage_entry()),
        },
    )
    .await
    .then_expect_error(BillingError::ClaimState {
        actual: "withdrawn",
        needed: "rejected",
    });
}
