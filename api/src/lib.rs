//! The `anamnesis` binary's library: command line, configuration, HTTP server.
#![forbid(unsafe_code)]

/// The allocator of every binary that links the server (the `anamnesis`
/// binary, the benchmarks and the tests that host it): under load glibc
/// `malloc`/`free` took a quarter of the server's CPU (ADR 0007).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (all its threads, from
/// now on). mimalloc asks for huge pages where the system offers them on
/// request, and a burst of requests (a booking storm: a thousand at once)
/// then grows the heap in 2 MiB pages that the kernel zeroes whole on first
/// touch: a quarter of the machine's CPU during the storm went to zeroing
/// them, and the storm ran at about 0.6 times the rate it runs at without
/// (ADR 0007). Where the flag cannot be set, the process runs as before.
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!(%error, "cannot turn transparent huge pages off; running with them");
    }
}

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
