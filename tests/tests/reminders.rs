//! Reminders (ADR 0020), on each backend. The sender's rounds are run by
//! the test at chosen instants (`reminders::round` takes its clock), over
//! the server's database and log: a booking gets its 24 h and 1 h
//! reminders, each sent once, also across a server restart; a moved
//! appointment is reminded of its new time only, a cancelled one not at
//! all; a reminder due while nothing ran is sent late but never after the
//! start; a dose reminder comes at each dose while the order is active and
//! stops when it is stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_commands::{Db, LogReader};
use anamnesis_projections::reminders::{self, ReminderConfig};
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

on_both_backends!(reminders_come_once_and_only_while_they_still_hold);

async fn start(backend: Backend) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, &["--time-zone", "UTC"]).await
}

/// One round of the sender at `now`; how many it sent.
async fn round(s: &TestServer, now: DateTime<Utc>) -> anyhow::Result<i64> {
    let config = ReminderConfig::new(anamnesis_domain::schedule::ClinicZone::parse("UTC").unwrap());
    let reader =
        LogReader::detached_with(s.db.db.clone(), anamnesis_tests::server::test_keyring()?);
    Ok(reminders::round(&reader, &s.db.db, &config, now).await?)
}

/// `token`'s reminders in the inbox, as (kind, subject id), oldest first.
async fn reminded(s: &TestServer, token: &str) -> anyhow::Result<Vec<(String, String)>> {
    let r = s
        .call(
            "GET",
            "/v1/me/notifications?limit=100",
            Some(token),
            None,
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    let mut out: Vec<(String, String)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"].as_str().unwrap().ends_with("_reminder"))
        .map(|n| {
            assert_eq!(n["urgent"], false);
            assert!(!n.to_string().contains("Curie"), "{n}");
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["subject_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The reminders table's rows for `subject`: (id suffix, status).
async fn rows(s: &TestServer, subject: &str) -> anyhow::Result<Vec<(String, String)>> {
    let sql = "SELECT reminder_id, status FROM reminders WHERE subject_id = $1 \
               ORDER BY due_at, reminder_id";
    let rows: Vec<(String, String)> = match &s.db.db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(subject).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(subject).fetch_all(p).await?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, status)| (id.rsplit('.').next().unwrap().to_owned(), status))
        .collect())
}

/// Waits until the notifications consumer has read what `after` wrote.
async fn settled(s: &TestServer, token: &str, after: &Reply) -> anyhow::Result<()> {
    let r = s
        .call("GET", "/v1/me/notifications", Some(token), None, &at(after))
        .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    Ok(())
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    let r = s.call("POST", path, Some(token), Some(body), &[]).await?;
    anyhow::ensure!(r.status < 300, "{path}: {r:?}");
    Ok(r)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn reminders_come_once_and_only_while_they_still_hold(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
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
    let booked = |hh: &'static str| {
        let s = &s;
        let staff = &staff;
        let provider = &provider;
        let marie_id = &marie_id;
        let clinic = &clinic;
        async move {
            let r = book(s, staff, provider, marie_id, &clinic.at(day, hh)).await?;
            anyhow::ensure!(r.status == 201, "{r:?}");
            Ok::<_, anyhow::Error>((r.body["id"].as_str().unwrap().to_owned(), r))
        }
    };
    let (kept, _) = booked("10:00").await?;
    let (moved, _) = booked("11:00").await?;
    let (cancelled, last) = booked("12:00").await?;
    settled(&s, &marie, &last).await?;
    for a in [&kept, &moved, &cancelled] {
        assert_eq!(
            rows(&s, a).await?,
            pairs(&[("24h", "pending"), ("1h", "pending")]),
            "two reminders scheduled for {a}"
        );
    }

    // Moved to 14:00; the 12:00 one cancelled.
    post(
        &s,
        &staff,
        &format!("/v1/appointments/{moved}/reschedule"),
        json!({"starts_at": clinic.at(day, "14:00")}),
    )
    .await?;
    let gone = post(
        &s,
        &staff,
        &format!("/v1/appointments/{cancelled}/cancel"),
        json!({"reason": "Feeling better"}),
    )
    .await?;
    settled(&s, &marie, &gone).await?;
    assert_eq!(
        rows(&s, &cancelled).await?,
        pairs(&[("24h", "cancelled"), ("1h", "cancelled")])
    );
    assert_eq!(
        rows(&s, &moved).await?,
        pairs(&[
            ("24h", "cancelled"),
            ("24h", "pending"),
            ("1h", "cancelled"),
            ("1h", "pending")
        ]),
        "the old time's reminders withdrawn, the new time's scheduled"
    );

    // Nothing is due yet.
    assert_eq!(round(&s, Utc::now()).await?, 0);

    // A day before 10:00: the 10:00 reminder goes, once, whatever the
    // rounds and restarts.
    let ten = clinic.instant(day, "10:00");
    let t = ten - Duration::hours(24) + Duration::seconds(1);
    assert_eq!(round(&s, t).await?, 1);
    assert_eq!(round(&s, t).await?, 0);
    let s = s.restart().await?;
    assert_eq!(round(&s, t + Duration::seconds(5)).await?, 0);
    assert_eq!(
        reminded(&s, &marie).await?,
        pairs(&[("appointment_reminder", &kept)])
    );

    // Nothing ran all day: an hour before 10:00 the 1 h reminder of 10:00
    // goes (late for none), and the 24 h reminder of 14:00 goes late, as
    // its time is still ahead; the cancelled 12:00 never does.
    let t = ten - Duration::hours(1) + Duration::seconds(1);
    assert_eq!(round(&s, t).await?, 2);
    assert_eq!(
        reminded(&s, &marie).await?,
        pairs(&[
            ("appointment_reminder", &kept),
            ("appointment_reminder", &kept),
            ("appointment_reminder", &moved),
        ])
    );
    // After 14:00 has begun, its 1 h reminder is missed, never sent.
    let t = clinic.instant(day, "14:00") + Duration::minutes(1);
    assert_eq!(round(&s, t).await?, 0);
    assert_eq!(
        rows(&s, &moved).await?,
        pairs(&[
            ("24h", "cancelled"),
            ("24h", "sent"),
            ("1h", "cancelled"),
            ("1h", "missed")
        ])
    );
    assert_eq!(
        rows(&s, &cancelled).await?,
        pairs(&[("24h", "cancelled"), ("1h", "cancelled")])
    );

    // A dose every 8 hours from 06:00 tomorrow: reminded at a dose, once;
    // stopped, no more.
    let starts = clinic.instant(clinic.today() + Duration::days(1), "06:00");
    let prescribed = post(
        &s,
        &doctor,
        &format!("/v1/patients/{marie_id}/medications"),
        json!({"order": {
            "medication": {"name": "Amoxicillin 500 mg capsule", "rxnorm": "308191"},
            "dose": {"amount": 500, "unit": "mg"},
            "route": "oral",
            "frequency": {"kind": "every_hours", "hours": 8},
            "starts_at": starts.to_rfc3339(),
            "duration_days": 7,
            "refills": 0,
            "instructions": "Take with food"
        }}),
    )
    .await?;
    let medication = prescribed.body["id"].as_str().unwrap().to_owned();
    settled(&s, &marie, &prescribed).await?;
    let listed = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}/medications"),
            Some(&marie),
            None,
            &at(&prescribed),
        )
        .await?;
    assert_eq!(listed.status, 200, "{listed:?}");
    let second_dose = starts + Duration::hours(8);
    assert_eq!(round(&s, second_dose + Duration::seconds(1)).await?, 1);
    assert_eq!(round(&s, second_dose + Duration::seconds(2)).await?, 0);
    // The next dose is planned ahead; then the order is stopped, and at
    // its time the planned reminder is withdrawn, not sent.
    let third_dose = second_dose + Duration::hours(8);
    assert_eq!(round(&s, third_dose - Duration::minutes(90)).await?, 0);
    assert_eq!(
        rows(&s, &medication).await?.len(),
        2,
        "the third dose is planned"
    );
    let stopped = post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/stop"),
        json!({"outcome": "discontinued", "reason": "rash on day 1"}),
    )
    .await?;
    settled(&s, &marie, &stopped).await?;
    assert_eq!(round(&s, third_dose + Duration::seconds(1)).await?, 0);
    let doses: Vec<_> = reminded(&s, &marie)
        .await?
        .into_iter()
        .filter(|(kind, _)| kind == "dose_reminder")
        .collect();
    assert_eq!(doses, pairs(&[("dose_reminder", &medication)]));
    let statuses: Vec<String> = rows(&s, &medication)
        .await?
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(statuses, ["sent", "cancelled"]);
    s.stop().await
}
