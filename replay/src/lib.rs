//! Compliance: history, as-of reconstruction and chain verification.
//!
//! Empty for now: nothing uses this crate yet. It is where issue 11 lands,
//! reading the log only through `anamnesis_commands::LogReader` (reads, the
//! head, the growth signal; no append) and folding events with the same
//! domain code and decoder (`StoredForm::from_stored`) as the live system.
#![forbid(unsafe_code)]
