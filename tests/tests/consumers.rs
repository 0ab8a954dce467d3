//! The fan-out consumers fed by NATS JetStream (ADR 0020), on each backend,
//! against real NATS servers of the tests' own: NATS stopped in the middle
//! of a run and started again, and every notification and urgent alert is
//! made exactly once; a consumer process killed in the middle of its work
//! and started again makes none twice; each consumer's `processed_events`
//! holds one row per event it applied.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Stdio;
use std::time::{Duration as StdDuration, Instant};

use anamnesis_commands::Db;
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::own_nats::OwnNats;
use anamnesis_tests::server::{binary, TestServer};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

on_both_backends!(
    nats_stopped_mid_run_makes_every_notification_once,
    a_consumer_killed_mid_run_makes_nothing_twice,
);

/// A stream name and subject prefix no other test uses.
fn names() -> (String, String) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    (format!("TEST_{tag}"), format!("t{tag}"))
}

fn nats_args<'a>(url: &'a str, (stream, prefix): (&'a str, &'a str)) -> Vec<&'a str> {
    vec![
        "--nats-url",
        url,
        "--nats-stream",
        stream,
        "--nats-subject-prefix",
        prefix,
        "--nats-max-bytes",
        "67108864",
        "--time-zone",
        "UTC",
    ]
}

async fn query_i64(db: &Db, sql: &str) -> anyhow::Result<i64> {
    Ok(match db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
    })
}

/// A doctor on a patient's care team, and the patient's own account.
struct Ward {
    doctor: String,
    patient: String,
    patient_id: String,
}

async fn ward(s: &TestServer) -> anyhow::Result<Ward> {
    let admin = admin(s).await?;
    let doctor = user(s, &admin, "dr.house", "doctor").await?;
    let (patient, patient_id) = patient_account(s, "marie", "Curie").await?;
    join_care(s, &admin, &patient_id, &doctor).await?;
    Ok(Ward {
        doctor,
        patient,
        patient_id,
    })
}

/// Records `n` critical potassium results: each makes one `new_result`
/// for the patient (notifications) and one `critical_result` for the
/// doctor (alerts).
async fn critical_results(s: &TestServer, w: &Ward, n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        let specimen = (Utc::now() - Duration::minutes(30)).to_rfc3339();
        let r = s
            .call(
                "POST",
                &format!("/v1/patients/{}/chart", w.patient_id),
                Some(&w.doctor),
                Some(
                    json!({"kind": "lab", "test": "Potassium", "loinc": "2823-3",
                    "value": 2.4, "unit": "mmol/L", "interpretation": "critical",
                    "specimen_at": specimen}),
                ),
                &[],
            )
            .await?;
        anyhow::ensure!(r.status == 201, "{r:?}");
    }
    Ok(())
}

/// How many notifications of `kind` `token` has, all of them (paged).
async fn count(s: &TestServer, token: &str, kind: &str) -> anyhow::Result<(usize, usize)> {
    let mut ids = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/v1/me/notifications?limit=100&before={b}"),
            None => "/v1/me/notifications?limit=100".to_owned(),
        };
        let r = s.call("GET", &path, Some(token), None, &[]).await?;
        anyhow::ensure!(r.status == 200, "{r:?}");
        let items = r.body["items"].as_array().unwrap();
        for n in items.iter().filter(|n| n["kind"] == kind) {
            ids.push(n["id"].as_str().unwrap().to_owned());
        }
        match items.last() {
            Some(last) if r.body["more"] == true => before = last["position"].as_i64(),
            _ => break,
        }
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    Ok((total, ids.len()))
}

/// Waits until `token` has `want` notifications of `kind`, then a little
/// longer to see that no more come.
async fn exactly(s: &TestServer, token: &str, kind: &str, want: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + StdDuration::from_secs(60);
    loop {
        let (total, distinct) = count(s, token, kind).await?;
        assert_eq!(total, distinct, "a {kind} notification listed twice");
        assert!(
            total <= want,
            "{total} {kind} notifications, {want} expected"
        );
        if total == want {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{total} of {want} {kind} notifications after 60 s"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(
        count(s, token, kind).await?,
        (want, want),
        "{kind} once each"
    );
    Ok(())
}

/// A consumer's entry in `/readyz`.
async fn entry(s: &TestServer, name: &str) -> anyhow::Result<Value> {
    let r = s.call("GET", "/readyz", None, None, &[]).await?;
    Ok(r.body["projections"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or(Value::Null))
}

/// Every event a consumer applied is in `processed_events` once.
async fn processed_once(s: &TestServer, consumer: &str, types: &str) -> anyhow::Result<()> {
    let applied = query_i64(
        &s.db.db,
        &format!("SELECT COUNT(*) FROM processed_events WHERE consumer = '{consumer}'"),
    )
    .await?;
    let events = query_i64(
        &s.db.db,
        &format!("SELECT COUNT(*) FROM events WHERE aggregate_type IN ({types})"),
    )
    .await?;
    assert_eq!(applied, events, "{consumer}: one processed row per event");
    Ok(())
}

async fn nats_stopped_mid_run_makes_every_notification_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut nats = OwnNats::start().await?;
    let url = nats.url();
    let (stream, prefix) = names();
    let db = TestDb::new(backend).await?;
    let db_url = db.url.clone();
    let s = TestServer::start_on(db, db_url, &nats_args(&url, (&stream, &prefix))).await?;
    let w = ward(&s).await?;
    critical_results(&s, &w, 10).await?;
    exactly(&s, &w.patient, "new_result", 10).await?;
    exactly(&s, &w.doctor, "critical_result", 10).await?;

    // NATS goes away: the API keeps taking results; the consumers say
    // they are stuck, and the API stays ready.
    nats.kill()?;
    critical_results(&s, &w, 10).await?;
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let notifications = entry(&s, "notifications").await?;
        if notifications["ready"] == false {
            assert_eq!(notifications["essential"], false, "{notifications}");
            let r = s.call("GET", "/readyz", None, None, &[]).await?;
            assert_eq!(r.status, 200, "NATS away does not make the API unready");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer never said it is stuck: {notifications}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }

    // Back: every notification arrives, none twice.
    nats.start_again().await?;
    critical_results(&s, &w, 10).await?;
    exactly(&s, &w.patient, "new_result", 30).await?;
    exactly(&s, &w.doctor, "critical_result", 30).await?;
    for name in ["notifications", "alerts"] {
        let deadline = Instant::now() + StdDuration::from_secs(30);
        while entry(&s, name).await?["ready"] != true {
            assert!(Instant::now() < deadline, "{name} never recovered");
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    }
    processed_once(&s, "alerts", "'user', 'chart_entry', 'care_team'").await?;
    s.stop().await
}

/// `anamnesis consume notifications` as a process of its own.
fn consumer(
    s: &TestServer,
    url: &str,
    names: (&str, &str),
) -> anyhow::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(binary()?);
    cmd.arg("--data-dir").arg(&s.settings.data_dir);
    if let Some(key) = &s.settings.master_key {
        cmd.env("ANAMNESIS_MASTER_KEY", key.expose());
    }
    if let Some(db_url) = &s.url {
        cmd.arg("--database-url").arg(db_url);
    }
    cmd.args(nats_args(url, names))
        .args(["consume", "notifications"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    Ok(cmd.spawn()?)
}

async fn checkpoint(s: &TestServer) -> anyhow::Result<i64> {
    query_i64(
        &s.db.db,
        "SELECT COALESCE(MAX(position), 0) FROM checkpoints WHERE name = 'notifications'",
    )
    .await
}

async fn a_consumer_killed_mid_run_makes_nothing_twice(backend: Backend) -> anyhow::Result<()> {
    let url = "nats://127.0.0.1:4222";
    let (stream, prefix) = names();
    let db = TestDb::new(backend).await?;
    let db_url = db.url.clone();
    // The server relays; the notifications consumer runs apart.
    let mut args = nats_args(url, (&stream, &prefix));
    args.push("--no-consumers");
    let s = TestServer::start_on(db, db_url, &args).await?;
    let w = ward(&s).await?;
    let results = 150;
    critical_results(&s, &w, results).await?;
    let head = s.event_count().await?;

    // Killed (SIGKILL) in the middle of its first batch: it has fetched
    // messages and not acked them (and may or may not have committed).
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let mut child = consumer(&s, url, (&stream, &prefix))?;
    let deadline = Instant::now() + StdDuration::from_secs(60);
    loop {
        let info = match js.get_stream(&stream).await {
            Ok(st) => st.consumer_info("anamnesis-notifications").await.ok(),
            Err(_) => None,
        };
        if info.is_some_and(|i| i.num_ack_pending > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the consumer never fetched");
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
    child.start_kill()?;
    child.wait().await?;
    let killed_at = checkpoint(&s).await?;
    eprintln!("killed mid-batch at checkpoint {killed_at} of {head}");

    // More work, and killed again the moment it commits: before or after
    // its ack reached NATS (the test prints which; a race it cannot steer).
    critical_results(&s, &w, results).await?;
    let head = s.event_count().await?;
    let before = checkpoint(&s).await?;
    let mut child = consumer(&s, url, (&stream, &prefix))?;
    let deadline = Instant::now() + StdDuration::from_secs(60);
    while checkpoint(&s).await? == before {
        assert!(Instant::now() < deadline, "the consumer never committed");
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
    child.start_kill()?;
    child.wait().await?;
    let pending = js
        .get_stream(&stream)
        .await?
        .consumer_info("anamnesis-notifications")
        .await?
        .num_ack_pending;
    eprintln!(
        "killed after a commit at checkpoint {} of {head}, {pending} messages unacked",
        checkpoint(&s).await?
    );
    let results = 2 * results;

    // Started again: it finishes, and nothing is made twice.
    let mut child = consumer(&s, url, (&stream, &prefix))?;
    let deadline = Instant::now() + StdDuration::from_secs(60);
    while checkpoint(&s).await? < head {
        assert!(Instant::now() < deadline, "the consumer never caught up");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    exactly(&s, &w.patient, "new_result", results).await?;
    processed_once(
        &s,
        "notifications",
        "'user', 'patient', 'provider', 'appointment', 'chart_entry', 'message_thread', \
         'medication'",
    )
    .await?;
    child.start_kill()?;
    child.wait().await?;
    js.delete_stream(&stream).await?;
    s.stop().await
}
