//! Prescriptions and medication administration (ADR 0015): one aggregate
//! per medication order, the allergy check against the patient's record
//! with a small built-in drug-class table, and the dose schedule.

mod classes;
mod error;
mod order;
mod values;

#[cfg(test)]
mod tests;

pub use classes::{conflicts, drug_class};
pub use error::{AllergyConflict, MedicationError};
pub use order::{
    AllergyOverride, Medication, MedicationCommand, MedicationEvent, MedicationStatus,
    PatientFacts, Prescriber, ACTIVE_SCOPE,
};
pub use values::{Dose, DoseUnit, Drug, Frequency, Order, Outcome, Route, MAX_DOSES};
