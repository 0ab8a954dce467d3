//! The `anamnesis` binary's library: command line, configuration, HTTP server.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
