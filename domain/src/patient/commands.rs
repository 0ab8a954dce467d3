//! What a caller may ask of a patient record. Raw input: the aggregate parses it.

use chrono::NaiveDate;
use uuid::Uuid;

use super::values::{Severity, Sex};

/// Demographics as submitted, before parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DemographicsInput {
    /// Family name.
    pub family_name: String,
    /// Given names.
    pub given_name: String,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Administrative sex.
    pub sex: Option<Sex>,
    /// Phone number.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Postal address.
    pub address: Option<AddressInput>,
    /// `(system, value)` pairs.
    pub identifiers: Vec<(String, String)>,
}

/// An address as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressInput {
    /// Street and number.
    pub line: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Region or state.
    pub region: Option<String>,
    /// Country.
    pub country: String,
}

/// A request to change a patient record.
#[derive(Debug, Clone, PartialEq)]
pub enum PatientCommand {
    /// Register a new patient.
    Register {
        /// Demographics.
        demographics: DemographicsInput,
        /// The patient's own user account, for self-registration.
        user_id: Option<Uuid>,
        /// The day of registration: the domain reads no clock.
        today: NaiveDate,
    },
    /// Replace the demographics.
    UpdateDemographics {
        /// New demographics.
        demographics: DemographicsInput,
        /// Today.
        today: NaiveDate,
    },
    /// Record an allergy.
    RecordAllergy {
        /// A new id for it.
        allergy_id: Uuid,
        /// What the patient reacts to.
        substance: String,
        /// How they react.
        reaction: String,
        /// How bad.
        severity: Severity,
    },
    /// Remove an allergy.
    RemoveAllergy {
        /// Which one.
        allergy_id: Uuid,
    },
    /// Add a condition to the medical history.
    AddCondition {
        /// A new id for it.
        condition_id: Uuid,
        /// ICD-10 / SNOMED code.
        code: Option<String>,
        /// Description.
        description: String,
        /// When it began.
        onset: Option<NaiveDate>,
        /// Today.
        today: NaiveDate,
    },
    /// Mark a condition resolved.
    ResolveCondition {
        /// Which one.
        condition_id: Uuid,
        /// When it resolved.
        resolved_on: NaiveDate,
        /// Today.
        today: NaiveDate,
    },
    /// Record the patient's death.
    MarkDeceased {
        /// Date of death.
        deceased_on: NaiveDate,
        /// Today.
        today: NaiveDate,
    },
    /// Erase the patient (the legal reason goes in the command's metadata).
    Erase,
}
