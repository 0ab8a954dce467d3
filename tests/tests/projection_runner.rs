//! The catch-up runner, killed mid-stream and restarted, holds each event once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use anamnesis_commands::{
    Actor, AppendRequest, Db, EventLog, EventMetadata, NewEvent, StoredEvent,
};
use anamnesis_projections::activity::Activity;
use anamnesis_projections::runner::{
    self, checkpoint, ProjectionError, Projector, RunnerConfig, Tx,
};
use anamnesis_tests::db::{Backend, TestDb};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_runner_killed_mid_stream_resumes_without_loss_or_repeat() {
    killed_mid_stream(Backend::Postgres).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_runner_killed_mid_stream_resumes_without_loss_or_repeat() {
    killed_mid_stream(Backend::Sqlite).await.unwrap()
}

/// The real projector, slowed down so that the kill lands inside a batch.
struct Slow(Activity);

impl Projector for Slow {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    async fn apply(&self, tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.apply(tx, event).await
    }
}

async fn append_events(log: &EventLog, prefix: &str, commands: usize) -> anyhow::Result<()> {
    let requests = (0..commands)
        .map(|i| AppendRequest {
            aggregate_type: "test".into(),
            aggregate_id: format!("{prefix}{i}"),
            expected_sequence: 0,
            events: (0..1 + i % 3)
                .map(|j| NewEvent {
                    event_type: "test.happened".into(),
                    event_version: "1".into(),
                    payload: serde_json::json!({ "j": j }),
                })
                .collect(),
            metadata: EventMetadata::by(Actor::new("user-1", "nurse")),
        })
        .collect();
    for r in log.append_many(requests).await {
        r?;
    }
    Ok(())
}

async fn activity_positions(db: &Db) -> anyhow::Result<Vec<i64>> {
    let sql = "SELECT global_position FROM activity ORDER BY global_position";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
    })
}

async fn wait_for(progress: &mut watch::Receiver<i64>, at_least: i64) -> anyhow::Result<()> {
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|p| *p >= at_least),
    )
    .await??;
    Ok(())
}

async fn killed_mid_stream(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    append_events(&log, "a", 300).await?;
    let head = log.head_position().await?;
    assert_eq!(head, 600);

    let config = RunnerConfig {
        batch_size: 25,
        ..RunnerConfig::default()
    };
    let (_stop, shutdown) = watch::channel(false);
    let (progress_tx, mut progress) = watch::channel(0);
    let task = tokio::spawn(runner::run(
        log.clone(),
        Slow(Activity),
        config,
        progress_tx,
        shutdown.clone(),
    ));
    wait_for(&mut progress, 100).await?;
    // Kill it: no shutdown signal, the task is dropped wherever it is,
    // normally inside a batch's open transaction.
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));

    let committed = checkpoint(&t.db, "activity").await?;
    assert!(
        committed >= 100 && committed < head,
        "killed at {committed}"
    );
    // What was committed is exactly the prefix up to the checkpoint.
    assert_eq!(
        activity_positions(&t.db).await?,
        (1..=committed).collect::<Vec<_>>()
    );

    // The log grows while the projector is down.
    append_events(&log, "b", 50).await?;
    let head = log.head_position().await?;

    let (progress_tx, mut progress) = watch::channel(0);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(runner::run(
        log.clone(),
        Activity,
        RunnerConfig::default(),
        progress_tx,
        shutdown,
    ));
    wait_for(&mut progress, head).await?;
    // New events after the restart are picked up too (woken, not polled).
    append_events(&log, "c", 10).await?;
    let head = log.head_position().await?;
    wait_for(&mut progress, head).await?;
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), task).await??;

    assert_eq!(
        activity_positions(&t.db).await?,
        (1..=head).collect::<Vec<_>>()
    );
    assert_eq!(checkpoint(&t.db, "activity").await?, head);
    // Each row matches its event.
    let events = log.read_from(0, head).await?;
    let sql = "SELECT aggregate_id FROM activity ORDER BY global_position";
    let ids: Vec<String> = match &t.db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
    };
    assert_eq!(
        ids,
        events
            .iter()
            .map(|e| e.aggregate_id.clone())
            .collect::<Vec<_>>()
    );
    // Caught up: one more step finds nothing to do.
    assert_eq!(runner::step(&log, &Activity, 100).await?, None);
    drop(log);
    t.cleanup().await
}
