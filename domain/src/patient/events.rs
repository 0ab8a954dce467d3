//! What has happened to a patient record. Stored forever: change a schema by
//! adding a version and an upcaster, never by editing one.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::{BirthDate, PersonName, Sex};

/// A fact about a patient record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PatientEvent {
    /// The patient was registered with their demographics.
    PatientRegistered {
        /// Name at registration.
        name: PersonName,
        /// Date of birth.
        birth_date: BirthDate,
        /// Administrative sex.
        sex: Sex,
    },
}

impl DomainEvent for PatientEvent {
    fn event_type(&self) -> String {
        match self {
            PatientEvent::PatientRegistered { .. } => "patient.registered",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
