//! The served OpenAPI document: it lists exactly the routes of the
//! endpoint × role table, every one is served, and a real OpenAPI 3.1
//! validator accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::access;
use anamnesis_tests::db::Backend;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;

on_both_backends!(the_openapi_document_lists_every_route);

async fn the_openapi_document_lists_every_route(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let doc = s.call("GET", "/openapi.json", None, None, &[]).await?;
    assert_eq!(doc.status, 200);
    // The document lists exactly the routes of the endpoint × role table, the
    // one hand-kept list of routes (tests/src/access.rs).
    let documented = access::documented(&doc.body);
    let expected = access::routes();
    assert_eq!(documented, expected, "{:?}", access::differences(&doc.body));
    // And every documented route is served (none answers 404 from the fallback).
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{allergy_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{condition_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{closure_id}", &uuid::Uuid::now_v7().to_string())
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
    // What every operation shares is documented on each (it once was not):
    // problems as served, the layers' 401/413/415/429, and Idempotency-Key on
    // the commands that take one, not on those that refuse it.
    let paths = &doc.body["paths"];
    let book = &paths["/v1/appointments"]["post"];
    for status in ["401", "409", "413", "415", "429"] {
        let content = &book["responses"][status]["content"];
        assert!(
            content["application/problem+json"].is_object()
                && content["application/json"].is_null(),
            "POST /v1/appointments {status}: {content}"
        );
    }
    let takes_key = |op: &serde_json::Value| {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    };
    assert!(takes_key(book), "{book}");
    assert!(takes_key(&paths["/v1/patients"]["post"]));
    assert!(!takes_key(&paths["/v1/patients"]["get"]));
    assert!(!takes_key(&paths["/v1/auth/login"]["post"]));
    assert!(!takes_key(&paths["/v1/patients/{id}/erasure"]["post"]));
    assert!(paths["/v1/auth/login"]["post"]["responses"]["429"].is_object());
    assert!(paths["/v1/auth/login"]["post"]["responses"]["401"].is_object());
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
