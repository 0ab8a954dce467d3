//! Every rule a patient command can break, one variant each.

/// Why a patient command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientError {
    /// The record was already registered.
    #[error("the patient is already registered")]
    AlreadyRegistered,
    /// The record does not exist yet.
    #[error("the patient is not registered")]
    NotRegistered,
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// The birth date is after the day of recording.
    #[error("birth date is in the future")]
    BornInTheFuture,
    /// The birth date is implausibly early.
    #[error("birth date is implausibly early")]
    ImplausibleBirthDate,
}
