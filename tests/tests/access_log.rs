//! The access log over HTTP, on each backend: every read of patient data is
//! recorded before it is answered, shown to the patient and to compliance,
//! and a read whose record cannot be made durable is not answered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::Value;

on_both_backends!(
    reads_by_doctor_nurse_and_patient_are_exactly_what_the_log_shows,
    a_read_that_cannot_be_recorded_is_not_answered,
);

/// `(role, what)` of each entry of an access-log page.
fn entries(page: &Value) -> Vec<(String, String)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor_role"].as_str().unwrap().to_owned(),
                e["what"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// GET `path` as `token` once the read models hold everything written so far.
async fn caught_up(s: &TestServer, token: &str, path: &str) -> anyhow::Result<Value> {
    let head = s.event_count().await?.to_string();
    let r = s
        .call("GET", path, Some(token), None, &[("X-Min-Position", head)])
        .await?;
    anyhow::ensure!(r.status == 200, "GET {path}: {r:?}");
    Ok(r.body)
}

async fn reads_by_doctor_nurse_and_patient_are_exactly_what_the_log_shows(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let nurse = user(&s, &admin, "nurse.joy", "nurse").await?;
    let officer = user(&s, &admin, "officer", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (_, other_id) = patient_account(&s, "emmy", "Noether").await?;

    let path = format!("/v1/patients/{marie_id}");
    for token in [&doctor, &nurse, &marie] {
        let r = s.call("GET", &path, Some(token), None, &[]).await?;
        assert_eq!(r.status, 200, "{r:?}");
    }
    // A refused read is no read.
    let r = s.call("GET", &path, Some(&admin), None, &[]).await?;
    assert_eq!(r.status, 403, "{r:?}");
    // Another patient's record is read once, by the doctor.
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{other_id}"),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");

    let what = "GET /v1/patients/{id}".to_owned();
    let expected = vec![
        ("doctor".to_owned(), what.clone()),
        ("nurse".to_owned(), what.clone()),
        ("patient".to_owned(), what.clone()),
    ];
    let mine = caught_up(&s, &marie, "/v1/me/access-log").await?;
    assert_eq!(entries(&mine), expected, "{mine}");
    assert!(mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["patient_id"] == marie_id.as_str()));

    let by_patient = caught_up(
        &s,
        &officer,
        &format!("/v1/access-log?patient_id={marie_id}"),
    )
    .await?;
    assert_eq!(entries(&by_patient), expected);
    let doctor_id = by_patient["items"][0]["actor_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_doctor = caught_up(&s, &officer, &format!("/v1/access-log?user_id={doctor_id}")).await?;
    assert_eq!(
        by_doctor["items"].as_array().unwrap().len(),
        2,
        "{by_doctor}"
    );

    // Only compliance reads the whole log; only patients have their own.
    let r = s
        .call("GET", "/v1/access-log", Some(&doctor), None, &[])
        .await?;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .call("GET", "/v1/me/access-log", Some(&doctor), None, &[])
        .await?;
    assert_eq!(r.status, 403, "{r:?}");
    // The records are in the patient's history too.
    let history = caught_up(&s, &officer, &format!("/v1/patients/{marie_id}/history")).await?;
    let reads = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "access.read")
        .count();
    assert_eq!(reads, 3, "{history}");
    let only_reads = caught_up(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/history?kind=reads"),
    )
    .await?;
    assert!(only_reads["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event_type"] == "access.read"));
    let changes = caught_up(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/history?kind=changes"),
    )
    .await?;
    assert!(changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event_type"] != "access.read"));
    assert!(!changes["items"].as_array().unwrap().is_empty());
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}/history?kind=gossip"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 400, "{r:?}");
    s.stop().await
}

async fn a_read_that_cannot_be_recorded_is_not_answered(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let path = format!("/v1/patients/{marie_id}");
    let r = s.call("GET", &path, Some(&doctor), None, &[]).await?;
    assert_eq!(r.status, 200, "{r:?}");

    // An event written behind the log's back: the log refuses every
    // append from here on (its head no longer names its last event).
    let forge = match backend {
        Backend::Postgres => {
            "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
             sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
             actor_role, prev_hash, hash) \
             SELECT global_position + 1, gen_random_uuid(), 'forged', 'x', 1, event_type, \
             event_version, payload, metadata, recorded_at, actor_id, actor_role, hash, hash \
             FROM events ORDER BY global_position DESC LIMIT 1"
        }
        Backend::Sqlite => {
            "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
             sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
             actor_role, prev_hash, hash) \
             SELECT global_position + 1, '01a22b00-0000-7000-8000-000000000001', 'forged', 'x', \
             1, event_type, event_version, payload, metadata, recorded_at, actor_id, actor_role, \
             hash, hash FROM events ORDER BY global_position DESC LIMIT 1"
        }
    };
    match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => {
            sqlx::query(forge).execute(p).await?;
        }
        anamnesis_commands::Db::Sqlite(p) => {
            sqlx::query(forge).execute(p).await?;
        }
    }
    let r = s.call("GET", &path, Some(&doctor), None, &[]).await?;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.code(), "access_not_recorded", "{r:?}");
    assert_eq!(r.content_type, "application/problem+json");
    let body = r.body.to_string();
    assert!(!body.contains("Curie"), "the data leaked: {body}");
    s.stop().await
}
