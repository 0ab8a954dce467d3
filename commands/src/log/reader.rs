//! The narrow, read-only view of the log that projections, replay and
//! consumers get: read from a position (all events, or only some aggregate
//! types), read a stream, the head, and a signal when the log grows. No
//! append, no pool: a reader cannot write, whatever it is handed.

use tokio::sync::watch;

use super::appended::Appended;
use super::seal::{self, Keyring};
use super::{postgres, sqlite, Db, StoreError, StoredEvent};
use anamnesis_domain::subject::ERASURE_EVENT;

/// How long [`LogReader::head_after`] trusts the growth signal before it
/// reads the head from the database again.
const HEAD_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A read-only handle on the log. Cheap to clone.
///
/// Every read but [`LogReader::read_from`] opens encrypted payloads with
/// their patients' keys (docs/adr/0024-encryption.md): an erased patient's
/// payload reads as `anamnesis_domain::codec::ERASED_PAYLOAD`, which decodes
/// as `DecodeError::Erased`.
#[derive(Clone)]
pub struct LogReader {
    db: Db,
    head: watch::Receiver<i64>,
    /// What the writer of this process appended, by type (none for a
    /// detached reader).
    appended: Option<Appended>,
    keyring: Keyring,
}

impl LogReader {
    pub(crate) fn new(
        db: Db,
        (head, appended): (watch::Receiver<i64>, Option<Appended>),
        keyring: Keyring,
    ) -> Self {
        Self {
            db,
            head,
            appended,
            keyring,
        }
    }

    /// The same reader over another pool of the same database.
    pub(crate) fn on(&self, db: Db) -> Self {
        Self::new(
            db,
            (self.head.clone(), self.appended.clone()),
            self.keyring.clone(),
        )
    }

    /// Whether this reader's growth signal moves with the appends of a
    /// writer in this process (and, on Postgres, with other processes'
    /// NOTIFYs); a detached reader's never moves.
    pub fn signals_own_appends(&self) -> bool {
        self.appended.is_some()
    }

    /// Whether positions after `after` up to `until` certainly hold no
    /// event of the aggregate `types` and no erasure, known without a read:
    /// this process's writer appended every one of them and none of those
    /// batches held one. `false` whenever unsure (a detached reader, events
    /// from another process, no types). A projector passes such a stretch
    /// over as it would after reading it empty.
    pub fn holds_none_of(&self, types: &[&str], (after, until): (i64, i64)) -> bool {
        self.appended
            .as_ref()
            .is_some_and(|a| a.holds_none_of(types, (after, until)))
    }

    /// A reader over `db` with no writer in this process (a command-line
    /// tool that only reads): its growth signal never changes. Without a
    /// master key, it reads events as stored and cannot open encrypted ones.
    pub fn detached(db: Db) -> Self {
        Self::detached_with(db, Keyring::none())
    }

    /// [`LogReader::detached`] with the patients' keys.
    pub fn detached_with(db: Db, keyring: Keyring) -> Self {
        let (_, head) = watch::channel(0);
        Self::new(db, (head, None), keyring)
    }

    /// Up to `limit` events after global position `after`, in position
    /// order, **exactly as stored**: encrypted payloads stay encrypted. For
    /// what works on stored bytes (verification, backups, the relay, which
    /// publishes no payload); everything that decodes events reads with
    /// [`LogReader::read_types`], [`LogReader::read_patient`] or
    /// [`LogReader::read_stream`].
    pub async fn read_from(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.db {
            Db::Postgres(p) => postgres::read_from(p, after, limit).await,
            Db::Sqlite(p) => sqlite::read_from(p, after, limit).await,
        }
    }

    /// Opens the encrypted payloads of `events` (one lookup of their
    /// patients' keys), in place.
    async fn open(&self, mut events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, StoreError> {
        let patients = seal::sealed_patients(&events)?;
        if patients.is_empty() {
            return Ok(events);
        }
        let keys = self.db.patient_keys(&patients).await?;
        seal::open_all(&self.keyring, &mut events, keys)?;
        Ok(events)
    }

    /// Opens the encrypted payloads of `events` with the key rows read with
    /// them (Postgres brings them in the events' own query): only those of
    /// patients whose payloads are sealed count, as when they are looked up.
    fn open_keyed(
        &self,
        (mut events, keys): postgres::Keyed,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sealed = seal::sealed_patients(&events)?;
        if sealed.is_empty() {
            return Ok(events);
        }
        let keys = keys
            .into_iter()
            .filter(|(patient, _, _)| sealed.binary_search(patient).is_ok())
            .collect();
        seal::open_all(&self.keyring, &mut events, keys)?;
        Ok(events)
    }

    /// Up to `limit` events of the given aggregate types with a position in
    /// `(after, until]`, in position order. Every type when `types` is empty.
    /// Erasures of patients (`patient.erased`) come whatever the types: every
    /// reader of patient data must see them (docs/adr/0024-encryption.md).
    ///
    /// The filter runs in SQL over the primary-key range, so a reader of one
    /// domain neither fetches nor decodes the others' events. `until` bounds
    /// the scan: a caller pages through a log where its types are rare in
    /// windows, and knows it has seen everything up to `until` when fewer
    /// than `limit` events come back.
    ///
    /// Without `payload`, events come with an empty payload and metadata
    /// (`null`, `{}`): for readers of who-did-what that never look inside.
    ///
    /// Positions this process's writer appended lately are read from its
    /// memory (the same events, opened, with no query).
    pub async fn read_types(
        &self,
        types: &[&str],
        (after, until): (i64, i64),
        limit: i64,
        payload: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let recent = self
            .appended
            .as_ref()
            .and_then(|a| a.read_types(types, (after, until), limit));
        if let Some(recent) = recent {
            metrics::counter!("anamnesis_log_reads_from_memory_total").increment(1);
            return Ok(recent
                .iter()
                .map(|e| {
                    if payload {
                        e.as_ref().clone()
                    } else {
                        headers_of(e)
                    }
                })
                .collect());
        }
        match &self.db {
            Db::Postgres(p) => self
                .open_keyed(postgres::read_types(p, types, (after, until), limit, payload).await?),
            Db::Sqlite(p) => {
                let events = sqlite::read_types(p, types, (after, until), limit, payload).await?;
                self.open(events).await
            }
        }
    }

    /// Up to `limit` events about patient `patient` after position `after`
    /// and up to `until`, in position order: those naming them (every
    /// aggregate, migration 0008) and their own record's stream (which
    /// events written before 0008 are found by). One indexed read.
    pub async fn read_patient(
        &self,
        patient: uuid::Uuid,
        (after, until): (i64, i64),
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.db {
            Db::Postgres(p) => {
                self.open_keyed(postgres::read_patient(p, patient, (after, until), limit).await?)
            }
            Db::Sqlite(p) => {
                let events = sqlite::read_patient(p, patient, (after, until), limit).await?;
                self.open(events).await
            }
        }
    }

    /// The events of one stream after `after_sequence`, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_sequence: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.db {
            Db::Postgres(p) => self.open_keyed(
                postgres::read_stream(p, aggregate_type, aggregate_id, after_sequence).await?,
            ),
            Db::Sqlite(p) => {
                let events =
                    sqlite::read_stream(p, aggregate_type, aggregate_id, after_sequence).await?;
                self.open(events).await
            }
        }
    }

    /// Every event of the streams of `aggregate_type` named in `ids`, in
    /// position order: what [`LogReader::read_stream`] reads from 0 for each
    /// of them, in one read (the cold reads of many commands that wait
    /// together).
    pub async fn read_streams(
        &self,
        aggregate_type: &str,
        ids: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match &self.db {
            Db::Postgres(p) => {
                self.open_keyed(postgres::read_streams(p, aggregate_type, ids).await?)
            }
            Db::Sqlite(p) => {
                let events = sqlite::read_streams(p, aggregate_type, ids).await?;
                self.open(events).await
            }
        }
    }

    /// The streams of `aggregate_type` that gained events after position
    /// `after`, up to position `until`: (global position, aggregate id), in
    /// position order, at most `limit`. Reads ids only, over the primary key
    /// range (followers read a short range of new positions). An index on
    /// `(aggregate_type, global_position)` was tried and dropped: with young
    /// statistics Postgres chose it for the stream lookups of every append,
    /// and appends fell from ~3,600 to ~600 events/s (bench-append).
    pub async fn streams_touched(
        &self,
        aggregate_type: &str,
        after: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = "SELECT global_position, aggregate_id FROM events \
                   WHERE aggregate_type = $1 AND global_position > $2 AND global_position <= $3 \
                   ORDER BY global_position LIMIT $4";
        Ok(match &self.db {
            Db::Postgres(p) => {
                sqlx::query_as(sql)
                    .bind(aggregate_type)
                    .bind(after)
                    .bind(until)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_as(sql)
                    .bind(aggregate_type)
                    .bind(after)
                    .bind(until)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
        })
    }

    /// The ids of every stream of `aggregate_type`, sorted. Every stream has
    /// exactly one event at sequence 1, so this reads the index behind
    /// `UNIQUE (aggregate_type, aggregate_id, sequence)` over the type's
    /// range, already in id order, with no sort and no `DISTINCT`.
    pub async fn stream_ids(&self, aggregate_type: &str) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT aggregate_id FROM events WHERE aggregate_type = $1 AND sequence = 1 \
                   ORDER BY aggregate_id";
        Ok(match &self.db {
            Db::Postgres(p) => {
                sqlx::query_scalar(sql)
                    .bind(aggregate_type)
                    .fetch_all(p)
                    .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_scalar(sql)
                    .bind(aggregate_type)
                    .fetch_all(p)
                    .await?
            }
        })
    }

    /// The position of the last committed event, read from the database.
    /// Every event at or before it is committed and visible.
    pub async fn head(&self) -> Result<i64, StoreError> {
        self.db.head().await
    }

    /// The head for a follower that has seen the log up to `seen`, asking
    /// the database only when the growth signal cannot say: a signalled head
    /// beyond `seen` is committed (the signal moves after a commit; NOTIFYs
    /// from other processes are checked against the head first); when the
    /// signal says nothing new, the database has the last word, asked at
    /// most once per [`HEAD_READ_EVERY`] (`last_read`, kept by the caller)
    /// for a reader whose signal carries this process's appends. The
    /// database catches what the signal cannot carry: another process's
    /// appends on SQLite, a NOTIFY lost while the listener reconnected.
    pub async fn head_after(
        &self,
        seen: i64,
        last_read: &mut Option<std::time::Instant>,
    ) -> Result<i64, StoreError> {
        let signalled = *self.head.borrow();
        if signalled > seen {
            return Ok(signalled);
        }
        let recent = last_read.is_some_and(|t| t.elapsed() < HEAD_READ_EVERY);
        if self.signals_own_appends() && recent {
            return Ok(seen);
        }
        *last_read = Some(std::time::Instant::now());
        self.head().await
    }

    /// What `log_head` says: the position of the last committed event and
    /// its hash (zeros for an empty log). Verification compares it with the
    /// last event, which shows a log cut short at its end.
    pub async fn head_entry(&self) -> Result<(i64, Vec<u8>), StoreError> {
        let sql = "SELECT position, hash FROM log_head WHERE id = 1";
        Ok(match &self.db {
            Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await?,
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await?,
        })
    }

    /// A signal that changes whenever the log grows (in this process, or on
    /// Postgres in any process). It only says when to look: read the
    /// database for what is there.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        self.db.backend()
    }
}

/// The payload of every event a read without payload gives.
const NO_PAYLOAD: &str = "null";
/// The metadata of every event a read without payload gives.
const NO_METADATA: &str = "{}";

/// `event` as a read without payload gives it.
fn headers_of(event: &StoredEvent) -> StoredEvent {
    StoredEvent {
        payload: NO_PAYLOAD.into(),
        metadata: NO_METADATA.into(),
        ..event.clone()
    }
}

/// Whether a read of `types` returns `event` (every type when `types` is
/// empty; a patient's erasure always, since every read model forgets them):
/// what [`types_query`] asks the database, for reads answered in memory.
pub fn of_types(types: &[&str], event: &StoredEvent) -> bool {
    types.is_empty()
        || types.contains(&event.aggregate_type.as_str())
        || event.event_type == ERASURE_EVENT
}

/// `SELECT … WHERE global_position > $1 AND global_position <= $2 [AND
/// aggregate_type IN ($4, …)] ORDER BY global_position LIMIT $3`, the same
/// text on both backends.
pub(crate) fn types_query(columns: &str, types: &[&str], payload: bool) -> String {
    let columns = if payload {
        columns.to_owned()
    } else {
        without_payload(columns)
    };
    let mut sql = format!(
        "SELECT {columns} FROM events WHERE global_position > $1 AND global_position <= $2"
    );
    if !types.is_empty() {
        let list: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 4)).collect();
        sql.push_str(&format!(
            " AND (aggregate_type IN ({}) OR event_type = '{ERASURE_EVENT}')",
            list.join(", ")
        ));
    }
    sql.push_str(" ORDER BY global_position LIMIT $3");
    sql
}

/// `columns` with the payload and metadata replaced by empty constants.
fn without_payload(columns: &str) -> String {
    columns
        .split(',')
        .map(|c| {
            let c = c.trim();
            if c.starts_with("payload") {
                format!("'{NO_PAYLOAD}' AS payload")
            } else if c.starts_with("metadata") {
                format!("'{NO_METADATA}' AS metadata")
            } else {
                c.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_headers_only_read_selects_no_payload() {
        let sql = super::types_query(
            "global_position, payload::text AS payload, metadata::text AS metadata, hash",
            &["patient"],
            false,
        );
        assert!(sql.starts_with(
            "SELECT global_position, 'null' AS payload, '{}' AS metadata, hash FROM events"
        ));
        assert!(sql.contains("aggregate_type IN ($4) OR event_type = 'patient.erased'"));
    }
}
