//! Compliance: chain verification and signed checkpoints (ADR 0009); history
//! and as-of reconstruction to come (issue 11).
//!
//! Reads the log only through `anamnesis_commands::LogReader` (reads, the
//! head, the growth signal; no append), and verifies it with the write
//! side's own `chain::verify_run`, so whatever the chain covers is covered
//! here too.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod sentinel;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointKey, PublicKey};
pub use sentinel::{ChainState, ChainStatus, SentinelConfig};
pub use verify::{verify, Anchor, Break, Verified, VerifyError};
