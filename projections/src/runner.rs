//! The catch-up projection runner.
//!
//! A projector reads the log after its checkpoint in batches and commits its
//! output together with its new checkpoint, in one transaction: a crash at any
//! point leaves the read model and the checkpoint consistent, so a restart
//! neither loses nor repeats an event. It wakes when the log grows (in-process
//! signal, NOTIFY on Postgres) and also polls slowly, in case a wake-up was missed.

use std::future::Future;
use std::time::Duration;

use anamnesis_commands::{Db, EventLog, StoreError, StoredEvent};
use chrono::Utc;
use tokio::sync::watch;

/// One open read-model transaction, on whichever backend the log is on.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Runs the same statement on either backend and returns the rows affected:
/// `execute_on!(tx, sqlx::query("...").bind(x))`. For SQL that both dialects
/// accept (`$n` parameters, `ON CONFLICT`); write two statements where they differ.
#[macro_export]
macro_rules! execute_on {
    ($tx:expr, $query:expr) => {
        match $tx {
            $crate::runner::Tx::Postgres(c) => {
                $query.execute(&mut **c).await.map(|r| r.rows_affected())
            }
            $crate::runner::Tx::Sqlite(c) => {
                $query.execute(&mut **c).await.map(|r| r.rows_affected())
            }
        }
    };
}

/// Why a projector could not apply an event. The batch is rolled back and
/// retried; the checkpoint does not move past an event that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} cannot be projected: {detail}")]
    Event { position: i64, detail: String },
}

/// Builds one read model from the log.
pub trait Projector: Send + Sync + 'static {
    /// Stable name; the checkpoint is kept under it.
    fn name(&self) -> &'static str;

    /// Applies one event inside the batch's transaction. Must not call out of
    /// the database: the same code runs during a rebuild.
    fn apply(
        &self,
        tx: &mut Tx,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// How a runner pages and waits.
#[derive(Debug, Clone, Copy)]
pub struct RunnerConfig {
    /// Events per transaction.
    pub batch_size: i64,
    /// The slow poll, for wake-ups that never came.
    pub poll_interval: Duration,
    /// Wait after a failed batch before trying it again.
    pub retry_delay: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// The committed checkpoint of projector `name` (0 when it has none).
pub async fn checkpoint(db: &Db, name: &str) -> Result<i64, sqlx::Error> {
    let sql = "SELECT position FROM checkpoints WHERE name = $1";
    let found: Option<i64> = match db {
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(name).fetch_optional(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(name).fetch_optional(p).await?,
    };
    Ok(found.unwrap_or(0))
}

/// Why a projector is stuck: the first event it could not get past, and
/// what went wrong (never patient data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The projector's committed checkpoint: it is stuck on the event after it.
    pub checkpoint: i64,
    /// What failed.
    pub error: String,
}

/// Runs `projector` until `shutdown` turns true, publishing the committed
/// checkpoint on `progress` after every batch.
pub async fn run<P: Projector>(
    log: EventLog,
    projector: P,
    config: RunnerConfig,
    progress: watch::Sender<i64>,
    shutdown: watch::Receiver<bool>,
) {
    let (failure, _) = watch::channel(None);
    run_reporting(log, projector, config, progress, failure, shutdown).await
}

/// [`run`], also publishing on `failure` whether the projector is stuck. A
/// batch that fails is retried (with growing pauses, up to 30 s) and never
/// skipped: the checkpoint does not move past an event that cannot be applied.
pub async fn run_reporting<P: Projector>(
    log: EventLog,
    projector: P,
    config: RunnerConfig,
    progress: watch::Sender<i64>,
    failure: watch::Sender<Option<Failure>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = projector.name();
    let mut wake = log.subscribe();
    let mut pause = config.retry_delay;
    // Read-your-writes works from the first moment: publish what is committed.
    if let Ok(committed) = checkpoint(log.db(), name).await {
        progress.send_if_modified(|p| advance(p, committed));
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let stepped = step(&log, &projector, config.batch_size).await;
        if stepped.is_ok() && failure.borrow().is_some() {
            // Any step that succeeds, with or without events, clears a failure.
            tracing::info!(projector = name, "projector recovered");
            metrics::gauge!("anamnesis_projection_failing", "projection" => name).set(0.0);
            failure.send_replace(None);
            pause = config.retry_delay;
        }
        match stepped {
            Ok(Some(position)) => {
                progress.send_if_modified(|p| advance(p, position));
                continue;
            }
            Ok(None) => {
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(error) => {
                let at = *progress.borrow();
                tracing::error!(
                    projector = name,
                    checkpoint = at,
                    %error,
                    "projection batch failed; the projector is stuck until it can apply the next event"
                );
                metrics::counter!("anamnesis_projection_failures_total", "projection" => name)
                    .increment(1);
                metrics::gauge!("anamnesis_projection_failing", "projection" => name).set(1.0);
                failure.send_replace(Some(Failure {
                    checkpoint: at,
                    error: error.to_string(),
                }));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Moves a published position forward, never back.
fn advance(published: &mut i64, position: i64) -> bool {
    let newer = position > *published;
    if newer {
        *published = position;
    }
    newer
}

/// Projects one batch. Returns the new checkpoint, or `None` when caught up.
pub async fn step<P: Projector>(
    log: &EventLog,
    projector: &P,
    batch_size: i64,
) -> Result<Option<i64>, ProjectionError> {
    let name = projector.name();
    let db = log.db();
    let seen = checkpoint(db, name).await?;
    let events = log.read_from(seen, batch_size).await?;
    let Some(last) = events.last().map(|e| e.global_position) else {
        return Ok(None);
    };
    let mut tx = begin(db).await?;
    // Re-read the checkpoint under the transaction's lock: if another runner of
    // the same projector committed meanwhile, this batch is stale.
    let locked = locked_checkpoint(&mut tx, name).await?;
    if locked != seen {
        return Ok(Some(locked));
    }
    for event in &events {
        projector.apply(&mut tx, event).await?;
    }
    let now = Utc::now();
    execute_on!(
        &mut tx,
        sqlx::query("UPDATE checkpoints SET position = $2, updated_at = $3 WHERE name = $1")
            .bind(name)
            .bind(last)
            .bind(now)
    )?;
    match tx {
        Tx::Postgres(t) => t.commit().await?,
        Tx::Sqlite(t) => t.commit().await?,
    }
    Ok(Some(last))
}

async fn begin(db: &Db) -> Result<Tx, sqlx::Error> {
    Ok(match db {
        Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        // IMMEDIATE: take SQLite's write lock now, not at the first write, so
        // the checkpoint read below cannot go stale before the commit.
        Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
    })
}

async fn locked_checkpoint(tx: &mut Tx, name: &str) -> Result<i64, sqlx::Error> {
    let now = Utc::now();
    execute_on!(
        &mut *tx,
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING"
        )
        .bind(name)
        .bind(now)
    )?;
    match tx {
        Tx::Postgres(c) => {
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_one(&mut **c)
                .await
        }
        Tx::Sqlite(c) => {
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
                .bind(name)
                .fetch_one(&mut **c)
                .await
        }
    }
}
