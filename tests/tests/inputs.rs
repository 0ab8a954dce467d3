//! Bad input over HTTP: each is refused with the problem and field it
//! deserves, never echoing what was sent, and writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    bad_inputs_are_refused_and_write_nothing,
    made_up_methods_share_one_metrics_label,
    path_segments_that_name_nothing_are_404_problems
);

/// A path segment that is no text (bad UTF-8) or holds a NUL names no
/// resource: `404 not_found` as a problem. They once got a plain-text 400
/// from the framework, and a NUL in a notification id a 500 on Postgres.
async fn path_segments_that_name_nothing_are_404_problems(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    for (method, path, token) in [
        ("GET", "/v1/patients/%FF", &staff),
        ("GET", "/v1/chart/%C3%28", &staff),
        ("POST", "/v1/users/%FF/deactivate", &admin),
        ("POST", "/v1/me/notifications/a%00b/read", &staff),
        ("POST", "/v1/me/notifications/%FF/read", &staff),
    ] {
        let r = s.call(method, path, Some(token), None, &[]).await?;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{path}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{path}");
    }
    s.stop().await
}

/// Any token is a method to HTTP: requests with made-up methods are counted
/// under one label, `other`, so that no client grows `/metrics` without
/// bound (300 distinct methods once added 1.2 MB to it, for good).
async fn made_up_methods_share_one_metrics_label(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes())?;
        let r = s
            .http
            .request(method, format!("{}/healthz", s.base))
            .send()
            .await?;
        // The path is there, not with that method: 405, as a problem.
        assert_eq!(r.status(), 405);
        assert!(r.headers().contains_key("allow"));
        let problem: Value = r.json().await?;
        assert_eq!(problem["code"], "method_not_allowed", "{problem}");
    }
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(!metrics.contains("MADEUP"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    s.stop().await
}

async fn bad_inputs_are_refused_and_write_nothing(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let ok = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    let id = ok.body["id"].as_str().unwrap().to_owned();
    let before = s.event_count().await?;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut p = patient("Curie");
        f(&mut p);
        p
    };
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "unknown field",
            with(&|p| p["shoe_size"] = json!(42)),
            400,
            "unknown_field",
            "",
        ),
        (
            "wrong type",
            with(&|p| p["birth_date"] = json!(19671107)),
            400,
            "invalid_type",
            "birth_date",
        ),
        (
            "impossible date",
            with(&|p| p["birth_date"] = json!("1967-02-30")),
            400,
            "invalid_value",
            "birth_date",
        ),
        (
            "missing field",
            with(&|p| {
                p.as_object_mut().unwrap().remove("family_name");
            }),
            400,
            "missing_field",
            "family_name",
        ),
        (
            "empty string",
            with(&|p| p["given_name"] = json!("  ")),
            422,
            "empty_field",
            "given_name",
        ),
        (
            "born in the future",
            with(&|p| p["birth_date"] = json!("2999-01-01")),
            422,
            "born_in_the_future",
            "birth_date",
        ),
        (
            "bad email",
            with(&|p| p["email"] = json!("nobody")),
            422,
            "malformed",
            "email",
        ),
        (
            "nested unknown field",
            with(&|p| p["identifiers"] = json!([{"system": "mrn", "value": "1", "x": 1}])),
            400,
            "unknown_field",
            "identifiers[0]",
        ),
    ];
    for (what, body, status, code, field) in cases {
        let r = s
            .call("POST", "/v1/patients", Some(&doctor), Some(body), &[])
            .await?;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (status, code, field),
            "{what}: {r:?}"
        );
        assert_eq!(r.content_type, "application/problem+json", "{what}");
        // The problem never echoes what was sent.
        assert!(
            !r.body.to_string().contains("2999") && !r.body.to_string().contains("nobody"),
            "{what}"
        );
    }
    let malformed = s
        .raw(
            "POST",
            "/v1/patients",
            Some(&doctor),
            "application/json",
            b"{\"family_name\": ".to_vec(),
        )
        .await?;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "malformed_json")
    );
    let not_json = s
        .raw(
            "POST",
            "/v1/patients",
            Some(&doctor),
            "text/plain",
            b"hello".to_vec(),
        )
        .await?;
    assert_eq!(
        (not_json.status, not_json.code()),
        (415, "unsupported_media_type")
    );
    // The media type is matched whole, in any case, parameters aside: a
    // type that merely starts like JSON's is not JSON (it once passed).
    for (content_type, status) in [
        ("application/jsonfoo", 415),
        ("application/json-seq", 415),
        ("Application/JSON; charset=utf-8", 400),
    ] {
        let r = s
            .raw(
                "POST",
                "/v1/patients",
                Some(&doctor),
                content_type,
                b"{\"family_name\": ".to_vec(),
            )
            .await?;
        assert_eq!(r.status, status, "{content_type}: {r:?}");
    }
    let huge = format!("{{\"family_name\": \"{}\"}}", "x".repeat(100 * 1024));
    let too_big = s
        .raw(
            "POST",
            "/v1/patients",
            Some(&doctor),
            "application/json",
            huge.into_bytes(),
        )
        .await?;
    assert_eq!((too_big.status, too_big.code()), (413, "body_too_large"));
    let unknown = s
        .call(
            "GET",
            &format!("/v1/patients/{}", uuid::Uuid::now_v7()),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    // The scheme is case-insensitive (RFC 9110): `bearer` is `Bearer`.
    let lowercase = s
        .call(
            "GET",
            &format!("/v1/patients/{}", uuid::Uuid::now_v7()),
            None,
            None,
            &[("authorization", format!("bearer {doctor}"))],
        )
        .await?;
    assert_eq!((lowercase.status, lowercase.code()), (404, "not_found"));
    let not_an_id = s
        .call("GET", "/v1/patients/not-an-id", Some(&doctor), None, &[])
        .await?;
    assert_eq!(not_an_id.status, 404);
    let unknown_write = s
        .call(
            "POST",
            &format!("/v1/patients/{}/allergies", uuid::Uuid::now_v7()),
            Some(&doctor),
            Some(json!({"substance": "Latex", "reaction": "rash", "severity": "mild"})),
            &[],
        )
        .await?;
    // A doctor is in the care of no unknown patient: refused before the
    // record is looked up, so a refusal tells nothing of its existence.
    assert_eq!(unknown_write.status, 403);
    let bad_severity = s
        .call(
            "POST",
            &format!("/v1/patients/{id}/allergies"),
            Some(&doctor),
            Some(json!({"substance": "Latex", "reaction": "rash", "severity": "catastrophic"})),
            &[],
        )
        .await?;
    assert_eq!(
        (bad_severity.status, bad_severity.field()),
        (400, "severity")
    );
    let bad_header = s
        .call(
            "GET",
            &format!("/v1/patients/{id}"),
            Some(&doctor),
            None,
            &[("X-Min-Position", "soon".into())],
        )
        .await?;
    assert_eq!(
        (bad_header.status, bad_header.code()),
        (400, "invalid_header")
    );
    let bad_limit = s
        .call("GET", "/v1/patients?limit=0", Some(&doctor), None, &[])
        .await?;
    assert_eq!((bad_limit.status, bad_limit.field()), (400, "limit"));
    let taken = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "dr.house", "password": PASSWORD, "patient": patient("X")})),
            &[],
        )
        .await?;
    assert_eq!((taken.status, taken.code()), (409, "username_taken"));
    let weak = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "newbie", "password": "short", "patient": patient("X")})),
            &[],
        )
        .await?;
    assert_eq!((weak.status, weak.field()), (422, "password"));
    // A position the log will not reach in time is a clear problem, not stale data.
    let ahead = s
        .call(
            "GET",
            &format!("/v1/patients/{id}"),
            Some(&doctor),
            None,
            &[("X-Min-Position", "999999".into())],
        )
        .await?;
    assert_eq!((ahead.status, ahead.code()), (503, "not_caught_up"));

    assert_eq!(
        s.event_count().await?,
        before,
        "a refused request wrote events"
    );
    s.stop().await
}
