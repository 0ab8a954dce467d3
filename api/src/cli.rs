//! The `anamnesis` command line.

use anamnesis_commands::Db;
use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;

/// Anamnesis: an event-sourced clinical records backend.
#[derive(Debug, Parser)]
#[command(
    name = "anamnesis",
    version,
    about = "Anamnesis: an event-sourced clinical records backend"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema, then exit.
    Migrate,
}

/// Connects to the configured database and brings its schema up to date.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url.as_ref().map(|s| s.expose());
    let db = Db::connect(url, &settings.data_dir).await?;
    db.migrate().await?;
    Ok(db)
}

/// Runs one subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let db = open_database(&cli.settings).await.context("migrate")?;
            println!("{} database schema is up to date", db.backend());
            db.close().await;
            Ok(())
        }
    }
}
