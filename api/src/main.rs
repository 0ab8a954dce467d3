#![forbid(unsafe_code)]

use std::process::ExitCode;

use anamnesis_api::cli::{self, Cli};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cli.settings.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match anamnesis_api::server::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("anamnesis: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("anamnesis: {error:#}");
            ExitCode::FAILURE
        }
    }
}
