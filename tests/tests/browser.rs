//! What browser clients see (issue 13, item 5), on each backend: security
//! headers on every answer, errors included; no CORS at all by default; with
//! `--cors-origins`, a preflight from a configured origin is answered before
//! authentication and names that origin, and any other origin is not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use reqwest::header::HeaderMap;

on_both_backends!(browsers_get_safe_headers_and_only_the_configured_origins);

const PORTAL: &str = "https://portal.example.org";

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, HeaderMap)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = s.http.request(method, format!("{}{path}", s.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await?;
    Ok((r.status().as_u16(), r.headers().clone()))
}

fn secure(headers: &HeaderMap) {
    for (name, value) in anamnesis_api::browser::SECURITY_HEADERS {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} in {headers:?}"
        );
    }
}

fn preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        ),
    ]
}

async fn browsers_get_safe_headers_and_only_the_configured_origins(
    backend: Backend,
) -> anyhow::Result<()> {
    // By default: safe headers everywhere, on errors too; no CORS.
    let s = TestServer::start(backend).await?;
    let (status, h) = send(&s, "GET", "/readyz", &[]).await?;
    assert_eq!(status, 200);
    secure(&h);
    let (status, h) = send(&s, "GET", "/v1/patients", &[("origin", PORTAL)]).await?;
    assert_eq!(status, 401);
    secure(&h);
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let (_, h) = send(&s, "OPTIONS", "/v1/patients", &preflight(PORTAL)).await?;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    s.stop().await?;

    // Configured: the portal's preflight is answered, naming it; another
    // origin's is not; a real answer to the portal names it too.
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let s = TestServer::start_on(
        db,
        url,
        &[
            "--cors-origins",
            "https://portal.example.org, http://localhost:5173",
        ],
    )
    .await?;
    let (status, h) = send(&s, "OPTIONS", "/v1/patients", &preflight(PORTAL)).await?;
    assert!((200..300).contains(&status), "{status} {h:?}");
    assert_eq!(h["access-control-allow-origin"], PORTAL);
    let allowed = h["access-control-allow-headers"].to_str()?.to_lowercase();
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    assert!(h.get("access-control-allow-credentials").is_none());
    let (_, h) = send(
        &s,
        "OPTIONS",
        "/v1/patients",
        &preflight("https://evil.example.com"),
    )
    .await?;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let (status, h) = send(&s, "GET", "/v1/patients", &[("origin", PORTAL)]).await?;
    assert_eq!(status, 401);
    assert_eq!(h["access-control-allow-origin"], PORTAL);
    secure(&h);
    s.stop().await
}
