//! Values that at most one aggregate may hold at a time (a patient's MRN, a
//! booked slot). The aggregate says which keys its state holds; the write
//! side claims new ones and releases dropped ones in the same transaction as
//! the events, so two records can never hold one key.

/// One unique value: a scope (what kind of key) and the key within it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UniqueKey {
    /// What kind of key (`patient.identifier`, ...): stable, never patient data.
    pub scope: &'static str,
    /// The value itself. The store keeps only a digest of it.
    pub key: String,
}

/// An aggregate whose state holds unique values.
pub trait UniqueKeys {
    /// The unique values the current state holds.
    fn unique_keys(&self) -> Vec<UniqueKey>;
}
