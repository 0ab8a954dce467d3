//! The log as a cqrs-es `PersistedEventRepository`: proof, in tests, that the
//! log can stand behind cqrs-es's own `PersistedEventStore`. Nothing in the
//! server uses it: the command bus uses the log directly, because it needs
//! the global position of what it appended and claims unique keys.
//!
//! Payloads are kept in the log's stored form (`anamnesis_domain::codec`):
//! cqrs-es serializes an adjacently tagged event, `{"type": …, "data": …}`;
//! the tag goes to `event_type`, only the data is stored.
//!
//! Snapshots are not supported: a snapshot update is refused rather than
//! silently dropped (cqrs-es 0.5's snapshot store applies events twice).

use std::collections::BTreeMap;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use serde_json::Value;
use uuid::Uuid;

use anamnesis_commands::{
    Actor, AppendError, AppendRequest, EventLog, EventMetadata, KeyChanges, NewEvent, StoreError,
    StoredEvent,
};

/// Metadata keys promoted to columns of `events`.
pub const ACTOR_ID: &str = "actor_id";
pub const ACTOR_ROLE: &str = "actor_role";
pub const REASON: &str = "reason";
pub const CORRELATION_ID: &str = "correlation_id";
pub const CAUSATION_ID: &str = "causation_id";

/// [`EventLog`] behind the cqrs-es repository interface.
#[derive(Clone)]
pub struct LogRepository {
    log: EventLog,
}

impl LogRepository {
    /// A repository over `log`.
    pub fn new(log: EventLog) -> Self {
        Self { log }
    }
}

fn unknown(e: impl std::error::Error + Send + Sync + 'static) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(&'static str);

/// A stored event in cqrs-es's shape, promoted columns folded back into metadata.
pub fn serialized(e: &StoredEvent) -> Result<SerializedEvent, PersistenceError> {
    let mut metadata: BTreeMap<String, String> = serde_json::from_str(&e.metadata)?;
    metadata.insert(ACTOR_ID.into(), e.actor_id.clone());
    metadata.insert(ACTOR_ROLE.into(), e.actor_role.clone());
    if let Some(r) = &e.reason {
        metadata.insert(REASON.into(), r.clone());
    }
    if let Some(c) = e.correlation_id {
        metadata.insert(CORRELATION_ID.into(), c.to_string());
    }
    if let Some(c) = e.causation_id {
        metadata.insert(CAUSATION_ID.into(), c.to_string());
    }
    Ok(SerializedEvent {
        aggregate_id: e.aggregate_id.clone(),
        sequence: usize::try_from(e.sequence).map_err(unknown)?,
        aggregate_type: e.aggregate_type.clone(),
        event_type: e.event_type.clone(),
        event_version: e.event_version.clone(),
        payload: tagged(&e.event_type, serde_json::from_str(&e.payload)?),
        metadata: serde_json::to_value(metadata)?,
    })
}

/// A stored payload as cqrs-es serializes the event: tagged with its type.
fn tagged(event_type: &str, payload: Value) -> Value {
    let mut tagged = serde_json::Map::new();
    tagged.insert("type".into(), Value::String(event_type.to_owned()));
    if !payload.is_null() {
        tagged.insert("data".into(), payload);
    }
    Value::Object(tagged)
}

/// Splits cqrs-es metadata into the promoted columns and the rest.
fn metadata_of(event: &SerializedEvent) -> Result<EventMetadata, PersistenceError> {
    let mut map: BTreeMap<String, String> = serde_json::from_value(event.metadata.clone())?;
    let actor_id = map.remove(ACTOR_ID).unwrap_or_default();
    let actor_role = map.remove(ACTOR_ROLE).unwrap_or_default();
    let parse_id = |v: Option<String>| -> Result<Option<Uuid>, PersistenceError> {
        v.map(|s| Uuid::parse_str(&s).map_err(unknown)).transpose()
    };
    Ok(EventMetadata {
        actor: Actor::new(actor_id, actor_role),
        reason: map.remove(REASON),
        correlation_id: parse_id(map.remove(CORRELATION_ID))?,
        causation_id: parse_id(map.remove(CAUSATION_ID))?,
        extra: map,
        idempotency: None,
    })
}

fn store_error(e: StoreError) -> PersistenceError {
    PersistenceError::ConnectionError(Box::new(e))
}

impl PersistedEventRepository for LogRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let after = i64::try_from(last_sequence).map_err(unknown)?;
        let stored = self
            .log
            .read_stream(A::TYPE, aggregate_id, after)
            .await
            .map_err(store_error)?;
        stored.iter().map(serialized).collect()
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(unknown(Refused(
                "snapshots are not supported by the event log",
            )));
        }
        let Some(first) = events.first() else {
            return Ok(());
        };
        let contiguous = events
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1 && w[1].aggregate_id == w[0].aggregate_id);
        if !contiguous || first.sequence == 0 {
            return Err(unknown(Refused(
                "events must belong to one stream with consecutive sequences",
            )));
        }
        let request = AppendRequest {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: first.aggregate_id.clone(),
            expected_sequence: i64::try_from(first.sequence - 1).map_err(unknown)?,
            events: events
                .iter()
                .map(|e| NewEvent {
                    event_type: e.event_type.clone(),
                    event_version: e.event_version.clone(),
                    payload: e.payload.get("data").cloned().unwrap_or(Value::Null),
                })
                .collect(),
            metadata: metadata_of(first)?,
            // cqrs-es persists events without the aggregate's state: this
            // adapter cannot claim unique keys (the command bus does).
            keys: KeyChanges::default(),
            credential: None,
            mfa: None,
            guards: Default::default(),
            patient_id: None,
        };
        match self.log.append(request).await {
            Ok(_) => Ok(()),
            Err(AppendError::Conflict { .. }) => Err(PersistenceError::OptimisticLockError),
            Err(AppendError::Invalid(why)) => Err(unknown(Refused(why))),
            Err(AppendError::Taken { .. }) => Err(unknown(Refused("a unique key is taken"))),
            Err(AppendError::Repeated(_)) => Err(unknown(Refused("already committed"))),
            Err(AppendError::Erased) => Err(unknown(Refused("the patient was erased"))),
            Err(AppendError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        Ok(feed(events))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        // Pages through the whole log, keeping this aggregate type's events.
        let (mut feed, stream) = ReplayStream::new(256);
        let log = self.log.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = match log.read_from(after, 1000).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = feed.push(Err(store_error(e))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = last.global_position;
                for e in page.iter().filter(|e| e.aggregate_type == A::TYPE) {
                    if feed.push(serialized(e)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}

fn feed(events: Vec<SerializedEvent>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    tokio::spawn(async move {
        for e in events {
            if feed.push(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    stream
}
