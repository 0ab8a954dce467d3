//! What a caller may ask of a patient record.

use chrono::NaiveDate;

use super::values::Sex;

/// A request to change a patient record. Raw input: the aggregate parses it.
#[derive(Debug, Clone, PartialEq)]
pub enum PatientCommand {
    /// Register a new patient.
    Register {
        /// Family name.
        family_name: String,
        /// Given names.
        given_name: String,
        /// Date of birth.
        birth_date: NaiveDate,
        /// Administrative sex.
        sex: Sex,
        /// The day of registration, passed in: the domain reads no clock.
        today: NaiveDate,
    },
}
