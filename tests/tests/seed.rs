//! `anamnesis seed` (ADR 0027): a small synthetic clinic written by the real
//! binary, then served: its patients, providers, appointments in every
//! status, chart entries, prescriptions, bills and threads answer over the
//! HTTP API, its chain verifies, and the same seed gives the same clinic.

use std::path::{Path, PathBuf};
use std::process::Output;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{binary, TestServer};
use anyhow::Context;
use serde_json::Value;

const PASSWORD: &str = "seeded clinic password";

/// Runs the binary on `db` (its data directory `dir`) with `args`.
async fn anamnesis(db: &TestDb, dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::new(binary()?);
    // The servers this test starts on the seeded database use the test key.
    cmd.env(
        "ANAMNESIS_MASTER_KEY",
        anamnesis_tests::server::TEST_MASTER_KEY,
    );
    cmd.arg("--data-dir").arg(dir);
    if let Some(url) = &db.url {
        cmd.arg("--database-url").arg(url);
    }
    Ok(cmd.args(args).output().await?)
}

/// A fresh database and the data directory to run the binary with.
async fn database(
    backend: Backend,
) -> anyhow::Result<(TestDb, PathBuf, Option<tempfile::TempDir>)> {
    let db = TestDb::new(backend).await?;
    match db.data_dir().map(Path::to_path_buf) {
        Some(dir) => Ok((db, dir, None)),
        None => {
            let temp = tempfile::tempdir()?;
            Ok((db, temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Seeds 20 patients, 3 providers and 14 days with `seed`; the summary.
async fn seed(db: &TestDb, dir: &Path, seed: &str) -> anyhow::Result<Value> {
    let summary = dir.join(format!("summary-{seed}.json"));
    let summary_arg = summary.display().to_string();
    let out = anamnesis(
        db,
        dir,
        &[
            "seed",
            "--patients",
            "20",
            "--providers",
            "3",
            "--days",
            "14",
            "--seed",
            seed,
            "--summary",
            &summary_arg,
        ],
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&std::fs::read(&summary)?)?)
}

fn count(summary: &Value, name: &str) -> u64 {
    summary["counts"][name].as_u64().unwrap_or(0)
}

/// Every item of a paged list (`items`, `next_cursor`).
async fn all(
    s: &TestServer,
    path: &str,
    token: &str,
    min: &[(&str, String)],
) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
            None => format!("{path}{sep}limit=100"),
        };
        let r = s.call("GET", &url, Some(token), None, min).await?;
        anyhow::ensure!(r.status == 200, "GET {url}: {r:?}");
        items.extend(r.body["items"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(items),
        }
    }
}

/// The patients' names, sorted.
async fn names(s: &TestServer, token: &str, min: &[(&str, String)]) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = all(s, "/v1/patients", token, min)
        .await?
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["family_name"], p["given_name"], p["birth_date"]
            )
        })
        .collect();
    names.sort();
    Ok(names)
}

async fn a_seeded_clinic_answers_over_the_api(backend: Backend) -> anyhow::Result<()> {
    let (db, dir, _temp) = database(backend).await?;
    let summary = seed(&db, &dir, "7").await?;
    assert_eq!(count(&summary, "patients"), 20);
    for status in ["completed", "cancelled", "no_show", "booked"] {
        assert!(
            count(&summary, &format!("appointments_{status}")) > 0,
            "no {status} appointment: {summary}"
        );
    }
    for what in [
        "chart_entries",
        "prescriptions",
        "bills",
        "claims",
        "threads",
    ] {
        assert!(count(&summary, what) > 0, "no {what}: {summary}");
    }
    // A second seed of a clinic with patients is refused without --force.
    let again = anamnesis(
        &db,
        &dir,
        &["seed", "--patients", "1", "--providers", "1", "--days", "1"],
    )
    .await?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let verified = anamnesis(&db, &dir, &["replay", "verify"]).await?;
    assert!(
        verified.status.success(),
        "replay verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let url = db.url.clone();
    let s = TestServer::start_on(db, url, &[]).await?;
    let min = vec![("X-Min-Position", summary["position"].to_string())];
    let desk = s.login("seed7-desk-001", PASSWORD).await?;
    let patients = all(&s, "/v1/patients", &desk, &min).await?;
    assert_eq!(patients.len(), 20);
    let providers = all(&s, "/v1/providers", &desk, &min).await?;
    assert_eq!(providers.len(), 3);
    for status in ["completed", "cancelled", "no_show", "booked"] {
        let listed = all(
            &s,
            &format!("/v1/appointments?status={status}"),
            &desk,
            &min,
        )
        .await?;
        assert_eq!(
            listed.len() as u64,
            count(&summary, &format!("appointments_{status}")),
            "{status} appointments"
        );
    }
    let billing = s.login("seed7-billing-001", PASSWORD).await?;
    let bills = all(&s, "/v1/bills", &billing, &min).await?;
    assert_eq!(bills.len() as u64, count(&summary, "bills"));

    // Compliance reads every chart and medication list.
    let compliance = s.login("seed7-compliance-001", PASSWORD).await?;
    let (mut entries, mut prescriptions) = (0u64, 0u64);
    for p in &patients {
        let id = p["id"].as_str().context("patient id")?;
        let chart = all(&s, &format!("/v1/patients/{id}/chart"), &compliance, &min).await?;
        entries += chart.len() as u64;
        let r = s
            .call(
                "GET",
                &format!("/v1/patients/{id}/medications"),
                Some(&compliance),
                None,
                &min,
            )
            .await?;
        assert_eq!(r.status, 200, "{r:?}");
        prescriptions += r.body.as_array().map_or(0, |a| a.len() as u64);
    }
    assert_eq!(entries, count(&summary, "chart_entries"));
    assert_eq!(prescriptions, count(&summary, "prescriptions"));

    // Each thread is between a patient and their provider.
    let mut threads = 0u64;
    for provider in ["seed7-dr-001", "seed7-dr-002", "seed7-nurse-003"] {
        let token = s.login(provider, PASSWORD).await?;
        threads += all(&s, "/v1/me/threads", &token, &min).await?.len() as u64;
    }
    assert_eq!(threads, count(&summary, "threads"));

    // A portal patient signs in and sees their own appointments.
    let patient = summary["patient_logins"][0]
        .as_str()
        .context("a patient login")?;
    let token = s.login(patient, PASSWORD).await?;
    let me = anamnesis_tests::fixtures::user_id_of(&token)?;
    assert!(!me.is_empty());
    s.stop().await
}

async fn the_same_seed_gives_the_same_clinic(backend: Backend) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (db, dir, _temp) = database(backend).await?;
        let summary = seed(&db, &dir, "11").await?;
        let url = db.url.clone();
        let s = TestServer::start_on(db, url, &[]).await?;
        let min = vec![("X-Min-Position", summary["position"].to_string())];
        let desk = s.login("seed11-desk-001", PASSWORD).await?;
        let names = names(&s, &desk, &min).await?;
        s.stop().await?;
        seen.push((summary["counts"].clone(), names));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].1.len(), 20);
    Ok(())
}

on_both_backends!(
    a_seeded_clinic_answers_over_the_api,
    the_same_seed_gives_the_same_clinic
);
