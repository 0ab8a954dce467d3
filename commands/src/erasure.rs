//! Erasing a patient by crypto-shredding (docs/adr/0024-encryption.md): the
//! `patient.erased` event is appended in the transaction that destroys the
//! patient's data key, so every earlier event about them reads as erased,
//! and every projector removes them when it reaches the event.

use uuid::Uuid;

use anamnesis_domain::patient::{Patient, PatientCommand, PatientError};

use crate::dispatch::{CommandBus, CommandError, Executed};
use crate::log::{Db, EventMetadata, StoreError};

/// Why a patient was not erased. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// Events about the patient are stored in the clear (written with
    /// encryption off, or by a release before it): destroying a key would
    /// not make them unreadable, so nothing is done.
    #[error(
        "{0} event(s) about this patient are stored unencrypted (written with encryption off \
         or before it existed): erasing the patient's key would not make them unreadable"
    )]
    InTheClear(i64),
    /// The log does not encrypt (no master key, or encryption off).
    #[error(
        "the log does not encrypt patients' events (encryption is off): nothing can be erased"
    )]
    NotEncrypting,
    #[error(transparent)]
    Command(#[from] CommandError<PatientError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Erases patient `patient`, recorded with `metadata` (whose `reason` is the
/// legal ground). Fails with the command's own errors for an unknown
/// (`NotRegistered`) or already erased (`Erased`) patient.
pub async fn erase(
    bus: &CommandBus,
    patient: Uuid,
    metadata: &EventMetadata,
) -> Result<Executed, ErasureError> {
    if !bus.log().seals() {
        return Err(ErasureError::NotEncrypting);
    }
    let clear = in_the_clear(bus.log().db(), patient).await?;
    if clear > 0 {
        return Err(ErasureError::InTheClear(clear));
    }
    Ok(bus
        .execute::<Patient>(&patient.to_string(), PatientCommand::Erase, &(), metadata)
        .await?)
}

/// How many events about `patient` (but the access records, kept in the
/// clear on purpose) are stored unencrypted.
pub async fn in_the_clear(db: &Db, patient: Uuid) -> Result<i64, StoreError> {
    let sealed = format!("{}%", anamnesis_domain::codec::SEALED_PREFIX);
    let clear_types = anamnesis_domain::subject::CLEAR_TYPES;
    let erasure = anamnesis_domain::subject::ERASURE_EVENT;
    let types = clear_types
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(match db {
        Db::Postgres(p) => {
            sqlx::query_scalar(&format!(
                "SELECT count(*) FROM events \
                 WHERE (patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $2)) \
                 AND aggregate_type NOT IN ({types}) AND event_type <> '{erasure}' \
                 AND payload::text NOT LIKE $3"
            ))
            .bind(patient)
            .bind(patient.to_string())
            .bind(&sealed)
            .fetch_one(p)
            .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_scalar(&format!(
                "SELECT count(*) FROM events \
                 WHERE (patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $1)) \
                 AND aggregate_type NOT IN ({types}) AND event_type <> '{erasure}' \
                 AND payload NOT LIKE $2"
            ))
            .bind(patient.to_string())
            .bind(&sealed)
            .fetch_one(p)
            .await?
        }
    })
}
