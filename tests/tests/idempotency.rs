//! `Idempotency-Key`: a retried command returns the first outcome and writes
//! nothing, on both backends, including retries that race the first attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};
use serde_json::{json, Value};

on_both_backends!(
    a_retry_with_the_same_key_returns_the_first_outcome_and_writes_nothing,
    racing_retries_commit_once,
);

async fn keyed(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
    key: &str,
) -> anyhow::Result<Reply> {
    s.call(
        method,
        path,
        token,
        Some(body),
        &[("Idempotency-Key", key.to_owned())],
    )
    .await
}

async fn a_retry_with_the_same_key_returns_the_first_outcome_and_writes_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let clerk = user(&s, &admin, "front.desk", "staff").await?;

    let first = keyed(
        &s,
        "POST",
        "/v1/patients",
        Some(&doctor),
        patient("Curie"),
        "k-1",
    )
    .await?;
    assert_eq!(first.status, 201, "{first:?}");
    let events = s.event_count().await?;
    let again = keyed(
        &s,
        "POST",
        "/v1/patients",
        Some(&doctor),
        patient("Curie"),
        "k-1",
    )
    .await?;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body, first.body, "the retry answers as the first did");
    assert_eq!(s.event_count().await?, events, "the retry wrote events");

    // The same key for another request is refused, and writes nothing.
    let other = keyed(
        &s,
        "POST",
        "/v1/patients",
        Some(&doctor),
        patient("Lovelace"),
        "k-1",
    )
    .await?;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused"),
        "{other:?}"
    );
    assert_eq!(s.event_count().await?, events);
    // Keys belong to their caller: another user's "k-1" is another key.
    let theirs = keyed(
        &s,
        "POST",
        "/v1/patients",
        Some(&clerk),
        patient("Lovelace"),
        "k-1",
    )
    .await?;
    assert_eq!(theirs.status, 201, "{theirs:?}");
    assert_ne!(theirs.body["id"], first.body["id"]);

    // A command the aggregate would refuse the second time (a duplicate
    // allergy) is answered with the first outcome instead.
    let id = first.body["id"].as_str().unwrap();
    let path = format!("/v1/patients/{id}/allergies");
    let latex = json!({"substance": "Latex", "reaction": "rash", "severity": "mild"});
    let recorded = keyed(&s, "POST", &path, Some(&doctor), latex.clone(), "allergy-1").await?;
    assert_eq!(recorded.status, 201);
    let events = s.event_count().await?;
    let retried = keyed(&s, "POST", &path, Some(&doctor), latex.clone(), "allergy-1").await?;
    assert_eq!((retried.status, &retried.body), (201, &recorded.body));
    // Without the key, the same request is a new command, and a duplicate.
    let unkeyed = s
        .call("POST", &path, Some(&doctor), Some(latex), &[])
        .await?;
    assert_eq!((unkeyed.status, unkeyed.code()), (422, "duplicate_allergy"));
    assert_eq!(s.event_count().await?, events);

    // Self-registration, with no account yet: the retry creates no second one.
    let signup =
        json!({"username": "marie", "password": PASSWORD, "patient": patient("Sklodowska")});
    let registered = keyed(
        &s,
        "POST",
        "/v1/auth/register",
        None,
        signup.clone(),
        "signup",
    )
    .await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let events = s.event_count().await?;
    let again = keyed(&s, "POST", "/v1/auth/register", None, signup, "signup").await?;
    assert_eq!((again.status, &again.body), (201, &registered.body));
    assert_eq!(s.event_count().await?, events);

    // A key outside 1 to 255 visible ASCII characters is refused at once.
    let long = "x".repeat(256);
    for bad in ["", long.as_str(), "two words", "tab\there"] {
        let r = keyed(
            &s,
            "POST",
            "/v1/patients",
            Some(&doctor),
            patient("Bad"),
            bad,
        )
        .await?;
        assert_eq!(
            (r.status, r.field()),
            (400, "Idempotency-Key"),
            "{bad:?}: {r:?}"
        );
    }
    // Credentials that do not check out never share the anonymous caller's
    // keys: the same request with a bad token runs on its own (here a second
    // sign-up under a taken name), it is not answered with the first outcome.
    let forged = keyed(
        &s,
        "POST",
        "/v1/auth/register",
        Some("not-a-token"),
        signup_body(),
        "signup",
    )
    .await?;
    assert_eq!(
        (forged.status, forged.code()),
        (409, "username_taken"),
        "{forged:?}"
    );
    s.stop().await
}

fn signup_body() -> Value {
    json!({"username": "marie", "password": PASSWORD, "patient": patient("Sklodowska")})
}

async fn racing_retries_commit_once(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let before = s.event_count().await?;
    let attempts = (0..10).map(|_| {
        let (s, doctor) = (&s, &doctor);
        async move {
            keyed(
                s,
                "POST",
                "/v1/patients",
                Some(doctor),
                patient("Curie"),
                "race",
            )
            .await
        }
    });
    let replies: Vec<Reply> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for r in &replies {
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(
            r.body, replies[0].body,
            "every attempt answers with the one outcome"
        );
    }
    // A doctor's registration also puts them on the care team (ADR 0013).
    assert_eq!(
        s.event_count().await? - before,
        2,
        "one registration (and its care-team entry), once"
    );
    s.stop().await
}
