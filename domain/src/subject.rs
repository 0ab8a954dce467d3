//! Whom an aggregate's events are about. Every event about a patient names
//! them in an indexed column of the log, so that "everything about patient X"
//! is one indexed read across every aggregate (history, as-of, erasure).
//! Each aggregate says it here, from its state: the write side never guesses.

use uuid::Uuid;

/// An aggregate whose events may be about a patient.
pub trait Subject {
    /// The patient this aggregate's events are about, if any, given its
    /// state after the command's events and its stream id.
    fn patient(&self, aggregate_id: &str) -> Option<Uuid>;
}
