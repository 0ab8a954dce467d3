//! Compliance: a patient's history and their record as of any moment
//! (ADR 0010), chain verification and signed checkpoints (ADR 0009).
//!
//! Reads the log only through `anamnesis_commands::LogReader` (reads, the
//! head; no append), verifies it with the write side's own
//! `chain::verify_run`, and folds events with the same domain code and
//! decoder (`StoredForm::from_stored`) as the live system. Covering a new domain:
//! its aggregate type in [`normalized`] (history) and its projector in
//! `as_of::fold` (as-of), and its aggregate names the patient
//! (`anamnesis_domain::subject::Subject`).
#![forbid(unsafe_code)]

pub mod as_of;
pub mod checkpoint;
pub mod history;
pub mod sentinel;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointKey, PublicKey};
pub use sentinel::{ChainState, ChainStatus, SentinelConfig};
pub use verify::{verify, Anchor, Break, Verified, VerifyError};

use serde_json::Value;

use anamnesis_commands::{StoreError, StoredEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};

/// Events read per page.
pub(crate) const PAGE: i64 = 1000;

/// Why a replay could not answer. Never quotes a payload.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} cannot be read: {detail}")]
    Unreadable { position: i64, detail: String },
    #[error("event at position {position} is of aggregate type {aggregate_type}, which replay does not know")]
    UnknownAggregate {
        position: i64,
        aggregate_type: String,
    },
    #[error("the scratch database failed: {0}")]
    Scratch(String),
    #[error("a projector could not fold the record: {0}")]
    Projection(String),
}

/// A stored event's payload as the current version of its domain event,
/// through the domain's codec: upcast, checked, re-encoded.
pub fn normalized(stored: &StoredEvent) -> Result<Value, ReplayError> {
    use anamnesis_domain::{patient, schedule, user};
    match stored.aggregate_type.as_str() {
        "patient" => through::<patient::PatientEvent>(stored),
        "user" => through::<user::UserEvent>(stored),
        "appointment" => through::<schedule::AppointmentEvent>(stored),
        "provider" => through::<schedule::ProviderEvent>(stored),
        "clinic_calendar" => through::<schedule::ClinicEvent>(stored),
        "access" => through::<anamnesis_domain::access::AccessEvent>(stored),
        "chart_entry" => through::<anamnesis_domain::chart::EntryEvent>(stored),
        "care_team" => through::<anamnesis_domain::chart::CareEvent>(stored),
        "medication" => through::<anamnesis_domain::medication::MedicationEvent>(stored),
        "message_thread" => through::<anamnesis_domain::messaging::ThreadEvent>(stored),
        "price_list" => through::<anamnesis_domain::billing::PriceListEvent>(stored),
        "coverage" => through::<anamnesis_domain::billing::CoverageEvent>(stored),
        "bill" => through::<anamnesis_domain::billing::BillEvent>(stored),
        other => Err(ReplayError::UnknownAggregate {
            position: stored.global_position,
            aggregate_type: other.to_owned(),
        }),
    }
}

fn through<E: StoredForm>(stored: &StoredEvent) -> Result<Value, ReplayError> {
    let unreadable = |e: DecodeError| ReplayError::Unreadable {
        position: stored.global_position,
        detail: e.to_string(),
    };
    let event = E::from_stored(&stored.event_type, &stored.event_version, &stored.payload)
        .map_err(unreadable)?;
    Ok(event.to_stored().map_err(unreadable)?.payload)
}
