//! What has happened to a patient record. Stored forever: change a schema by
//! adding a version and an upcaster, never by editing one.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{Address, Allergy, BirthDate, Condition, Contact, Identifier, PersonName, Sex};

/// A patient's demographics, as registered or last updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demographics {
    /// Name.
    pub name: PersonName,
    /// Date of birth.
    pub birth_date: BirthDate,
    /// Administrative sex.
    pub sex: Sex,
    /// Phone and e-mail.
    pub contact: Contact,
    /// Postal address, where known.
    pub address: Option<Address>,
    /// Identifiers (MRN, insurance), at most one per system.
    pub identifiers: Vec<Identifier>,
}

/// A fact about a patient record. Stored under the stable names below
/// (`crate::codec`), never the Rust variant names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PatientEvent {
    /// The patient was registered.
    #[serde(rename = "patient.registered")]
    PatientRegistered {
        /// Demographics at registration.
        demographics: Demographics,
        /// The user account that is this patient, when they registered themselves.
        user_id: Option<Uuid>,
    },
    /// Demographics were replaced.
    #[serde(rename = "patient.demographics_updated")]
    DemographicsUpdated {
        /// The new demographics.
        demographics: Demographics,
    },
    /// An allergy was recorded.
    #[serde(rename = "patient.allergy_recorded")]
    AllergyRecorded {
        /// Its id within the record.
        allergy_id: Uuid,
        /// What, how, how bad.
        allergy: Allergy,
    },
    /// An allergy was removed from the record (entered in error, or refuted).
    #[serde(rename = "patient.allergy_removed")]
    AllergyRemoved {
        /// Which one.
        allergy_id: Uuid,
    },
    /// A condition was added to the medical history.
    #[serde(rename = "patient.condition_added")]
    ConditionAdded {
        /// Its id within the record.
        condition_id: Uuid,
        /// The condition.
        condition: Condition,
    },
    /// A condition resolved.
    #[serde(rename = "patient.condition_resolved")]
    ConditionResolved {
        /// Which one.
        condition_id: Uuid,
        /// When.
        resolved_on: NaiveDate,
    },
    /// The patient died.
    #[serde(rename = "patient.deceased")]
    PatientDeceased {
        /// Date of death.
        deceased_on: NaiveDate,
    },
    /// The patient was erased at their request or by law: their data key
    /// was destroyed with this event, so every earlier event about them
    /// reads as erased (docs/adr/0024-encryption.md). Holds nothing; the
    /// legal reason is the event's `reason`.
    #[serde(rename = "patient.erased")]
    Erased,
}

impl crate::codec::StoredForm for PatientEvent {}

impl DomainEvent for PatientEvent {
    fn event_type(&self) -> String {
        match self {
            PatientEvent::PatientRegistered { .. } => "patient.registered",
            PatientEvent::DemographicsUpdated { .. } => "patient.demographics_updated",
            PatientEvent::AllergyRecorded { .. } => "patient.allergy_recorded",
            PatientEvent::AllergyRemoved { .. } => "patient.allergy_removed",
            PatientEvent::ConditionAdded { .. } => "patient.condition_added",
            PatientEvent::ConditionResolved { .. } => "patient.condition_resolved",
            PatientEvent::PatientDeceased { .. } => "patient.deceased",
            PatientEvent::Erased => crate::subject::ERASURE_EVENT,
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
