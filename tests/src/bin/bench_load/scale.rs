//! The scale run (`--scale`): a large clinic seeded on Postgres, and the
//! reads whose cost could grow with it (a point read, a name search, a
//! chart timeline) measured there and on the small clinic, as compliance
//! reads them (every one recorded in the access log, as in production).

use std::sync::Arc;

use anamnesis_tests::bench::{closed_loop, BenchServer, Figures};
use anamnesis_tests::db::Backend;
use anyhow::Context;
use serde_json::{json, Value};

/// Concurrent readers and measured seconds of each read.
const CLIENTS: usize = 32;
const SECONDS: u64 = 10;

/// One clinic's read figures.
pub struct Reads {
    pub label: String,
    pub patients: usize,
    pub point: Figures,
    pub search: Figures,
    pub timeline: Figures,
}

/// Measures the three reads on the clinic `s` serves, whose seed summary
/// is `<out>/seed.json`-shaped `summary`.
pub async fn reads(s: &Arc<BenchServer>, summary: &Value, label: &str) -> anyhow::Result<Reads> {
    let token = Arc::new(super::users::login_as(s, summary, "compliance").await?);
    // A hundred patients, and the family names to search them by.
    let page = s
        .expect(200, ("GET", "/v1/patients?limit=100"), &token, None)
        .await?;
    let items = page["items"].as_array().context("patients")?;
    let ids: Arc<Vec<String>> = Arc::new(
        items
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect(),
    );
    let names: Arc<Vec<String>> = Arc::new(
        items
            .iter()
            .filter_map(|p| p["family_name"].as_str().map(str::to_owned))
            .collect(),
    );
    anyhow::ensure!(!ids.is_empty(), "the clinic has no patients");
    let patients = summary["counts"]["patients"]
        .as_u64()
        .context("the seed's summary has no patient count")? as usize;
    let get = |paths: Arc<Vec<String>>| {
        let (s, token) = (s.clone(), token.clone());
        move |i: u64| {
            let (s, token, paths) = (s.clone(), token.clone(), paths.clone());
            async move {
                let path = &paths[(i as usize) % paths.len()];
                let status = s.get_status(path, &token).await?;
                anyhow::ensure!(status == 200, "GET {path}: {status}");
                Ok(())
            }
        }
    };
    let point_paths = Arc::new(ids.iter().map(|id| format!("/v1/patients/{id}")).collect());
    let search_paths = Arc::new(
        names
            .iter()
            .map(|n| {
                format!(
                    "/v1/patients?name={}&limit=20",
                    anamnesis_tests::bench::query_value(n)
                )
            })
            .collect(),
    );
    let timeline_paths = Arc::new(
        ids.iter()
            .map(|id| format!("/v1/patients/{id}/chart"))
            .collect(),
    );
    let point = closed_loop("point read", CLIENTS, SECONDS, get(point_paths)).await?;
    let search = closed_loop("name search", CLIENTS, SECONDS, get(search_paths)).await?;
    let timeline = closed_loop("chart timeline", CLIENTS, SECONDS, get(timeline_paths)).await?;
    Ok(Reads {
        label: label.to_owned(),
        patients,
        point,
        search,
        timeline,
    })
}

/// Seeds a clinic of `patients` on Postgres and measures its reads.
pub async fn run(backend: Backend, patients: usize) -> anyhow::Result<Reads> {
    anyhow::ensure!(
        matches!(backend, Backend::Postgres),
        "--scale runs on Postgres (--backend postgres)"
    );
    let out = std::env::temp_dir().join(format!("bench-load-scale-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&out)?;
    let summary_path = out.join("seed.json");
    // One provider to a thousand patients keeps every visit placed.
    let providers = (patients / 1000).clamp(10, 1000);
    eprintln!(
        "scale run: seeding {patients} patients and {providers} providers on Postgres \
         (about 30 events a patient; hours at a million: watch the progress bar)"
    );
    let seed_args: Vec<String> = vec![
        "--patients".into(),
        patients.to_string(),
        "--providers".into(),
        providers.to_string(),
        "--days".into(),
        "60".into(),
        "--ahead".into(),
        "14".into(),
        "--summary".into(),
        summary_path.display().to_string(),
    ];
    let s = Arc::new(BenchServer::start_seeded(backend, CLIENTS * 2, &[], &seed_args).await?);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path)?)?;
    let caught_up = anamnesis_tests::bench::catch_up(&s.http, &s.base).await?;
    eprintln!("scale run: read models caught up {caught_up:.0} s after start");
    let reads = reads(&s, &summary, "large clinic").await;
    Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .stop()
        .await?;
    let _ = std::fs::remove_dir_all(&out);
    reads
}

/// The two clinics' reads side by side.
pub fn print(small: &Reads, large: &Reads) {
    println!(
        "scale: p99 on {} patients against {} patients ({} readers each)",
        large.patients, small.patients, CLIENTS
    );
    for (name, a, b) in [
        (
            "point read GET /v1/patients/{id}",
            &small.point,
            &large.point,
        ),
        (
            "name search GET /v1/patients?name=",
            &small.search,
            &large.search,
        ),
        (
            "chart timeline GET /v1/patients/{id}/chart",
            &small.timeline,
            &large.timeline,
        ),
    ] {
        println!(
            "  {name:<46} small p99 {:>7.2} ms ({:>6.0}/s)   large p99 {:>7.2} ms ({:>6.0}/s)   ratio {:.2}",
            a.ms(0.99),
            a.rate(),
            b.ms(0.99),
            b.rate(),
            b.ms(0.99) / a.ms(0.99).max(1e-9)
        );
    }
}

/// One clinic's reads as JSON.
pub fn json(r: &Reads) -> Value {
    let one = |f: &Figures| json!({"per_second": f.rate(), "p50_ms": f.ms(0.5), "p99_ms": f.ms(0.99), "errors": f.errors});
    json!({"label": r.label, "patients": r.patients, "point_read": one(&r.point),
        "search": one(&r.search), "timeline": one(&r.timeline)})
}
