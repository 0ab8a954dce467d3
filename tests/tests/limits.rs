//! Rate limits (issue 13, item 4), on each backend: a burst of bad
//! sign-ins to one account is refused with `429` and `Retry-After`, and
//! nothing is recorded for the refused ones, while another account signs in;
//! a burst from one address to the sign-in endpoints is refused whatever
//! the account; a token over its budget is refused, another token is not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};
use serde_json::json;

on_both_backends!(bursts_are_refused_and_others_are_not);

async fn login(
    s: &TestServer,
    username: &str,
    password: &str,
) -> anyhow::Result<(Reply, Option<String>)> {
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    Ok((
        Reply {
            status,
            content_type: String::new(),
            body,
        },
        retry,
    ))
}

async fn bursts_are_refused_and_others_are_not(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let s = TestServer::start_on(
        db,
        url,
        &[
            "--auth-rate-per-minute",
            "12",
            "--account-rate-per-minute",
            "3",
            "--token-rate-per-second",
            "1",
            "--token-burst",
            "5",
        ],
    )
    .await?;
    let admin = admin(&s).await?; // a sign-in from this address
    let doctor = user(&s, &admin, "dr.house", "doctor").await?; // 1 of his 3 sign-ins

    // Two bad passwords for dr.house are heard (and counted by the
    // lockout); the next is refused before it is checked.
    for _ in 0..2 {
        let (r, _) = login(&s, "dr.house", "not his password").await?;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let events = s.event_count().await?;
    let (r, retry) = login(&s, "DR.HOUSE", "not his password").await?;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{r:?}");
    let retry: u64 = retry.expect("Retry-After").parse()?;
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        s.event_count().await?,
        events,
        "a refused sign-in records nothing"
    );
    // Another account is not affected.
    let (r, _) = login(&s, "admin", ADMIN_PASSWORD).await?;
    assert_eq!(r.status, 200, "{r:?}");

    // One address: 12 a minute to the sign-in endpoints, whichever account
    // (6 used so far).
    let mut refused = 0;
    for n in 0..8 {
        let (r, _) = login(&s, &format!("nobody{n}"), "whatever").await?;
        if r.status == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "the 13th and 14th sign-ins from one address");

    // A token's budget: a burst of 5, then 1 a second; another token is
    // not affected.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = s
            .call("GET", "/v1/providers", Some(&doctor), None, &[])
            .await?;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = s
        .call("GET", "/v1/providers", Some(&admin), None, &[])
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    s.stop().await
}
