//! The hash chain: each event's hash covers the previous hash and every stored
//! column of the event, so an edited, deleted, inserted or reordered event
//! breaks verification from that point on.

use sha2::{Digest, Sha256};

use super::StoredEvent;

/// The `prev_hash` of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash an event must carry, given the hash before it.
///
/// Every field is length-prefixed (absent optional fields get a distinct tag),
/// so no two different events share an encoding.
pub fn event_hash(prev_hash: &[u8], e: &StoredEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"anamnesis.event.v1");
    field(&mut h, prev_hash);
    field(&mut h, &e.global_position.to_be_bytes());
    field(&mut h, e.event_id.as_bytes());
    field(&mut h, e.aggregate_type.as_bytes());
    field(&mut h, e.aggregate_id.as_bytes());
    field(&mut h, &e.sequence.to_be_bytes());
    field(&mut h, e.event_type.as_bytes());
    field(&mut h, e.event_version.as_bytes());
    field(&mut h, e.payload.as_bytes());
    field(&mut h, e.metadata.as_bytes());
    field(&mut h, &e.recorded_at.timestamp_micros().to_be_bytes());
    field(&mut h, e.actor_id.as_bytes());
    field(&mut h, e.actor_role.as_bytes());
    optional(&mut h, e.reason.as_ref().map(|r| r.as_bytes()));
    optional(&mut h, e.correlation_id.as_ref().map(|u| &u.as_bytes()[..]));
    optional(&mut h, e.causation_id.as_ref().map(|u| &u.as_bytes()[..]));
    // Added by migration 0008: covered when present, so that events written
    // before it (all without a patient) keep their hashes, and setting or
    // clearing it afterwards breaks the event's hash either way.
    if let Some(patient) = &e.patient_id {
        h.update(b"patient");
        field(&mut h, patient.as_bytes());
    }
    h.finalize().into()
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn optional(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            field(h, b);
        }
    }
}

/// Where a chain first fails to verify. Positions and hashes only: never
/// anything of the event's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The next event is not at the next position: an event was deleted, or
    /// positions were moved.
    #[error("event at position {position} follows position {previous}: a gap or reordering")]
    Gap { previous: i64, position: i64 },
    /// The event's `prev_hash` is not the hash of the event before it: an
    /// event was inserted, deleted or moved here.
    #[error(
        "event at position {position} does not point at the hash of the event before it \
         (expected prev_hash {}, stored {})",
        hex::encode(.expected),
        hex::encode(.stored)
    )]
    Unlinked {
        position: i64,
        /// The hash of the event before it.
        expected: Vec<u8>,
        /// Its stored `prev_hash`.
        stored: Vec<u8>,
    },
    /// The event's content does not hash to its stored hash: it was edited.
    #[error(
        "event at position {position} does not match its hash: it was altered \
         (expected hash {}, stored {})",
        hex::encode(.expected),
        hex::encode(.stored)
    )]
    Altered {
        position: i64,
        /// The hash its stored content computes to.
        expected: Vec<u8>,
        /// Its stored `hash`.
        stored: Vec<u8>,
    },
}

impl ChainBreak {
    /// The position of the first event that fails to verify.
    pub fn position(&self) -> i64 {
        match self {
            ChainBreak::Gap { position, .. }
            | ChainBreak::Unlinked { position, .. }
            | ChainBreak::Altered { position, .. } => *position,
        }
    }
}

/// Checks a run of consecutive events, continuing from `(position, hash)`.
/// Returns the new `(position, hash)` to continue from.
pub fn verify_run<'a>(
    mut at: (i64, Vec<u8>),
    events: impl IntoIterator<Item = &'a StoredEvent>,
) -> Result<(i64, Vec<u8>), ChainBreak> {
    for e in events {
        if e.global_position != at.0 + 1 {
            return Err(ChainBreak::Gap {
                previous: at.0,
                position: e.global_position,
            });
        }
        if e.prev_hash != at.1 {
            return Err(ChainBreak::Unlinked {
                position: e.global_position,
                expected: at.1,
                stored: e.prev_hash.clone(),
            });
        }
        let expected = event_hash(&e.prev_hash, e);
        if e.hash.as_slice() != expected {
            return Err(ChainBreak::Altered {
                position: e.global_position,
                expected: expected.to_vec(),
                stored: e.hash.clone(),
            });
        }
        at = (e.global_position, e.hash.clone());
    }
    Ok(at)
}
