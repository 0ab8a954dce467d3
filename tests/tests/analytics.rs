//! De-identified analytics over HTTP, on each backend (ADR 0021): the
//! numbers of a small clinic made through the API, rates included; small
//! cells suppressed in JSON and CSV; no value of any patient in the
//! analytics tables or answers; `anamnesis rebuild analytics` gives the same
//! rows; dates, groupings and formats validated; only analysts, compliance
//! and admin read it. The scenario lives in `anamnesis_tests::analytics`,
//! so that the same assertions can run with the tables fed another way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::analytics::{self, ZONE};
use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::start_in;

on_both_backends!(
    a_clinic_is_counted_right_with_small_cells_suppressed,
    the_same_through_nats,
    questions_are_checked_and_only_analysts_may_ask
);

/// The same clinic with the analytics consumer fed by NATS JetStream (ADR
/// 0020) instead of the log: a stream and subjects of this test's own on
/// the shared server; the same numbers.
async fn the_same_through_nats(backend: Backend) -> anyhow::Result<()> {
    let nats = "nats://127.0.0.1:4222";
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (stream, prefix) = (format!("TEST_{tag}"), format!("t{tag}"));
    let extra = [
        "--nats-url",
        nats,
        "--nats-stream",
        &stream,
        "--nats-subject-prefix",
        &prefix,
        "--nats-max-bytes",
        "67108864",
    ];
    let db = anamnesis_tests::db::TestDb::new(backend).await?;
    let url = db.url.clone();
    let mut args = vec!["--time-zone", ZONE];
    args.extend_from_slice(&extra);
    let s = anamnesis_tests::server::TestServer::start_on(db, url, &args).await?;
    let seeded = analytics::seed(&s).await?;
    let s = analytics::record_no_shows(s, &seeded, &extra).await?;
    analytics::check(&s, &seeded).await?;
    analytics::check_tables(&s, &seeded).await?;
    let client = async_nats::connect(nats).await?;
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream(&stream)
        .await?
        .consumer_info("anamnesis-analytics")
        .await?;
    assert!(info.delivered.stream_sequence > 0, "{info:?}");
    js.delete_stream(&stream).await?;
    s.stop().await
}

async fn a_clinic_is_counted_right_with_small_cells_suppressed(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start_in(backend, ZONE).await?;
    let seeded = analytics::seed(&s).await?;
    let s = analytics::record_no_shows(s, &seeded, &[]).await?;
    analytics::check(&s, &seeded).await?;
    analytics::check_tables(&s, &seeded).await?;

    // A rebuild from the log makes the same rows.
    let live = analytics::dump(&s).await?;
    let out = s
        .cli(&["--time-zone", ZONE, "rebuild", "analytics"], "")
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(analytics::dump(&s).await?, live);
    // And answers the same after it.
    analytics::check(&s, &seeded).await?;
    // The doctor who treated them reads no analytics.
    let r = analytics::get(&s, &seeded.doctor, "/v1/analytics/patients").await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    s.stop().await
}

async fn questions_are_checked_and_only_analysts_may_ask(backend: Backend) -> anyhow::Result<()> {
    let s = start_in(backend, ZONE).await?;
    let admin = admin(&s).await?;
    let analyst = user(&s, &admin, "the.analyst", "analyst").await?;
    let compliance = user(&s, &admin, "the.officer", "compliance").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let base = "/v1/analytics/appointments";
    for (query, code, field) in [
        ("", "invalid_value", "from"),
        ("?from=2026-01-01", "invalid_value", "to"),
        ("?from=2026-1-01&to=2026-02-01", "invalid_value", "from"),
        ("?from=2026-02-01&to=2026-01-31", "invalid_range", "to"),
        ("?from=2024-01-01&to=2026-01-02", "invalid_range", "to"),
        (
            "?from=2026-01-01&to=2026-01-31&group_by=patient",
            "invalid_value",
            "group_by",
        ),
        (
            "?from=2026-01-01&to=2026-01-31&format=xml",
            "invalid_value",
            "format",
        ),
    ] {
        let r = s
            .call("GET", &format!("{base}{query}"), Some(&analyst), None, &[])
            .await?;
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{query}");
        assert_eq!((r.code(), r.field()), (code, field), "{query}");
    }
    let r = s
        .call(
            "GET",
            "/v1/analytics/billing?from=2026-02-01&to=2026-01-01",
            Some(&analyst),
            None,
            &[],
        )
        .await?;
    assert_eq!((r.status, r.code()), (400, "invalid_range"));
    let r = s
        .call(
            "GET",
            "/v1/analytics/patients?colour=red",
            Some(&analyst),
            None,
            &[],
        )
        .await?;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));
    // A clinic with no one in it answers no rows, not an error.
    let empty = "/v1/analytics/appointments?from=2026-01-01&to=2026-12-31";
    for token in [&analyst, &compliance, &admin] {
        let r = s.call("GET", empty, Some(token), None, &[]).await?;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["rows"], serde_json::json!([]));
        assert_eq!(r.body["threshold"], 5);
    }
    let r = s.call("GET", empty, Some(&staff), None, &[]).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = s.call("GET", empty, None, None, &[]).await?;
    assert_eq!(r.status, 401);
    s.stop().await
}
