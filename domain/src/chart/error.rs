//! Every rule a clinical-record command can break, one variant each.

use crate::text::{self, Lines, TextError};

/// Why a chart or care-team command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A text field holds control or formatting characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// A measurement outside what a living patient can show (or a unit slip).
    #[error("{field} must be between {min} and {max}")]
    Implausible {
        field: &'static str,
        min: &'static str,
        max: &'static str,
    },
    /// Blood pressure needs both numbers, systolic above diastolic.
    #[error("blood pressure needs systolic and diastolic, systolic above diastolic")]
    BloodPressure,
    /// A vital-signs entry with no measurement.
    #[error("record at least one measurement")]
    NoMeasurement,
    /// A note with no section written.
    #[error("write at least one of subjective, objective, assessment, plan")]
    EmptyNote,
    /// A code that does not have its system's shape.
    #[error("{0} is not a valid code")]
    InvalidCode(&'static str),
    /// A numeric value that is not a finite number.
    #[error("{0} must be a finite number")]
    NotANumber(&'static str),
    /// A clinical time in the future or before 1900.
    #[error("{0} must be in the past (and after 1900)")]
    ImplausibleTime(&'static str),
    /// Only notes are drafted; every other entry is recorded as final.
    #[error("only encounter notes are drafted; record other entries directly")]
    NotANote,
    /// A note is drafted, not recorded directly.
    #[error("an encounter note is drafted, then signed")]
    NoteMustBeDrafted,
    /// A document is uploaded, not written as JSON.
    #[error("a document is uploaded with its bytes")]
    DocumentMustBeUploaded,
    /// An amendment of another kind of entry than the original.
    #[error("an amendment keeps the entry's kind ({0})")]
    KindChanged(&'static str),
    /// Documents are not amended; enter in error and upload again.
    #[error("a document cannot be amended; mark it entered in error and upload again")]
    NotAmendable,
    /// The entry does not exist.
    #[error("no such entry")]
    UnknownEntry,
    /// The entry exists already.
    #[error("the entry exists already")]
    AlreadyExists,
    /// Signing a note that is not a draft.
    #[error("only a draft can be signed")]
    NotADraft,
    /// Changing a draft in place: sign it first, then amend.
    #[error("a draft is revised, not amended; a signed note is amended")]
    StillADraft,
    /// Anything on an entry entered in error.
    #[error("the entry was entered in error")]
    Withdrawn,
    /// The member is on the care team already.
    #[error("the user is on the care team already")]
    AlreadyMember,
    /// The user is not on the care team.
    #[error("the user is not on the care team")]
    NotMember,
    /// Only doctors and nurses join a care team or break the glass.
    #[error("only a doctor or a nurse can be on a care team")]
    NotAClinician,
    /// A break-the-glass duration out of range.
    #[error("a break-the-glass grant lasts 1 second to 24 hours")]
    InvalidDuration,
}

/// A free-text field, parsed with the one text rule.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, ChartError> {
    let lines = if max > 200 {
        Lines::Multi
    } else {
        Lines::Single
    };
    text::parse(value, lines, max).map_err(|e| match e {
        TextError::Empty => ChartError::EmptyField(field),
        TextError::TooLong => ChartError::TooLong(field),
        TextError::InvalidCharacters => ChartError::InvalidCharacters(field),
    })
}

/// An optional free-text field: absent stays absent.
pub(crate) fn text_opt(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ChartError> {
    value.map(|v| text(field, &v, max)).transpose()
}
