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

use std::sync::Arc;
use std::time::Instant;

use anamnesis_commands::{Db, LogReader, StoreError, StoredEvent};
use tokio::sync::mpsc;

use crate::runner::{self, Decode, ProjectionError, Projector, Tx};

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
    #[error("the read of the log shared with other rebuilds failed: {0}")]
    Feed(String),
}

/// Rebuilds `projector`'s tables on `db`, reading the log with `reader`;
/// `progress(position, head)` is called after each batch.
pub async fn rebuild<P: Projector>(
    db: &Db,
    reader: &LogReader,
    projector: &P,
    mut progress: impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    rebuild_from(db, reader, projector, None, &mut progress).await
}

/// [`rebuild`], folding the events of the projector's types from a [`Feed`]
/// shared with other rebuilds instead of reading the log on its own.
pub async fn rebuild_fed<P: Projector>(
    db: &Db,
    reader: &LogReader,
    projector: &P,
    feed: Subscription,
    mut progress: impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    rebuild_from(db, reader, projector, Some(feed), &mut progress).await
}

async fn rebuild_from<P: Projector>(
    db: &Db,
    reader: &LogReader,
    projector: &P,
    feed: Option<Subscription>,
    progress: &mut impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    let session = db
        .single_session()
        .await
        .map_err(|e| RebuildError::Session(e.to_string()))?;
    let result = run(&session, db, reader, projector, feed, progress).await;
    session.close().await;
    result
}

/// One read of the log shared by several rebuilds (`rebuild --all` on
/// Postgres, ADR 0014): each page of every event is read and opened once,
/// and each [`Subscription`] keeps the events of its projector's types.
/// Eleven read models reading the log each on its own read 3.6 M events
/// for a log of 1 M.
pub struct Feed {
    reader: LogReader,
    head: i64,
    subscribers: Vec<mpsc::Sender<FedPage>>,
}

/// One rebuild's end of a [`Feed`].
pub struct Subscription {
    head: i64,
    pages: mpsc::Receiver<FedPage>,
}

/// A page of every event and the position it reaches, shared; or why the
/// read failed.
type FedPage = Result<Arc<(i64, Vec<StoredEvent>)>, String>;

impl Feed {
    /// A feed of the log up to its head now, for `n` rebuilds.
    pub async fn open(
        reader: &LogReader,
        n: usize,
    ) -> Result<(Self, Vec<Subscription>), RebuildError> {
        let head = reader.head().await?;
        let (subscribers, subscriptions) = (0..n)
            .map(|_| {
                let (send, pages) = mpsc::channel(2);
                (send, Subscription { head, pages })
            })
            .unzip();
        let feed = Self {
            reader: reader.clone(),
            head,
            subscribers,
        };
        Ok((feed, subscriptions))
    }

    /// Reads the log a page at a time and hands each page to every
    /// subscription still open, at the pace of the slowest; ends after the
    /// last page, after a failed read (sent on), or once none is open.
    pub async fn run(mut self) {
        let mut at = 0;
        while at < self.head && !self.subscribers.is_empty() {
            let page = self
                .reader
                .read_types(&[], (at, self.head), BATCH, true)
                .await
                .map(|stored| Arc::new((reached(&stored, self.head), stored)))
                .map_err(|e| e.to_string());
            let failed = page.is_err();
            if let Ok(page) = &page {
                at = page.0;
            }
            let mut open = Vec::with_capacity(self.subscribers.len());
            for subscriber in self.subscribers.drain(..) {
                if subscriber.send(page.clone()).await.is_ok() {
                    open.push(subscriber);
                }
            }
            self.subscribers = open;
            if failed {
                return;
            }
        }
    }
}

/// The position a page read up to `until` reaches: its last event's if the
/// page is full (more may follow), else `until`.
fn reached(stored: &[StoredEvent], until: i64) -> i64 {
    match stored.last() {
        Some(last) if stored.len() as i64 >= BATCH => last.global_position,
        _ => until,
    }
}

async fn run<P: Projector>(
    session: &Db,
    db: &Db,
    reader: &LogReader,
    projector: &P,
    feed: Option<Subscription>,
    progress: &mut impl FnMut(i64, i64),
) -> Result<Rebuilt, RebuildError> {
    runner::ensure_checkpoint_row(db, projector.name()).await?;
    let live = live_names(session, projector.tables()).await?;
    shadow(session, &live).await?;
    let started = Instant::now();
    // Pages are read and decoded one ahead of the one being applied: the
    // reading and the writing overlap.
    let (pages, mut next) = mpsc::channel(2);
    let types = projector.aggregate_types();
    let (head, reading) = match feed {
        None => {
            let head = reader.head().await?;
            let reading = tokio::spawn(read_ahead::<P>(reader.clone(), types, head, pages));
            (head, reading)
        }
        Some(feed) => (feed.head, tokio::spawn(keep::<P>(feed, types, pages))),
    };
    let mut at = 0;
    let mut events = 0u64;
    while let Some(page) = next.recv().await {
        let (reached, page) = page?;
        if !page.is_empty() {
            let mut tx = begin_shadow(session).await?;
            runner::apply_parts(projector, &mut tx, &page).await?;
            commit(tx).await?;
        }
        (at, events) = (reached, events + runner::part_events(&page) as u64);
        progress(at, head);
    }
    reading
        .await
        .map_err(|e| RebuildError::Session(format!("the log reader stopped: {e}")))?;
    let fold_seconds = started.elapsed().as_secs_f64();

    // The swap: the shadow catches up with the live checkpoint, then
    // replaces the live rows, in one transaction.
    // What the swap will run, asked before it holds the session's one
    // connection.
    let mut statements = Vec::new();
    for (table, schema) in &live {
        statements.extend(swap_statements(session, table, schema).await?);
    }
    let swapping = Instant::now();
    let mut tx = runner::begin(session).await?;
    let committed = runner::lock_checkpoint(&mut tx, projector.name()).await?;
    while at < committed {
        let (reached, n) = fold(&mut tx, reader, projector, (at, committed)).await?;
        (at, events) = (reached, events + n);
    }
    for statement in &statements {
        runner_execute(&mut tx, statement).await?;
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

/// A decoded page of the log and the position it reaches.
type Page<E> = Result<(i64, Vec<runner::Part<E>>), RebuildError>;

/// Reads and decodes the projector's events up to `head`, a page at a time,
/// into `pages`; stops at the first failure (sent on) or when the
/// receiver is gone.
async fn read_ahead<P: Projector>(
    reader: LogReader,
    types: &'static [&'static str],
    head: i64,
    pages: mpsc::Sender<Page<P::Event>>,
) {
    let mut at = 0;
    while at < head {
        let page = read_page::<P>(&reader, types, (at, head)).await;
        let failed = page.is_err();
        if let Ok((reached, _)) = &page {
            at = *reached;
        }
        if pages.send(page).await.is_err() || failed {
            return;
        }
    }
}

async fn read_page<P: Projector>(
    reader: &LogReader,
    types: &[&str],
    (after, until): (i64, i64),
) -> Page<P::Event> {
    let stored = reader
        .read_types(types, (after, until), BATCH, P::Event::PAYLOAD)
        .await?;
    let reached = reached(&stored, until);
    decoded::<P>(types, stored, reached)
}

/// Keeps the events of `types` from a [`Feed`], decoded, in pages of about
/// [`BATCH`] events (as [`read_ahead`] reads them), into `pages`.
async fn keep<P: Projector>(
    mut feed: Subscription,
    types: &'static [&'static str],
    pages: mpsc::Sender<Page<P::Event>>,
) {
    let mut kept: Vec<StoredEvent> = Vec::new();
    let mut at = 0;
    while at < feed.head {
        // A fold that stopped (it failed, or the others did) lets go of the
        // feed now, not at its next page: a read model whose types are rare
        // may not fill one before the end of the log.
        let next = tokio::select! {
            next = feed.pages.recv() => next,
            () = pages.closed() => return,
        };
        let page = match next {
            Some(Ok(page)) => page,
            Some(Err(error)) => {
                let _ = pages.send(Err(RebuildError::Feed(error))).await;
                return;
            }
            None => {
                let stopped = "it stopped before the head".to_owned();
                let _ = pages.send(Err(RebuildError::Feed(stopped))).await;
                return;
            }
        };
        at = page.0;
        kept.extend(
            page.1
                .iter()
                .filter(|e| anamnesis_commands::log::of_types(types, e))
                .cloned(),
        );
        if kept.len() as i64 >= BATCH || at >= feed.head {
            let page = decoded::<P>(types, std::mem::take(&mut kept), at);
            let failed = page.is_err();
            if pages.send(page).await.is_err() || failed {
                return;
            }
        }
    }
}

/// `stored` (the events of `types` up to `reached`) decoded into a page.
fn decoded<P: Projector>(types: &[&str], stored: Vec<StoredEvent>, reached: i64) -> Page<P::Event> {
    let (parts, failed) = runner::decode_parts::<P::Event>(types, stored);
    if let Some((position, error)) = failed {
        return Err(ProjectionError::Event {
            position,
            detail: error.to_string(),
        }
        .into());
    }
    Ok((reached, parts))
}

/// Folds the projector's events in `(after, until]` (one page) into `tx`;
/// returns the position reached and how many events it applied.
async fn fold<P: Projector>(
    tx: &mut Tx,
    reader: &LogReader,
    projector: &P,
    (after, until): (i64, i64),
) -> Result<(i64, u64), RebuildError> {
    let (reached, parts) =
        read_page::<P>(reader, projector.aggregate_types(), (after, until)).await?;
    runner::apply_parts(projector, tx, &parts).await?;
    Ok((reached, runner::part_events(&parts) as u64))
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

/// The statements that make live `table` hold exactly the shadow's rows,
/// touching only the rows that differ: those of the live table with no
/// identical shadow row go, then the shadow rows whose key the live table
/// no longer has come in. A rebuild of a correct read model writes
/// nothing; a damaged row is replaced. Tables without a primary key are
/// replaced whole.
async fn swap_statements(
    session: &Db,
    table: &str,
    schema: &str,
) -> Result<Vec<String>, RebuildError> {
    let (columns, key) = columns(session, table, schema).await?;
    let quoted = |names: Vec<String>| -> Vec<String> {
        names.into_iter().map(|c| format!("\"{c}\"")).collect()
    };
    let (columns, key) = (quoted(columns), quoted(key));
    let (live, shadow, same) = match session {
        Db::Postgres(_) => (
            format!("{schema}.{table}"),
            format!("pg_temp.{table}"),
            "IS NOT DISTINCT FROM",
        ),
        Db::Sqlite(_) => (format!("main.{table}"), format!("temp.{table}"), "IS"),
    };
    if key.is_empty() {
        return Ok(vec![
            format!("DELETE FROM {live}"),
            format!("INSERT INTO {live} SELECT * FROM {shadow}"),
        ]);
    }
    let keys = |a: &str, b: &str| -> Vec<String> {
        key.iter().map(|c| format!("{a}.{c} = {b}.{c}")).collect()
    };
    let mut identical = keys("s", "l");
    identical.extend(columns.iter().map(|c| format!("s.{c} {same} l.{c}")));
    // SQLite's DELETE takes no alias: the live table is named in full.
    let (delete_from, l) = match session {
        Db::Postgres(_) => (format!("{live} l"), "l".to_owned()),
        Db::Sqlite(_) => (live.clone(), live.clone()),
    };
    let identical = identical.join(" AND ").replace(" l.", &format!(" {l}."));
    let list = columns.join(", ");
    Ok(vec![
        format!(
            "DELETE FROM {delete_from} WHERE NOT EXISTS \
             (SELECT 1 FROM {shadow} s WHERE {identical})"
        ),
        format!(
            "INSERT INTO {live} ({list}) SELECT {list} FROM {shadow} s WHERE NOT EXISTS \
             (SELECT 1 FROM {live} l WHERE {})",
            keys("s", "l").join(" AND ")
        ),
    ])
}

/// A live table's columns in order, and its primary key's.
async fn columns(
    session: &Db,
    table: &str,
    schema: &str,
) -> Result<(Vec<String>, Vec<String>), RebuildError> {
    Ok(match session {
        Db::Postgres(p) => {
            let columns = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(p)
            .await?;
            let key = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                 WHERE i.indrelid = ($1 || '.' || $2)::regclass AND i.indisprimary \
                 ORDER BY a.attnum",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(p)
            .await?;
            (columns, key)
        }
        Db::Sqlite(p) => {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT name, pk FROM pragma_table_info($1, 'main') ORDER BY cid")
                    .bind(table)
                    .fetch_all(p)
                    .await?;
            let mut key: Vec<(i64, String)> = rows
                .iter()
                .filter(|(_, pk)| *pk > 0)
                .map(|(c, pk)| (*pk, c.clone()))
                .collect();
            key.sort();
            (
                rows.into_iter().map(|(c, _)| c).collect(),
                key.into_iter().map(|(_, c)| c).collect(),
            )
        }
    })
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

/// Creates an empty shadow of each live table, with its primary key (what
/// the projectors' upserts and deletes go by) and without its other
/// indexes (the live tables' secondary indexes serve queries; kept up
/// during the fold they would triple its cost), as a temporary table of
/// `session` under the same name. A uniqueness the live table enforces is
/// still enforced: the swap inserts into it.
async fn shadow(session: &Db, live: &[(String, String)]) -> Result<(), RebuildError> {
    match session {
        Db::Postgres(p) => {
            // Temporary tables live in the session's own buffers (8 MB by
            // default): a large read model would go to disk page by page.
            // Settable only before the session first touches one (a new
            // session: none exists yet).
            sqlx::query("SET temp_buffers = '512MB'").execute(p).await?;
            for (table, schema) in live {
                sqlx::query(&format!(
                    "CREATE TEMP TABLE {table} \
                     (LIKE {schema}.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                ))
                .execute(p)
                .await?;
                let (_, key) = columns(session, table, schema).await?;
                if !key.is_empty() {
                    let key: Vec<String> = key.iter().map(|c| format!("\"{c}\"")).collect();
                    sqlx::query(&format!(
                        "ALTER TABLE pg_temp.{table} ADD PRIMARY KEY ({})",
                        key.join(", ")
                    ))
                    .execute(p)
                    .await?;
                }
            }
        }
        Db::Sqlite(p) => {
            for (table, _) in live {
                // The table's own statement holds its primary key.
                let ddl: String = sqlx::query_scalar(
                    "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(p)
                .await?;
                let statement = ddl.replacen("CREATE TABLE", "CREATE TEMP TABLE", 1);
                sqlx::query(&statement).execute(p).await?;
            }
        }
    }
    Ok(())
}
