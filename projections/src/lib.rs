//! The read side: checkpointed catch-up projectors and their read models.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod activity;
pub mod alerts;
pub mod analytics;
pub mod billing;
pub mod chart;
pub mod consume;
pub mod deliveries;
pub mod medications;
pub mod messaging;
pub mod notifications;
pub mod patients;
pub mod rebuild;
pub mod redis;
pub mod relay;
pub mod reminders;
pub mod runner;
pub mod schedule;
pub mod sql;

pub use runner::{run, Envelope, ProjectionError, Projector, RunnerConfig, Tx, Unread};
