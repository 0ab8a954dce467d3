//! Rebuilding a read model from the log while the server keeps serving
//! (ADR 0014): the projector folds every event from position 0 into shadow
//! tables (temporary tables of one database session, which its unqualified
//! table names resolve to first, on both backends), then one transaction
//! swaps their rows into the live tables and moves the checkpoint.
//!
//! The swap holds the projector's checkpoint row (Postgres: `FOR UPDATE`;
//! SQLite: the write lock of `BEGIN IMMEDIATE`), as every live batch now
//! does first (`runner::commit`): no batch writes the live tables while
//! they are replaced. Inside the swap, the shadow catches up with what the
//! live projector committed meanwhile, so the checkpoint never moves back.
//! Readers see the old rows until the commit and the rebuilt ones after it.

use std::time::Instant;

use anamnesis_commands::{Db, LogReader, StoreError};

use crate::runner::{self, Decode, Envelope, ProjectionError, Projector, Tx};

/// Events folded per transaction.
const BATCH: i64 = 10_000;

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    /// Events of the projector's types folded.
    pub events: u64,
    /// The checkpoint the rebuilt tables stand at.
    pub position: i64,
    /// Seconds spent folding (before the swap).
    pub fold_seconds: f64,
    /// Seconds the swap held the live tables.
    pub swap_seconds: f64,
}

/// Why a rebuild stopped. The live tables are untouched unless it stopped
/// after the swap committed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("the database could not give the rebuild a session of its own: {0}")]
    Session(String),
    #[error("table {0} has no live definition to copy")]
    NoTable(String),
}

/// Rebuilds `projector`'s tables on `db`, reading the log with `reader`;
/// `progress(position, head)` is called after each batch.
pub async fn rebuild<P: Projector>(
    db: &Db,
    reader: &LogReader,
    projector: &P,
    mut progress: impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    let session = db
        .single_session()
        .await
        .map_err(|e| RebuildError::Session(e.to_string()))?;
    let result = run(&session, db, reader, projector, &mut progress).await;
    session.close().await;
    result
}

async fn run<P: Projector>(
    session: &Db,
    db: &Db,
    reader: &LogReader,
    projector: &P,
    progress: &mut impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    runner::ensure_checkpoint_row(db, projector.name()).await?;
    let live = live_names(session, projector.tables()).await?;
    shadow(session, &live).await?;
    let started = Instant::now();
    let head = reader.head().await?;
    let mut at = 0;
    let mut events = 0u64;
    while at < head {
        let mut tx = begin_shadow(session).await?;
        let (reached, n) = fold(&mut tx, reader, projector, (at, head)).await?;
        commit(tx).await?;
        (at, events) = (reached, events + n);
        progress(at, head);
    }
    let fold_seconds = started.elapsed().as_secs_f64();

    // The swap: the shadow catches up with the live checkpoint, then
    // replaces the live rows, in one transaction.
    let swapping = Instant::now();
    let mut tx = runner::begin(session).await?;
    let committed = runner::lock_checkpoint(&mut tx, projector.name()).await?;
    while at < committed {
        let (reached, n) = fold(&mut tx, reader, projector, (at, committed)).await?;
        (at, events) = (reached, events + n);
    }
    for (table, schema) in &live {
        let (target, source) = match session {
            Db::Postgres(_) => (format!("{schema}.{table}"), format!("pg_temp.{table}")),
            Db::Sqlite(_) => (format!("main.{table}"), format!("temp.{table}")),
        };
        runner_execute(&mut tx, &format!("DELETE FROM {target}")).await?;
        runner_execute(
            &mut tx,
            &format!("INSERT INTO {target} SELECT * FROM {source}"),
        )
        .await?;
    }
    crate::sql::execute(
        &mut tx,
        "UPDATE checkpoints SET position = $2, updated_at = $3 WHERE name = $1",
        &[
            projector.name().into(),
            at.into(),
            chrono::Utc::now().into(),
        ],
    )
    .await?;
    commit(tx).await?;
    Ok(Rebuilt {
        events,
        position: at,
        fold_seconds,
        swap_seconds: swapping.elapsed().as_secs_f64(),
    })
}

/// Folds the projector's events in `(after, until]` (one page) into `tx`;
/// returns the position reached and how many events it applied.
async fn fold<P: Projector>(
    tx: &mut Tx,
    reader: &LogReader,
    projector: &P,
    (after, until): (i64, i64),
) -> Result<(i64, u64), RebuildError> {
    let stored = reader
        .read_types(
            projector.aggregate_types(),
            (after, until),
            BATCH,
            P::Event::PAYLOAD,
        )
        .await?;
    let reached = match stored.last() {
        Some(last) if stored.len() as i64 >= BATCH => last.global_position,
        _ => until,
    };
    let mut events = Vec::with_capacity(stored.len());
    for e in stored {
        let event =
            P::Event::decode(&e.event_type, &e.event_version, &e.payload).map_err(|error| {
                ProjectionError::Event {
                    position: e.global_position,
                    detail: error.to_string(),
                }
            })?;
        events.push(Envelope { stored: e, event });
    }
    let n = events.len() as u64;
    if !events.is_empty() {
        projector.apply_batch(tx, &events).await?;
    }
    Ok((reached, n))
}

/// A transaction that writes the shadow tables only: on SQLite a deferred
/// one, which takes no lock on the live database (appends go on).
async fn begin_shadow(session: &Db) -> Result<Tx, sqlx::Error> {
    Ok(match session {
        Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
    })
}

async fn commit(tx: Tx) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(t) => t.commit().await,
        Tx::Sqlite(t) => t.commit().await,
    }
}

async fn runner_execute(tx: &mut Tx, sql: &str) -> Result<(), sqlx::Error> {
    crate::sql::execute(tx, sql, &[]).await.map(|_| ())
}

/// Each table with the schema its live copy is in (Postgres; `main` on
/// SQLite).
async fn live_names(session: &Db, tables: &[&str]) -> Result<Vec<(String, String)>, RebuildError> {
    let mut out = Vec::with_capacity(tables.len());
    for &table in tables {
        let schema: Option<String> = match session {
            Db::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT n.nspname::text FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relname = $1 AND c.relkind = 'r' AND c.relpersistence = 'p' \
                       AND n.nspname = ANY (current_schemas(false)) \
                     ORDER BY array_position(current_schemas(false), n.nspname) LIMIT 1",
                )
                .bind(table)
                .fetch_optional(p)
                .await?
            }
            Db::Sqlite(p) => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(p)
                .await?;
                (n == 1).then(|| "main".to_owned())
            }
        };
        let schema = schema.ok_or_else(|| RebuildError::NoTable(table.to_owned()))?;
        out.push((table.to_owned(), schema));
    }
    Ok(out)
}

/// Creates an empty shadow of each live table, with its keys and indexes,
/// as a temporary table of `session` under the same name.
async fn shadow(session: &Db, live: &[(String, String)]) -> Result<(), RebuildError> {
    match session {
        Db::Postgres(p) => {
            for (table, schema) in live {
                sqlx::query(&format!("DROP TABLE IF EXISTS pg_temp.{table}"))
                    .execute(p)
                    .await?;
                sqlx::query(&format!(
                    "CREATE TEMP TABLE {table} (LIKE {schema}.{table} INCLUDING ALL)"
                ))
                .execute(p)
                .await?;
            }
        }
        Db::Sqlite(p) => {
            for (table, _) in live {
                sqlx::query(&format!("DROP TABLE IF EXISTS temp.{table}"))
                    .execute(p)
                    .await?;
                let ddl: Vec<(String, String)> = sqlx::query_as(
                    "SELECT type, sql FROM main.sqlite_master \
                     WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type DESC",
                )
                .bind(table)
                .fetch_all(p)
                .await?;
                // "table" sorts after "index": the table first.
                for (kind, sql) in ddl {
                    let statement = match kind.as_str() {
                        "table" => sql.replacen("CREATE TABLE", "CREATE TEMP TABLE", 1),
                        "index" => sql.replacen("INDEX ", "INDEX temp.", 1),
                        _ => continue,
                    };
                    sqlx::query(&statement).execute(p).await?;
                }
            }
        }
    }
    Ok(())
}
