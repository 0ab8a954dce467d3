//! The `anamnesis` binary's library: command line, configuration, HTTP server.
#![forbid(unsafe_code)]

/// The allocator of every binary that links the server (the `anamnesis`
/// binary, the benchmarks and the tests that host it): under load glibc
/// `malloc`/`free` took a quarter of the server's CPU (ADR 0007).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access_log;
pub mod auth;
pub mod backup_cli;
pub mod browser;
pub mod care;
pub mod cli;
pub mod config;
pub mod consume_cli;
pub mod deliveries;
pub mod documents;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod rebuild_cli;
pub mod relay_cli;
pub mod replay_cli;
pub mod routes;
pub mod seed;
pub mod server;
pub mod sessions;
pub mod state;
