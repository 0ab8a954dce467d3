//! Every event's stored form.

use super::*;

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
        (
            BillEvent::PaymentStarted {
                payment_id: PAYMENT,
                amount: cents(1),
                method: "card".into(),
                started_on: today(),
            },
            "bill.payment_started",
        ),
        (
            BillEvent::PaymentFailed {
                payment_id: PAYMENT,
                reason: "declined".into(),
            },
            "bill.payment_failed",
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
