//! Relay throughput (ADR 0018): fills a fresh database with N events
//! through the real writer (each its own stream, as registrations are),
//! then times the relay publishing the whole log to a fresh JetStream
//! stream on the NATS server, until its checkpoint reaches the head. The
//! same-run baseline publishes N messages of the same size to another
//! fresh stream with plain pipelined JetStream publishes (same window, no
//! log reads, no ordering guard, no checkpoint): the ratio is what the
//! relay's own work costs.
//!
//! cargo build --release -p anamnesis-tests
//! target/release/bench-relay --events 100000 [--backend sqlite]
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anamnesis_commands::log::{Actor, AppendRequest, EventMetadata, NewEvent};
use anamnesis_commands::EventLog;
use anamnesis_projections::relay::{self, RelayConfig};
use anamnesis_projections::runner::Report;
use anamnesis_tests::db::{Backend, TestDb};
use clap::Parser;
use tokio::sync::watch;

#[derive(Debug, Parser)]
struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 100_000)]
    events: i64,
    /// `postgres` or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

fn request(n: i64) -> AppendRequest {
    AppendRequest {
        aggregate_type: "bench".into(),
        aggregate_id: uuid::Uuid::now_v7().to_string(),
        expected_sequence: 0,
        events: vec![NewEvent {
            event_type: "bench.happened".into(),
            event_version: "1".into(),
            payload: serde_json::json!({"n": n, "text": "x".repeat(200)}),
        }],
        metadata: EventMetadata::by(Actor::new(uuid::Uuid::now_v7().to_string(), "doctor")),
        keys: Default::default(),
        credential: None,
        mfa: None,
        guards: Default::default(),
        patient_id: Some(uuid::Uuid::now_v7()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = match args.backend.as_str() {
        "sqlite" => Backend::Sqlite,
        _ => Backend::Postgres,
    };
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let started = Instant::now();
    let mut n = 0;
    while n < args.events {
        let chunk: Vec<AppendRequest> = (n..(n + 1000).min(args.events)).map(request).collect();
        n += chunk.len() as i64;
        log.append_atomic(chunk).await?;
    }
    println!(
        "filled {} events in {:.1} s ({})",
        args.events,
        started.elapsed().as_secs_f64(),
        args.backend
    );

    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut config = RelayConfig::new(args.nats.clone());
    config.stream = format!("BENCH_{tag}");
    config.prefix = format!("b{tag}");
    let (stop, stopped) = watch::channel(false);
    let (progress, mut progress_rx) = watch::channel(0);
    let (failure, failure_rx) = watch::channel(None);
    let (active, _active_rx) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(relay::run(
        log.reader(),
        t.db.clone(),
        config.clone(),
        Report {
            progress,
            failure,
            active,
        },
        stopped,
    ));
    while *progress_rx.borrow_and_update() < args.events {
        if let Some(f) = failure_rx.borrow().clone() {
            anyhow::bail!("the relay failed: {}", f.error);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), progress_rx.changed()).await;
    }
    let relay_seconds = started.elapsed().as_secs_f64();
    stop.send_replace(true);
    let _ = task.await;

    // Baseline: the same number of messages of the same size, plain
    // pipelined publishes with the same window.
    let client = async_nats::connect(&args.nats).await?;
    let js = async_nats::jetstream::new(client);
    let baseline_stream = format!("BASE_{tag}");
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: baseline_stream.clone(),
        subjects: vec![format!("base{tag}.>")],
        ..Default::default()
    })
    .await?;
    let body = bytes_of_envelope(&log).await?;
    let started = Instant::now();
    let mut waiting = VecDeque::new();
    for _ in 0..args.events {
        let ack = js
            .publish(format!("base{tag}.bench.happened"), body.clone().into())
            .await?;
        waiting.push_back(ack);
        if waiting.len() >= config.in_flight {
            if let Some(a) = waiting.pop_front() {
                a.await?;
            }
        }
    }
    while let Some(a) = waiting.pop_front() {
        a.await?;
    }
    let baseline_seconds = started.elapsed().as_secs_f64();

    let rate = |s: f64| args.events as f64 / s;
    println!(
        "relay:    {:>9.0} events/s ({} events in {relay_seconds:.1} s, read from the log, ordered, checkpointed)",
        rate(relay_seconds),
        args.events
    );
    println!(
        "baseline: {:>9.0} messages/s (plain pipelined JetStream publishes, same size and window)",
        rate(baseline_seconds)
    );
    println!(
        "ratio:    {:.2}x the baseline",
        baseline_seconds / relay_seconds
    );
    js.delete_stream(&config.stream).await?;
    js.delete_stream(&baseline_stream).await?;
    t.cleanup().await
}

/// A message body the size of the relay's: an envelope of a stored event.
async fn bytes_of_envelope(log: &EventLog) -> anyhow::Result<Vec<u8>> {
    let first = log.reader().read_from(0, 1).await?;
    let e = first
        .first()
        .ok_or_else(|| anyhow::anyhow!("an empty log"))?;
    Ok(serde_json::to_vec(&serde_json::json!({
        "event_id": e.event_id, "position": e.global_position,
        "aggregate_type": e.aggregate_type, "aggregate_id": e.aggregate_id,
        "sequence": e.sequence, "event_type": e.event_type, "event_version": e.event_version,
        "recorded_at": e.recorded_at, "actor_id": e.actor_id, "actor_role": e.actor_role,
        "patient_id": e.patient_id,
    }))?)
}
