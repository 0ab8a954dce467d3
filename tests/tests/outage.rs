//! The database stops under a running server, then comes back. Postgres only:
//! the embedded SQLite cannot go away on its own. The test runs a Postgres of
//! its own (`initdb` + `pg_ctl` on a free port in a temporary directory), never
//! the shared one, and stops it the hard way (`pg_ctl stop -m immediate`).
//!
//! While it is down, appends and `/readyz` answer `503` within seconds (not
//! after the writer's pool timeout); once it is back, writes succeed again,
//! `/readyz` is ready, the read model catches up, and nothing written before
//! the outage is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use anamnesis_tests::db::TestDb;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::own_postgres::OwnPostgres;
use anamnesis_tests::server::{Reply, TestServer};

/// How long a failing call may take: generous (the machines are noisy), but
/// well under the writer's old 30 s pool timeout and the 15 s request deadline.
const FAILS_WITHIN: Duration = Duration::from_secs(10);

/// How long the server may take to serve again once the database is back.
const RECOVERS_WITHIN: Duration = Duration::from_secs(60);

async fn register(s: &TestServer, token: &str, family: &str) -> anyhow::Result<(Reply, Duration)> {
    let started = Instant::now();
    let r = s
        .call(
            "POST",
            "/v1/patients",
            Some(token),
            Some(patient(family)),
            &[],
        )
        .await?;
    Ok((r, started.elapsed()))
}

/// Asserts the answer of a call made while the database is down.
fn assert_unavailable(what: &str, r: &Reply, took: Duration) {
    assert!(
        took < FAILS_WITHIN,
        "{what} took {took:?} to fail with the database down (bound {FAILS_WITHIN:?}): {r:?}"
    );
    assert_eq!(
        (r.status, r.code(), r.content_type.as_str()),
        (503, "database_unavailable", "application/problem+json"),
        "{what}: {r:?}"
    );
}

/// Whether the event at `position` chains onto the one before it.
async fn chained(s: &TestServer, position: i64) -> anyhow::Result<bool> {
    let sql = "SELECT (SELECT prev_hash FROM events WHERE global_position = $1) \
               = (SELECT hash FROM events WHERE global_position = $1 - 1)";
    match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => {
            let same: Option<bool> = sqlx::query_scalar(sql).bind(position).fetch_one(p).await?;
            Ok(same == Some(true))
        }
        anamnesis_commands::Db::Sqlite(_) => anyhow::bail!("this test runs on Postgres"),
    }
}

async fn registered_patients(s: &TestServer) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM events WHERE event_type = 'patient.registered'";
    match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => Ok(sqlx::query_scalar(sql).fetch_one(p).await?),
        anamnesis_commands::Db::Sqlite(_) => anyhow::bail!("this test runs on Postgres"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_fast_while_the_database_is_down_and_recover_when_it_returns(
) -> anyhow::Result<()> {
    let mut pg = OwnPostgres::start().await?;
    let url = pg.url("anamnesis");
    let s = TestServer::start_on(TestDb::at_url(&url).await?, Some(url), &[]).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.outage", "doctor").await?;

    // Before: a few patients, projected.
    let mut before = Vec::new();
    for family in ["Avery", "Brook", "Carver", "Dunn", "Ellis"] {
        let (r, _) = register(&s, &doctor, family).await?;
        assert_eq!(r.status, 201, "{r:?}");
        before.push((family, r.body["id"].as_str().unwrap().to_owned()));
    }
    let last = register(&s, &doctor, "Fisher").await?.0;
    assert_eq!(last.status, 201, "{last:?}");
    before.push(("Fisher", last.body["id"].as_str().unwrap().to_owned()));
    let read = read_patient(&s, &doctor, &before[0].1, Some(&last)).await?;
    assert_eq!(read.status, 200, "{read:?}");

    pg.stop_immediately().await?;

    // An append right after the stop meets the writer's dropped connection.
    let (r, first) = register(&s, &doctor, "Gale").await?;
    assert_unavailable("the first append after the stop", &r, first);
    // Appends that arrive together fail together, each within the bound.
    let burst = futures::future::join_all(
        ["Hale", "Irwin", "Jarvis", "Keller", "Lowe", "Marsh"]
            .into_iter()
            .map(|family| register(&s, &doctor, family)),
    )
    .await;
    let mut slowest = Duration::ZERO;
    for result in burst {
        let (r, took) = result?;
        assert_unavailable("an append of a burst", &r, took);
        slowest = slowest.max(took);
    }
    // One more, once the server has had time to notice.
    let (r, later) = register(&s, &doctor, "Nash").await?;
    assert_unavailable("a later append", &r, later);
    // Registration without a token reaches the writer without a session check.
    let started = Instant::now();
    let signup = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(serde_json::json!({
                "username": "during.outage", "password": PASSWORD, "patient": patient("Oakes")
            })),
            &[],
        )
        .await?;
    let signup_took = started.elapsed();
    assert_unavailable("a self-registration", &signup, signup_took);

    let started = Instant::now();
    let ready = s.call("GET", "/readyz", None, None, &[]).await?;
    let readyz_took = started.elapsed();
    assert!(readyz_took < FAILS_WITHIN, "/readyz took {readyz_took:?}");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.body["status"], "not_ready", "{ready:?}");
    assert_eq!(ready.body["database"], false, "{ready:?}");
    assert_eq!(ready.body["writer"]["ready"], false, "{ready:?}");
    assert!(
        ready.body["writer"]["last_failure"].is_string(),
        "/readyz names why the last append failed: {ready:?}"
    );
    eprintln!(
        "database down: first append failed in {first:?}, slowest of a burst of 6 in \
         {slowest:?}, a later one in {later:?}, a self-registration in {signup_took:?}; \
         /readyz answered 503 in {readyz_took:?}"
    );

    // Back: writes succeed again within a bounded time. Until then every
    // answer is a 503 (never a 500, never a hang).
    pg.start_again().await?;
    let back = Instant::now();
    let mut attempt = 0;
    let recovered = loop {
        attempt += 1;
        let (r, took) = register(&s, &doctor, &format!("Parker{attempt}")).await?;
        if r.status == 201 {
            break r;
        }
        assert_unavailable("an append while the database comes back", &r, took);
        assert!(
            back.elapsed() < RECOVERS_WITHIN,
            "appends still fail {RECOVERS_WITHIN:?} after the database came back: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let writes_back = back.elapsed();
    let ready = loop {
        let r = s.call("GET", "/readyz", None, None, &[]).await?;
        if r.status == 200 {
            break r;
        }
        assert!(
            back.elapsed() < RECOVERS_WITHIN,
            "/readyz still not ready {RECOVERS_WITHIN:?} after the database came back: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready.body["status"], "ready");
    let ready_back = back.elapsed();

    // The read model catches up with the write made after the outage...
    let new_id = recovered.body["id"].as_str().unwrap().to_owned();
    let caught_up = loop {
        let r = read_patient(&s, &doctor, &new_id, Some(&recovered)).await?;
        if r.status == 200 {
            break r;
        }
        assert_eq!((r.status, r.code()), (503, "not_caught_up"), "{r:?}");
        assert!(
            back.elapsed() < RECOVERS_WITHIN,
            "the read model has not caught up {RECOVERS_WITHIN:?} after the database came back"
        );
    };
    assert_eq!(caught_up.body["family_name"], format!("Parker{attempt}"));
    let read_back = back.elapsed();
    eprintln!(
        "database back: writes succeed after {writes_back:?} ({attempt} attempts), /readyz \
         ready after {ready_back:?}, read model caught up after {read_back:?}"
    );

    // ...and nothing written before it is lost: every patient reads back, and
    // the log holds exactly the registrations that were answered 201.
    for (family, id) in &before {
        let r = read_patient(&s, &doctor, id, Some(&recovered)).await?;
        assert_eq!(r.status, 200, "{family}: {r:?}");
        assert_eq!(r.body["family_name"], *family);
    }
    assert_eq!(registered_patients(&s).await?, before.len() as i64 + 1);
    let first_after = recovered.body["position"].as_i64().unwrap();
    assert!(
        chained(&s, first_after).await?,
        "the first event after the outage chains onto the last one before it"
    );
    // (The reads above appended their access records, ADR 0012.)
    let head = s.event_count().await?;
    let after = register(&s, &doctor, "Quinn").await?.0;
    assert_eq!(after.status, 201, "{after:?}");
    assert_eq!(
        after.body["position"].as_i64().unwrap(),
        head + 2,
        "positions stay gap-free across the outage (a doctor's registration is two events)"
    );
    s.stop().await
}
