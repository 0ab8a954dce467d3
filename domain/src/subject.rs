//! Whom an aggregate's events are about. Every event about a patient names
//! them in an indexed column of the log, so that "everything about patient X"
//! is one indexed read across every aggregate (history, as-of, erasure).
//! Each aggregate says it here, from its state: the write side never guesses.

use uuid::Uuid;

/// The event that erases a patient (docs/adr/0024-encryption.md): appended
/// in the transaction that destroys the patient's data key, in the clear,
/// and the last event about them. The log recognises it by this type.
pub const ERASURE_EVENT: &str = "patient.erased";

/// Aggregate types whose events name a patient but are kept in the clear:
/// the access records (who read what, no clinical content), which outlive
/// an erasure as audit data.
pub const CLEAR_TYPES: &[&str] = &[crate::access::ACCESS_TYPE];

/// An aggregate whose events may be about a patient.
pub trait Subject {
    /// The patient this aggregate's events are about, if any, given its
    /// state after the command's events and its stream id.
    fn patient(&self, aggregate_id: &str) -> Option<Uuid>;
}
