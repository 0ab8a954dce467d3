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
    a_key_covers_the_query_and_content_type_and_no_stranger_uploads,
);

/// Sends a document upload (its title in the query) with an
/// `Idempotency-Key`; returns the status and the problem's code.
async fn upload(
    s: &TestServer,
    token: Option<&str>,
    (path, content_type): (&str, &str),
    body: Vec<u8>,
    key: &str,
) -> anyhow::Result<(u16, String)> {
    let mut req = s
        .http
        .post(format!("{}{path}", s.base))
        .header("content-type", content_type)
        .header("Idempotency-Key", key)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Ok((status, body["code"].as_str().unwrap_or_default().to_owned()))
}

/// A key names one request: the same key with another query (a document's
/// title) or another content type is refused, not answered with the first
/// upload (it once was: the second document was never stored). And a
/// request without credentials is not buffered past the JSON limit, however
/// large an upload a signed-in user may send.
async fn a_key_covers_the_query_and_content_type_and_no_stranger_uploads(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let registered = keyed(
        &s,
        "POST",
        "/v1/patients",
        Some(&doctor),
        patient("Curie"),
        "p",
    )
    .await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let patient_id = registered.body["id"].as_str().unwrap().to_owned();
    let documents = format!("/v1/patients/{patient_id}/chart/documents");
    let letter = format!("{documents}?title=Letter%20A");
    let discharge = format!("{documents}?title=Discharge%20B");
    let hello = b"hello".to_vec();
    let first = upload(
        &s,
        Some(&doctor),
        (&letter, "application/pdf"),
        hello.clone(),
        "K",
    )
    .await?;
    assert_eq!(first.0, 201, "{first:?}");
    let events = s.event_count().await?;
    let retry = upload(
        &s,
        Some(&doctor),
        (&letter, "application/pdf"),
        hello.clone(),
        "K",
    )
    .await?;
    assert_eq!(retry.0, 201, "{retry:?}");
    for (path, content_type) in [(&discharge, "application/pdf"), (&letter, "text/plain")] {
        let other = upload(&s, Some(&doctor), (path, content_type), hello.clone(), "K").await?;
        assert_eq!(
            other,
            (422, "idempotency_key_reused".to_owned()),
            "{path} {content_type}"
        );
    }
    assert_eq!(s.event_count().await?, events);
    // Sign-in and second-factor enrolment answer with secrets that are not
    // kept to replay: a key sent to them is refused, not silently ignored
    // (a retried enrolment once made a second secret).
    let signin = json!({"username": "dr.house", "password": PASSWORD});
    let keyed_login = keyed(&s, "POST", "/v1/auth/login", None, signin, "L").await?;
    assert_eq!(
        (keyed_login.status, keyed_login.code()),
        (400, "idempotency_key_unsupported"),
        "{keyed_login:?}"
    );
    let enrol = keyed(&s, "POST", "/v1/me/mfa/totp", Some(&doctor), json!({}), "M").await?;
    assert_eq!(
        (enrol.status, enrol.code()),
        (400, "idempotency_key_unsupported"),
        "{enrol:?}"
    );
    assert_eq!(s.event_count().await?, events);
    // 200 KB with a key and no credentials: refused as too large, not read
    // whole before the 401.
    let stranger = upload(
        &s,
        None,
        ("/v1/patients", "application/json"),
        vec![b' '; 200_000],
        "S",
    )
    .await?;
    assert_eq!(stranger.0, 413, "{stranger:?}");
    s.stop().await
}

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
