//! The clinical record: chart entries (notes, vitals, lab results,
//! diagnoses, procedures, immunizations, documents) with their versions,
//! and each patient's care team with its break-the-glass grants.

mod care;
mod entry;
mod error;
mod values;

#[cfg(test)]
mod tests;

pub use care::{longest_grant, CareCommand, CareEvent, CareTeam, Grant, Standing};
pub use entry::{ChartEntry, EntryCommand, EntryEvent, EntryStatus, Origin};
pub use error::ChartError;
pub use values::{
    document, Diagnosis, DiagnosisStatus, Document, EntryBody, Immunization, Interpretation, Kind,
    LabResult, LabValue, Note, Procedure, Vitals,
};
