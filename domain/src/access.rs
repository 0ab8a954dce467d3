//! The access log: every read of patient data is an event in the log (ADR
//! 0012), about the patient read (its `patient_id`), by the reader (its
//! actor), committed before the data is answered.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::codec::StoredForm;

/// The aggregate type of access records: one stream per record.
pub const ACCESS_TYPE: &str = "access";

/// A read of a patient's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccessEvent {
    /// Someone read part of a patient's record.
    #[serde(rename = "access.read")]
    Read {
        /// What was read: the route, as the API documents it
        /// (`GET /v1/patients/{id}`); never a value.
        what: String,
        /// Whether the reader reached it by breaking the glass.
        break_glass: bool,
    },
}

impl DomainEvent for AccessEvent {
    fn event_type(&self) -> String {
        match self {
            AccessEvent::Read { .. } => "access.read",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for AccessEvent {}
