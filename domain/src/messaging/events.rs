//! The facts of a thread's life, under stable stored names (ADR 0004).

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;

use super::values::Participant;

/// A fact about a message thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ThreadEvent {
    /// A thread about a patient was started, with its participants (the
    /// starter among them). Its first message follows in the same commit.
    #[serde(rename = "message_thread.started")]
    Started {
        patient_id: Uuid,
        subject: String,
        participants: Vec<Participant>,
    },
    /// A participant joined the thread.
    #[serde(rename = "message_thread.participant_added")]
    ParticipantAdded { participant: Participant },
    /// A message was posted: the thread's `number`th, counting from 1.
    #[serde(rename = "message_thread.message_posted")]
    MessagePosted {
        number: u32,
        author: Uuid,
        body: String,
        at: DateTime<Utc>,
    },
    /// A participant read the thread up to message `up_to` (a receipt).
    #[serde(rename = "message_thread.read")]
    Read { user_id: Uuid, up_to: u32 },
    /// A participant archived the thread: gone from their inbox.
    #[serde(rename = "message_thread.archived")]
    Archived { user_id: Uuid },
    /// A participant took the thread back into their inbox.
    #[serde(rename = "message_thread.unarchived")]
    Unarchived { user_id: Uuid },
}

impl DomainEvent for ThreadEvent {
    fn event_type(&self) -> String {
        match self {
            ThreadEvent::Started { .. } => "message_thread.started",
            ThreadEvent::ParticipantAdded { .. } => "message_thread.participant_added",
            ThreadEvent::MessagePosted { .. } => "message_thread.message_posted",
            ThreadEvent::Read { .. } => "message_thread.read",
            ThreadEvent::Archived { .. } => "message_thread.archived",
            ThreadEvent::Unarchived { .. } => "message_thread.unarchived",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for ThreadEvent {}
