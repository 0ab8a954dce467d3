//! Every rule a messaging command can break, one variant each.

use crate::text::{self, Lines, TextError};

/// Why a thread command was refused. Never quotes the text it refused:
/// messages are patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A text field holds control or formatting characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// The thread exists already.
    #[error("the thread exists already")]
    AlreadyExists,
    /// The thread does not exist.
    #[error("no such thread")]
    UnknownThread,
    /// A thread is with the patient: their own account must take part.
    #[error("the patient's own account must take part in the thread")]
    NoPatient,
    /// A thread needs someone besides the patient to write to.
    #[error("a thread needs a member of the care team or the front desk besides the patient")]
    NoCounterpart,
    /// Someone who is neither the patient, on their care team nor at the front desk.
    #[error("a participant must be the patient, on their care team or at the front desk")]
    NotEligible,
    /// A thread that holds as many messages as a thread may: start another.
    #[error("a thread holds at most {0} messages; start a new thread")]
    ThreadFull(u32),
    /// More participants than a thread holds.
    #[error("a thread has at most {0} participants")]
    TooManyParticipants(usize),
    /// The user takes part already (or is named twice).
    #[error("the user takes part in the thread already")]
    AlreadyParticipant,
    /// Only participants post, mark read, archive or add others.
    #[error("only a participant of the thread can do this")]
    NotAParticipant,
    /// A read receipt for a message the thread does not have.
    #[error("the thread has no message with that number")]
    UnknownMessage,
}

/// A free-text field, parsed with the one text rule.
pub(crate) fn text(
    field: &'static str,
    value: &str,
    lines: Lines,
    max: usize,
) -> Result<String, MessagingError> {
    text::parse(value, lines, max).map_err(|e| match e {
        TextError::Empty => MessagingError::EmptyField(field),
        TextError::TooLong => MessagingError::TooLong(field),
        TextError::InvalidCharacters => MessagingError::InvalidCharacters(field),
    })
}
