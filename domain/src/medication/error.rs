//! Every rule a prescription command can break, one variant each.

use crate::text::{self, Lines, TextError};

/// A recorded allergy a medication conflicts with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllergyConflict {
    /// The allergy's id on the patient record.
    pub allergy_id: uuid::Uuid,
    /// The substance as recorded (lower case).
    pub substance: String,
    /// The drug class through which they match, when not by name.
    pub class: Option<String>,
}

/// Why a prescription command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MedicationError {
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A text field holds control or formatting characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// An RxNorm code is one to ten digits.
    #[error("rxnorm must be 1 to 10 digits")]
    InvalidRxNorm,
    /// A dose that is not a positive amount of at most 4 decimals, up to 100,000.
    #[error("dose amount must be a number above 0 and at most 100000, with at most 4 decimals")]
    InvalidDose,
    /// A frequency that names no time, repeats one, or is out of range.
    #[error("{0}")]
    InvalidFrequency(&'static str),
    /// A course that ends before it starts, or names both an end and a duration.
    #[error("{0}")]
    InvalidPeriod(&'static str),
    /// More refills than a prescription may carry.
    #[error("refills must be between 0 and 12")]
    InvalidRefills,
    /// The medication conflicts with recorded allergies, and no override was given.
    #[error("the medication conflicts with a recorded allergy; prescribe with an override reason if intended")]
    AllergyConflict(Vec<AllergyConflict>),
    /// The patient record does not exist.
    #[error("no such patient")]
    UnknownPatient,
    /// The patient is recorded deceased.
    #[error("the patient is recorded deceased")]
    PatientDeceased,
    /// The prescription does not exist.
    #[error("no such medication")]
    UnknownMedication,
    /// The prescription exists already.
    #[error("the medication exists already")]
    AlreadyExists,
    /// A change to a medication that is no longer active.
    #[error("the medication is no longer active")]
    NotActive,
    /// A dose change that changes nothing.
    #[error("the new dose and frequency are the ones in effect")]
    Unchanged,
    /// A refill request while one waits.
    #[error("a refill request is already waiting for a doctor")]
    RefillPending,
    /// An approval or denial with no request waiting (or of another one).
    #[error("no such refill request is waiting")]
    NoRefillRequest,
    /// A refill asked for or approved when every authorized refill is used.
    #[error("every authorized refill has been used; a new prescription is needed")]
    NoRefillsLeft,
    /// An administration in the future or more than 7 days ago.
    #[error("an administration time must be within the last 7 days and not in the future")]
    ImplausibleTime,
    /// An administration outside the course.
    #[error("the administration time is outside the medication's course")]
    OutsideCourse,
    /// A dose held or refused without saying why.
    #[error("a held or refused dose needs a reason")]
    ReasonRequired,
}

/// A free-text field, parsed with the one text rule.
pub(crate) fn text(
    field: &'static str,
    value: &str,
    lines: Lines,
    max: usize,
) -> Result<String, MedicationError> {
    text::parse(value, lines, max).map_err(|e| match e {
        TextError::Empty => MedicationError::EmptyField(field),
        TextError::TooLong => MedicationError::TooLong(field),
        TextError::InvalidCharacters => MedicationError::InvalidCharacters(field),
    })
}

/// An optional free-text field: absent stays absent.
pub(crate) fn text_opt(
    field: &'static str,
    value: Option<String>,
    lines: Lines,
    max: usize,
) -> Result<Option<String>, MedicationError> {
    value.map(|v| text(field, &v, lines, max)).transpose()
}
