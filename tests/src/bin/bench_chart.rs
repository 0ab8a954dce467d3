//! The clinical record under load: entry writes (vital signs and lab
//! results by the patient's doctor) at the maximum rate and at half of it,
//! timeline reads (the first page, 50 entries) of a patient with 500
//! entries, prescriptions (each checked against the patient's recorded
//! penicillin allergy and fenced on their record, ADR 0015), and messages
//! from a patient to their doctor timed from the command to the doctor's
//! inbox (the inbox read at the position the post answered: ADR 0019). A real server on a fresh database, spoken to over TCP; every
//! write and read goes through the care-team check and every read is
//! recorded in the access log, as in production. The baseline is the same
//! server's patient point read, measured in the same run.
//!
//! cargo run --release -p anamnesis-tests --bin bench-chart -- --clients 64 --seconds 10
//! cargo run --release -p anamnesis-tests --bin bench-chart -- --nats nats://127.0.0.1:4222
#![forbid(unsafe_code)]

use std::sync::Arc;

use anamnesis_tests::bench::{closed_loop, open_loop, BenchServer, Figures};
use anamnesis_tests::db::Backend;
use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients in the maximum-rate runs.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Entries on the patient whose timeline is read.
    #[arg(long, default_value_t = 500)]
    entries: usize,
    /// Patients the writes spread over (each in the doctor's care).
    #[arg(long, default_value_t = 200)]
    patients: usize,
    /// `postgres` or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// A NATS server (`nats://127.0.0.1:4222`): the inbox's consumers are
    /// then fed by the relay's stream (a stream of this run's own, deleted
    /// after), not by the log (ADR 0020).
    #[arg(long)]
    nats: Option<String>,
}

const PASSWORD: &str = "benchmark password";

fn patient(i: usize) -> Value {
    json!({"family_name": format!("Chart{i}"), "given_name": "Load", "birth_date": "1970-01-01",
           "identifiers": [{"system": "mrn", "value": format!("C-{i}")}]})
}

/// An entry: vital signs or a lab result, alternately.
fn entry(i: u64) -> Value {
    let at = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    if i.is_multiple_of(2) {
        json!({"kind": "vitals", "taken_at": at, "heart_rate_bpm": 60 + (i % 40),
               "systolic_mmhg": 120, "diastolic_mmhg": 80})
    } else {
        json!({"kind": "lab", "test": "Potassium", "loinc": "2823-3", "value": 4.1,
               "unit": "mmol/L", "interpretation": "normal", "specimen_at": at})
    }
}

async fn call(
    server: &BenchServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let (status, r) = server.call(method, path, Some(token), body, &[]).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{method} {path}: {status} {r}"
    );
    Ok(r)
}

/// A GET whose answer is read but not parsed: the load generator shares
/// the machine's two cores with the server, and parsing a 50-entry page
/// would be its cost, not the server's.
async fn fetch(server: &BenchServer, path: &str, token: &str) -> anyhow::Result<()> {
    let r = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let _ = r.bytes().await?;
    anyhow::ensure!(status.is_success(), "GET {path}: {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = match args.backend.as_str() {
        "postgres" => Backend::Postgres,
        "sqlite" => Backend::Sqlite,
        other => anyhow::bail!("--backend must be postgres or sqlite, not {other}"),
    };
    let stream = format!("BENCH_{}", uuid::Uuid::now_v7().simple());
    let extra: Vec<String> = match &args.nats {
        Some(url) => [
            "--nats-url",
            url,
            "--nats-stream",
            &stream,
            "--nats-subject-prefix",
            &stream.to_lowercase(),
            "--nats-max-bytes",
            "1073741824",
        ]
        .map(str::to_owned)
        .to_vec(),
        None => Vec::new(),
    };
    let server = Arc::new(BenchServer::start_with(backend, args.clients, &extra).await?);
    let admin = server.admin(PASSWORD).await?;
    let new_user = json!({"username": "dr.bench", "password": PASSWORD, "role": "doctor"});
    call(&server, "POST", "/v1/users", &admin, Some(&new_user)).await?;
    let doctor = Arc::new(server.login("dr.bench", PASSWORD).await?);

    // Patients registered by the doctor are in the doctor's care.
    eprintln!(
        "seeding: {} patients, {} entries on the first",
        args.patients, args.entries
    );
    let mut patients = Vec::with_capacity(args.patients);
    for i in 0..args.patients.max(1) {
        let r = call(&server, "POST", "/v1/patients", &doctor, Some(&patient(i))).await?;
        patients.push(r["id"].as_str().context("patient id")?.to_owned());
    }
    for p in &patients {
        let allergy = json!({"substance": "Penicillin", "reaction": "rash", "severity": "mild"});
        call(
            &server,
            "POST",
            &format!("/v1/patients/{p}/allergies"),
            &doctor,
            Some(&allergy),
        )
        .await?;
    }
    let patients = Arc::new(patients);
    let heavy = patients[0].clone();
    let mut last = Value::Null;
    for i in 0..args.entries {
        let path = format!("/v1/patients/{heavy}/chart");
        last = call(&server, "POST", &path, &doctor, Some(&entry(i as u64))).await?;
    }
    let position = last["position"].to_string();
    let timeline = format!("/v1/patients/{heavy}/chart?limit=50");
    let (status, page) = server
        .call(
            "GET",
            &timeline,
            Some(&doctor),
            None,
            &[("X-Min-Position", position)],
        )
        .await?;
    anyhow::ensure!(status == 200, "timeline: {status} {page}");
    anyhow::ensure!(
        page["items"].as_array().map(Vec::len) == Some(50.min(args.entries)),
        "the timeline's first page is not full: {page}"
    );

    let write = {
        let (server, doctor, patients) = (server.clone(), doctor.clone(), patients.clone());
        move |i: u64| {
            let (server, doctor, patients) = (server.clone(), doctor.clone(), patients.clone());
            async move {
                // Spread over every patient but the one whose timeline is read.
                let n = patients.len().max(2) - 1;
                let p = &patients[1 + ((i ^ (i >> 32)) as usize).wrapping_mul(2_654_435_761) % n];
                let path = format!("/v1/patients/{p}/chart");
                call(&server, "POST", &path, &doctor, Some(&entry(i)))
                    .await
                    .map(|_| ())
            }
        }
    };
    let read = {
        let (server, doctor, timeline) = (server.clone(), doctor.clone(), timeline.clone());
        move |_: u64| {
            let (server, doctor, timeline) = (server.clone(), doctor.clone(), timeline.clone());
            async move { fetch(&server, &timeline, &doctor).await }
        }
    };
    // One drug per call over both runs: never a duplicate.
    let drugs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let prescribe = {
        let (server, doctor, patients) = (server.clone(), doctor.clone(), patients.clone());
        move |i: u64| {
            let (server, doctor, patients) = (server.clone(), doctor.clone(), patients.clone());
            let k = drugs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let n = patients.len().max(2) - 1;
                let p = &patients[1 + ((i ^ (i >> 32)) as usize).wrapping_mul(2_654_435_761) % n];
                let path = format!("/v1/patients/{p}/medications");
                let order = json!({"order": {
                    "medication": {"name": anamnesis_tests::fixtures::drug_name("Bench", k)},
                    "dose": {"amount": 250, "unit": "mg"}, "route": "oral",
                    "frequency": {"kind": "times_a_day", "times": ["08:00", "20:00"]},
                    "starts_at": chrono::Utc::now().to_rfc3339(), "duration_days": 7}});
                call(&server, "POST", &path, &doctor, Some(&order))
                    .await
                    .map(|_| ())
            }
        }
    };
    let baseline = {
        let (server, doctor, heavy) = (server.clone(), doctor.clone(), heavy.clone());
        move |_: u64| {
            let (server, doctor, heavy) = (server.clone(), doctor.clone(), heavy.clone());
            async move { fetch(&server, &format!("/v1/patients/{heavy}"), &doctor).await }
        }
    };

    let mut rows: Vec<(&str, Figures)> = Vec::new();
    let max = closed_loop(
        "entry writes: max",
        args.clients,
        args.seconds,
        write.clone(),
    )
    .await?;
    let half = max.rate() / 2.0;
    rows.push(("POST /v1/patients/{id}/chart, max", max));
    let at_half = open_loop("entry writes: half rate", half, args.seconds, 4096, write).await?;
    rows.push(("POST /v1/patients/{id}/chart, half rate", at_half));
    let max = closed_loop(
        "timeline reads: max",
        args.clients,
        args.seconds,
        read.clone(),
    )
    .await?;
    let half = max.rate() / 2.0;
    rows.push(("GET /v1/patients/{id}/chart (500 entries), max", max));
    let at_half = open_loop("timeline reads: half rate", half, args.seconds, 4096, read).await?;
    rows.push(("GET /v1/patients/{id}/chart, half rate", at_half));
    let max = closed_loop(
        "prescriptions: max",
        args.clients,
        args.seconds,
        prescribe.clone(),
    )
    .await?;
    let half = max.rate() / 2.0;
    rows.push(("POST /v1/patients/{id}/medications, max", max));
    let at_half = open_loop(
        "prescriptions: half rate",
        half,
        args.seconds,
        4096,
        prescribe,
    )
    .await?;
    rows.push(("POST /v1/patients/{id}/medications, half rate", at_half));
    // A patient writes to her doctor at a steady rate (a thread holds at
    // most 2,000 messages): each post, then the doctor's inbox read at the
    // position the post answered, is one sample of command-to-inbox time.
    let registered = json!({"username": "bench.patient", "password": PASSWORD,
                            "patient": patient(1_000_000)});
    let (status, r) = server
        .call("POST", "/v1/auth/register", None, Some(&registered), &[])
        .await?;
    anyhow::ensure!(status == 201, "registering the patient: {status} {r}");
    let writer_id = r["id"].as_str().context("patient id")?.to_owned();
    let writer = Arc::new(server.login("bench.patient", PASSWORD).await?);
    let desk = json!({"username": "bench.desk", "password": PASSWORD, "role": "staff"});
    call(&server, "POST", "/v1/users", &admin, Some(&desk)).await?;
    let desk = server.login("bench.desk", PASSWORD).await?;
    let doctor_user = anamnesis_tests::fixtures::user_id_of(&doctor)?;
    let team = json!({"user_id": doctor_user, "reason": "primary care"});
    let path = format!("/v1/patients/{writer_id}/care-team");
    call(&server, "POST", &path, &desk, Some(&team)).await?;
    let thread = json!({"patient_id": writer_id, "subject": "Questions",
                        "body": "Hello", "participants": [doctor_user]});
    let thread = call(&server, "POST", "/v1/threads", &writer, Some(&thread)).await?;
    let messages = Arc::new(format!(
        "/v1/threads/{}/messages",
        thread["id"].as_str().context("thread id")?
    ));
    let message = {
        let (server, writer, doctor, messages) = (
            server.clone(),
            writer.clone(),
            doctor.clone(),
            messages.clone(),
        );
        move |i: u64| {
            let (server, writer, doctor, messages) = (
                server.clone(),
                writer.clone(),
                doctor.clone(),
                messages.clone(),
            );
            async move {
                let body = json!({"body": format!("question {i}")});
                let posted = call(&server, "POST", &messages, &writer, Some(&body)).await?;
                let at = [("X-Min-Position", posted["position"].to_string())];
                let (status, inbox) = server
                    .call(
                        "GET",
                        "/v1/me/notifications?limit=1",
                        Some(&doctor),
                        None,
                        &at,
                    )
                    .await?;
                anyhow::ensure!(
                    status == 200 && inbox["items"][0]["kind"] == "new_message",
                    "the doctor's inbox: {status} {inbox}"
                );
                Ok(())
            }
        }
    };
    let rate = (1_500.0 / args.seconds as f64).min(50.0);
    let inbox = open_loop("message to inbox", rate, args.seconds, 4096, message).await?;
    rows.push(("message -> doctor's inbox (post + read)", inbox));
    let base = closed_loop(
        "baseline: patient read",
        args.clients,
        args.seconds,
        baseline,
    )
    .await?;
    rows.push(("baseline GET /v1/patients/{id}, max", base));

    println!(
        "\nbench-chart on {} ({} clients, {} s per run, timeline of {} entries, page of 50; inbox fed {})",
        args.backend,
        args.clients,
        args.seconds,
        args.entries,
        if args.nats.is_some() { "through NATS" } else { "from the log" }
    );
    let base_rate = rows.last().map(|(_, f)| f.rate()).unwrap_or(1.0);
    for (name, f) in &rows {
        f.print(name, "req");
    }
    if let Some((_, read)) = rows.get(2) {
        println!(
            "timeline read / patient read rate: {:.2}",
            read.rate() / base_rate.max(1e-9)
        );
    }
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await?,
        Err(_) => anyhow::bail!("the server is still shared"),
    }
    if let Some(url) = &args.nats {
        let client = async_nats::connect(url.as_str()).await?;
        async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await?;
    }
    Ok(())
}
