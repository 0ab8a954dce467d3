//! What may be asked of a thread, as the caller sent it. Time comes in with
//! the command; whether the caller may ask, and how each invitee stands to
//! the patient, is looked up by the write side before the command is built.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::values::Invitee;

/// A command to a message thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadCommand {
    /// Start a thread about `patient_id` with a first message by `starter`,
    /// who is among `participants`.
    Start {
        patient_id: Uuid,
        subject: String,
        starter: Uuid,
        participants: Vec<Invitee>,
        body: String,
        at: DateTime<Utc>,
    },
    /// A participant adds someone.
    AddParticipant { by: Uuid, invitee: Invitee },
    /// A participant posts a message.
    Post {
        author: Uuid,
        body: String,
        at: DateTime<Utc>,
    },
    /// A participant has read up to message `up_to`.
    MarkRead { user_id: Uuid, up_to: u32 },
    /// A participant archives the thread.
    Archive { user_id: Uuid },
    /// A participant brings it back into their inbox.
    Unarchive { user_id: Uuid },
}
