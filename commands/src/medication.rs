//! Prescribing (ADR 0015): decided against the patient's recorded
//! allergies as read from their stream, and fenced on it, so that an
//! allergy recorded while the prescription is being decided makes it
//! decide again rather than commit unchecked. The active-list key (one
//! active order per drug and patient) is claimed with the event.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use uuid::Uuid;

use anamnesis_domain::medication::{
    Medication, MedicationCommand, MedicationError, Order, PatientFacts, Prescriber,
};
use anamnesis_domain::patient::Patient;

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{EventMetadata, StreamAt};

/// A prescription as requested.
#[derive(Debug, Clone)]
pub struct Prescription {
    pub patient_id: Uuid,
    pub prescriber: Uuid,
    pub order: Order,
    pub override_reason: Option<String>,
}

/// Prescribes medication `id` (a fresh id).
pub async fn prescribe(
    bus: &CommandBus,
    id: Uuid,
    request: Prescription,
    metadata: &EventMetadata,
    now: DateTime<Utc>,
) -> Result<Executed, CommandError<MedicationError>> {
    for _ in 0..MAX_ATTEMPTS {
        let (patient, sequence, _) = bus
            .load::<Patient>(&request.patient_id.to_string())
            .await
            .map_err(|e| e.map_rejected(|_| MedicationError::UnknownPatient))?;
        let command = MedicationCommand::Prescribe {
            origin: Prescriber {
                patient_id: request.patient_id,
                prescriber: request.prescriber,
            },
            order: request.order.clone(),
            patient: PatientFacts {
                registered: patient.is_registered(),
                deceased: patient.is_deceased(),
                allergies: patient.allergies(),
            },
            override_reason: request.override_reason.clone(),
            now,
        };
        let decided = bus
            .decide_from(
                (Medication::default(), 0, 0),
                &id.to_string(),
                command,
                &(),
                metadata,
            )
            .await?;
        let decided = match decided {
            Decision::Append(mut append) => {
                append.guards.streams = vec![StreamAt {
                    aggregate_type: Patient::TYPE.to_owned(),
                    aggregate_id: request.patient_id.to_string(),
                    sequence,
                }];
                Decision::Append(append)
            }
            nothing => nothing,
        };
        match bus.commit(decided).await {
            Ok(done) => return Ok(done),
            Err(e) => {
                retry_or_fail::<MedicationError>(e)?;
            }
        }
    }
    Err(CommandError::Conflict)
}
