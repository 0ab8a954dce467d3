//! What goes into the log and what comes out of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use anamnesis_domain::unique::UniqueKey;

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
    /// The client's idempotency key for this command, recorded with its
    /// events: a second command with the same key appends nothing and gets
    /// the first one's outcome.
    pub idempotency: Option<Idempotency>,
}

/// An idempotency key, scoped to its caller, and what to answer a repeat with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// SHA-256 of the caller's scope and the client's key.
    pub key: Vec<u8>,
    /// SHA-256 of the request (method, path, body): a key reused for another
    /// request is refused, not answered with the first outcome.
    pub request_hash: Vec<u8>,
    /// What the first command answers (HTTP status).
    pub status: u16,
    /// The id the first command answers with.
    pub result_id: String,
}

/// What a command with an idempotency key answered the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub result_id: String,
    /// Global position of the first command's last event.
    pub position: i64,
}

impl Outcome {
    /// From a row of `idempotency_keys` (request_hash, status, result_id,
    /// position). A status that is no HTTP status is damage, not a 200.
    pub(crate) fn from_row(
        (request_hash, status, result_id, position): (Vec<u8>, i64, String, i64),
    ) -> Result<Self, StoreError> {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (100..600).contains(s))
            .ok_or(StoreError::Corrupt {
                position,
                detail: "an idempotency key records no valid HTTP status".into(),
            })?;
        Ok(Self {
            request_hash,
            status,
            result_id,
            position,
        })
    }
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
            idempotency: None,
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
    /// Unique keys the stream takes and gives up with these events.
    pub keys: KeyChanges,
    /// A password to store with these events (the event records that it
    /// was set; the credential table holds it): both commit, or neither.
    pub credential: Option<Credential>,
    /// A second factor to store or remove with these events (ADR 0025),
    /// like `credential`: both commit, or neither.
    pub mfa: Option<MfaCredential>,
    /// Conditions the append commits under and writes nothing for: other
    /// streams that must not have moved, keys no other stream may hold.
    pub guards: Guards,
    /// The patient these events are about, if any (the aggregate says,
    /// `anamnesis_domain::subject::Subject`): an indexed, hashed column.
    pub patient_id: Option<Uuid>,
}

/// What must still hold when an append commits, checked under the head lock
/// in commit order (a command earlier in the same batch, or earlier in the
/// same atomic unit, counts as before), and written nowhere: a booking fences
/// its provider's stream without appending to it, so two bookings of one
/// provider do not conflict with each other; a closure checks that no
/// appointment holds its granules without claiming them, so two overlapping
/// closures do not collide (ADR 0003).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    /// Streams this append does not write to that must still be at the given
    /// sequence; one that moved fails the append with [`AppendError::Conflict`]
    /// naming it.
    pub streams: Vec<StreamAt>,
    /// Unique keys no other stream may hold when this append commits; one
    /// that is held fails the append with [`AppendError::Taken`]. A key the
    /// appending stream holds itself, or that an earlier request of the same
    /// unit released, is free.
    pub free: Vec<UniqueKey>,
}

/// A stream at a sequence: the last sequence the command saw (0 for a stream
/// with no events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAt {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
}

/// A user's password credential, kept in the mutable `credentials` table,
/// never in the log (ADR 0006). Its `Debug` shows no hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Whose.
    pub user_id: Uuid,
    /// PHC-format argon2id hash.
    pub password_hash: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user_id", &self.user_id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A user's second factor, kept in the mutable `mfa_credentials` table,
/// never in the log (ADR 0025). Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaCredential {
    /// Whose.
    pub user_id: Uuid,
    /// What the account's row becomes.
    pub state: MfaState,
}

/// A row of `mfa_credentials`, or none.
#[derive(Clone, PartialEq, Eq)]
pub enum MfaState {
    /// An authenticator's secret, confirmed or awaiting its first code,
    /// and the SHA-256 digests (hex) of the recovery codes, in order.
    Set {
        /// The TOTP secret, base32.
        secret: String,
        /// Whether a code confirmed it.
        confirmed: bool,
        /// Recovery code digests (empty until confirmed).
        recovery_codes: Vec<String>,
    },
    /// No second factor: the row is removed.
    Removed,
}

impl std::fmt::Debug for MfaCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            MfaState::Set { confirmed, .. } => {
                if *confirmed {
                    "confirmed"
                } else {
                    "pending"
                }
            }
            MfaState::Removed => "removed",
        };
        f.debug_struct("MfaCredential")
            .field("user_id", &self.user_id)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// Unique keys a command claims and releases, committed with its events: a
/// key held by another stream fails the command with [`AppendError::Taken`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// Keys the stream holds after the command and did not before.
    pub claim: Vec<UniqueKey>,
    /// Keys the stream held before the command and no longer does.
    pub release: Vec<UniqueKey>,
}

impl KeyChanges {
    /// What changed between the keys held `before` and `after` a command.
    pub fn between(before: &[UniqueKey], after: &[UniqueKey]) -> Self {
        Self {
            claim: after
                .iter()
                .filter(|k| !before.contains(k))
                .cloned()
                .collect(),
            release: before
                .iter()
                .filter(|k| !after.contains(k))
                .cloned()
                .collect(),
        }
    }

    /// True when nothing is claimed or released.
    pub fn is_empty(&self) -> bool {
        self.claim.is_empty() && self.release.is_empty()
    }
}

/// How the store names a unique key: a SHA-256 digest of scope and value, so
/// that the claims table holds no identifier in the clear.
pub(crate) fn key_digest(key: &UniqueKey) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key.scope.as_bytes());
    h.update([0]);
    h.update(key.key.as_bytes());
    h.finalize().to_vec()
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

/// An event as stored, with every column of the `events` table. Serialized
/// with its hashes in hex (`anamnesis backup` writes events this way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The patient the event is about, where it has one (migration 0008).
    pub patient_id: Option<Uuid>,
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

/// Bytes as a hex string, in serialized forms.
pub mod hex_bytes {
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// Why an append did not happen. Nothing of the command was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another command appended to the stream since this one loaded it (the
    /// stream appended to, or one the command fenced, [`Guards::streams`]).
    #[error("stream {aggregate_type}/{aggregate_id} is at sequence {actual}, not {expected}")]
    Conflict {
        aggregate_type: String,
        aggregate_id: String,
        expected: i64,
        actual: i64,
    },
    /// A command with the same idempotency key already committed: nothing
    /// was appended; this is what it answered.
    #[error("a command with this idempotency key already committed")]
    Repeated(Outcome),
    /// A unique key the command claims, or needs free ([`Guards::free`]), is
    /// held by another stream.
    #[error("a unique {scope} is held by another record")]
    Taken { scope: &'static str },
    /// The command writes about a patient who was erased: nothing more is
    /// appended about them but access records (docs/adr/0024-encryption.md).
    #[error("the patient was erased")]
    Erased,
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
    /// A write-side table (unique claims, stream ids) holds a value no
    /// release writes: damage, never read as "none".
    #[error("the write side holds an unreadable value: {0}")]
    Damaged(String),
    #[error("the event writer has stopped")]
    WriterStopped,
    #[error("the append transaction failed: {0}")]
    WriterFailed(String),
    /// The database did not answer, or a lock was not granted in time:
    /// nothing was written, and a retry later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A patient's data key cannot be used: no master key, another master
    /// key than the one the keys were made with, or a key that was altered.
    #[error("patient keys: {0}")]
    Keys(String),
    /// The log's head and its events disagree: something wrote to the log
    /// outside the append path. Appends stop until an operator resolves it.
    #[error("event log integrity: {0}")]
    Integrity(String),
}
