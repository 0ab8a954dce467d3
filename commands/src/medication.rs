//! Prescribing (ADR 0015): decided against the patient's recorded
//! allergies as read from their stream, and fenced on it, so that an
//! allergy recorded while the prescription is being decided makes it
//! decide again rather than commit unchecked. The active-list key (one
//! active order per drug and patient) is claimed with the event; an order
//! that still holds it with its course over is completed in the same
//! commit, so a finished course never blocks the next.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use uuid::Uuid;

use anamnesis_domain::medication::{
    Medication, MedicationCommand, MedicationError, Order, PatientFacts, Prescriber, ACTIVE_SCOPE,
};
use anamnesis_domain::patient::Patient;
use anamnesis_domain::schedule::ClinicZone;

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{AppendError, EventMetadata, StreamAt};

/// A prescription as requested.
#[derive(Debug, Clone)]
pub struct Prescription {
    pub patient_id: Uuid,
    pub prescriber: Uuid,
    pub order: Order,
    pub override_reason: Option<String>,
}

/// Prescribes medication `id` (a fresh id) in the clinic's `zone`.
pub async fn prescribe(
    bus: &CommandBus,
    id: Uuid,
    request: Prescription,
    metadata: &EventMetadata,
    (now, zone): (DateTime<Utc>, ClinicZone),
) -> Result<Executed, CommandError<MedicationError>> {
    // Orders found holding the drug with their course over: completed in
    // the prescription's commit.
    let mut finished: Vec<String> = Vec::new();
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
            zone,
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
        let Decision::Append(mut prescribed) = decided else {
            return Err(CommandError::Invalid("a prescription decided nothing"));
        };
        prescribed.guards.streams = vec![StreamAt {
            aggregate_type: Patient::TYPE.to_owned(),
            aggregate_id: request.patient_id.to_string(),
            sequence,
        }];
        let keys = prescribed.keys.claim.clone();
        let mut unit = Vec::new();
        for holder in &finished {
            let loaded = bus.load::<Medication>(holder).await?;
            if !loaded.0.course_over(now) {
                continue;
            }
            let mut m = metadata.clone();
            m.reason = Some("course over; the drug is prescribed again".into());
            let completed = bus
                .decide_from(loaded, holder, MedicationCommand::Complete { now }, &(), &m)
                .await?;
            if let Decision::Append(r) = completed {
                unit.push(*r);
            }
        }
        unit.push(*prescribed);
        match bus.log().append_atomic(unit).await {
            Ok(landed) => {
                return Ok(Executed {
                    position: landed.last().map_or(0, |a| a.last_position),
                    events: landed.len(),
                })
            }
            Err(AppendError::Taken { scope }) if scope == ACTIVE_SCOPE && finished.is_empty() => {
                let holders = bus
                    .log()
                    .claim_holders(&keys)
                    .await
                    .map_err(CommandError::Store)?;
                for (aggregate_type, holder) in holders {
                    if aggregate_type == Medication::TYPE
                        && bus.load::<Medication>(&holder).await?.0.course_over(now)
                    {
                        finished.push(holder);
                    }
                }
                if finished.is_empty() {
                    return Err(CommandError::Taken { scope });
                }
            }
            Err(e) => {
                retry_or_fail::<MedicationError>(e)?;
            }
        }
    }
    Err(CommandError::Conflict)
}
