//! `anamnesis rebuild` while the server serves, on each backend: every read
//! model rebuilt from the whole log equals the live one, row for row; writes
//! made during a rebuild are neither lost nor doubled; the server answers
//! throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration as StdDuration;

use anamnesis_commands::Db;
use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration, Utc};
use serde_json::json;

on_both_backends!(a_rebuilt_read_model_equals_the_live_one);

/// Every read-model table, as the projectors declare them.
const TABLES: [&str; 42] = [
    "activity",
    "patients",
    "patient_identifiers",
    "patient_allergies",
    "patient_conditions",
    "providers",
    "closures",
    "appointments",
    "access_log",
    "chart_entries",
    "chart_versions",
    "care_team_members",
    "break_glass_grants",
    "medications",
    "medication_history",
    "medication_administrations",
    "message_threads",
    "thread_participants",
    "thread_messages",
    "billing_price_list",
    "billing_coverage",
    "billing_bills",
    "billing_lines",
    "billing_claims",
    "billing_movements",
    "notifications",
    "notify_users",
    "notify_accounts",
    "notify_providers",
    "notify_appointments",
    "notify_thread_members",
    "notify_medications",
    // Appointment reminders only: the sender plans dose reminders by the
    // clock, not from the log.
    "reminders",
    "alerts",
    "alert_users",
    "analytics_patients",
    "analytics_providers",
    "analytics_appointments",
    "analytics_prescriptions",
    "analytics_bills",
    "analytics_claims",
    "checkpoints",
];

/// Every row of every read model, as sorted text (the checkpoints too,
/// by name and position only).
async fn dump(s: &TestServer) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for table in TABLES {
        let mut rows: Vec<String> = match &s.db.db {
            Db::Postgres(p) => {
                let sql = if table == "checkpoints" {
                    "SELECT name || ' ' || position FROM checkpoints".to_owned()
                } else {
                    format!("SELECT row_to_json(t)::text FROM {table} t{}", only(table))
                };
                sqlx::query_scalar(&sql).fetch_all(p).await?
            }
            Db::Sqlite(p) => {
                let sql = if table == "checkpoints" {
                    "SELECT name || ' ' || position FROM checkpoints".to_owned()
                } else {
                    let columns: Vec<String> = sqlx::query_scalar(&format!(
                        "SELECT name FROM pragma_table_info('{table}')"
                    ))
                    .fetch_all(p)
                    .await?;
                    format!(
                        "SELECT json_array({}) FROM {table} t{}",
                        columns.join(", "),
                        only(table)
                    )
                };
                sqlx::query_scalar(&sql).fetch_all(p).await?
            }
        };
        rows.sort();
        out.push((table.to_owned(), rows));
    }
    Ok(out)
}

/// The rows of `table` the projectors make: of `reminders`, those of
/// appointments.
fn only(table: &str) -> &'static str {
    if table == "reminders" {
        " WHERE t.subject_type = 'appointment'"
    } else {
        ""
    }
}

/// Waits until every projector has reached the log's head.
async fn settled(s: &TestServer) -> anyhow::Result<()> {
    for _ in 0..500 {
        let head = s.event_count().await?;
        let behind: i64 = match &s.db.db {
            Db::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints WHERE position < $1")
                    .bind(head)
                    .fetch_one(p)
                    .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints WHERE position < $1")
                    .bind(head)
                    .fetch_one(p)
                    .await?
            }
        };
        if behind == 0 && head == s.event_count().await? {
            return Ok(());
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    anyhow::bail!("the read models did not catch up")
}

async fn post(
    s: &TestServer,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<Reply> {
    let r = s.call("POST", path, Some(token), Some(body), &[]).await?;
    anyhow::ensure!(r.status < 300, "{path}: {r:?}");
    Ok(r)
}

fn differences(a: &[(String, Vec<String>)], b: &[(String, Vec<String>)]) -> Vec<String> {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|((table, x), (_, y))| {
            let only_a: Vec<&String> = x.iter().filter(|r| !y.contains(r)).take(2).collect();
            let only_b: Vec<&String> = y.iter().filter(|r| !x.contains(r)).take(2).collect();
            format!("{table}: live only {only_a:?}, rebuilt only {only_b:?}")
        })
        .collect()
}

async fn rebuild_all(s: &TestServer) -> anyhow::Result<String> {
    let out = s.cli(&["rebuild", "--all"], "").await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "rebuild failed: {text}");
    Ok(text)
}

async fn a_rebuilt_read_model_equals_the_live_one(backend: Backend) -> anyhow::Result<()> {
    let s = start_in(backend, "UTC").await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let nurse = user(&s, &admin, "nurse.joy", "nurse").await?;
    let wilson = user(&s, &admin, "dr.wilson", "doctor").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;

    // Something of every domain: a record with its lists, a calendar with a
    // booking and a cancellation, a chart with versions, a care team, a
    // broken glass, and reads.
    join_care(&s, &admin, &marie_id, &doctor).await?;
    let allergies = format!("/v1/patients/{marie_id}/allergies");
    post(
        &s,
        &doctor,
        &allergies,
        json!({"substance": "Latex", "reaction": "rash", "severity": "mild"}),
    )
    .await?;
    post(
        &s,
        &doctor,
        &format!("/v1/patients/{marie_id}/conditions"),
        json!({"description": "Asthma"}),
    )
    .await?;
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
    let day = clinic.today() + Duration::days(3);
    let first = book(&s, &staff, &provider, &marie_id, &clinic.at(day, "10:00")).await?;
    let second = book(&s, &staff, &provider, &marie_id, &clinic.at(day, "11:00")).await?;
    post(
        &s,
        &staff,
        &format!(
            "/v1/appointments/{}/cancel",
            second.body["id"].as_str().unwrap()
        ),
        json!({"reason": "travelling"}),
    )
    .await?;
    // The first moved away and back: its first time's reminders withdrawn,
    // then the new time's, then the first time's pending again. A rebuild
    // folds these (and the second's booking and cancellation) in one batch;
    // live they were many.
    let first = first.body["id"].as_str().unwrap().to_owned();
    for at in ["12:00", "10:00"] {
        post(
            &s,
            &staff,
            &format!("/v1/appointments/{first}/reschedule"),
            json!({"starts_at": clinic.at(day, at)}),
        )
        .await?;
    }
    let chart = format!("/v1/patients/{marie_id}/chart");
    let note = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "note", "assessment": "Wheeze"}),
    )
    .await?;
    let note = note.body["id"].as_str().unwrap().to_owned();
    s.call(
        "POST",
        &format!("/v1/chart/{note}/sign"),
        Some(&doctor),
        None,
        &[],
    )
    .await?;
    post(
        &s,
        &doctor,
        &format!("/v1/chart/{note}/amend"),
        json!({"reason": "spirometry", "entry": {"kind": "note", "assessment": "Asthma, mild"}}),
    )
    .await?;
    let taken = (Utc::now() - Duration::minutes(10)).to_rfc3339();
    let vitals = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "vitals", "taken_at": taken, "weight_kg": 60.5, "height_cm": 165.0}),
    )
    .await?;
    post(
        &s,
        &doctor,
        &format!(
            "/v1/chart/{}/entered-in-error",
            vitals.body["id"].as_str().unwrap()
        ),
        json!({"reason": "wrong patient"}),
    )
    .await?;
    let nurse_id = user_id_of(&nurse)?;
    post(
        &s,
        &staff,
        &format!("/v1/patients/{marie_id}/care-team"),
        json!({"user_id": nurse_id, "reason": "ward"}),
    )
    .await?;
    post(
        &s,
        &staff,
        &format!("/v1/patients/{marie_id}/care-team/{nurse_id}/removal"),
        json!({"reason": "moved"}),
    )
    .await?;
    post(
        &s,
        &wilson,
        &format!("/v1/patients/{marie_id}/break-glass"),
        json!({"reason": "emergency"}),
    )
    .await?;
    let medication = post(
        &s,
        &doctor,
        &format!("/v1/patients/{marie_id}/medications"),
        json!({"order": {
            "medication": {"name": "Salbutamol", "rxnorm": "435"},
            "dose": {"amount": 100, "unit": "mcg"},
            "route": "inhaled",
            "frequency": {"kind": "every_hours", "hours": 6},
            "starts_at": Utc::now().to_rfc3339(),
            "refills": 2
        }}),
    )
    .await?;
    let medication = medication.body["id"].as_str().unwrap().to_owned();
    post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/dose"),
        json!({"dose": {"amount": 200, "unit": "mcg"}, "reason": "night symptoms"}),
    )
    .await?;
    post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/administrations"),
        json!({"outcome": "given", "at": Utc::now().to_rfc3339()}),
    )
    .await?;
    post(
        &s,
        &marie,
        &format!("/v1/medications/{medication}/refill-requests"),
        json!({}),
    )
    .await?;
    s.call("GET", &chart, Some(&marie), None, &[]).await?;
    // A thread with a reply, a receipt and an archive.
    let doctor_id = user_id_of(&doctor)?;
    let thread = post(
        &s,
        &marie,
        "/v1/threads",
        json!({"patient_id": marie_id, "subject": "Inhaler",
               "body": "Which one?", "participants": [doctor_id]}),
    )
    .await?;
    let thread = format!("/v1/threads/{}", thread.body["id"].as_str().unwrap());
    post(
        &s,
        &doctor,
        &format!("{thread}/messages"),
        json!({"body": "The blue one."}),
    )
    .await?;
    post(&s, &marie, &format!("{thread}/read"), json!({"up_to": 2})).await?;
    post(
        &s,
        &doctor,
        &format!("{thread}/archive"),
        json!({"archived": true}),
    )
    .await?;
    s.call(
        "GET",
        &format!("/v1/patients/{marie_id}"),
        Some(&doctor),
        None,
        &[],
    )
    .await?;

    // A bill with a claim rejected, resubmitted and partly paid, and a payment.
    let price = json!({"description": "Office visit", "unit_price": 12_000});
    let set = s
        .call(
            "PUT",
            "/v1/billing/price-list/99213",
            Some(&admin),
            Some(price),
            &[],
        )
        .await?;
    assert_eq!(set.status, 200, "{set:?}");
    let coverage = post(
        &s,
        &staff,
        &format!("/v1/patients/{marie_id}/coverage"),
        json!({"payer": "Acme Health", "member_id": "A-1", "plan": "Gold",
               "valid_from": "2000-01-01", "rank": "primary"}),
    )
    .await?;
    let coverage = coverage.body["id"].as_str().unwrap().to_owned();
    let bill = post(&s, &staff, "/v1/bills", json!({"patient_id": marie_id})).await?;
    let bill = bill.body["id"].as_str().unwrap().to_owned();
    let lines = format!("/v1/bills/{bill}/lines");
    post(&s, &staff, &lines, json!({"code": "99213", "quantity": 2})).await?;
    post(&s, &staff, &format!("/v1/bills/{bill}/issue"), json!(null)).await?;
    let claim = post(
        &s,
        &staff,
        &format!("/v1/bills/{bill}/claims"),
        json!({"coverage_id": coverage, "amount": 20_000}),
    )
    .await?;
    let claim = claim.body["id"].as_str().unwrap().to_owned();
    let response = format!("/v1/bills/{bill}/claims/{claim}/response");
    let rejected = json!({"outcome": "rejected", "reason_codes": ["CO-16"]});
    post(&s, &staff, &response, rejected).await?;
    let resubmit = format!("/v1/bills/{bill}/claims/{claim}/resubmit");
    post(&s, &staff, &resubmit, json!({"amount": 20_000})).await?;
    post(&s, &staff, &response, json!({"outcome": "accepted"})).await?;
    let adjudicated = json!({"outcome": "adjudicated", "paid": 15_000, "reason_codes": ["CO-45"]});
    post(&s, &staff, &response, adjudicated).await?;
    let payments = format!("/v1/bills/{bill}/payments");
    post(
        &s,
        &marie,
        &payments,
        json!({"amount": 4_000, "method": "card"}),
    )
    .await?;

    settled(&s).await?;
    let live = dump(&s).await?;
    let bills = live.iter().find(|(t, _)| t == "billing_bills").unwrap();
    assert_eq!(bills.1.len(), 1, "the bill is in the live read model");
    // A read model damaged behind the projector's back is repaired by the
    // rebuild: the rebuilt tables come from the log, not from the old ones.
    // The appointment reminders go too: the notifications rebuild makes
    // them again, every event of the log in one batch.
    let reminders = live.iter().find(|(t, _)| t == "reminders").unwrap();
    // The first's 10:00 reminders are pending again after the move back.
    assert_eq!(
        reminders.1.len(),
        6,
        "three times' reminders: {reminders:?}"
    );
    let pending = reminders.1.iter().filter(|r| r.contains("pending")).count();
    assert_eq!(pending, 2, "the first's reminders at 10:00: {reminders:?}");
    for damage in [
        "UPDATE patients SET family_name = 'Damaged'",
        "DELETE FROM reminders WHERE subject_type = 'appointment'",
    ] {
        match &s.db.db {
            Db::Postgres(p) => {
                sqlx::query(damage).execute(p).await?;
            }
            Db::Sqlite(p) => {
                sqlx::query(damage).execute(p).await?;
            }
        }
    }
    let said = rebuild_all(&s).await?;
    assert!(said.contains("rebuilt 11 read model(s)"), "{said}");
    let rebuilt = dump(&s).await?;
    let diff = differences(&live, &rebuilt);
    assert!(diff.is_empty(), "the rebuilt read models differ: {diff:?}");

    // Rebuilding while the server takes writes: none is lost or doubled,
    // and the tables still equal a rebuild made in quiet.
    let writer = {
        let (base, token) = (s.base.clone(), doctor.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 0..40 {
                let r = http
                    .post(format!("{base}/v1/patients"))
                    .bearer_auth(&token)
                    .json(&patient(&format!("During{i}")))
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status() == 201,
                    "registering during the rebuild: {}",
                    r.status()
                );
                let body: serde_json::Value = r.json().await?;
                ids.push(body["id"].as_str().unwrap_or_default().to_owned());
                tokio::time::sleep(StdDuration::from_millis(10)).await;
            }
            Ok(ids)
        })
    };
    rebuild_all(&s).await?;
    let during = writer.await??;
    settled(&s).await?;
    for id in &during {
        let r = s
            .call(
                "GET",
                &format!("/v1/patients/{id}"),
                Some(&doctor),
                None,
                &[],
            )
            .await?;
        assert_eq!(
            r.status, 200,
            "a patient registered during the rebuild: {r:?}"
        );
    }
    settled(&s).await?;
    let after = dump(&s).await?;
    rebuild_all(&s).await?;
    let quiet = dump(&s).await?;
    let diff = differences(&after, &quiet);
    assert!(
        diff.is_empty(),
        "live after a rebuild under writes differs: {diff:?}"
    );
    let patients = after.iter().find(|(t, _)| t == "patients").unwrap();
    assert_eq!(patients.1.len(), 1 + during.len());

    // A name that is no read model is refused, naming them.
    let out = s.cli(&["rebuild", "charts"], "").await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("activity, patients"));
    s.stop().await
}
