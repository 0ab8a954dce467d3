//! Append throughput and latency: single-event commands through the command
//! layer (group commit), next to two baselines measured in the same run, each
//! with the same number of tasks writing plain INSERTs into a table of the
//! same shape as `events`:
//! - one single-row INSERT per transaction;
//! - one multi-row INSERT per transaction, of as many rows as the writer's
//!   average batch in this run (events per transaction of the register
//!   phase, counted from the log: a batch's events share one `recorded_at`):
//!   what the same commits could carry without the head lock, hashing,
//!   stream checks and the command layer.
//!
//! cargo run --release -p anamnesis-tests --bin bench-append -- --concurrency 64 --seconds 20
#![forbid(unsafe_code)]

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::{Actor, Db, EventLog, EventMetadata};
use anamnesis_domain::patient::{DemographicsInput, Patient, PatientCommand, Sex};
use std::sync::Arc;

use anamnesis_tests::baseline::{baseline, baseline_table, head, payload};
use anamnesis_tests::bench::{closed_loop, Figures};
use anamnesis_tests::db::{Backend, TestDb};
use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent tasks in each phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per phase (after one second of warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// `postgres` (a fresh database on TEST_DATABASE_URL's server) or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
}

/// The baseline of `rows`-row INSERTs, one per transaction: its figures
/// count rows (its latency is one INSERT's).
async fn multi_row_baseline(db: &Db, args: &Args, rows: usize) -> anyhow::Result<Figures> {
    const COLUMNS: &str = "INSERT INTO bench_baseline (event_id, aggregate_type, aggregate_id, \
        sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, actor_role, \
        prev_hash, hash) VALUES ";
    // Postgres wants the payload cast to its `json` column; SQLite knows no casts.
    let cast = if matches!(db, Db::Postgres(_)) {
        "::json"
    } else {
        ""
    };
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let n = r * 5;
            format!(
                "(${}, 'patient', ${}, 1, 'patient.registered', '1', ${}{cast}, '{{}}', ${}, \
                 'bench', 'staff', ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 5
            )
        })
        .collect();
    let insert: Arc<str> = format!("{COLUMNS}{}", values.join(", ")).into();
    let db = db.clone();
    let name = "baseline: 1 multi-row INSERT per transaction";
    let mut figures = closed_loop(name, args.concurrency, args.seconds, move |i| {
        let (db, insert) = (db.clone(), insert.clone());
        async move {
            let (now, hash) = (chrono::Utc::now(), vec![7u8; 32]);
            match &db {
                Db::Postgres(p) => {
                    let mut q = sqlx::query(&insert);
                    for r in 0..rows {
                        let id = uuid::Uuid::now_v7();
                        q = q.bind(id).bind(id.to_string()).bind(payload(i + r as u64));
                        q = q.bind(now).bind(hash.clone());
                    }
                    q.execute(p).await?;
                }
                Db::Sqlite(p) => {
                    let mut q = sqlx::query(&insert);
                    for r in 0..rows {
                        let id = uuid::Uuid::now_v7().to_string();
                        q = q.bind(id.clone()).bind(id).bind(payload(i + r as u64));
                        q = q.bind(now).bind(hash.clone());
                    }
                    q.execute(p).await?;
                }
            }
            Ok(())
        }
    })
    .await?;
    figures.ops *= rows as u64;
    Ok(figures)
}

/// Events per transaction the writer committed in the log's positions
/// after `after` (a batch's events share one `recorded_at`), and how many
/// events that is.
async fn average_batch(db: &Db, after: i64) -> anyhow::Result<(f64, i64)> {
    const SQL: &str = "SELECT COUNT(*), COUNT(DISTINCT recorded_at) FROM events \
        WHERE global_position > $1";
    let (events, batches): (i64, i64) = match db {
        Db::Postgres(p) => sqlx::query_as(SQL).bind(after).fetch_one(p).await?,
        Db::Sqlite(p) => sqlx::query_as(SQL).bind(after).fetch_one(p).await?,
    };
    anyhow::ensure!(batches > 0, "the writer committed nothing");
    Ok((events as f64 / batches as f64, events))
}

async fn group_commit(db: &Db, args: &Args) -> anyhow::Result<Figures> {
    let bus = CommandBus::new(EventLog::open(db.clone()).await?);
    let meta = EventMetadata::by(Actor::new("bench", "staff"));
    let today = NaiveDate::from_ymd_opt(2026, 11, 23).context("date")?;
    closed_loop(
        "anamnesis: command layer, group commit",
        args.concurrency,
        args.seconds,
        move |i| {
            let (bus, meta) = (bus.clone(), meta.clone());
            async move {
                let id = uuid::Uuid::now_v7().to_string();
                let command = PatientCommand::Register {
                    demographics: DemographicsInput {
                        family_name: "Bench".into(),
                        given_name: format!("N{i}"),
                        birth_date: NaiveDate::from_ymd_opt(1980, 1, 1).context("date")?,
                        sex: Some(Sex::Unknown),
                        ..DemographicsInput::default()
                    },
                    user_id: None,
                    today,
                };
                bus.execute::<Patient>(&id, command, &(), &meta).await?;
                Ok(())
            }
        },
    )
    .await
}

/// Demographics updates on existing patients: every command reads its stream
/// first. Patients are seeded first, many enough that streams stay short.
async fn update_existing(db: &Db, args: &Args) -> anyhow::Result<Figures> {
    const PATIENTS: usize = 20_000;
    eprintln!("seeding {PATIENTS} patients for the update phase");
    let log = EventLog::open(db.clone()).await?;
    let meta = EventMetadata::by(Actor::new("bench", "staff"));
    let today = NaiveDate::from_ymd_opt(2026, 11, 23).context("date")?;
    let demographics = move |family: String| DemographicsInput {
        family_name: family,
        given_name: "Bench".into(),
        birth_date: NaiveDate::from_ymd_opt(1980, 1, 1).unwrap_or(today),
        sex: Some(Sex::Unknown),
        ..DemographicsInput::default()
    };
    let bus = CommandBus::new(log);
    let ids: Vec<String> = (0..PATIENTS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    for chunk in ids.chunks(500) {
        let seeded = chunk.iter().map(|id| {
            let command = PatientCommand::Register {
                demographics: demographics("Seed".into()),
                user_id: None,
                today,
            };
            let (bus, meta) = (bus.clone(), meta.clone());
            async move { bus.create::<Patient>(id, command, &(), &meta).await }
        });
        for r in futures::future::join_all(seeded).await {
            r?;
        }
    }
    let ids = Arc::new(ids);
    closed_loop(
        "anamnesis: update existing",
        args.concurrency,
        args.seconds,
        move |i| {
            let (bus, meta, ids) = (bus.clone(), meta.clone(), ids.clone());
            let command = PatientCommand::UpdateDemographics {
                demographics: demographics(format!("U{i}")),
                today,
            };
            async move {
                let id = &ids[(i.wrapping_mul(2654435761) % ids.len() as u64) as usize];
                bus.execute::<Patient>(id, command, &(), &meta).await?;
                Ok(())
            }
        },
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let backend = match args.backend.as_str() {
        "postgres" => Backend::Postgres,
        "sqlite" => Backend::Sqlite,
        other => anyhow::bail!("--backend must be postgres or sqlite, not {other}"),
    };
    // Both phases share one pool with a connection per task (Postgres allows 100).
    let t = TestDb::with_pool(backend, args.concurrency.clamp(2, 90) as u32)
        .await
        .context("creating the benchmark database")?;
    baseline_table(&t.db).await?;
    let base = baseline(&t.db, args.concurrency, args.seconds).await?;
    let before = head(&t.db).await?;
    let ours = group_commit(&t.db, &args).await?;
    let (batch, _) = average_batch(&t.db, before).await?;
    let rows = (batch.round() as usize).max(1);
    let multi = multi_row_baseline(&t.db, &args, rows).await?;
    let before = head(&t.db).await?;
    let updates = update_existing(&t.db, &args).await?;
    // The update phase's log also holds its seeding (batches of up to 500).
    let (update_batch, _) = average_batch(&t.db, before + 20_000).await?;
    println!();
    println!(
        "backend {}, {} tasks, {} s per phase",
        args.backend, args.concurrency, args.seconds
    );
    println!(
        "writer's average batch: register {batch:.1} events/transaction, \
         update {update_batch:.1} (warm-up second included)"
    );
    base.print("baseline: 1 INSERT per transaction", "events");
    multi.print(
        &format!("baseline: 1 INSERT of {rows} rows per transaction"),
        "events",
    );
    ours.print("anamnesis: register (new stream)", "events");
    updates.print("anamnesis: update (load, decide, append)", "events");
    for (name, ours) in [("register", &ours), ("update", &updates)] {
        println!(
            "ratio (anamnesis {name} / baseline events/s): {:.2} to 1-row INSERTs, \
             {:.2} to {rows}-row INSERTs",
            ours.rate() / base.rate(),
            ours.rate() / multi.rate()
        );
    }
    t.cleanup().await
}
