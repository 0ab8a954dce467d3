//! What a thread is made of: its participants and how each stands to the
//! thread's patient, and the bounds of its text.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::text::Lines;

use super::error::{text, MessagingError};

/// The longest subject line, in characters.
pub const SUBJECT_MAX: usize = 200;
/// The longest message body, in characters.
pub const BODY_MAX: usize = 10_000;
/// The most participants a thread holds.
pub const PARTICIPANTS_MAX: usize = 20;

/// The most messages a thread holds (every command loads the thread whole).
pub const MESSAGES_MAX: u32 = 2_000;

/// How a participant stands to the thread's patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The patient's own user account.
    Patient,
    /// A doctor or nurse on the patient's care team.
    CareTeam,
    /// Front-desk staff.
    FrontDesk,
}

impl Party {
    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Party::Patient => "patient",
            Party::CareTeam => "care_team",
            Party::FrontDesk => "front_desk",
        }
    }
}

/// A user taking part in a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: Uuid,
    pub party: Party,
}

/// A user someone wants in a thread, with how the write side found them
/// standing to the patient (`None`: neither the patient, on their care
/// team nor at the front desk). The domain refuses `None`; it does not
/// look anyone up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invitee {
    pub user_id: Uuid,
    pub party: Option<Party>,
}

/// A subject line: one line, 1 to 200 characters.
pub fn subject(value: &str) -> Result<String, MessagingError> {
    text("subject", value, Lines::Single, SUBJECT_MAX)
}

/// A message body: free text over lines, 1 to 10,000 characters.
pub fn body(value: &str) -> Result<String, MessagingError> {
    text("body", value, Lines::Multi, BODY_MAX)
}
