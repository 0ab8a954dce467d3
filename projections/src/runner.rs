//! The catch-up projection runner.
//!
//! A projector reads the log after its checkpoint in batches and commits its
//! output together with its new checkpoint, in one transaction: a crash at any
//! point leaves the read model and the checkpoint consistent, so a restart
//! neither loses nor repeats an event. It wakes when the log grows (in-process
//! signal, NOTIFY on Postgres) and also polls slowly, in case a wake-up was missed.
//!
//! A projector names the aggregate types it reads; the filter runs in SQL, so
//! a batch holds only its events, decoded once, before the projector sees
//! them. A stretch of the log with nothing for it moves its position in
//! memory only; the checkpoint is written with its next batch, or when it
//! falls idle, and at most once a second while it skips other domains' events:
//! no write per empty batch.
//!
//! On Postgres, each projector runs active in one process (a session
//! advisory lock) while the others stand by, publishing the committed
//! checkpoint for read-your-writes and taking over when the active one dies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use anamnesis_commands::{Db, LogReader, StoreError, StoredEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::subject::ERASURE_EVENT;
use chrono::Utc;
use sqlx::Connection;
use tokio::sync::watch;
use uuid::Uuid;

/// One open read-model transaction, on whichever backend the log is on.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
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

/// A decoded event with what the log knows of it (position, stream, actor,
/// time). The stored payload is still there for projectors that keep it.
#[derive(Debug, Clone)]
pub struct Envelope<E> {
    pub stored: StoredEvent,
    pub event: E,
}

impl<E> Envelope<E> {
    pub fn position(&self) -> i64 {
        self.stored.global_position
    }

    /// The stream (aggregate) id.
    pub fn id(&self) -> &str {
        &self.stored.aggregate_id
    }
}

/// How a projector reads an event: an aggregate's event enum through its
/// stored form (decoded once, version-aware), or [`Unread`].
pub trait Decode: Sized + Send + Sync {
    /// Whether decoding looks at the payload (else it is not even read).
    const PAYLOAD: bool = true;

    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError>;
}

impl<E: StoredForm> Decode for E {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        E::from_stored(event_type, version, payload)
    }
}

/// The event type of a projector that reads every event's metadata and
/// none of its payload (the activity log): decoding cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread;

impl Decode for Unread {
    const PAYLOAD: bool = false;

    fn decode(_: &str, _: &str, _: &str) -> Result<Self, DecodeError> {
        Ok(Unread)
    }
}

/// Builds one read model from the log.
pub trait Projector: Send + Sync + 'static {
    /// What it reads each event as: an aggregate's event enum, or [`Unread`].
    type Event: Decode;

    /// Stable name; the checkpoint is kept under it.
    fn name(&self) -> &'static str;

    /// The aggregate types whose events it reads; every type when empty.
    fn aggregate_types(&self) -> &'static [&'static str];

    /// The read-model tables it writes, and no others: what a rebuild
    /// replaces (`crate::rebuild`).
    fn tables(&self) -> &'static [&'static str];

    /// Applies a batch of its events, in log order, inside the batch's
    /// transaction (fold it into a few multi-row statements). Must not call
    /// out of the database: the same code runs during a rebuild.
    fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<Self::Event>],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Removes patient `patient` from its tables, inside the batch's
    /// transaction, at the erasure's place in the log
    /// (docs/adr/0024-encryption.md): every row that names the patient or
    /// holds what they said or what was written about them goes. Counts
    /// that identify no one (analytics) may stay. Every projector says what
    /// it does here, even when that is nothing.
    fn erase(
        &self,
        tx: &mut Tx,
        patient: Uuid,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// What a projector is handed, in log order: runs of its decoded events,
/// and the erasure of a patient between them.
#[derive(Debug, Clone)]
pub enum Part<E> {
    /// Events it reads, decoded.
    Events(Vec<Envelope<E>>),
    /// A patient was erased at this position.
    Erase { patient: Uuid, position: i64 },
}

/// Decodes `stored` into [`Part`]s, in order, for a projector reading
/// `types` (every type when empty). An erasure event (which every read of
/// types also returns) becomes a [`Part::Erase`], followed by the event
/// itself when the projector reads its type. An event whose patient was
/// erased is passed over: the erasure that destroyed its key comes later in
/// the log and removes the patient from the read model. Decoding stops at
/// the first event that cannot be decoded: it is returned with why.
pub fn decode_parts<E: Decode>(
    types: &[&str],
    stored: Vec<StoredEvent>,
) -> (Vec<Part<E>>, Option<(i64, DecodeError)>) {
    let mut parts: Vec<Part<E>> = Vec::new();
    let mut run: Vec<Envelope<E>> = Vec::new();
    let reads = |t: &str| types.is_empty() || types.contains(&t);
    for e in stored {
        if e.event_type == ERASURE_EVENT {
            let Some(patient) = e
                .patient_id
                .or_else(|| Uuid::parse_str(&e.aggregate_id).ok())
            else {
                let position = e.global_position;
                flush(&mut parts, &mut run);
                let error = DecodeError::Payload {
                    event_type: e.event_type,
                    version: e.event_version,
                    detail: "an erasure that names no patient".into(),
                };
                return (parts, Some((position, error)));
            };
            flush(&mut parts, &mut run);
            parts.push(Part::Erase {
                patient,
                position: e.global_position,
            });
            if !reads(&e.aggregate_type) {
                continue;
            }
        }
        match E::decode(&e.event_type, &e.event_version, &e.payload) {
            Ok(event) => run.push(Envelope { stored: e, event }),
            Err(DecodeError::Erased { .. }) => {}
            Err(error) => {
                let position = e.global_position;
                flush(&mut parts, &mut run);
                return (parts, Some((position, error)));
            }
        }
    }
    flush(&mut parts, &mut run);
    (parts, None)
}

fn flush<E>(parts: &mut Vec<Part<E>>, run: &mut Vec<Envelope<E>>) {
    if !run.is_empty() {
        parts.push(Part::Events(std::mem::take(run)));
    }
}

/// The number of events in `parts` (erasures count as none).
pub fn part_events<E>(parts: &[Part<E>]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Events(events) => events.len(),
            Part::Erase { .. } => 0,
        })
        .sum()
}

/// Applies `parts` in order inside `tx`.
pub async fn apply_parts<P: Projector>(
    projector: &P,
    tx: &mut Tx,
    parts: &[Part<P::Event>],
) -> Result<(), ProjectionError> {
    for part in parts {
        match part {
            Part::Events(events) => projector.apply_batch(tx, events).await?,
            Part::Erase { patient, .. } => projector.erase(tx, *patient).await?,
        }
    }
    Ok(())
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
    /// How often a standby re-reads the committed checkpoint (for
    /// read-your-writes) and tries to become active.
    pub standby_interval: Duration,
    /// The shortest time between two batches: under a stream of small
    /// appends, events gather into fewer, larger batches (each batch costs a
    /// transaction whatever its size). Bounds the lag it adds.
    pub min_batch_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 2_000,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_secs(1),
            standby_interval: Duration::from_millis(100),
            min_batch_interval: Duration::from_millis(10),
        }
    }
}

/// Positions scanned per read beyond the cursor, for a projector whose
/// types are rare in the log: bounds one primary-key range scan.
const SCAN_WINDOW: i64 = 20_000;
/// How stale a skipped-over checkpoint may be in the table before it is
/// written even though the projector had nothing to apply (idle, or busy
/// skipping other domains' events).
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

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

/// Where a projector is: what its table says, and how far it has looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The committed checkpoint, as last read or written.
    pub committed: i64,
    /// Every event up to here is applied or not the projector's.
    pub scanned: i64,
    last_write: Option<Instant>,
    /// When the head was last read from the database
    /// (`LogReader::head_after`).
    head_read: Option<Instant>,
}

impl Cursor {
    /// A cursor at the committed checkpoint.
    pub fn at(committed: i64) -> Self {
        Self {
            committed,
            scanned: committed,
            last_write: None,
            head_read: None,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// Moved to this position (events applied, or a stretch skipped).
    Advanced(i64),
    /// Nothing after the position: caught up.
    CaughtUp(i64),
}

/// Runs `projector` over `reader`'s log, writing its read model in `db`,
/// until `shutdown` turns true, publishing its position on `progress`.
pub async fn run<P: Projector>(
    reader: LogReader,
    db: Db,
    projector: P,
    config: RunnerConfig,
    progress: watch::Sender<i64>,
    shutdown: watch::Receiver<bool>,
) {
    let report = Report {
        progress,
        failure: watch::channel(None).0,
        active: watch::channel(false).0,
    };
    run_reporting(reader, db, projector, config, report, shutdown).await
}

/// What a runner publishes about itself.
pub struct Report {
    /// Its position: everything up to it is in the read model (or not its).
    pub progress: watch::Sender<i64>,
    /// Whether it is stuck, and on what.
    pub failure: watch::Sender<Option<Failure>>,
    /// Whether it runs here (true) or stands by for another process.
    pub active: watch::Sender<bool>,
}

/// [`run`], also publishing whether the projector is stuck or active. A
/// batch that fails is retried (with growing pauses, up to 30 s) and never
/// skipped: the checkpoint does not move past an event that cannot be applied.
pub async fn run_reporting<P: Projector>(
    reader: LogReader,
    db: Db,
    projector: P,
    config: RunnerConfig,
    report: Report,
    mut shutdown: watch::Receiver<bool>,
) {
    let Report {
        progress,
        failure,
        active,
    } = report;
    let name = projector.name();
    let mut wake = reader.subscribe();
    let mut pause = config.retry_delay;
    let mut lease = Lease::new(&db, name);
    let mut cursor = Cursor::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Read-your-writes works from the first moment, active or not:
        // publish what is committed.
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        if !held {
            cursor = Cursor::default();
            if let Ok(committed) = checkpoint(&db, name).await {
                progress.send_if_modified(|p| advance(p, committed));
            }
            tokio::select! {
                _ = tokio::time::sleep(config.standby_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if cursor == Cursor::default() {
            match checkpoint(&db, name).await {
                Ok(committed) => cursor = Cursor::at(committed),
                Err(error) => {
                    // Never a step from 0 over a read model that holds more.
                    tracing::warn!(projector = name, %error, "checkpoint unreadable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(config.retry_delay) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
        }
        if let Some(wait) = cursor
            .last_write
            .and_then(|t| config.min_batch_interval.checked_sub(t.elapsed()))
        {
            tokio::time::sleep(wait).await;
        }
        let stepped = step(&reader, &db, &projector, &mut cursor, config.batch_size).await;
        if stepped.is_ok() && failure.borrow().is_some() {
            // Any step that succeeds, with or without events, clears a failure.
            tracing::info!(projector = name, "projector recovered");
            metrics::gauge!("anamnesis_projection_failing", "projection" => name).set(0.0);
            failure.send_replace(None);
            pause = config.retry_delay;
        }
        match stepped {
            Ok(Stepped::Advanced(position)) => {
                progress.send_if_modified(|p| advance(p, position));
            }
            Ok(Stepped::CaughtUp(position)) => {
                progress.send_if_modified(|p| advance(p, position));
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(error) => {
                let at = cursor.committed;
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
                // Start again from what the table says.
                cursor = Cursor::default();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Says that `name` (a relay, a consumer, a sender) cannot get past
/// `checkpoint`: logged once per streak, counted, and published for
/// `/readyz` and the `anamnesis_projection_failing` gauge.
pub(crate) fn report_stuck(
    name: &'static str,
    failure: &watch::Sender<Option<Failure>>,
    checkpoint: i64,
    error: &str,
) {
    if failure.borrow().is_none() {
        tracing::warn!(task = name, checkpoint, %error, "stuck; retrying");
    }
    metrics::counter!("anamnesis_projection_failures_total", "projection" => name).increment(1);
    metrics::gauge!("anamnesis_projection_failing", "projection" => name).set(1.0);
    failure.send_replace(Some(Failure {
        checkpoint,
        error: error.to_owned(),
    }));
}

/// Clears what [`report_stuck`] said, if anything.
pub(crate) fn report_recovered(name: &'static str, failure: &watch::Sender<Option<Failure>>) {
    if failure.borrow().is_some() {
        tracing::info!(task = name, "working again");
        failure.send_replace(None);
        metrics::gauge!("anamnesis_projection_failing", "projection" => name).set(0.0);
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

/// Projects one batch of `projector`'s events after `cursor`, or skips a
/// stretch with none, or writes an idle checkpoint.
pub async fn step<P: Projector>(
    reader: &LogReader,
    db: &Db,
    projector: &P,
    cursor: &mut Cursor,
    batch_size: i64,
) -> Result<Stepped, ProjectionError> {
    step_until(reader, db, projector, cursor, batch_size, i64::MAX).await
}

/// [`step`], looking no further than position `limit` (a consumer fed by
/// NATS goes as far as the stream has delivered, `crate::consume`).
pub async fn step_until<P: Projector>(
    reader: &LogReader,
    db: &Db,
    projector: &P,
    cursor: &mut Cursor,
    batch_size: i64,
    limit: i64,
) -> Result<Stepped, ProjectionError> {
    let head = reader
        .head_after(cursor.scanned, &mut cursor.head_read)
        .await?
        .min(limit);
    let stale = cursor
        .last_write
        .is_none_or(|t| t.elapsed() >= IDLE_CHECKPOINT_EVERY);
    if cursor.scanned >= head {
        if cursor.scanned > cursor.committed && stale {
            // Idle: let the table (other instances, restarts) catch up.
            commit(db, projector, cursor, &[], cursor.scanned).await?;
        }
        return Ok(Stepped::CaughtUp(cursor.scanned));
    }
    let until = head.min(cursor.scanned + SCAN_WINDOW);
    // A stretch this process appended with none of its types: no read.
    let stored = if reader.holds_none_of(projector.aggregate_types(), (cursor.scanned, until)) {
        metrics::counter!("anamnesis_projection_reads_skipped_total", "projection" => projector.name())
            .increment(1);
        Vec::new()
    } else {
        reader
            .read_types(
                projector.aggregate_types(),
                (cursor.scanned, until),
                batch_size,
                P::Event::PAYLOAD,
            )
            .await?
    };
    let full = stored.len() as i64 >= batch_size;
    let mut reached = match stored.last() {
        Some(last) if full => last.global_position,
        _ => until,
    };
    if stored.is_empty() {
        cursor.scanned = reached;
        if stale {
            // Busy with other domains' events: the table (other instances,
            // a restart) still learns this position once a second.
            commit(db, projector, cursor, &[], reached).await?;
        }
        return Ok(Stepped::Advanced(reached));
    }
    // Decode once, in order; a batch stops short of an event that cannot
    // be decoded, which then fails alone as the next batch's first.
    let (parts, failed) = decode_parts::<P::Event>(projector.aggregate_types(), stored);
    if let Some((position, error)) = failed {
        if parts.is_empty() {
            return Err(ProjectionError::Event {
                position,
                detail: error.to_string(),
            });
        }
        reached = position - 1;
    }
    commit(db, projector, cursor, &parts, reached).await?;
    Ok(Stepped::Advanced(cursor.scanned))
}

/// Applies `events` and moves the checkpoint to `to`, in one transaction.
/// The checkpoint moves only from where this runner last saw it: if another
/// runner moved it meanwhile, the transaction is rolled back, nothing is
/// written, and the cursor jumps to where that runner got.
async fn commit<P: Projector>(
    db: &Db,
    projector: &P,
    cursor: &mut Cursor,
    parts: &[Part<P::Event>],
    to: i64,
) -> Result<(), ProjectionError> {
    let name = projector.name();
    if cursor.last_write.is_none() {
        ensure_checkpoint_row(db, name).await?;
    }
    // SQLite: wait for this process's other writers in line, not in
    // SQLite's sleeping busy handler.
    let _turn = db.write_turn().await;
    let mut tx = begin(db).await?;
    // The checkpoint row first, as a compare-and-set that also locks it for
    // the rest of the transaction: a rebuild swapping this projector's
    // tables holds the row for its whole swap, and a batch waits for it
    // rather than writing into tables being replaced (SQLite's IMMEDIATE
    // does the same); of two runners, the second waits for the first and
    // then sees the first's position, not its own (Postgres re-checks the
    // condition on the row as committed). One statement, not a locking read
    // and an update: two statements of every projector batch were a tenth
    // of the database's round trips under bench-load (ADR 0028).
    let moved = crate::sql::execute(
        &mut tx,
        "UPDATE checkpoints SET position = $3, updated_at = $4 \
         WHERE name = $1 AND position = $2",
        &[
            name.into(),
            cursor.committed.into(),
            to.into(),
            Utc::now().into(),
        ],
    )
    .await?;
    if moved != 1 {
        drop(tx);
        // The table has the last word: another runner moved it, or an
        // operator reset it for a rebuild.
        let now = checkpoint(db, name).await?;
        if now < cursor.committed {
            tracing::warn!(
                projector = name,
                from = cursor.committed,
                to = now,
                "checkpoint moved back (a rebuild?); projecting again from there"
            );
        }
        *cursor = Cursor::at(now);
        // Keep the batch pacing: a lost race is not a reason to spin.
        cursor.last_write = Some(Instant::now());
        return Ok(());
    }
    apply_parts(projector, &mut tx, parts).await?;
    match tx {
        Tx::Postgres(t) => t.commit().await?,
        Tx::Sqlite(t) => t.commit().await?,
    }
    cursor.committed = to;
    cursor.scanned = to;
    cursor.last_write = Some(Instant::now());
    Ok(())
}

/// Locks projector `name`'s checkpoint row for the rest of `tx` (Postgres;
/// on SQLite the transaction holds the write lock already) and returns it.
pub async fn lock_checkpoint(tx: &mut Tx, name: &str) -> Result<i64, sqlx::Error> {
    let sql = "SELECT position FROM checkpoints WHERE name = $1 FOR UPDATE";
    Ok(match tx {
        Tx::Postgres(c) => {
            sqlx::query_scalar(sql)
                .bind(name)
                .fetch_one(&mut **c)
                .await?
        }
        Tx::Sqlite(c) => {
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
                .bind(name)
                .fetch_one(&mut **c)
                .await?
        }
    })
}

/// Opens a read-model transaction (`BEGIN IMMEDIATE` on SQLite).
pub async fn begin(db: &Db) -> Result<Tx, sqlx::Error> {
    Ok(match db {
        Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        // IMMEDIATE: take SQLite's write lock now, not at the first write, so
        // the checkpoint read below cannot go stale before the commit.
        Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
    })
}

/// Makes sure projector `name` has a checkpoint row (at 0 when new).
pub async fn ensure_checkpoint_row(db: &Db, name: &str) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, 0, $2) \
               ON CONFLICT (name) DO NOTHING";
    match db {
        Db::Postgres(p) => {
            sqlx::query(sql)
                .bind(name)
                .bind(Utc::now())
                .execute(p)
                .await?;
        }
        Db::Sqlite(p) => {
            sqlx::query(sql)
                .bind(name)
                .bind(Utc::now())
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// The right to run a projector actively. On Postgres: a session advisory
/// lock, so that it ends with the process (or the connection); the others
/// stand by. Every lease over one pool (one server's projectors, relay and
/// consumers) shares **one** lock connection: a process holds one
/// connection for all its locks, not one per projector (with a dozen
/// projectors that was a dozen of the server's connections). SQLite is one
/// process's file: always held there.
pub(crate) struct Lease {
    key: String,
    options: Option<sqlx::postgres::PgConnectOptions>,
    shared: Option<Arc<tokio::sync::Mutex<LockSession>>>,
    holding: bool,
    /// The lock connection's generation the lock was taken on.
    generation: u64,
    checked: Option<Instant>,
}

/// The lock connection of the leases of one pool.
#[derive(Default)]
struct LockSession {
    connection: Option<sqlx::PgConnection>,
    /// Bumped with each new connection: locks taken on an older one are gone.
    generation: u64,
    /// The locks held on it (a second lease of the same name in this
    /// process stands by: advisory locks are re-entrant per session).
    held: std::collections::HashSet<String>,
    complained: bool,
}

/// The lock sessions of this process, by pool (the address its connect
/// options live at: one per pool, shared by the pool's clones).
fn lock_session(pool: &sqlx::PgPool) -> Arc<tokio::sync::Mutex<LockSession>> {
    static SESSIONS: OnceLock<
        std::sync::Mutex<HashMap<usize, Weak<tokio::sync::Mutex<LockSession>>>>,
    > = OnceLock::new();
    let key = Arc::as_ptr(&pool.connect_options()) as usize;
    let mut sessions = SESSIONS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sessions.retain(|_, s| s.strong_count() > 0);
    if let Some(session) = sessions.get(&key).and_then(Weak::upgrade) {
        return session;
    }
    let session = Arc::new(tokio::sync::Mutex::new(LockSession::default()));
    sessions.insert(key, Arc::downgrade(&session));
    session
}

/// How often an active runner makes sure its lock connection still lives.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// The longest a lock call (connect, ping, try-lock) may take.
const LEASE_CALL_LIMIT: Duration = Duration::from_secs(5);

impl Lease {
    pub(crate) fn new(db: &Db, name: &str) -> Self {
        let (options, shared) = match db {
            Db::Postgres(p) => (Some((*p.connect_options()).clone()), Some(lock_session(p))),
            Db::Sqlite(_) => (None, None),
        };
        Self {
            key: format!("anamnesis.projector.{name}"),
            options,
            shared,
            holding: false,
            generation: 0,
            checked: None,
        }
    }

    /// Whether this runner may apply batches now: takes the lock when it is
    /// free, and notices when the connection holding it has gone.
    pub(crate) async fn held(&mut self) -> bool {
        let (Some(options), Some(shared)) = (&self.options, &self.shared) else {
            return true;
        };
        if self.holding
            && self
                .checked
                .is_some_and(|t| t.elapsed() < LEASE_CHECK_EVERY)
        {
            return true;
        }
        let mut session = shared.lock().await;
        if session.connection.is_none() {
            // Keepalives: when the holder's host vanishes (not just its
            // process), the server drops the session, and the lock, within
            // about 25 s instead of the system's default two hours.
            let options = options.clone().options([
                ("tcp_keepalives_idle", "10"),
                ("tcp_keepalives_interval", "5"),
                ("tcp_keepalives_count", "3"),
            ]);
            match tokio::time::timeout(LEASE_CALL_LIMIT, sqlx::PgConnection::connect_with(&options))
                .await
            {
                Ok(Ok(conn)) => {
                    session.connection = Some(conn);
                    session.generation += 1;
                    session.held.clear();
                    session.complained = false;
                }
                outcome => {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer".to_owned(),
                    };
                    complain(&mut session, &self.key, &error);
                    self.holding = false;
                    return false;
                }
            }
        }
        if self.holding && self.generation != session.generation {
            tracing::warn!(lock = %self.key, "lost the projector lock's connection; standing by");
            self.holding = false;
        }
        let LockSession {
            connection,
            generation,
            held,
            complained,
        } = &mut *session;
        let Some(conn) = connection.as_mut() else {
            return false;
        };
        if self.holding {
            if matches!(
                tokio::time::timeout(LEASE_CALL_LIMIT, conn.ping()).await,
                Ok(Ok(()))
            ) {
                self.checked = Some(Instant::now());
                return true;
            }
            tracing::warn!(lock = %self.key, "lost the projector lock's connection; standing by");
            *connection = None;
            self.holding = false;
            return false;
        }
        if held.contains(&self.key) {
            // Another lease of this name in this process holds it.
            return false;
        }
        let taken = tokio::time::timeout(
            LEASE_CALL_LIMIT,
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(hashtext($1))")
                .bind(&self.key)
                .fetch_one(&mut *conn),
        )
        .await;
        match taken {
            Ok(Ok(true)) => {
                tracing::info!(lock = %self.key, "running the projector here (active)");
                held.insert(self.key.clone());
                self.holding = true;
                self.generation = *generation;
                self.checked = Some(Instant::now());
                true
            }
            Ok(Ok(false)) => false,
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer".to_owned(),
                };
                if !*complained {
                    tracing::warn!(lock = %self.key, %error, "cannot reach the projector lock; standing by");
                    *complained = true;
                }
                *connection = None;
                false
            }
        }
    }
}

/// Says once per failure streak that the lock cannot be reached.
fn complain(session: &mut LockSession, key: &str, error: &str) {
    if !session.complained {
        tracing::warn!(lock = %key, %error, "cannot reach the projector lock; standing by");
        session.complained = true;
    }
}

impl Drop for Lease {
    /// A runner that stops gives its lock back (the shared connection
    /// lives on for the others).
    fn drop(&mut self) {
        let (true, Some(shared)) = (self.holding, self.shared.take()) else {
            return;
        };
        let (key, generation) = (std::mem::take(&mut self.key), self.generation);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut session = shared.lock().await;
                if session.generation != generation {
                    return;
                }
                session.held.remove(&key);
                if let Some(conn) = session.connection.as_mut() {
                    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
                        .bind(&key)
                        .execute(&mut *conn)
                        .await;
                }
            });
        }
    }
}
