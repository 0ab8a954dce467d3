//! Notifications over HTTP, on each backend (ADR 0019): a booking reaches
//! the patient and the provider; a critical potassium reaches the doctor
//! who recorded it within seconds, marked urgent, and the patient gets a
//! new result; a break-the-glass grant reaches compliance; a message
//! reaches the other participants, not its author; marking read lowers the
//! unread count, once; nobody marks another's. No title names a patient.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration as StdDuration, Instant};

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

on_both_backends!(the_right_people_hear_of_what_happens, the_same_through_nats,);

async fn start(backend: Backend) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, &["--time-zone", "UTC"]).await
}

async fn the_right_people_hear_of_what_happens(backend: Backend) -> anyhow::Result<()> {
    let s = start(backend).await?;
    scenario(&s).await?;
    s.stop().await
}

/// The same scenario with the consumers fed by NATS JetStream (ADR 0020)
/// instead of the log: a stream and subjects of this test's own on the
/// shared server.
async fn the_same_through_nats(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (stream, prefix) = (format!("TEST_{tag}"), format!("t{tag}"));
    let nats = "nats://127.0.0.1:4222";
    let args = [
        "--time-zone",
        "UTC",
        "--nats-url",
        nats,
        "--nats-stream",
        &stream,
        "--nats-subject-prefix",
        &prefix,
        "--nats-max-bytes",
        "67108864",
    ];
    let s = TestServer::start_on(db, url, &args).await?;
    scenario(&s).await?;
    // The inbox's consumers read NATS, not the log.
    for name in ["notifications", "alerts"] {
        let consumers = s
            .call("GET", "/readyz", None, None, &[])
            .await?
            .body
            .to_string();
        assert!(consumers.contains(name), "{consumers}");
    }
    let client = async_nats::connect(nats).await?;
    let js = async_nats::jetstream::new(client);
    let st = js.get_stream(&stream).await?;
    for durable in ["anamnesis-notifications", "anamnesis-alerts"] {
        let info = st.consumer_info(durable).await?;
        assert!(info.delivered.stream_sequence > 0, "{durable}: {info:?}");
    }
    js.delete_stream(&stream).await?;
    s.stop().await
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    let r = s.call("POST", path, Some(token), Some(body), &[]).await?;
    anyhow::ensure!(r.status < 300, "{path}: {r:?}");
    Ok(r)
}

/// `token`'s notifications of `kind`, waiting up to `within` for one to
/// appear (no read-your-writes header: this is how fast it arrives).
async fn arrives(
    s: &TestServer,
    token: &str,
    kind: &str,
    within: StdDuration,
) -> anyhow::Result<(Value, StdDuration)> {
    let started = Instant::now();
    loop {
        let r = s
            .call("GET", "/v1/me/notifications", Some(token), None, &[])
            .await?;
        anyhow::ensure!(r.status == 200, "{r:?}");
        if let Some(n) = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
        {
            return Ok((n.clone(), started.elapsed()));
        }
        if started.elapsed() >= within {
            let ready = s.call("GET", "/readyz", None, None, &[]).await?;
            anyhow::bail!("no {kind} within {within:?}: {r:?}; {:?}", ready.body);
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn inbox(s: &TestServer, token: &str, after: &Reply) -> anyhow::Result<Value> {
    let r = s
        .call("GET", "/v1/me/notifications", Some(token), None, &at(after))
        .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    Ok(r.body)
}

async fn scenario(s: &TestServer) -> anyhow::Result<()> {
    let admin = admin(s).await?;
    let (doctor, doctor_user) = account(s, &admin, "dr.house", "doctor").await?;
    let wilson = user(s, &admin, "dr.wilson", "doctor").await?;
    let staff = user(s, &admin, "front.desk", "staff").await?;
    let officer = user(s, &admin, "auditor", "compliance").await?;
    let (marie, marie_id) = patient_account(s, "marie", "Curie").await?;
    let within = StdDuration::from_secs(5);

    // A booking: Marie and her doctor hear of it.
    let provider = enroll(s, &admin, &doctor_user, "Dr House", "Diagnostics").await?;
    set_hours(
        s,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("08:00", "18:00")]),
        30,
    )
    .await?;
    let clinic = Clinic::new("UTC")?;
    let slot = clinic.at(clinic.today() + Duration::days(2), "10:00");
    let booked = book(s, &staff, &provider, &marie_id, &slot).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = booked.body["id"].as_str().unwrap().to_owned();
    let (hers, _) = arrives(s, &marie, "appointment_booked", within).await?;
    assert_eq!(hers["subject_type"], "appointment");
    assert_eq!(hers["subject_id"], appointment.as_str());
    assert_eq!(hers["patient_id"], marie_id.as_str());
    assert_eq!(hers["urgent"], false);
    arrives(s, &doctor, "appointment_booked", within).await?;

    // A critical potassium: the doctor who recorded it hears within
    // seconds, urgently; Marie gets a new result.
    let specimen = (Utc::now() - Duration::minutes(30)).to_rfc3339();
    post(
        s,
        &doctor,
        &format!("/v1/patients/{marie_id}/chart"),
        json!({"kind": "lab", "test": "Potassium", "loinc": "2823-3", "value": 2.4,
               "unit": "mmol/L", "interpretation": "critical", "specimen_at": specimen}),
    )
    .await?;
    let (alert, took) = arrives(s, &doctor, "critical_result", within).await?;
    assert_eq!(alert["urgent"], true, "{alert}");
    assert_eq!(alert["subject_type"], "chart_entry");
    eprintln!("critical result in the doctor's inbox after {took:?}");
    arrives(s, &marie, "new_result", within).await?;

    // Another doctor breaks the glass: compliance hears of it.
    post(
        s,
        &wilson,
        &format!("/v1/patients/{marie_id}/break-glass"),
        json!({"reason": "unconscious in the emergency department"}),
    )
    .await?;
    let (glass, _) = arrives(s, &officer, "break_glass", within).await?;
    assert_eq!(glass["urgent"], true);
    assert_eq!(glass["patient_id"], marie_id.as_str());

    // Marie writes to her doctor: he hears of it; she, the author, does not.
    let thread = post(
        s,
        &marie,
        "/v1/threads",
        json!({"patient_id": marie_id, "subject": "My potassium",
               "body": "Should I worry?", "participants": [user_id_of(&doctor)?]}),
    )
    .await?;
    let (message, _) = arrives(s, &doctor, "new_message", within).await?;
    assert_eq!(message["subject_id"], thread.body["id"]);
    let hers = inbox(s, &marie, &thread).await?;
    assert!(
        hers["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["kind"] != "new_message"),
        "{hers}"
    );

    // No title names her; marking read lowers the count once.
    let his = inbox(s, &doctor, &thread).await?;
    assert!(!his.to_string().contains("Curie"), "{his}");
    let unread = his["unread"].as_i64().unwrap();
    assert_eq!(unread, his["items"].as_array().unwrap().len() as i64);
    let id = message["id"].as_str().unwrap();
    let path = format!("/v1/me/notifications/{id}/read");
    for _ in 0..2 {
        let r = s.call("POST", &path, Some(&doctor), None, &[]).await?;
        assert_eq!(r.status, 204, "{r:?}");
    }
    let after = inbox(s, &doctor, &thread).await?;
    assert_eq!(after["unread"].as_i64(), Some(unread - 1), "{after}");
    let unread_only = s
        .call(
            "GET",
            "/v1/me/notifications?unread=true",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert!(unread_only.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["read"] == false && n["id"] != id));
    // Not hers to mark.
    let not_hers = s.call("POST", &path, Some(&marie), None, &[]).await?;
    assert_eq!(not_hers.status, 404, "{not_hers:?}");
    let bad = s
        .call(
            "GET",
            "/v1/me/notifications?unread=maybe",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!((bad.status, bad.code()), (400, "invalid_value"), "{bad:?}");
    Ok(())
}
