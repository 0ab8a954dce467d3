//! A medication order: prescribed by a doctor for a patient, changed in
//! dose (each change a new version), refilled on the patient's request and
//! a doctor's approval, administered by nurses, and ended by
//! discontinuation or completion. While active it holds its drug on the
//! patient's list of active medications (a unique key): a second active
//! order of the same drug cannot commit.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::schedule::ClinicZone;
use crate::subject::Subject;
use crate::text::Lines;
use crate::unique::{UniqueKey, UniqueKeys};

use super::classes::conflicts;
use super::error::{text, text_opt, AllergyConflict, MedicationError};
use super::values::{Dose, Frequency, Order, Outcome};

/// Unique-key scope of a patient's active medications (one key per drug
/// name, and one per RxNorm code).
pub const ACTIVE_SCOPE: &str = "medication.active";

/// Where a medication is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MedicationStatus {
    #[default]
    Active,
    Discontinued,
    Completed,
}

impl MedicationStatus {
    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            MedicationStatus::Active => "active",
            MedicationStatus::Discontinued => "discontinued",
            MedicationStatus::Completed => "completed",
        }
    }
}

/// Whom a medication is for and who prescribed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prescriber {
    pub patient_id: Uuid,
    /// The doctor's user id.
    pub prescriber: Uuid,
}

/// A prescription over recorded allergies, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllergyOverride {
    pub reason: String,
    /// The allergies overridden, as the check found them.
    pub conflicts: Vec<AllergyConflict>,
}

/// A fact about a medication order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MedicationEvent {
    /// Prescribed (version 1).
    #[serde(rename = "medication.prescribed")]
    Prescribed {
        origin: Prescriber,
        order: Order,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allergy_override: Option<AllergyOverride>,
    },
    /// A new dose (and frequency) from now on: a new version.
    #[serde(rename = "medication.dose_changed")]
    DoseChanged {
        dose: Dose,
        frequency: Frequency,
        reason: String,
    },
    /// Stopped before its course ended.
    #[serde(rename = "medication.discontinued")]
    Discontinued { reason: String, at: DateTime<Utc> },
    /// The course was completed (by a doctor, or found ended when the
    /// same drug was prescribed again).
    #[serde(rename = "medication.completed")]
    Completed { at: DateTime<Utc> },
    /// The patient asked for a refill.
    #[serde(rename = "medication.refill_requested")]
    RefillRequested {
        request_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A doctor approved the waiting refill (one authorized refill used).
    #[serde(rename = "medication.refill_approved")]
    RefillApproved { request_id: Uuid },
    /// A doctor denied the waiting refill.
    #[serde(rename = "medication.refill_denied")]
    RefillDenied { request_id: Uuid, reason: String },
    /// A due dose was given, held or refused, at `at`.
    #[serde(rename = "medication.administered")]
    Administered {
        administration_id: Uuid,
        outcome: Outcome,
        at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

impl DomainEvent for MedicationEvent {
    fn event_type(&self) -> String {
        match self {
            MedicationEvent::Prescribed { .. } => "medication.prescribed",
            MedicationEvent::DoseChanged { .. } => "medication.dose_changed",
            MedicationEvent::Discontinued { .. } => "medication.discontinued",
            MedicationEvent::Completed { .. } => "medication.completed",
            MedicationEvent::RefillRequested { .. } => "medication.refill_requested",
            MedicationEvent::RefillApproved { .. } => "medication.refill_approved",
            MedicationEvent::RefillDenied { .. } => "medication.refill_denied",
            MedicationEvent::Administered { .. } => "medication.administered",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for MedicationEvent {}

/// The patient as the write side last read them, for a prescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientFacts {
    pub registered: bool,
    pub deceased: bool,
    /// Recorded allergies: id and substance.
    pub allergies: Vec<(Uuid, String)>,
}

/// What may be asked of a medication order. Whether the caller may ask is
/// the policy's; the patient's allergies come in with the command, read
/// from their record by the command layer, which fences that stream.
#[derive(Debug, Clone, PartialEq)]
pub enum MedicationCommand {
    Prescribe {
        origin: Prescriber,
        order: Order,
        patient: PatientFacts,
        /// Prescribe over conflicting allergies, for this reason.
        override_reason: Option<String>,
        now: DateTime<Utc>,
        /// The clinic's zone: a duration in days ends at the same local time.
        zone: ClinicZone,
    },
    ChangeDose {
        dose: Dose,
        /// `None`: keep the frequency.
        frequency: Option<Frequency>,
        reason: String,
    },
    Discontinue {
        reason: String,
        now: DateTime<Utc>,
    },
    Complete {
        now: DateTime<Utc>,
    },
    RequestRefill {
        request_id: Uuid,
        note: Option<String>,
    },
    ApproveRefill {
        request_id: Uuid,
    },
    DenyRefill {
        request_id: Uuid,
        reason: String,
    },
    Administer {
        administration_id: Uuid,
        outcome: Outcome,
        at: DateTime<Utc>,
        note: Option<String>,
        now: DateTime<Utc>,
    },
}

/// A medication order's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Medication {
    origin: Option<Prescriber>,
    order: Option<Order>,
    status: MedicationStatus,
    versions: u32,
    refills_used: u32,
    pending_refill: Option<Uuid>,
    /// When it was discontinued or completed.
    ended_at: Option<DateTime<Utc>>,
}

impl Medication {
    /// Whom it is for and who prescribed it, once it exists.
    pub fn origin(&self) -> Option<Prescriber> {
        self.origin
    }

    /// The order as now in effect.
    pub fn order(&self) -> Option<&Order> {
        self.order.as_ref()
    }

    pub fn status(&self) -> MedicationStatus {
        self.status
    }

    /// How many versions (prescription and dose changes) it has had.
    pub fn versions(&self) -> u32 {
        self.versions
    }

    /// Refills used so far.
    pub fn refills_used(&self) -> u32 {
        self.refills_used
    }

    /// The refill request waiting for a doctor, if any.
    pub fn pending_refill(&self) -> Option<Uuid> {
        self.pending_refill
    }

    /// Whether it is active with its course over at `now` (it holds its
    /// drug on the active list until someone completes it).
    pub fn course_over(&self, now: DateTime<Utc>) -> bool {
        self.status == MedicationStatus::Active
            && self
                .order
                .as_ref()
                .and_then(|o| o.ends_at)
                .is_some_and(|end| end <= now)
    }

    fn active(&self) -> Result<&Order, MedicationError> {
        let order = self
            .order
            .as_ref()
            .ok_or(MedicationError::UnknownMedication)?;
        if self.status != MedicationStatus::Active {
            return Err(MedicationError::NotActive);
        }
        Ok(order)
    }

    fn reason(value: &str) -> Result<String, MedicationError> {
        text("reason", value, Lines::Multi, 500)
    }

    fn decide(&self, command: MedicationCommand) -> Result<MedicationEvent, MedicationError> {
        use MedicationCommand as C;
        match command {
            C::Prescribe {
                origin,
                order,
                patient,
                override_reason,
                now,
                zone,
            } => {
                if self.order.is_some() {
                    return Err(MedicationError::AlreadyExists);
                }
                if !patient.registered {
                    return Err(MedicationError::UnknownPatient);
                }
                if patient.deceased {
                    return Err(MedicationError::PatientDeceased);
                }
                let order = order.parse(now, zone)?;
                let found = conflicts(&order.medication, &patient.allergies);
                let reason = override_reason.map(|r| Self::reason(&r)).transpose()?;
                let allergy_override = match (found.is_empty(), reason) {
                    (true, _) => None,
                    (false, None) => return Err(MedicationError::AllergyConflict(found)),
                    (false, Some(reason)) => Some(AllergyOverride {
                        reason,
                        conflicts: found,
                    }),
                };
                Ok(MedicationEvent::Prescribed {
                    origin,
                    order,
                    allergy_override,
                })
            }
            C::ChangeDose {
                dose,
                frequency,
                reason,
            } => {
                let order = self.active()?;
                let dose = dose.parse()?;
                let frequency = frequency
                    .unwrap_or_else(|| order.frequency.clone())
                    .parse()?;
                if dose == order.dose && frequency == order.frequency {
                    return Err(MedicationError::Unchanged);
                }
                Ok(MedicationEvent::DoseChanged {
                    dose,
                    frequency,
                    reason: Self::reason(&reason)?,
                })
            }
            C::Discontinue { reason, now } => {
                self.active()?;
                Ok(MedicationEvent::Discontinued {
                    reason: Self::reason(&reason)?,
                    at: now,
                })
            }
            C::Complete { now } => {
                self.active()?;
                Ok(MedicationEvent::Completed { at: now })
            }
            C::RequestRefill { request_id, note } => {
                let order = self.active()?;
                if self.pending_refill.is_some() {
                    return Err(MedicationError::RefillPending);
                }
                if self.refills_used >= order.refills {
                    return Err(MedicationError::NoRefillsLeft);
                }
                Ok(MedicationEvent::RefillRequested {
                    request_id,
                    note: text_opt("note", note, Lines::Multi, 500)?,
                })
            }
            C::ApproveRefill { request_id } => {
                let order = self.active()?;
                if self.pending_refill != Some(request_id) {
                    return Err(MedicationError::NoRefillRequest);
                }
                if self.refills_used >= order.refills {
                    return Err(MedicationError::NoRefillsLeft);
                }
                Ok(MedicationEvent::RefillApproved { request_id })
            }
            C::DenyRefill { request_id, reason } => {
                self.active()?;
                if self.pending_refill != Some(request_id) {
                    return Err(MedicationError::NoRefillRequest);
                }
                Ok(MedicationEvent::RefillDenied {
                    request_id,
                    reason: Self::reason(&reason)?,
                })
            }
            C::Administer {
                administration_id,
                outcome,
                at,
                note,
                now,
            } => {
                // A dose given before the order ended may be charted after.
                let order = match (self.active(), self.ended_at) {
                    (Ok(order), _) => order,
                    (Err(MedicationError::NotActive), Some(end)) if at <= end => self
                        .order
                        .as_ref()
                        .ok_or(MedicationError::UnknownMedication)?,
                    (Err(e), _) => return Err(e),
                };
                if at > now + Duration::minutes(5) || at < now - Duration::days(7) {
                    return Err(MedicationError::ImplausibleTime);
                }
                // A dose may be given a little before the course starts.
                if !order.covers(at) && !order.covers(at + Duration::hours(1)) {
                    return Err(MedicationError::OutsideCourse);
                }
                let note = text_opt("note", note, Lines::Multi, 500)?;
                if outcome != Outcome::Given && note.is_none() {
                    return Err(MedicationError::ReasonRequired);
                }
                Ok(MedicationEvent::Administered {
                    administration_id,
                    outcome,
                    at,
                    note,
                })
            }
        }
    }
}

impl Aggregate for Medication {
    const TYPE: &'static str = "medication";
    type Command = MedicationCommand;
    type Event = MedicationEvent;
    type Error = MedicationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use MedicationEvent as E;
        match event {
            E::Prescribed { origin, order, .. } => {
                self.origin = Some(origin);
                self.order = Some(order);
                self.status = MedicationStatus::Active;
                self.versions = 1;
            }
            E::DoseChanged {
                dose, frequency, ..
            } => {
                if let Some(order) = &mut self.order {
                    order.dose = dose;
                    order.frequency = frequency;
                }
                self.versions += 1;
            }
            E::Discontinued { at, .. } => {
                self.status = MedicationStatus::Discontinued;
                self.pending_refill = None;
                self.ended_at = Some(at);
            }
            E::Completed { at } => {
                self.status = MedicationStatus::Completed;
                self.pending_refill = None;
                self.ended_at = Some(at);
            }
            E::RefillRequested { request_id, .. } => self.pending_refill = Some(request_id),
            E::RefillApproved { .. } => {
                self.pending_refill = None;
                self.refills_used += 1;
            }
            E::RefillDenied { .. } => self.pending_refill = None,
            E::Administered { .. } => {}
        }
    }
}

impl UniqueKeys for Medication {
    /// While active: the drug's name, and its RxNorm code when given, on
    /// the patient's list.
    fn unique_keys(&self) -> Vec<UniqueKey> {
        let (Some(origin), Some(order)) = (self.origin, &self.order) else {
            return Vec::new();
        };
        if self.status != MedicationStatus::Active {
            return Vec::new();
        }
        let mut keys = vec![UniqueKey {
            scope: ACTIVE_SCOPE,
            key: format!("{}/name/{}", origin.patient_id, order.medication.key()),
        }];
        if let Some(code) = &order.medication.rxnorm {
            keys.push(UniqueKey {
                scope: ACTIVE_SCOPE,
                key: format!("{}/rxnorm/{code}", origin.patient_id),
            });
        }
        keys
    }
}

impl Subject for Medication {
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.origin.map(|o| o.patient_id)
    }
}
