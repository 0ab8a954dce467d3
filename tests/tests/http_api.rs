//! Black-box tests of the HTTP API: a real server on a free port, on each
//! backend, driven over HTTP (and its CLI as a separate process).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    walk_through_from_first_admin_to_read_your_writes,
    bad_inputs_are_refused_and_write_nothing,
    every_endpoint_answers_every_role_per_the_matrix,
    sessions_refresh_end_and_lock,
    the_openapi_document_lists_every_route,
);

async fn walk_through_from_first_admin_to_read_your_writes(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;

    // The doctor records an allergy and reads it back at once.
    let recorded = s
        .call(
            "POST",
            &format!("/v1/patients/{marie_id}/allergies"),
            Some(&doctor),
            Some(json!({"substance": "Penicillin", "reaction": "hives", "severity": "moderate"})),
            &[],
        )
        .await?;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&doctor),
            None,
            &at(&recorded),
        )
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["allergies"][0]["substance"], "Penicillin");
    assert_eq!(read.body["family_name"], "Curie");
    assert!(read.body["version"].as_i64().unwrap() >= recorded.body["position"].as_i64().unwrap());

    // The patient sees their own record, allergy included.
    let own = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&marie),
            None,
            &at(&recorded),
        )
        .await?;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["allergies"].as_array().unwrap().len(), 1);

    // Another patient's record is forbidden to her.
    let other = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Lovelace")),
            &[],
        )
        .await?;
    assert_eq!(other.status, 201, "{other:?}");
    let other_id = other.body["id"].as_str().unwrap();
    let theirs = s
        .call(
            "GET",
            &format!("/v1/patients/{other_id}"),
            Some(&marie),
            None,
            &[],
        )
        .await?;
    assert_eq!((theirs.status, theirs.code()), (403, "forbidden"));
    assert_eq!(theirs.content_type, "application/problem+json");

    // Analysts see no patient data; no token is 401.
    let analyst = user(&s, &admin, "ann.alyst", "analyst").await?;
    let denied = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&analyst),
            None,
            &[],
        )
        .await?;
    assert_eq!(denied.status, 403);
    let anonymous = s
        .call("GET", &format!("/v1/patients/{marie_id}"), None, None, &[])
        .await?;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "unauthenticated")
    );

    // Search by name prefix, birth date and identifier, paged.
    let found = s
        .call(
            "GET",
            "/v1/patients?name=cur&limit=1",
            Some(&doctor),
            None,
            &at(&other),
        )
        .await?;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(found.body["items"][0]["id"], marie_id.as_str());
    let by_date = s
        .call(
            "GET",
            "/v1/patients?birth_date=1967-11-07&limit=1",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    let cursor = by_date.body["next_cursor"].as_str().unwrap().to_owned();
    let page2 = s
        .call(
            "GET",
            &format!("/v1/patients?birth_date=1967-11-07&limit=1&cursor={cursor}"),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert!(page2.body["next_cursor"].is_null());
    assert_ne!(page2.body["items"][0]["id"], by_date.body["items"][0]["id"]);
    let by_mrn = s
        .call(
            "GET",
            "/v1/patients?identifier=MRN-Lovelace",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(by_mrn.body["items"][0]["id"], other_id);

    // Staff see demographics without history.
    let clerk = user(&s, &admin, "front.desk", "staff").await?;
    let demographics = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&clerk),
            None,
            &[],
        )
        .await?;
    assert_eq!(demographics.status, 200);
    assert!(demographics.body.get("allergies").is_none());

    // Every event names its actor: the allergy was recorded by the doctor.
    let events = s.db.db.clone();
    let actors: Vec<(String, String)> = match &events {
        anamnesis_commands::Db::Postgres(p) => {
            sqlx::query_as("SELECT event_type, actor_role FROM events ORDER BY global_position")
                .fetch_all(p)
                .await?
        }
        anamnesis_commands::Db::Sqlite(p) => {
            sqlx::query_as("SELECT event_type, actor_role FROM events ORDER BY global_position")
                .fetch_all(p)
                .await?
        }
    };
    assert!(actors.contains(&("patient.allergy_recorded".into(), "doctor".into())));
    assert!(actors.contains(&("user.created".into(), "operator".into())));
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
    assert_eq!(unknown_write.status, 404);
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

/// Who may do what, over HTTP: each role against each endpoint, checked
/// against DESIGN.md's matrix. "own" is a patient acting on their own record.
async fn every_endpoint_answers_every_role_per_the_matrix(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "doc", "doctor").await?;
    let (me, my_id) = patient_account(&s, "pat", "Patient").await?;
    let mut tokens = vec![
        ("patient", me.clone()),
        ("admin", admin.clone()),
        ("doctor", doctor.clone()),
    ];
    for role in ["nurse", "staff", "compliance", "analyst"] {
        tokens.push((role, user(&s, &admin, &format!("{role}.user"), role).await?));
    }
    // A second patient record, and an allergy and a condition to act on.
    let other = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Other")),
            &[],
        )
        .await?;
    let other_id = other.body["id"].as_str().unwrap().to_owned();

    // endpoint, then the roles allowed (P = patient on own record only).
    type Case = (&'static str, String, Option<Value>, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/patients".into(),
            Some(patient("New")),
            &["doctor", "staff"],
        ),
        (
            "GET",
            "/v1/patients?name=pa".into(),
            None,
            &["doctor", "nurse", "staff", "compliance"],
        ),
        (
            "GET",
            format!("/v1/patients/{other_id}"),
            None,
            &["doctor", "nurse", "staff", "compliance"],
        ),
        (
            "GET",
            format!("/v1/patients/{my_id}"),
            None,
            &["patient", "doctor", "nurse", "staff", "compliance"],
        ),
        (
            "PUT",
            format!("/v1/patients/{other_id}/demographics"),
            Some(patient("Other")),
            &["doctor", "staff"],
        ),
        (
            "PUT",
            format!("/v1/patients/{my_id}/demographics"),
            Some(patient("Patient")),
            &["patient", "doctor", "staff"],
        ),
        (
            "POST",
            format!("/v1/patients/{my_id}/allergies"),
            None,
            &["doctor", "nurse"],
        ),
        (
            "DELETE",
            format!("/v1/patients/{my_id}/allergies/{}", uuid::Uuid::now_v7()),
            None,
            &["doctor"],
        ),
        (
            "POST",
            format!("/v1/patients/{my_id}/conditions"),
            None,
            &["doctor"],
        ),
        (
            "POST",
            format!(
                "/v1/patients/{my_id}/conditions/{}/resolve",
                uuid::Uuid::now_v7()
            ),
            Some(json!({"resolved_on": "2020-01-01"})),
            &["doctor"],
        ),
        (
            "POST",
            format!("/v1/patients/{other_id}/deceased"),
            Some(json!({"deceased_on": "2999-01-01"})),
            &["doctor"],
        ),
        (
            "POST",
            "/v1/users".into(),
            Some(json!({"username": "x", "password": "p", "role": "nurse"})),
            &["admin"],
        ),
        (
            "POST",
            "/v1/users/nobody/deactivate".into(),
            None,
            &["admin"],
        ),
        (
            "POST",
            "/v1/users/nobody/reactivate".into(),
            None,
            &["admin"],
        ),
    ];
    let mut n = 0;
    for (method, path, body, allowed) in &cases {
        for (role, token) in &tokens {
            n += 1;
            // Bodies that would succeed are varied per call so that a
            // permitted request does real work; the status is what is judged.
            let body = match (body, path.ends_with("/allergies")) {
                (_, true) => {
                    Some(json!({"substance": format!("S{n}"), "reaction": "r", "severity": "mild"}))
                }
                (None, false) if path.ends_with("/conditions") => {
                    Some(json!({"description": format!("C{n}")}))
                }
                (b, _) => b.clone(),
            };
            let r = s.call(method, path, Some(token), body, &[]).await?;
            let should = allowed.contains(role);
            if should {
                assert_ne!(r.status, 403, "{role} {method} {path}: {r:?}");
                assert!(r.status < 500, "{role} {method} {path}: {r:?}");
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (403, "forbidden"),
                    "{role} {method} {path}"
                );
            }
        }
        let anonymous = s.call(method, path, None, body.clone(), &[]).await?;
        assert_eq!(anonymous.status, 401, "anonymous {method} {path}");
    }
    s.stop().await
}

async fn sessions_refresh_end_and_lock(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    user(&s, &admin, "nurse.joy", "nurse").await?;
    let login = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(
        (login.status, login.body["token_type"].as_str()),
        (200, Some("Bearer"))
    );
    assert!(login.body["expires_in"].as_i64().unwrap() > 0);
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = json!({"refresh_token": login.body["refresh_token"]});
    let refreshed = s
        .call("POST", "/v1/auth/refresh", None, Some(refresh.clone()), &[])
        .await?;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    // An access token is not a refresh token.
    let wrong = s
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": access})),
            &[],
        )
        .await?;
    assert_eq!(wrong.status, 401);
    let out = s
        .call("POST", "/v1/auth/logout", Some(&access), None, &[])
        .await?;
    assert_eq!(out.status, 204);
    let after = s
        .call("POST", "/v1/auth/refresh", None, Some(refresh), &[])
        .await?;
    assert_eq!((after.status, after.code()), (401, "session_closed"));

    // Deactivated accounts cannot log in; reactivated ones can.
    let off = s
        .call(
            "POST",
            "/v1/users/nurse.joy/deactivate",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(off.status, 200, "{off:?}");
    let refused = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(
        (refused.status, refused.code()),
        (401, "account_deactivated")
    );
    s.call(
        "POST",
        "/v1/users/nurse.joy/reactivate",
        Some(&admin),
        None,
        &[],
    )
    .await?;
    s.login("nurse.joy", PASSWORD).await?;

    // An unknown user and a wrong password look alike.
    let unknown = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "invalid_credentials")
    );
    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        let r = s
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": "nurse.joy", "password": "wrong password!"})),
                &[],
            )
            .await?;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    }
    let locked = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
    // A locked account answers as a wrong password does (nothing to learn).
    assert_eq!((locked.status, locked.code()), (401, "invalid_credentials"));
    s.stop().await
}

async fn the_openapi_document_lists_every_route(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let doc = s.call("GET", "/openapi.json", None, None, &[]).await?;
    assert_eq!(doc.status, 200);
    let mut documented: Vec<String> = Vec::new();
    for (path, methods) in doc.body["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected = vec![
        "POST /v1/auth/login",
        "POST /v1/auth/refresh",
        "POST /v1/auth/logout",
        "POST /v1/auth/register",
        "POST /v1/auth/password",
        "POST /v1/users",
        "POST /v1/users/{username}/deactivate",
        "POST /v1/users/{username}/reactivate",
        "POST /v1/patients",
        "GET /v1/patients",
        "GET /v1/patients/{id}",
        "PUT /v1/patients/{id}/demographics",
        "POST /v1/patients/{id}/allergies",
        "DELETE /v1/patients/{id}/allergies/{allergy_id}",
        "POST /v1/patients/{id}/conditions",
        "POST /v1/patients/{id}/conditions/{condition_id}/resolve",
        "POST /v1/patients/{id}/deceased",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // And every documented route is served (none answers 404 from the fallback).
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{allergy_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{condition_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{username}", "nobody");
        let r = s.call(method, &concrete, None, None, &[]).await?;
        // Unauthenticated calls stop at 401 (or 415 without a body) before
        // any lookup, so a 404 here can only come from the router's fallback.
        assert_ne!(r.status, 404, "{route} is not served");
    }
    // A real OpenAPI 3.1 validator accepts the document (openapi-spec-validator;
    // deploy/test.sh installs it where it is missing).
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&doc.body)?)?;
    let checked = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n",
        )
        .arg(file.path())
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("python3 is needed to validate the OpenAPI document: {e}"))?;
    assert!(
        checked.status.success(),
        "the OpenAPI document is invalid: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(doc.body["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("anamnesis_http_request_duration_seconds"));
    assert!(metrics.contains("anamnesis_projection_lag_events"));
    s.stop().await
}
