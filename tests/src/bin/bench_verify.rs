//! Chain verification throughput (ADR 0009): fills a fresh Postgres database
//! with a chained log of N events (rows with correct hashes computed here
//! and bulk-inserted, as the writer does, in large batches), then times
//! `anamnesis_replay::verify` over it, and the real `anamnesis replay verify`
//! and `anamnesis rebuild --all`.
//! One event in 500 is about one patient (2,000 among 1,000,000: a
//! registration, then demographics updates), whose history and as-of are
//! timed too (ADR 0010).
//!
//! cargo build --release -p anamnesis-api -p anamnesis-tests
//! target/release/bench-verify --events 1000000 --cli target/release/anamnesis
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anamnesis_commands::log::chain::{event_hash, GENESIS};
use anamnesis_commands::{Db, LogReader, StoredEvent};
use anamnesis_tests::db::{Backend, TestDb};
use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Events per insert transaction while filling.
    #[arg(long, default_value_t = 10_000)]
    batch: i64,
    /// The `anamnesis` binary to time as well (a release build).
    #[arg(long)]
    cli: Option<PathBuf>,
    /// Keep the database afterwards (its URL is printed).
    #[arg(long)]
    keep: bool,
    /// Every Nth event is about the one patient whose history is timed.
    #[arg(long, default_value_t = 500)]
    patient_every: i64,
    /// Timed history and as-of calls.
    #[arg(long, default_value_t = 20)]
    repeats: usize,
}

/// The `k`th event (from 0) of the timed patient's record: a registration,
/// then demographics updates that change the phone number.
fn patient_event(k: i64) -> anyhow::Result<(String, String)> {
    use anamnesis_domain::codec::StoredForm;
    use anamnesis_domain::patient::{parse_demographics, DemographicsInput, PatientEvent};
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).context("date")?;
    let input = DemographicsInput {
        family_name: "Bench".into(),
        given_name: "Patient".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1970, 1, 1).context("date")?,
        phone: Some(format!("+1 555 {k:06}")),
        ..Default::default()
    };
    let demographics = parse_demographics(&input, today).map_err(|e| anyhow::anyhow!("{e}"))?;
    let event = if k == 0 {
        PatientEvent::PatientRegistered {
            demographics,
            user_id: None,
        }
    } else {
        PatientEvent::DemographicsUpdated { demographics }
    };
    let stored = event.to_stored().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((stored.event_type, stored.payload.to_string()))
}

/// Event `position` of the synthetic log: ten events per patient stream,
/// a payload of a realistic size (about 300 bytes), no real data.
fn event(position: i64, stream: &str, recorded_at: chrono::DateTime<chrono::Utc>) -> StoredEvent {
    let payload = format!(
        "{{\"type\":\"bench.filled\",\"data\":{{\"n\":{position},\"note\":\"{}\",\
         \"codes\":[\"A{:04}\",\"B{:04}\"],\"flag\":true}}}}",
        "x".repeat(220),
        position % 10_000,
        (position * 7) % 10_000
    );
    StoredEvent {
        global_position: position,
        event_id: uuid::Uuid::now_v7(),
        aggregate_type: "bench".into(),
        aggregate_id: stream.to_owned(),
        sequence: (position - 1) % 10 + 1,
        event_type: "bench.filled".into(),
        event_version: "1".into(),
        payload,
        metadata: "{}".into(),
        recorded_at,
        actor_id: "bench".into(),
        actor_role: "admin".into(),
        reason: None,
        correlation_id: None,
        causation_id: None,
        patient_id: None,
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

async fn fill(db: &Db, args: &Args, patient: uuid::Uuid) -> anyhow::Result<()> {
    let Db::Postgres(pool) = db else {
        anyhow::bail!("the benchmark runs on Postgres");
    };
    let now = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
        .context("now")?;
    let mut prev = GENESIS.to_vec();
    let mut stream = String::new();
    let mut position = 0;
    let started = Instant::now();
    while position < args.events {
        let end = (position + args.batch).min(args.events);
        let mut rows = Vec::with_capacity((end - position) as usize);
        for p in position + 1..=end {
            if (p - 1) % 10 == 0 {
                stream = uuid::Uuid::now_v7().to_string();
            }
            let mut e = event(p, &stream, now);
            if p % args.patient_every == 0 {
                let k = p / args.patient_every - 1;
                let (event_type, payload) = patient_event(k)?;
                e.aggregate_type = "patient".into();
                e.aggregate_id = patient.to_string();
                e.sequence = k + 1;
                e.event_type = event_type;
                e.payload = payload;
                e.patient_id = Some(patient);
            }
            e.prev_hash = prev;
            e.hash = event_hash(&e.prev_hash, &e).to_vec();
            prev = e.hash.clone();
            rows.push(e);
        }
        let col = |f: fn(&StoredEvent) -> String| rows.iter().map(f).collect::<Vec<_>>();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
                 sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
                 actor_role, prev_hash, hash, patient_id) \
             SELECT p, e, at, ai, s, et, ev, pl::json, md::json, ra, ac, ar, ph, h, pa \
             FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], \
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], \
                         $11::text[], $12::text[], $13::bytea[], $14::bytea[], $15::uuid[]) \
                  AS t(p, e, at, ai, s, et, ev, pl, md, ra, ac, ar, ph, h, pa)",
        )
        .bind(rows.iter().map(|r| r.global_position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind(col(|r| r.aggregate_type.clone()))
        .bind(col(|r| r.aggregate_id.clone()))
        .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
        .bind(col(|r| r.event_type.clone()))
        .bind(col(|r| r.event_version.clone()))
        .bind(col(|r| r.payload.clone()))
        .bind(col(|r| r.metadata.clone()))
        .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
        .bind(col(|r| r.actor_id.clone()))
        .bind(col(|r| r.actor_role.clone()))
        .bind(rows.iter().map(|r| r.prev_hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.patient_id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE log_head SET position = $1, hash = $2 WHERE id = 1")
            .bind(end)
            .bind(&prev)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        position = end;
    }
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    println!(
        "filled {} events in {:.1} s",
        args.events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t = TestDb::new(Backend::Postgres).await?;
    let url = t.url.clone().context("a Postgres URL")?;
    let patient = uuid::Uuid::now_v7();
    fill(&t.db, &args, patient).await?;

    let reader = LogReader::detached(t.db.clone());
    let started = Instant::now();
    let verified = anamnesis_replay::verify(&reader, None, &[], &mut |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "library: verified {} events up to position {} in {seconds:.2} s: {:.0} events/s",
        verified.events,
        verified.head.position,
        verified.events as f64 / seconds
    );

    if let Some(cli) = &args.cli {
        let data_dir = tempfile::tempdir()?;
        let started = Instant::now();
        let out = tokio::process::Command::new(cli)
            .args(["--database-url", &url, "--data-dir"])
            .arg(data_dir.path())
            .args(["replay", "verify"])
            .output()
            .await
            .with_context(|| format!("running {}", cli.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "replay verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("cli: {}", String::from_utf8_lossy(&out.stdout));
        println!(
            "cli: whole process (connect, schema check, verify) {seconds:.2} s: {:.0} events/s",
            args.events as f64 / seconds
        );

        // Every read model rebuilt from the whole log (ADR 0014): `activity`
        // folds every event, the others their own types. First into empty
        // read models (every row is new), then again over them (as on a
        // running clinic: the swap writes only what differs).
        for when in ["into empty read models", "over the read models in place"] {
            let started = Instant::now();
            let out = tokio::process::Command::new(cli)
                .args(["--database-url", &url, "--data-dir"])
                .arg(data_dir.path())
                .args(["rebuild", "--all"])
                .output()
                .await
                .with_context(|| format!("running {}", cli.display()))?;
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                out.status.success(),
                "rebuild failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            print!("cli: {}", String::from_utf8_lossy(&out.stdout));
            println!(
                "cli: rebuild --all {when}, whole process {seconds:.2} s: {:.0} log events/s",
                args.events as f64 / seconds
            );
        }
    }
    let reader = LogReader::detached(t.db.clone());
    let head = reader.head().await?;
    let mut history = Vec::new();
    let mut as_of = Vec::new();
    let mut entries = 0;
    for i in 0..args.repeats {
        let started = Instant::now();
        entries = anamnesis_replay::history::history(&reader, patient, None, None)
            .await?
            .len();
        history.push(started.elapsed().as_secs_f64() * 1000.0);
        // As of the head, and as of the middle of the log, alternately.
        let point = if i % 2 == 0 { head } else { head / 2 };
        let started = Instant::now();
        let record = anamnesis_replay::as_of::as_of(
            &reader,
            patient,
            anamnesis_replay::as_of::Point::Position(point),
        )
        .await?;
        as_of.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(record.patient.is_some(), "as-of found no record");
    }
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * q).round() as usize]
    };
    println!(
        "history of a patient with {entries} events among {head}: p50 {:.1} ms, p99 {:.1} ms ({} runs)",
        pct(&mut history, 0.5),
        pct(&mut history, 0.99),
        args.repeats
    );
    println!(
        "as-of (at the head and at mid-log, alternately): p50 {:.1} ms, p99 {:.1} ms ({} runs)",
        pct(&mut as_of, 0.5),
        pct(&mut as_of, 0.99),
        args.repeats
    );
    if args.keep {
        println!("kept the database: {url}");
    } else {
        t.cleanup().await?;
    }
    Ok(())
}
