//! The event log: one append-only, hash-chained table, on Postgres or SQLite.
//!
//! Writes go through [`EventLog::append`] to the group-commit writer. Whatever
//! only reads (projections, replay, consumers) gets a [`LogReader`]
//! ([`EventLog::reader`], [`EventLog::reader_on`]): reads, the head and the
//! growth signal, and no way to append.

mod appended;
pub mod chain;
mod postgres;
mod reader;
pub mod seal;
mod sqlite;
pub(crate) use sqlite::insert_events as sqlite_insert_events;
mod types;
mod writer;

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::database::Db;
pub use anamnesis_domain::codec::describe_json_error;
pub use reader::{of_types, LogReader};
pub use seal::{Keyring, MasterKey};
pub use types::{
    hex_bytes, Actor, AppendError, AppendRequest, Appended, Credential, EventMetadata, Guards,
    Idempotency, KeyChanges, MfaCredential, MfaState, NewEvent, Outcome, StoreError, StoredEvent,
    StreamAt, UniqueKey,
};

/// A user's second factor as stored (ADR 0025). Its `Debug` shows no secret.
#[derive(Clone)]
pub struct StoredMfa {
    /// The TOTP secret, base32.
    pub secret: String,
    /// Whether a code confirmed it.
    pub confirmed: bool,
    /// The recovery codes' SHA-256 digests (hex), in the order shown.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for StoredMfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMfa")
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// Starts the writer on a thread of its own, with a runtime of its own and
/// its connection opened there, and returns once that connection is open.
///
/// Every append waits for the writer, one batch at a time, and a batch is
/// four round trips to the database. As a task among the request handlers,
/// each of those round trips was noticed and resumed only after the worker
/// threads had run the handlers queued ahead of it: in a burst (a thousand
/// bookings at once) the writer idled between its statements while the
/// handlers it was to answer waited on it. On its own thread the system
/// schedules it beside the workers (ADR 0007). It stops when the last
/// handle on the log is dropped.
async fn writer_thread(
    db: Db,
    keyring: Keyring,
    queue: mpsc::Receiver<Vec<writer::Pending>>,
    signals: (watch::Sender<i64>, appended::Appended),
    health: watch::Sender<Option<String>>,
) -> Result<(), StoreError> {
    let (opened_tx, opened) = oneshot::channel::<Result<(), StoreError>>();
    std::thread::Builder::new()
        .name("anamnesis-writer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = opened_tx.send(Err(StoreError::WriterFailed(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                let writer_db = match db.dedicated(1).await {
                    Ok(writer_db) => writer_db,
                    Err(e) => {
                        let _ = opened_tx.send(Err(StoreError::WriterFailed(e.to_string())));
                        return;
                    }
                };
                drop(db);
                let _ = opened_tx.send(Ok(()));
                writer::run(writer_db.clone(), keyring, queue, signals, health).await;
                writer_db.close().await;
            });
        })
        .map_err(|e| StoreError::WriterFailed(e.to_string()))?;
    opened
        .await
        .map_err(|_| StoreError::WriterFailed("the writer's thread ended while starting".into()))?
}

/// A handle on the log. Cheap to clone; the writer stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct EventLog {
    db: Db,
    seals: bool,
    reader: LogReader,
    queue: mpsc::Sender<Vec<writer::Pending>>,
    health: watch::Receiver<Option<String>>,
}

impl EventLog {
    /// Starts the writer (and, on Postgres, a listener for other processes'
    /// appends) over a migrated database, with no master key: nothing is
    /// written encrypted, and encrypted payloads cannot be read.
    pub async fn open(db: Db) -> Result<Self, StoreError> {
        Self::open_with(db, Keyring::none()).await
    }

    /// [`EventLog::open`] with the patients' keys
    /// (docs/adr/0024-encryption.md): events about a patient are written
    /// encrypted with the patient's data key when the keyring seals, and
    /// every read but [`LogReader::read_from`] opens them.
    pub async fn open_with(db: Db, keyring: Keyring) -> Result<Self, StoreError> {
        let position = db.head().await?;
        let (head_tx, head_rx) = watch::channel(position);
        let (queue_tx, queue_rx) = mpsc::channel(writer::MAX_BATCH_COMMANDS * 4);
        let (health_tx, health_rx) = watch::channel(None);
        let appended = appended::Appended::new(position);
        // The writer first: if it cannot start, nothing else is left running.
        writer_thread(
            db.clone(),
            keyring.clone(),
            queue_rx,
            (head_tx.clone(), appended.clone()),
            health_tx,
        )
        .await?;
        if let Db::Postgres(pool) = &db {
            tokio::spawn(listen_for_appends(pool.clone(), head_tx));
        }
        Ok(Self {
            seals: keyring.seals(),
            reader: LogReader::new(db.clone(), (head_rx, Some(appended)), keyring),
            db,
            queue: queue_tx,
            health: health_rx,
        })
    }

    /// Whether new events about a patient are written encrypted.
    pub fn seals(&self) -> bool {
        self.seals
    }

    /// The database under the log (read models live in the same one).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A read-only view of the log over the write side's pool.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// A read-only view of the log over another pool of the same database
    /// (a projector's or the query handlers' own), with the same growth signal.
    pub fn reader_on(&self, db: Db) -> LogReader {
        self.reader.on(db)
    }

    /// Appends all events of one command atomically at its expected sequence.
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let mut landed = self.append_atomic(vec![request]).await?;
        landed
            .pop()
            .ok_or(AppendError::Invalid("nothing to append"))
    }

    /// Appends several commands' events, possibly to several streams, all or
    /// none: if any request's expected sequence is stale, nothing is written.
    pub async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Appended>, AppendError> {
        if requests.is_empty() {
            return Err(AppendError::Invalid("nothing to append"));
        }
        for r in &requests {
            validate(r)?;
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(vec![writer::Pending { requests, reply }])
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Appends several commands' events in one transaction, each command at
    /// its own expected sequence: a conflicting command fails alone. The
    /// results are in request order.
    pub async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut group = Vec::with_capacity(requests.len());
        let mut answers = Vec::with_capacity(requests.len());
        let mut results: Vec<Option<Result<Appended, AppendError>>> = Vec::new();
        for request in requests {
            match validate(&request) {
                Err(e) => results.push(Some(Err(e))),
                Ok(()) => {
                    let (reply, answer) = oneshot::channel();
                    group.push(writer::Pending {
                        requests: vec![request],
                        reply,
                    });
                    answers.push((results.len(), answer));
                    results.push(None);
                }
            }
        }
        let sent = group.is_empty() || self.queue.send(group).await.is_ok();
        for (i, answer) in answers {
            let landed = match answer.await {
                Ok(unit) if sent => unit,
                _ => Err(StoreError::WriterStopped.into()),
            };
            results[i] = Some(
                landed.and_then(|mut v| v.pop().ok_or(AppendError::Invalid("nothing to append"))),
            );
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(StoreError::WriterStopped.into())))
            .collect()
    }

    /// Up to `limit` events after global position `after`, in position
    /// order, exactly as stored (encrypted payloads stay encrypted).
    pub async fn read_from(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.reader.read_from(after, limit).await
    }

    /// The events of one stream after `after_sequence`, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_sequence: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.reader
            .read_stream(aggregate_type, aggregate_id, after_sequence)
            .await
    }

    /// Every event of the streams of `aggregate_type` named in `ids`, in
    /// position order ([`LogReader::read_streams`]).
    pub async fn read_streams(
        &self,
        aggregate_type: &str,
        ids: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.reader.read_streams(aggregate_type, ids).await
    }

    /// The streams of `aggregate_type` that gained events in `(after,
    /// until]` ([`LogReader::streams_touched`]).
    pub async fn streams_touched(
        &self,
        aggregate_type: &str,
        after: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.reader
            .streams_touched(aggregate_type, after, until, limit)
            .await
    }

    /// What the command recorded under idempotency key `key` answered, if
    /// one committed.
    pub async fn idempotent_outcome(&self, key: &[u8]) -> Result<Option<Outcome>, StoreError> {
        let sql = "SELECT request_hash, CAST(status AS BIGINT), result_id, position \
                   FROM idempotency_keys WHERE key = $1";
        let row: Option<(Vec<u8>, i64, String, i64)> = match &self.db {
            Db::Postgres(p) => sqlx::query_as(sql).bind(key).fetch_optional(p).await?,
            Db::Sqlite(p) => sqlx::query_as(sql).bind(key).fetch_optional(p).await?,
        };
        row.map(Outcome::from_row).transpose()
    }

    /// The stream holding a unique key, as (aggregate type, aggregate id):
    /// one probe of `unique_claims` by the key's digest.
    pub async fn claim_holder(
        &self,
        key: &UniqueKey,
    ) -> Result<Option<(String, String)>, StoreError> {
        let digest = types::key_digest(key);
        let sql = "SELECT owner FROM unique_claims WHERE key = $1";
        let owner: Option<String> = match &self.db {
            Db::Postgres(p) => {
                sqlx::query_scalar(sql)
                    .bind(digest)
                    .fetch_optional(p)
                    .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_scalar(sql)
                    .bind(digest)
                    .fetch_optional(p)
                    .await?
            }
        };
        Ok(owner.and_then(|o| writer::owner_stream(&o)))
    }

    /// The streams holding any of these unique keys, once each, as
    /// (aggregate type, aggregate id), sorted: what holds a range of
    /// calendar granules, say. By the keys' digests, one query on Postgres,
    /// a few hundred keys a query on SQLite.
    pub async fn claim_holders(
        &self,
        keys: &[UniqueKey],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut digests: Vec<Vec<u8>> = keys.iter().map(types::key_digest).collect();
        digests.sort();
        digests.dedup();
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut owners = match &self.db {
            Db::Postgres(p) => postgres::claim_owners(p, &digests).await?,
            Db::Sqlite(p) => sqlite::claim_owners(p, &digests).await?,
        };
        owners.sort();
        owners.dedup();
        owners
            .iter()
            .map(|o| {
                writer::owner_stream(o).ok_or_else(|| {
                    StoreError::Damaged("a unique claim's owner names no stream".into())
                })
            })
            .collect()
    }

    /// The user streams earlier releases kept under a username, listed once
    /// by migration 0006 (ADR 0006).
    pub async fn legacy_user_streams(&self) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT aggregate_id FROM legacy_user_streams ORDER BY aggregate_id";
        Ok(match &self.db {
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        })
    }

    /// The stored password hash of `user_id` (ADR 0006), if one was set.
    pub async fn password_hash(&self, user_id: uuid::Uuid) -> Result<Option<String>, StoreError> {
        match &self.db {
            Db::Postgres(p) => postgres::password_hash(p, user_id).await,
            Db::Sqlite(p) => sqlite::password_hash(p, user_id).await,
        }
    }

    /// The stored second factor of `user_id` (ADR 0025), if one was set.
    pub async fn mfa_credential(
        &self,
        user_id: uuid::Uuid,
    ) -> Result<Option<StoredMfa>, StoreError> {
        let row = match &self.db {
            Db::Postgres(p) => postgres::mfa_credential(p, user_id).await?,
            Db::Sqlite(p) => sqlite::mfa_credential(p, user_id).await?,
        };
        // Each recovery code is known by its place in the list: a damaged
        // list is an error, never a shorter one (indices would shift).
        row.map(|(secret, confirmed, codes)| {
            let recovery_codes: Vec<String> = if codes.is_empty() {
                Vec::new()
            } else {
                codes.split(',').map(str::to_owned).collect()
            };
            if recovery_codes
                .iter()
                .any(|c| c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(StoreError::Damaged(
                    "a second factor's recovery codes are not a list of digests".into(),
                ));
            }
            Ok(StoredMfa {
                secret,
                confirmed,
                recovery_codes,
            })
        })
        .transpose()
    }

    /// The position of the last committed event, read from the database.
    pub async fn head_position(&self) -> Result<i64, StoreError> {
        self.reader.head().await
    }

    /// Whether this process's writer task is still running.
    pub fn writer_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Why the writer's last transaction failed, until one succeeds again.
    pub fn last_append_failure(&self) -> Option<String> {
        self.health.borrow().clone()
    }

    /// Checks that the log head names the last event and its hash.
    pub async fn check_head(&self) -> Result<(), StoreError> {
        let sql = "SELECT h.position, h.hash, (SELECT max(global_position) FROM events), \
                   (SELECT e.hash FROM events e WHERE e.global_position = h.position) \
                   FROM log_head h WHERE h.id = 1";
        type Row = (i64, Vec<u8>, Option<i64>, Option<Vec<u8>>);
        let (position, hash, last, last_hash): Row = match &self.db {
            Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await?,
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await?,
        };
        writer::check_head(position, &hash, last, last_hash.as_deref())
    }

    /// A signal that changes whenever the log grows (in this process, or on
    /// Postgres in any process). Readers still read from the database: the
    /// signal only says when to look.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.reader.subscribe()
    }
}

fn validate(request: &AppendRequest) -> Result<(), AppendError> {
    if request.events.is_empty() {
        return Err(AppendError::Invalid(
            "a command must append at least one event",
        ));
    }
    if request.aggregate_type.is_empty() || request.aggregate_id.is_empty() {
        return Err(AppendError::Invalid("events need an aggregate type and id"));
    }
    if request.metadata.actor.id.trim().is_empty() || request.metadata.actor.role.trim().is_empty()
    {
        return Err(AppendError::Invalid(
            "every event needs an actor id and role",
        ));
    }
    if request.expected_sequence < 0 {
        return Err(AppendError::Invalid("expected sequence cannot be negative"));
    }
    if request.events.iter().any(|e| e.event_type.is_empty()) {
        return Err(AppendError::Invalid("every event needs a type"));
    }
    let fences = &request.guards.streams;
    if fences
        .iter()
        .any(|f| f.aggregate_type.is_empty() || f.aggregate_id.is_empty())
    {
        return Err(AppendError::Invalid(
            "a fenced stream needs an aggregate type and id",
        ));
    }
    if fences.iter().any(|f| f.sequence < 0) {
        return Err(AppendError::Invalid(
            "a fenced stream's sequence cannot be negative",
        ));
    }
    Ok(())
}

impl Db {
    async fn head(&self) -> Result<i64, StoreError> {
        match self {
            Db::Postgres(p) => postgres::head(p).await,
            Db::Sqlite(p) => sqlite::head(p).await,
        }
    }

    pub(crate) async fn commit_batch(
        &self,
        keyring: &Keyring,
        units: &[&[AppendRequest]],
    ) -> Result<writer::Committed, StoreError> {
        match self {
            Db::Postgres(p) => postgres::commit_batch(p, keyring, units).await,
            Db::Sqlite(p) => sqlite::commit_batch(p, keyring, units).await,
        }
    }

    /// The `patient_keys` rows of these patients.
    pub(crate) async fn patient_keys(
        &self,
        patients: &[uuid::Uuid],
    ) -> Result<Vec<seal::KeyRow>, StoreError> {
        if patients.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Db::Postgres(p) => postgres::patient_keys(p, patients).await,
            Db::Sqlite(p) => {
                let mut conn = p.acquire().await?;
                sqlite::patient_keys(&mut conn, patients).await
            }
        }
    }
}

/// Forwards NOTIFYs from appends in any process to the head signal. If the
/// listener connection fails it reconnects; readers also poll slowly, so a
/// missed notification delays them but loses nothing.
async fn listen_for_appends(pool: sqlx::PgPool, head: watch::Sender<i64>) {
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(postgres::NOTIFY_CHANNEL).await?;
            loop {
                let n = l.recv().await?;
                if let Ok(position) = n.payload().parse::<i64>() {
                    // Any session may NOTIFY: a position beyond what this
                    // process knows is checked against the head, so that
                    // readers never take an uncommitted position as safe.
                    if position > *head.borrow() {
                        if let Ok(committed) = postgres::head(&pool).await {
                            writer::advance(&head, position.min(committed));
                        }
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = listener => {
                if pool.is_closed() {
                    // Shutting down (a CLI command finishing, a server stopping).
                    return;
                }
                if let Err(error) = result {
                    tracing::warn!(%error, "event notification listener failed; reconnecting");
                }
            }
            _ = head.closed() => return,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
