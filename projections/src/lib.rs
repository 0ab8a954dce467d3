//! The read side: checkpointed catch-up projectors and their read models.
#![forbid(unsafe_code)]

pub mod activity;
pub mod patients;
pub mod runner;

pub use runner::{run, ProjectionError, Projector, RunnerConfig, Tx};
