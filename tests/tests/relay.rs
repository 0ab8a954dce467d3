//! The relay to NATS JetStream (ADR 0018), on each backend, against real
//! NATS servers: every event is published once, in log order, with its id
//! as `Nats-Msg-Id`, and no patient data in any subject or header; a restart
//! publishes nothing twice; a NATS server killed in the middle of a run and
//! started again loses nothing and doubles nothing, while the API stays
//! ready and `/readyz` names the relay's problem.
//!
//! Each test publishes to a stream and subject prefix of its own on the
//! shared server, or to a NATS server of its own for the outage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::own_nats::OwnNats;
use anamnesis_tests::server::TestServer;
use serde_json::Value;

on_both_backends!(
    every_event_is_published_once_in_order_without_patient_data,
    a_nats_outage_loses_nothing_and_doubles_nothing,
);

const SHARED_NATS: &str = "nats://127.0.0.1:4222";

/// A stream name and subject prefix no other test uses.
fn names() -> (String, String) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    (format!("TEST_{tag}"), format!("t{tag}"))
}

async fn start(
    backend: Backend,
    url: &str,
    (stream, prefix): (&str, &str),
) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let db_url = db.url.clone();
    let args = [
        "--nats-url",
        url,
        "--nats-stream",
        stream,
        "--nats-subject-prefix",
        prefix,
        "--nats-max-bytes",
        "67108864",
    ];
    TestServer::start_on(db, db_url, &args).await
}

/// The relay's entry in `/readyz`.
async fn relay_state(s: &TestServer) -> anyhow::Result<(u16, Value)> {
    let r = s.call("GET", "/readyz", None, None, &[]).await?;
    let relay = r.body["projections"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "relay"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok((r.status, relay))
}

/// Waits until the relay has published the whole log.
async fn caught_up(s: &TestServer) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let head = s.event_count().await?;
        let (_, relay) = relay_state(s).await?;
        if relay["position"].as_i64() == Some(head) && head == s.event_count().await? {
            return Ok(head);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the relay did not catch up with {head} events: {relay}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One message of the stream as the test reads it back.
#[derive(Debug)]
struct Published {
    subject: String,
    msg_id: String,
    position: i64,
    headers: String,
    body: Value,
}

async fn read_stream(url: &str, stream: &str) -> anyhow::Result<Vec<Published>> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await?;
    let state = stream.info().await?.state.clone();
    let mut out = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let m = stream.get_raw_message(sequence).await?;
        let header = |name: &str| {
            m.headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        out.push(Published {
            subject: m.subject.to_string(),
            msg_id: header("Nats-Msg-Id"),
            position: header("Anamnesis-Position").parse()?,
            headers: format!("{:?}", m.headers),
            body: serde_json::from_slice(&m.payload)?,
        });
    }
    Ok(out)
}

async fn delete_stream(url: &str, stream: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    async_nats::jetstream::new(client)
        .delete_stream(stream)
        .await?;
    Ok(())
}

/// Every event of the log: position, id, type.
async fn log(s: &TestServer) -> anyhow::Result<Vec<(i64, String, String)>> {
    let sql = "SELECT global_position, CAST(event_id AS TEXT), event_type FROM events \
               ORDER BY global_position";
    Ok(match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        anamnesis_commands::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
    })
}

/// The stream holds exactly the log, in its order, once.
fn same_as_log(published: &[Published], log: &[(i64, String, String)], prefix: &str) {
    assert_eq!(published.len(), log.len(), "one message per event");
    for (m, (position, id, event_type)) in published.iter().zip(log) {
        assert_eq!(m.position, *position, "in log order");
        assert_eq!(&m.msg_id, id, "Nats-Msg-Id is the event id");
        assert_eq!(m.subject, format!("{prefix}.{event_type}"));
        assert_eq!(m.body["event_id"].as_str(), Some(id.as_str()));
        assert_eq!(m.body["position"].as_i64(), Some(*position));
    }
}

async fn register(s: &TestServer, token: &str, family: &str) -> anyhow::Result<String> {
    let r = s
        .call(
            "POST",
            "/v1/patients",
            Some(token),
            Some(patient(family)),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "registering {family}: {r:?}");
    Ok(r.body["id"].as_str().unwrap().to_owned())
}

async fn every_event_is_published_once_in_order_without_patient_data(
    backend: Backend,
) -> anyhow::Result<()> {
    let (stream, prefix) = names();
    let s = start(backend, SHARED_NATS, (&stream, &prefix)).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let mut families = Vec::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let family = format!("Zyxwvut{n}");
        ids.push(register(&s, &doctor, &family).await?);
        families.push(family);
    }
    caught_up(&s).await?;
    let published = read_stream(SHARED_NATS, &stream).await?;
    same_as_log(&published, &log(&s).await?, &prefix);

    // No patient data in subjects or headers; the body is the envelope,
    // never the payload.
    for m in &published {
        for secret in families.iter().chain(ids.iter()) {
            assert!(!m.subject.contains(secret.as_str()), "{m:?}");
            assert!(!m.headers.contains(secret.as_str()), "{m:?}");
        }
        for family in &families {
            assert!(!m.body.to_string().contains(family.as_str()), "{m:?}");
        }
        assert!(m.body.get("payload").is_none(), "{m:?}");
    }

    // A restart publishes nothing twice, and what follows in order.
    let s = s.restart().await?;
    register(&s, &doctor, "After").await?;
    caught_up(&s).await?;
    let published = read_stream(SHARED_NATS, &stream).await?;
    same_as_log(&published, &log(&s).await?, &prefix);
    delete_stream(SHARED_NATS, &stream).await?;
    s.stop().await
}

async fn a_nats_outage_loses_nothing_and_doubles_nothing(backend: Backend) -> anyhow::Result<()> {
    let mut nats = OwnNats::start().await?;
    let url = nats.url();
    let (stream, prefix) = names();
    let s = start(backend, &url, (&stream, &prefix)).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    for n in 0..10 {
        register(&s, &doctor, &format!("Before{n}")).await?;
    }
    caught_up(&s).await?;

    // NATS goes away in the middle of the run: the API keeps answering and
    // stays ready; the relay says it cannot publish.
    nats.kill()?;
    for n in 0..10 {
        register(&s, &doctor, &format!("During{n}")).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, relay) = relay_state(&s).await?;
        if relay["ready"] == false {
            assert_eq!(status, 200, "NATS away does not make the API unready");
            assert_eq!(relay["essential"], false);
            assert!(relay["problem"].is_string(), "{relay}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never said it cannot publish: {relay}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back again: everything arrives, once, in order.
    nats.start_again().await?;
    for n in 0..5 {
        register(&s, &doctor, &format!("After{n}")).await?;
    }
    caught_up(&s).await?;
    let (_, relay) = relay_state(&s).await?;
    assert_eq!(relay["ready"], true, "{relay}");
    let published = read_stream(&url, &stream).await?;
    same_as_log(&published, &log(&s).await?, &prefix);
    s.stop().await
}
