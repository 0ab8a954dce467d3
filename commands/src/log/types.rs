//! What goes into the log and what comes out of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who caused an event. Every event has one; the store refuses events without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A user id, or a named system actor such as `cli` or `system:projector`.
    pub id: String,
    /// The actor's role when acting (`admin`, `doctor`, `patient`, ...).
    pub role: String,
}

impl Actor {
    /// An actor from an id and a role.
    pub fn new(id: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            role: role.into(),
        }
    }
}

/// The audit context of one command; every event of that command carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    /// Who issued the command.
    pub actor: Actor,
    /// Why, where the caller said so (break-the-glass, amendments, corrections).
    pub reason: Option<String>,
    /// Groups everything caused by one request.
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// Anything else worth keeping (request id, client); no patient data.
    pub extra: BTreeMap<String, String>,
}

impl EventMetadata {
    /// Metadata naming only the actor.
    pub fn by(actor: Actor) -> Self {
        Self {
            actor,
            reason: None,
            correlation_id: None,
            causation_id: None,
            extra: BTreeMap::new(),
        }
    }
}

/// One event to append: its stable type name, schema version and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
}

/// All events of one command, for one stream, at the sequence the command saw.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The stream's last sequence when the command loaded it (0 for a new stream).
    pub expected_sequence: i64,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
}

/// Where a command's events landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the command's first event.
    pub first_position: i64,
    /// Global position of its last event: what read-your-writes waits for.
    pub last_position: i64,
    /// The stream's sequence after the append.
    pub last_sequence: i64,
}

/// An event as stored, with every column of the `events` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub global_position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The payload JSON exactly as stored (and hashed).
    pub payload: String,
    /// Further metadata as a JSON object, exactly as stored (and hashed).
    pub metadata: String,
    /// Truncated to whole microseconds, the precision both backends keep.
    pub recorded_at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub reason: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }
}

/// Why an append did not happen. Nothing of the command was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another command appended to the stream since this one loaded it.
    #[error("stream {aggregate_type}/{aggregate_id} is at sequence {actual}, not {expected}")]
    Conflict {
        aggregate_type: String,
        aggregate_id: String,
        expected: i64,
        actual: i64,
    },
    /// The request itself is unacceptable (no events, no actor, ...).
    #[error("invalid append: {0}")]
    Invalid(&'static str),
    /// The database failed; the command's events were not committed.
    #[error("event store failure: {0}")]
    Store(#[from] StoreError),
}

/// A failure of the database under the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stored event at position {position} is unreadable: {detail}")]
    Corrupt { position: i64, detail: String },
    #[error("the event writer has stopped")]
    WriterStopped,
    #[error("the append transaction failed: {0}")]
    WriterFailed(String),
}
