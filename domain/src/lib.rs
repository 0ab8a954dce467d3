//! The Anamnesis domain: aggregates decide, given their state and a command,
//! which events happen. No I/O and no clock: time and ids arrive in commands.
#![forbid(unsafe_code)]

pub mod access;
pub mod billing;
pub mod chart;
pub mod codec;
pub mod dates;
pub mod medication;
pub mod messaging;
pub mod patient;
pub mod schedule;
pub mod subject;
pub mod text;
pub mod unique;
pub mod user;
