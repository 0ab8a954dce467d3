//! Every rule a patient command can break, one variant each.

/// Why a patient command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientError {
    /// The patient was erased.
    #[error("the patient was erased")]
    Erased,
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
    /// A text field holds control characters, bidirectional overrides or
    /// non-characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// A date is implausibly early.
    #[error("{0} is implausibly early")]
    ImplausibleDate(&'static str),
    /// A date is before the patient's birth date.
    #[error("{0} is before the birth date")]
    BeforeBirth(&'static str),
    /// A field has the wrong shape.
    #[error("{0} is malformed")]
    Malformed(&'static str),
    /// The birth date is after the day of recording.
    #[error("birth_date is in the future")]
    BornInTheFuture,
    /// The birth date is implausibly early.
    #[error("birth_date is implausibly early")]
    ImplausibleBirthDate,
    /// A date that must not be in the future is.
    #[error("{0} is in the future")]
    DateInTheFuture(&'static str),
    /// Two identifiers from the same system.
    #[error("identifiers has two values for one system")]
    DuplicateIdentifierSystem,
    /// No allergy with that id is on record.
    #[error("no such allergy on record")]
    UnknownAllergy,
    /// An allergy to the same substance is already on record.
    #[error("an allergy to this substance is already on record")]
    DuplicateAllergy,
    /// No condition with that id is on record.
    #[error("no such condition on record")]
    UnknownCondition,
    /// The condition was already resolved.
    #[error("the condition is already resolved")]
    ConditionAlreadyResolved,
    /// A condition cannot resolve before it began.
    #[error("resolved_on is before the onset")]
    ResolvedBeforeOnset,
    /// The patient is already recorded as deceased.
    #[error("the patient is already recorded as deceased")]
    AlreadyDeceased,
    /// Date of death before date of birth.
    #[error("deceased_on is before the birth date")]
    DeathBeforeBirth,
    /// New clinical facts cannot be added for a deceased patient.
    #[error("the patient is deceased")]
    Deceased,
}
