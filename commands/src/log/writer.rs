//! Group commit: one writer task per process takes the appends that queued up
//! while the previous transaction was committing and commits them together.
//!
//! Positions and the hash chain are assigned in `plan_batch`, inside the
//! backend's transaction and under its lock on the one-row log head, so they
//! are gap-free and in commit order. A command whose expected sequence is stale
//! (or whose guards do not hold) is answered with a conflict and left out; the
//! others in its batch go on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::chain::event_hash;
use super::seal::{self, BatchKeys, KeyState, Keyring};
use super::types::key_digest;
use super::{
    AppendError, AppendRequest, Appended, Credential, Db, MfaCredential, Outcome, StoreError,
    StoredEvent,
};

/// The most commands one transaction takes. Large enough that a busy server
/// amortises its commits, small enough to stay well inside Postgres's
/// bind-parameter limit and to keep one transaction short.
pub(crate) const MAX_BATCH_COMMANDS: usize = 512;

/// One unit of work: the events of one command, or of several commands that
/// must commit together (all or none).
pub(crate) struct Pending {
    pub requests: Vec<AppendRequest>,
    pub reply: oneshot::Sender<UnitResult>,
}

/// Where each request of a unit landed, or why the unit was refused.
pub(crate) type UnitResult = Result<Vec<Appended>, AppendError>;

/// Stream key: (aggregate type, aggregate id).
pub(crate) type StreamKey = (String, String);

/// The outcome of planning one batch against the head and stream sequences.
pub(crate) struct Plan {
    pub rows: Vec<StoredEvent>,
    /// For each row, its payload in the clear when the row is sealed.
    pub plain: Vec<Option<String>>,
    pub results: Vec<UnitResult>,
    pub head_position: i64,
    pub head_hash: Vec<u8>,
    /// The final state of every unique key the committed units touched.
    pub keys: Vec<KeyWrite>,
    /// Idempotency keys of the committed units, with what they answered.
    pub idempotency: Vec<(Vec<u8>, Outcome)>,
    /// The credentials the committed units set, one per user (the last).
    pub credentials: Vec<Credential>,
    /// Data keys made for patients the committed rows are sealed for:
    /// (patient, wrapped key), to store with them.
    pub new_keys: Vec<(Uuid, Vec<u8>)>,
    /// The master key's id, stored with each new key.
    pub master_id: Vec<u8>,
    /// Patients erased by the committed units: their keys are destroyed and
    /// their records' unique keys released in the same transaction.
    pub erased: Vec<Uuid>,
    /// The second factors the committed units set or removed, one per
    /// user (the last).
    pub mfa: Vec<MfaCredential>,
}

/// What a batch's transaction answers.
pub(crate) struct Committed {
    /// One result per unit, in queue order.
    pub results: Vec<UnitResult>,
    /// The head after the batch.
    pub position: i64,
    /// The appended events as a reader opens them (sealed payloads in the
    /// clear), in position order: what this process's readers are served
    /// from memory (`Appended`).
    pub events: Vec<StoredEvent>,
}

impl Plan {
    /// The answer once the plan's rows are committed.
    pub(crate) fn committed(self) -> Committed {
        let events = self
            .rows
            .into_iter()
            .zip(self.plain)
            .map(|(mut row, clear)| {
                if let Some(clear) = clear {
                    row.payload = clear;
                }
                row
            })
            .collect();
        Committed {
            results: self.results,
            position: self.head_position,
            events,
        }
    }

    /// The answer when nothing was appended (every unit refused): the head
    /// stays at `position`.
    pub(crate) fn refused(self, position: i64) -> Committed {
        Committed {
            results: self.results,
            position,
            events: Vec::new(),
        }
    }
}

/// Every idempotency key a batch carries, for the backend to look up.
pub(crate) fn idempotency_keys(units: &[&[AppendRequest]]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = units
        .iter()
        .flat_map(|u| u.iter())
        .filter_map(|r| r.metadata.idempotency.as_ref().map(|i| i.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A unique key's state after the batch: held by `owner`, or free.
pub(crate) struct KeyWrite {
    pub digest: Vec<u8>,
    pub scope: &'static str,
    pub owner: Option<String>,
}

/// Every key digest a batch claims, releases or needs free, for the backend
/// to look up.
pub(crate) fn key_digests(units: &[&[AppendRequest]]) -> Vec<Vec<u8>> {
    let mut digests: Vec<Vec<u8>> = units
        .iter()
        .flat_map(|u| u.iter())
        .flat_map(|r| {
            r.keys
                .claim
                .iter()
                .chain(&r.keys.release)
                .chain(&r.guards.free)
        })
        .map(key_digest)
        .collect();
    digests.sort();
    digests.dedup();
    digests
}

/// Every stream a batch appends to or fences, once, for the backend to look
/// up.
pub(crate) fn stream_keys(units: &[&[AppendRequest]]) -> Vec<StreamKey> {
    let mut keys: Vec<StreamKey> = units
        .iter()
        .flat_map(|u| u.iter())
        .flat_map(|r| {
            let fenced = r.guards.streams.iter();
            std::iter::once((r.aggregate_type.clone(), r.aggregate_id.clone()))
                .chain(fenced.map(|f| (f.aggregate_type.clone(), f.aggregate_id.clone())))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A stream's sequence as a unit sees it: the unit's own appends so far,
/// over the batch's committed units, over the database.
fn sequence_in(
    unit: &HashMap<StreamKey, i64>,
    batch: &HashMap<StreamKey, i64>,
    stream: &StreamKey,
) -> i64 {
    unit.get(stream)
        .or_else(|| batch.get(stream))
        .copied()
        .unwrap_or(0)
}

/// A key's holder as a unit sees it, the same way.
fn holder_in(
    unit: &HashMap<Vec<u8>, Option<String>>,
    batch: &HashMap<Vec<u8>, Option<String>>,
    digest: &[u8],
) -> Option<String> {
    unit.get(digest)
        .or_else(|| batch.get(digest))
        .cloned()
        .flatten()
}

/// Why a request's guards fail, if they do, given each stream's `sequence`
/// and each key digest's `holder` where the unit has got to: a fenced stream
/// that moved, or a key that must be free and is held by another stream than
/// `me`.
fn broken_guard(
    req: &AppendRequest,
    me: &str,
    sequence: impl Fn(&StreamKey) -> i64,
    holder: impl Fn(&[u8]) -> Option<String>,
) -> Option<AppendError> {
    let moved = req.guards.streams.iter().find_map(|f| {
        let actual = sequence(&(f.aggregate_type.clone(), f.aggregate_id.clone()));
        (actual != f.sequence).then(|| AppendError::Conflict {
            aggregate_type: f.aggregate_type.clone(),
            aggregate_id: f.aggregate_id.clone(),
            expected: f.sequence,
            actual,
        })
    });
    moved.or_else(|| {
        req.guards
            .free
            .iter()
            .find(|k| holder(&key_digest(k)).is_some_and(|owner| owner != me))
            .map(|k| AppendError::Taken { scope: k.scope })
    })
}

/// How a stream is named as the owner of a key.
fn owner_name(req: &AppendRequest) -> String {
    format!("{}/{}", req.aggregate_type, req.aggregate_id)
}

/// The (aggregate type, aggregate id) of an owner's name. Aggregate types
/// hold no `/`; ids may.
pub(crate) fn owner_stream(owner: &str) -> Option<(String, String)> {
    owner
        .split_once('/')
        .map(|(t, id)| (t.to_owned(), id.to_owned()))
}

/// Assigns positions, sequences and hashes to the events of every unit whose
/// requests all match their streams' sequences and whose guards hold, in queue
/// order. A unit with a stale request, a broken guard or a taken key is left
/// out whole.
///
/// `sequences` holds every stream the batch appends to or fences
/// ([`stream_keys`]), `owners` every key it claims, releases or needs free
/// ([`key_digests`]).
pub(crate) fn plan_batch(
    head: (i64, Vec<u8>),
    mut sequences: HashMap<StreamKey, i64>,
    mut owners: HashMap<Vec<u8>, Option<String>>,
    mut answered: HashMap<Vec<u8>, Outcome>,
    units: &[&[AppendRequest]],
    recorded_at: DateTime<Utc>,
    patient_keys: &BatchKeys,
) -> Plan {
    let mut idempotency = Vec::new();
    let mut erased: Vec<Uuid> = Vec::new();
    let mut sealed_for: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut credentials: HashMap<Uuid, Credential> = HashMap::new();
    let mut mfa: HashMap<Uuid, MfaCredential> = HashMap::new();
    let (mut position, mut hash) = head;
    let mut rows = Vec::new();
    let mut plain = Vec::new();
    let mut results = Vec::with_capacity(units.len());
    let mut touched: Vec<(Vec<u8>, &'static str)> = Vec::new();
    for unit in units {
        // A unit whose idempotency key already committed appends nothing.
        let key = unit.iter().find_map(|r| r.metadata.idempotency.as_ref());
        if let Some(outcome) = key.and_then(|k| answered.get(&k.key)) {
            results.push(Err(AppendError::Repeated(outcome.clone())));
            continue;
        }
        // Plan the unit on copies; keep them only if every request fits.
        let (mut unit_position, mut unit_hash) = (position, hash.clone());
        let mut unit_sequences: HashMap<StreamKey, i64> = HashMap::new();
        let mut unit_owners: HashMap<Vec<u8>, Option<String>> = HashMap::new();
        let mut unit_touched = Vec::new();
        let mut unit_rows = Vec::new();
        let mut unit_plain = Vec::new();
        let mut appended = Vec::with_capacity(unit.len());
        let mut conflict = None;
        for req in unit.iter() {
            let stream = (req.aggregate_type.clone(), req.aggregate_id.clone());
            let actual = sequence_in(&unit_sequences, &sequences, &stream);
            if actual != req.expected_sequence {
                conflict = Some(AppendError::Conflict {
                    aggregate_type: req.aggregate_type.clone(),
                    aggregate_id: req.aggregate_id.clone(),
                    expected: req.expected_sequence,
                    actual,
                });
                break;
            }
            if let Some(patient) = req.patient_id {
                let gone = erased.contains(&patient)
                    || matches!(patient_keys.states.get(&patient), Some(KeyState::Erased));
                if gone && !seal::allowed_after_erasure(req) {
                    conflict = Some(AppendError::Erased);
                    break;
                }
            }
            let me = owner_name(req);
            conflict = broken_guard(
                req,
                &me,
                |stream| sequence_in(&unit_sequences, &sequences, stream),
                |digest| holder_in(&unit_owners, &owners, digest),
            );
            if conflict.is_some() {
                break;
            }
            for given_up in &req.keys.release {
                let digest = key_digest(given_up);
                let held = holder_in(&unit_owners, &owners, &digest);
                if held.as_deref() == Some(me.as_str()) {
                    unit_owners.insert(digest.clone(), None);
                    unit_touched.push((digest, given_up.scope));
                }
            }
            for wanted in &req.keys.claim {
                let digest = key_digest(wanted);
                let held = holder_in(&unit_owners, &owners, &digest);
                if held.as_deref().is_some_and(|owner| owner != me) {
                    conflict = Some(AppendError::Taken {
                        scope: wanted.scope,
                    });
                    break;
                }
                unit_owners.insert(digest.clone(), Some(me.clone()));
                unit_touched.push((digest, wanted.scope));
            }
            if conflict.is_some() {
                break;
            }
            let first_position = unit_position + 1;
            let mut sequence = actual;
            // A map of strings always serializes; the fallback is never taken.
            let extra = serde_json::to_string(&req.metadata.extra).unwrap_or_else(|_| "{}".into());
            let data_key = req
                .patient_id
                .filter(|_| patient_keys.seal && seal::sealed_request(req))
                .and_then(|patient| match patient_keys.states.get(&patient) {
                    Some(KeyState::Live(key)) => Some((patient, key)),
                    _ => None,
                });
            for event in &req.events {
                unit_position += 1;
                sequence += 1;
                let event_id = Uuid::now_v7();
                let payload = event.payload.to_string();
                let (payload, clear) = match data_key {
                    Some((patient, key)) => match key.seal(patient, event_id, &payload) {
                        Ok(sealed) => (sealed, Some(payload)),
                        Err(e) => {
                            conflict = Some(AppendError::Store(e));
                            break;
                        }
                    },
                    None => (payload, None),
                };
                let mut row = StoredEvent {
                    global_position: unit_position,
                    event_id,
                    aggregate_type: req.aggregate_type.clone(),
                    aggregate_id: req.aggregate_id.clone(),
                    sequence,
                    event_type: event.event_type.clone(),
                    event_version: event.event_version.clone(),
                    payload,
                    metadata: extra.clone(),
                    recorded_at,
                    actor_id: req.metadata.actor.id.clone(),
                    actor_role: req.metadata.actor.role.clone(),
                    reason: req.metadata.reason.clone(),
                    correlation_id: req.metadata.correlation_id,
                    causation_id: req.metadata.causation_id,
                    patient_id: req.patient_id,
                    prev_hash: unit_hash.clone(),
                    hash: Vec::new(),
                };
                row.hash = event_hash(&row.prev_hash, &row).to_vec();
                unit_hash = row.hash.clone();
                unit_rows.push(row);
                unit_plain.push(clear);
            }
            if conflict.is_some() {
                break;
            }
            if let Some((patient, _)) = data_key {
                sealed_for.insert(patient);
            }
            unit_sequences.insert(stream, sequence);
            appended.push(Appended {
                first_position,
                last_position: unit_position,
                last_sequence: sequence,
            });
        }
        match conflict {
            Some(error) => results.push(Err(error)),
            None => {
                if let Some(k) = key {
                    let outcome = Outcome {
                        request_hash: k.request_hash.clone(),
                        status: k.status,
                        result_id: k.result_id.clone(),
                        position: unit_position,
                    };
                    answered.insert(k.key.clone(), outcome.clone());
                    idempotency.push((k.key.clone(), outcome));
                }
                position = unit_position;
                hash = unit_hash;
                sequences.extend(unit_sequences);
                owners.extend(unit_owners);
                touched.extend(unit_touched);
                rows.extend(unit_rows);
                plain.extend(unit_plain);
                for c in unit.iter().filter_map(|r| r.credential.as_ref()) {
                    credentials.insert(c.user_id, c.clone());
                }
                for r in unit.iter().filter(|r| seal::erases(r)) {
                    erased.extend(r.patient_id);
                }
                for m in unit.iter().filter_map(|r| r.mfa.as_ref()) {
                    mfa.insert(m.user_id, m.clone());
                }
                results.push(Ok(appended));
            }
        }
    }
    touched.sort();
    touched.dedup();
    let keys = touched
        .into_iter()
        .map(|(digest, scope)| KeyWrite {
            owner: owners.get(&digest).cloned().flatten(),
            digest,
            scope,
        })
        .collect();
    Plan {
        rows,
        plain,
        results,
        head_position: position,
        head_hash: hash,
        keys,
        idempotency,
        credentials: credentials.into_values().collect(),
        new_keys: patient_keys
            .made
            .iter()
            .filter(|(patient, _)| sealed_for.contains(patient))
            .map(|(patient, wrapped)| (*patient, wrapped.clone()))
            .collect(),
        master_id: patient_keys.master_id.clone(),
        erased,
        mfa: mfa.into_values().collect(),
    }
}

/// Checks, under the head lock, that the head names the log's last event:
/// anything else means a row was written, or the head moved, outside the
/// append path, and appending on would fork the chain.
pub(crate) fn check_head(
    position: i64,
    hash: &[u8],
    last: Option<i64>,
    last_hash: Option<&[u8]>,
) -> Result<(), StoreError> {
    let last = last.unwrap_or(0);
    if last != position {
        return Err(StoreError::Integrity(format!(
            "log_head is at position {position} but the events table ends at position {last}: \
             the log was written outside anamnesis. Run `anamnesis replay verify`, keep the \
             database for investigation, and restore from a verified backup"
        )));
    }
    if position > 0 && last_hash != Some(hash) {
        return Err(StoreError::Integrity(format!(
            "log_head's hash does not match the event at position {position}: the head or \
             the event was altered outside anamnesis. Keep the database for investigation \
             and restore from a verified backup"
        )));
    }
    Ok(())
}

/// Pairs each looked-up digest with its current owner.
pub(crate) fn owners_of(
    digests: Vec<Vec<u8>>,
    owners: Vec<Option<String>>,
) -> HashMap<Vec<u8>, Option<String>> {
    digests.into_iter().zip(owners).collect()
}

/// The current time at the precision both backends store.
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Runs until every sender is dropped.
/// Each message on the queue is a group of commands that go into one
/// transaction together (unless that transaction fails, see `commit`).
pub(crate) async fn run(
    db: Db,
    keyring: Keyring,
    mut queue: mpsc::Receiver<Vec<Pending>>,
    (head, appended): (watch::Sender<i64>, super::appended::Appended),
    health: watch::Sender<Option<String>>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH_COMMANDS);
    while let Some(first) = queue.recv().await {
        batch.extend(first);
        while batch.len() < MAX_BATCH_COMMANDS {
            match queue.try_recv() {
                Ok(next) => batch.extend(next),
                Err(_) => break,
            }
        }
        let failed = commit(
            &db,
            &keyring,
            std::mem::take(&mut batch),
            (&head, &appended),
        )
        .await;
        if let Some(Failed {
            unreachable: Some(cause),
            ..
        }) = &failed
        {
            // The commands that queued while the database did not answer have
            // waited as long as the batch did: they fail with it, rather than
            // each waiting that long again (their clients retry).
            while let Ok(next) = queue.try_recv() {
                for pending in next {
                    let failure = StoreError::Unavailable(cause.clone());
                    let _ = pending.reply.send(Err(AppendError::Store(failure)));
                }
            }
        }
        let failure = failed.map(|f| f.detail);
        health.send_if_modified(|h| {
            let changed = *h != failure;
            *h = failure;
            changed
        });
    }
}

/// Why a batch failed, without patient data.
struct Failed {
    /// What `/readyz` reports.
    detail: String,
    /// The cause, when the database did not answer (or a lock was not
    /// granted): nothing about the commands themselves.
    unreachable: Option<String>,
}

impl Failed {
    fn because(detail: String) -> Option<Self> {
        Some(Self {
            detail,
            unreachable: None,
        })
    }
}

/// Commits one batch and answers its units. Returns why the last attempt
/// failed, if it did.
async fn commit(
    db: &Db,
    keyring: &Keyring,
    batch: Vec<Pending>,
    (head, appended): (&watch::Sender<i64>, &super::appended::Appended),
) -> Option<Failed> {
    let units: Vec<&[AppendRequest]> = batch.iter().map(|p| p.requests.as_slice()).collect();
    let started = std::time::Instant::now();
    match db.commit_batch(keyring, &units).await {
        Ok(Committed {
            results,
            position,
            events,
        }) => {
            let count = appended_count(&results);
            metrics::counter!("anamnesis_events_appended_total").increment(count as u64);
            tracing::debug!(
                units = units.len(),
                micros = started.elapsed().as_micros() as u64,
                "batch committed"
            );
            // What the batch held, before the signal wakes the readers.
            appended.record((position - count, position), events);
            advance(head, position);
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(result);
            }
            None
        }
        Err(StoreError::Integrity(detail)) => {
            tracing::error!(%detail, "event log integrity check failed; appends refused until an operator resolves it");
            metrics::counter!("anamnesis_append_integrity_failures_total").increment(1);
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(AppendError::Store(StoreError::Integrity(
                        detail.clone(),
                    ))));
            }
            Failed::because(format!("integrity: {detail}"))
        }
        Err(error) if batch.len() > 1 && caused_by_data(&error) => {
            // Something in the batch made the whole transaction fail. Commit each
            // unit on its own so that one bad command fails alone.
            tracing::warn!(%error, units = batch.len(), "batch append failed; retrying its units one by one");
            let mut failure = None;
            for pending in batch {
                failure = Box::pin(commit(db, keyring, vec![pending], (head, appended))).await;
            }
            failure
        }
        Err(error) => {
            tracing::error!(%error, units = batch.len(), "append failed");
            let data = caused_by_data(&error);
            for pending in batch {
                let failure = if data {
                    StoreError::WriterFailed(error.to_string())
                } else {
                    StoreError::Unavailable(error.to_string())
                };
                let _ = pending.reply.send(Err(AppendError::Store(failure)));
            }
            Some(Failed {
                detail: format!("append failed: {error}"),
                unreachable: (!data).then(|| error.to_string()),
            })
        }
    }
}

/// Whether a failed batch may have failed because of one unit's data (a
/// constraint or a value the database refuses), so that committing each unit
/// alone lets the others through. A database that does not answer, a lock
/// that is not granted or a pool that times out fails every unit at once:
/// retrying them one by one would only make each wait as long again.
fn caused_by_data(error: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(e)) = error else {
        return false;
    };
    use sqlx::error::ErrorKind;
    match e.kind() {
        ErrorKind::UniqueViolation
        | ErrorKind::ForeignKeyViolation
        | ErrorKind::NotNullViolation
        | ErrorKind::CheckViolation => true,
        // Postgres classes 22 (data exception) and 23 (integrity constraint).
        _ => e
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
    }
}

/// Events the successful units of a batch appended.
fn appended_count(results: &[UnitResult]) -> i64 {
    results
        .iter()
        .flatten()
        .flatten()
        .map(|a| a.last_position - a.first_position + 1)
        .sum()
}

/// Moves the head signal forward (never back) and wakes its watchers.
pub(crate) fn advance(head: &watch::Sender<i64>, position: i64) {
    head.send_if_modified(|h| {
        let newer = position > *h;
        if newer {
            *h = position;
        }
        newer
    });
}
