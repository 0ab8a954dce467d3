//! Billing over HTTP, on each backend, as a clinic uses it: a visit is
//! billed from the price list, its claim is rejected, resubmitted and
//! partly paid, the patient pays the rest and the balance is zero, to the
//! cent. Money is a JSON integer everywhere: a float is refused. A void
//! leaves the patient's payment as a credit that a refund settles; aging
//! buckets what is owed by days since issue; a retried payment is taken
//! once, and of two simultaneous payments of the whole balance one is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

on_both_backends!(
    a_visit_is_billed_a_claim_rejected_resubmitted_and_partly_paid_and_the_patient_pays_the_rest,
    a_void_leaves_a_credit_that_a_refund_settles_and_aging_buckets_what_is_owed,
    history_and_as_of_show_a_bill_as_it_was,
    a_bill_event_that_does_not_fit_its_bill_stops_the_billing_projector,
);

async fn start(backend: Backend) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, &["--time-zone", "UTC", "--currency", "EUR"]).await
}

async fn send(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    s.call("POST", path, Some(token), Some(body), &[]).await
}

/// A command that must succeed; returns its reply.
async fn ok(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    let r = send(s, token, path, body).await?;
    anyhow::ensure!(r.status < 300, "POST {path}: {r:?}");
    Ok(r)
}

async fn get(s: &TestServer, token: &str, path: &str, after: &Reply) -> anyhow::Result<Reply> {
    let r = s.call("GET", path, Some(token), None, &at(after)).await?;
    anyhow::ensure!(r.status == 200, "GET {path}: {r:?}");
    Ok(r)
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap().to_owned()
}

/// An amount of a bill, which must be a JSON integer.
fn cents(v: &Value, field: &str) -> i64 {
    assert!(v[field].is_i64(), "{field} is not an integer: {v}");
    v[field].as_i64().unwrap()
}

fn balance(bill: &Value) -> (i64, i64) {
    (cents(bill, "insurer_due"), cents(bill, "patient_due"))
}

async fn price_list(s: &TestServer, admin: &str) -> anyhow::Result<()> {
    let set = |code: &str, description: &str, price: i64| {
        let path = format!("/v1/billing/price-list/{code}");
        let body = json!({"description": description, "unit_price": price});
        async move {
            let r = s.call("PUT", &path, Some(admin), Some(body), &[]).await?;
            anyhow::ensure!(r.status == 200, "PUT {path}: {r:?}");
            Ok(())
        }
    };
    set("99213", "Office visit, established patient", 12_000).await?;
    set("lab-k", "Potassium level", 1_550).await?;
    Ok(())
}

async fn a_visit_is_billed_a_claim_rejected_resubmitted_and_partly_paid_and_the_patient_pays_the_rest(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let (_, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let staff = user(&s, &admin, "billing.desk", "staff").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (pierre, pierre_id) = patient_account(&s, "pierre", "Curie2").await?;
    price_list(&s, &admin).await?;

    // A floating-point price is malformed, not rounded.
    let float = s
        .call(
            "PUT",
            "/v1/billing/price-list/X1",
            Some(&admin),
            Some(json!({"description": "x", "unit_price": 10.5})),
            &[],
        )
        .await?;
    assert_eq!(float.status, 400, "{float:?}");

    // The visit: booked with the doctor three days ahead.
    let provider = enroll(&s, &admin, &doctor_user, "Dr House", "Diagnostics").await?;
    set_hours(
        &s,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("08:00", "18:00")]),
        30,
    )
    .await?;
    let clinic = Clinic::new("UTC")?;
    let visit_day = clinic.today() + Duration::days(3);
    let booked = book(
        &s,
        &staff,
        &provider,
        &marie_id,
        &clinic.at(visit_day, "10:00"),
    )
    .await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = id(&booked);

    // Her insurance.
    let from = (clinic.today() - Duration::days(365)).to_string();
    let covered = ok(
        &s,
        &staff,
        &format!("/v1/patients/{marie_id}/coverage"),
        json!({"payer": "Acme Health", "member_id": "ACME-778", "plan": "Gold PPO",
               "valid_from": from, "rank": "primary"}),
    )
    .await?;
    let coverage = id(&covered);

    // Her appointment is not another patient's bill.
    let wrong = send(
        &s,
        &staff,
        "/v1/bills",
        json!({"patient_id": pierre_id, "appointment_id": appointment}),
    )
    .await?;
    assert_eq!(
        (wrong.status, wrong.code()),
        (422, "unknown_appointment"),
        "{wrong:?}"
    );

    // The visit is billed: a visit and two potassium levels, 151.00.
    let opened = ok(
        &s,
        &staff,
        "/v1/bills",
        json!({"patient_id": marie_id, "appointment_id": appointment}),
    )
    .await?;
    let bill = id(&opened);
    // One bill per visit: a second for the same appointment is refused.
    let twice = send(
        &s,
        &staff,
        "/v1/bills",
        json!({"patient_id": marie_id, "appointment_id": appointment}),
    )
    .await?;
    assert_eq!(
        (twice.status, twice.code()),
        (409, "appointment_billed"),
        "{twice:?}"
    );
    let lines = format!("/v1/bills/{bill}/lines");
    ok(&s, &staff, &lines, json!({"code": "99213", "quantity": 1})).await?;
    let unlisted = send(&s, &staff, &lines, json!({"code": "99999", "quantity": 1})).await?;
    assert_eq!(
        (unlisted.status, unlisted.code()),
        (422, "unknown_code"),
        "{unlisted:?}"
    );
    ok(&s, &staff, &lines, json!({"code": "LAB-K", "quantity": 2})).await?;
    let issued = ok(&s, &staff, &format!("/v1/bills/{bill}/issue"), json!(null)).await?;
    let late = send(&s, &staff, &lines, json!({"code": "99213", "quantity": 1})).await?;
    assert_eq!((late.status, late.code()), (422, "not_a_draft"), "{late:?}");

    let path = format!("/v1/bills/{bill}");
    let read = get(&s, &staff, &path, &issued).await?;
    assert_eq!(read.body["status"], "issued", "{read:?}");
    assert_eq!(read.body["currency"], "EUR");
    assert_eq!(read.body["appointment_id"], appointment.as_str());
    assert_eq!(read.body["service_date"], visit_day.to_string());
    assert_eq!(cents(&read.body, "total"), 15_100);
    assert_eq!(balance(&read.body), (0, 15_100));
    let amounts: Vec<i64> = read.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| cents(l, "amount"))
        .collect();
    assert_eq!(amounts, [12_000, 3_100]);

    // 80% is claimed from Acme; the claim is rejected for a missing field.
    let claims = format!("/v1/bills/{bill}/claims");
    let too_much = send(
        &s,
        &staff,
        &claims,
        json!({"coverage_id": coverage, "amount": 15_101}),
    )
    .await?;
    assert_eq!(
        (too_much.status, too_much.code()),
        (422, "more_than_owed"),
        "{too_much:?}"
    );
    let submitted = ok(
        &s,
        &staff,
        &claims,
        json!({"coverage_id": coverage, "amount": 12_080}),
    )
    .await?;
    let claim = id(&submitted);
    let response = format!("/v1/bills/{bill}/claims/{claim}/response");
    let rejected = ok(
        &s,
        &staff,
        &response,
        json!({"outcome": "rejected", "reason_codes": ["co-16", "N290"]}),
    )
    .await?;
    let read = get(&s, &staff, &path, &rejected).await?;
    assert_eq!(read.body["claims"][0]["status"], "rejected", "{read:?}");
    assert_eq!(
        read.body["claims"][0]["reason_codes"],
        json!(["CO-16", "N290"])
    );
    // Still the insurer's until resubmitted or withdrawn.
    assert_eq!(balance(&read.body), (12_080, 3_020));
    // The patient cannot pay the insurer's part.
    let payments = format!("/v1/bills/{bill}/payments");
    let over = send(
        &s,
        &marie,
        &payments,
        json!({"amount": 3_021, "method": "card"}),
    )
    .await?;
    assert_eq!(
        (over.status, over.code()),
        (422, "more_than_owed"),
        "{over:?}"
    );

    // Corrected and resubmitted; accepted; partly paid: 100.00 of 120.80.
    let resubmit = format!("/v1/bills/{bill}/claims/{claim}/resubmit");
    ok(&s, &staff, &resubmit, json!({"amount": 12_080})).await?;
    ok(&s, &staff, &response, json!({"outcome": "accepted"})).await?;
    let stingy = send(
        &s,
        &staff,
        &response,
        json!({"outcome": "adjudicated", "paid": 10_000}),
    )
    .await?;
    assert_eq!(
        (stingy.status, stingy.code()),
        (422, "reason_codes_required"),
        "{stingy:?}"
    );
    let paid = ok(
        &s,
        &staff,
        &response,
        json!({"outcome": "adjudicated", "paid": 10_000, "reason_codes": ["CO-45"]}),
    )
    .await?;
    let read = get(&s, &marie, &path, &paid).await?;
    let claim_view = &read.body["claims"][0];
    assert_eq!(claim_view["status"], "partly_paid", "{read:?}");
    assert_eq!(cents(claim_view, "paid"), 10_000);
    assert_eq!(claim_view["submissions"], 2);
    // What Acme did not pay is hers: 151.00 - 100.00.
    assert_eq!(balance(&read.body), (0, 5_100));
    assert_eq!(cents(&read.body, "payer_paid"), 10_000);

    // Someone else cannot read or pay her bill.
    let theirs = s
        .call("GET", &path, Some(&pierre), None, &at(&paid))
        .await?;
    assert_eq!(
        (theirs.status, theirs.code()),
        (403, "forbidden"),
        "{theirs:?}"
    );
    let theirs = send(
        &s,
        &pierre,
        &payments,
        json!({"amount": 1, "method": "card"}),
    )
    .await?;
    assert_eq!(
        (theirs.status, theirs.code()),
        (403, "forbidden"),
        "{theirs:?}"
    );

    // She pays the rest, not a cent more, and never in fractions.
    let fraction = send(
        &s,
        &marie,
        &payments,
        json!({"amount": 51.0, "method": "card"}),
    )
    .await?;
    assert_eq!(fraction.status, 400, "{fraction:?}");
    let over = send(
        &s,
        &marie,
        &payments,
        json!({"amount": 5_101, "method": "card"}),
    )
    .await?;
    assert_eq!(
        (over.status, over.code()),
        (422, "more_than_owed"),
        "{over:?}"
    );
    // Her payment holds the rest until the front desk sees the money
    // arrive: nothing here can see it move.
    let started = ok(
        &s,
        &marie,
        &payments,
        json!({"amount": 5_100, "method": "card"}),
    )
    .await?;
    let payment = id(&started);
    let read = get(&s, &marie, &path, &started).await?;
    assert_eq!(balance(&read.body), (0, 5_100), "not paid yet: {read:?}");
    assert_eq!(cents(&read.body, "pending"), 5_100);
    assert_eq!(read.body["movements"][0]["kind"], "payment_started");
    let twice = send(
        &s,
        &marie,
        &payments,
        json!({"amount": 1, "method": "card"}),
    )
    .await?;
    assert_eq!(
        (twice.status, twice.code()),
        (422, "more_than_owed"),
        "what is started is held: {twice:?}"
    );
    let settlement = format!("/v1/bills/{bill}/payments/{payment}/settlement");
    let by_herself = send(&s, &marie, &settlement, json!({"arrived": true})).await?;
    assert_eq!(by_herself.status, 403, "{by_herself:?}");
    let settled = ok(&s, &staff, &settlement, json!({"arrived": true})).await?;
    let again = send(&s, &staff, &settlement, json!({"arrived": true})).await?;
    assert_eq!(again.status, 404, "settled once: {again:?}");
    let read = get(&s, &marie, &path, &settled).await?;
    assert_eq!(balance(&read.body), (0, 0), "{read:?}");
    assert_eq!(cents(&read.body, "pending"), 0);
    assert_eq!(cents(&read.body, "patient_paid"), 5_100);
    assert_eq!(
        cents(&read.body, "payer_paid") + cents(&read.body, "patient_paid"),
        cents(&read.body, "total")
    );
    assert_eq!(read.body["movements"][0]["kind"], "payment");
    let more = send(
        &s,
        &marie,
        &payments,
        json!({"amount": 1, "method": "card"}),
    )
    .await?;
    assert_eq!(
        (more.status, more.code()),
        (422, "more_than_owed"),
        "{more:?}"
    );

    // Her bills, and the clinic's by payer, with integer totals.
    let mine = get(
        &s,
        &marie,
        &format!("/v1/patients/{marie_id}/bills"),
        &settled,
    )
    .await?;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1, "{mine:?}");
    assert_eq!(cents(&mine.body["totals"], "total"), 15_100);
    assert_eq!(cents(&mine.body["totals"], "patient_due"), 0);
    let by_payer = get(
        &s,
        &staff,
        "/v1/bills?payer=Acme%20Health&status=issued",
        &settled,
    )
    .await?;
    assert_eq!(
        by_payer.body["items"][0]["bill_id"],
        bill.as_str(),
        "{by_payer:?}"
    );
    assert_eq!(cents(&by_payer.body["totals"], "payer_paid"), 10_000);
    let other_payer = get(&s, &staff, "/v1/bills?payer=Beta", &settled).await?;
    assert_eq!(
        cents(&other_payer.body["totals"], "bills"),
        0,
        "{other_payer:?}"
    );

    // A currency that is no ISO 4217 code stops the server at start.
    let bad = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        s.cli(
            &["--currency", "usd", "--listen", "127.0.0.1:0", "serve"],
            "",
        ),
    )
    .await??;
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("ANAMNESIS_CURRENCY"), "{said}");

    // Her reads of her bill are in her access log.
    let log = get(&s, &marie, "/v1/me/access-log", &settled).await?;
    assert!(
        log.body.to_string().contains("GET /v1/bills/{id}"),
        "{log:?}"
    );

    // The API document has no float in any billing schema: money is an
    // integer of minor units in every request and answer.
    let doc = s.call("GET", "/openapi.json", None, None, &[]).await?;
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    let billing = [
        "PriceBody",
        "PriceView",
        "LineBody",
        "ClaimBody",
        "ClaimResponseBody",
        "ResubmitBody",
        "PaymentBody",
        "AdjustmentBody",
        "RefundBody",
        "BillSummary",
        "BillDetail",
        "LineView",
        "ClaimView",
        "MovementView",
        "Totals",
        "BillPage",
        "AgingBucket",
        "Aging",
    ];
    for name in billing {
        let schema = schemas
            .get(name)
            .unwrap_or_else(|| panic!("{name} is documented"));
        assert!(
            !schema.to_string().contains("\"number\""),
            "{name}: {schema}"
        );
    }
    assert_eq!(
        schemas["PaymentBody"]["properties"]["amount"]["type"],
        "integer"
    );
    assert_eq!(
        schemas["BillSummary"]["properties"]["total"]["type"],
        "integer"
    );
    s.stop().await
}

async fn a_void_leaves_a_credit_that_a_refund_settles_and_aging_buckets_what_is_owed(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let staff = user(&s, &admin, "billing.desk", "staff").await?;
    let compliance = user(&s, &admin, "auditor", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    price_list(&s, &admin).await?;

    let bill_of = |quantity: i64| {
        let (s, staff, marie_id) = (&s, staff.clone(), marie_id.clone());
        async move {
            let opened = ok(s, &staff, "/v1/bills", json!({"patient_id": marie_id})).await?;
            let bill = id(&opened);
            let lines = format!("/v1/bills/{bill}/lines");
            ok(
                s,
                &staff,
                &lines,
                json!({"code": "99213", "quantity": quantity}),
            )
            .await?;
            ok(s, &staff, &format!("/v1/bills/{bill}/issue"), json!(null)).await?;
            anyhow::Ok(bill)
        }
    };
    let kept = bill_of(1).await?;
    let voided = bill_of(2).await?;

    // She pays 50.00 of the second at the desk; it is voided (billed twice).
    ok(
        &s,
        &staff,
        &format!("/v1/bills/{voided}/payments"),
        json!({"amount": 5_000, "method": "cash"}),
    )
    .await?;
    let void = format!("/v1/bills/{voided}/void");
    let blank = send(&s, &staff, &void, json!({"reason": " "})).await?;
    assert_eq!(
        (blank.status, blank.code()),
        (422, "empty_field"),
        "{blank:?}"
    );
    let done = ok(&s, &staff, &void, json!({"reason": "billed twice"})).await?;
    let path = format!("/v1/bills/{voided}");
    let read = get(&s, &staff, &path, &done).await?;
    assert_eq!(read.body["status"], "void", "{read:?}");
    assert_eq!(balance(&read.body), (0, -5_000));
    let again = send(
        &s,
        &marie,
        &format!("/v1/bills/{voided}/payments"),
        json!({"amount": 1, "method": "cash"}),
    )
    .await?;
    assert_eq!(
        (again.status, again.code()),
        (422, "bill_void"),
        "{again:?}"
    );

    // The credit is refunded, not a cent more than she paid.
    let refunds = format!("/v1/bills/{voided}/refunds");
    let over = send(
        &s,
        &staff,
        &refunds,
        json!({"amount": 5_001, "reason": "billed twice"}),
    )
    .await?;
    assert_eq!(
        (over.status, over.code()),
        (422, "more_than_paid"),
        "{over:?}"
    );
    let refunded = ok(
        &s,
        &staff,
        &refunds,
        json!({"amount": 5_000, "reason": "billed twice"}),
    )
    .await?;
    let read = get(&s, &compliance, &path, &refunded).await?;
    assert_eq!(balance(&read.body), (0, 0), "{read:?}");
    assert_eq!(cents(&read.body, "refunded"), 5_000);

    // A payment retried with its Idempotency-Key is taken once (at the desk).
    let payments = format!("/v1/bills/{kept}/payments");
    let key = [("Idempotency-Key", "pay-kept-1".to_owned())];
    let body = json!({"amount": 1_000, "method": "card"});
    let first = s
        .call("POST", &payments, Some(&staff), Some(body.clone()), &key)
        .await?;
    assert_eq!(first.status, 201, "{first:?}");
    let again = s
        .call("POST", &payments, Some(&staff), Some(body), &key)
        .await?;
    assert_eq!((again.status, id(&again)), (201, id(&first)), "{again:?}");
    let read = get(&s, &staff, &format!("/v1/bills/{kept}"), &again).await?;
    assert_eq!(
        read.body["movements"].as_array().unwrap().len(),
        1,
        "{read:?}"
    );
    assert_eq!(balance(&read.body), (0, 11_000));

    // A write-off of part of the kept bill, with a reason.
    let adjustments = format!("/v1/bills/{kept}/adjustments");
    let written = ok(
        &s,
        &staff,
        &adjustments,
        json!({"kind": "write_off", "amount": 2_000, "reason": "hardship"}),
    )
    .await?;
    let read = get(&s, &staff, &format!("/v1/bills/{kept}"), &written).await?;
    assert_eq!(balance(&read.body), (0, 9_000), "{read:?}");

    // Aging: the kept bill's 90.00 still owed, by days since it was issued today.
    let today = NaiveDate::parse_from_str(read.body["issued_on"].as_str().unwrap(), "%Y-%m-%d")?;
    let bucket = |as_of: NaiveDate| {
        let (s, staff, written) = (&s, staff.clone(), &written);
        async move {
            let r = get(
                s,
                &staff,
                &format!("/v1/billing/aging?as_of={as_of}"),
                written,
            )
            .await?;
            let buckets = r.body["buckets"].as_array().unwrap().clone();
            assert_eq!(buckets.len(), 4, "{r:?}");
            assert_eq!(r.body["currency"], "EUR");
            let owed: Vec<(String, i64)> = buckets
                .iter()
                .filter(|b| cents(b, "bills") > 0)
                .map(|b| {
                    (
                        b["bucket"].as_str().unwrap().to_owned(),
                        cents(b, "patient_due"),
                    )
                })
                .collect();
            anyhow::Ok(owed)
        }
    };
    assert_eq!(bucket(today).await?, [("0-30".to_owned(), 9_000)]);
    assert_eq!(
        bucket(today + Duration::days(45)).await?,
        [("31-60".to_owned(), 9_000)]
    );
    assert_eq!(
        bucket(today + Duration::days(90)).await?,
        [("61-90".to_owned(), 9_000)]
    );
    assert_eq!(
        bucket(today + Duration::days(91)).await?,
        [("90+".to_owned(), 9_000)]
    );
    assert!(bucket(today - Duration::days(1)).await?.is_empty());

    // The date range filter and its totals.
    let range = format!("/v1/bills?from={today}&to={today}");
    let listed = get(&s, &staff, &range, &written).await?;
    assert_eq!(cents(&listed.body["totals"], "bills"), 2, "{listed:?}");
    assert_eq!(cents(&listed.body["totals"], "total"), 36_000);
    let before = format!("/v1/bills?to={}", today - Duration::days(1));
    let none = get(&s, &staff, &before, &written).await?;
    assert_eq!(cents(&none.body["totals"], "bills"), 0, "{none:?}");

    // A patient does not write off their own bill.
    let own = send(
        &s,
        &marie,
        &adjustments,
        json!({"kind": "write_off", "amount": 1, "reason": "x"}),
    )
    .await?;
    assert_eq!((own.status, own.code()), (403, "forbidden"), "{own:?}");

    // Two payments of the whole balance at once: one is taken, the other
    // finds nothing owed (the bill's stream decides both, one after the other).
    let whole = json!({"amount": 9_000, "method": "card"});
    // (Hers holds the balance until confirmed, so it counts the same.)
    let (a, b) = tokio::join!(
        send(&s, &marie, &payments, whole.clone()),
        send(&s, &staff, &payments, whole)
    );
    let (a, b) = (a?, b?);
    let hers_taken = a.status == 201;
    let (mut taken, refused) = if hers_taken { (a, b) } else { (b, a) };
    assert_eq!(taken.status, 201, "{taken:?}");
    assert_eq!(
        (refused.status, refused.code()),
        (422, "more_than_owed"),
        "{refused:?}"
    );
    if hers_taken {
        let settlement = format!("/v1/bills/{kept}/payments/{}/settlement", id(&taken));
        taken = ok(&s, &staff, &settlement, json!({"arrived": true})).await?;
    }
    let settled = get(&s, &staff, &format!("/v1/bills/{kept}"), &taken).await?;
    assert_eq!(balance(&settled.body), (0, 0), "{settled:?}");
    s.stop().await
}

async fn history_and_as_of_show_a_bill_as_it_was(backend: Backend) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let staff = user(&s, &admin, "billing.desk", "staff").await?;
    let officer = user(&s, &admin, "auditor", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    price_list(&s, &admin).await?;
    let opened = ok(&s, &staff, "/v1/bills", json!({"patient_id": marie_id})).await?;
    let bill = id(&opened);
    ok(
        &s,
        &staff,
        &format!("/v1/bills/{bill}/lines"),
        json!({"code": "99213", "quantity": 1}),
    )
    .await?;
    let issued = ok(&s, &staff, &format!("/v1/bills/{bill}/issue"), json!(null)).await?;
    let started = ok(
        &s,
        &marie,
        &format!("/v1/bills/{bill}/payments"),
        json!({"amount": 12_000, "method": "card"}),
    )
    .await?;
    let paid = ok(
        &s,
        &staff,
        &format!("/v1/bills/{bill}/payments/{}/settlement", id(&started)),
        json!({"arrived": true}),
    )
    .await?;

    // History: who billed, who paid and who saw the money arrive, through
    // the domain's codec.
    let history = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/history"),
        &paid,
    )
    .await?;
    let billing: Vec<(String, String)> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"].as_str().unwrap().starts_with("bill."))
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["actor_role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("bill.opened", "staff"),
        ("bill.line_added", "staff"),
        ("bill.issued", "staff"),
        ("bill.payment_started", "patient"),
        ("bill.payment_received", "staff"),
    ]
    .iter()
    .map(|(e, r)| (e.to_string(), r.to_string()))
    .collect();
    assert_eq!(billing, expected, "{history:?}");

    // As of the issue: owed in full; as of now: paid.
    let as_of = |position: i64| format!("/v1/patients/{marie_id}/as-of?position={position}");
    let then = get(
        &s,
        &officer,
        &as_of(issued.body["position"].as_i64().unwrap()),
        &paid,
    )
    .await?;
    assert_eq!(then.body["bills"][0]["status"], "issued", "{then:?}");
    assert_eq!(balance(&then.body["bills"][0]), (0, 12_000));
    let now = get(
        &s,
        &officer,
        &as_of(paid.body["position"].as_i64().unwrap()),
        &paid,
    )
    .await?;
    assert_eq!(balance(&now.body["bills"][0]), (0, 0), "{now:?}");
    s.stop().await
}

/// A claim accepted on a bill never opened (damage, or a bug) is not
/// skipped: the billing projector stops before it and `/readyz` names it.
async fn a_bill_event_that_does_not_fit_its_bill_stops_the_billing_projector(
    backend: Backend,
) -> anyhow::Result<()> {
    use anamnesis_commands::{Actor, AppendRequest, EventLog, EventMetadata, NewEvent};
    let s = start(backend).await?;
    let log = EventLog::open(s.db.db.clone()).await?;
    let done = log
        .append(AppendRequest {
            aggregate_type: "bill".into(),
            aggregate_id: uuid::Uuid::now_v7().to_string(),
            expected_sequence: 0,
            events: vec![NewEvent {
                event_type: "bill.claim_accepted".into(),
                event_version: "1".into(),
                payload: json!({"claim_id": uuid::Uuid::now_v7()}),
            }],
            metadata: EventMetadata::by(Actor::new("test:damage", "operator")),
            keys: Default::default(),
            credential: None,
            mfa: None,
            guards: Default::default(),
            patient_id: None,
        })
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let billing = loop {
        let r = s.call("GET", "/readyz", None, None, &[]).await?;
        let billing = r.body["projections"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "billing").cloned())
            .unwrap_or_default();
        if r.status == 503 && billing["ready"] == false {
            break billing;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "readyz did not report the stuck projector: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        billing["position"].as_i64(),
        Some(done.last_position - 1),
        "{billing}"
    );
    s.stop().await
}
