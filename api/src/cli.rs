//! The `anamnesis` command line.

use std::io::Read;

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::identity::{Identity, NewAccount};
use anamnesis_commands::{Actor, Db, EventLog, EventMetadata};
use anamnesis_domain::user::Role;
use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Secret, Settings};

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
    /// Run the HTTP API and the projectors until SIGINT/SIGTERM.
    Serve,
    /// Create or upgrade the database schema, then exit. Run it as the
    /// schema owner; `serve` can then run as a least-privilege role.
    Migrate {
        /// Connect as this (the schema owner) instead of --database-url.
        #[arg(long, env = "ANAMNESIS_OWNER_URL", hide_env_values = true)]
        owner_url: Option<Secret>,
    },
    /// Manage user accounts from the command line.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Write a consistent backup of the log (and credentials, unique claims,
    /// idempotency keys) to FILE, while the server runs. The file holds
    /// patient data and password hashes: protect it like the database.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Restore a backup into an empty database (either backend), verifying
    /// its chain; migrates the schema first, so run it as the schema owner.
    /// The server rebuilds the read models when it starts.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        /// Connect as this (the schema owner) instead of --database-url.
        #[arg(long, env = "ANAMNESIS_OWNER_URL", hide_env_values = true)]
        owner_url: Option<Secret>,
    },
    /// Rebuild read models from the whole log into shadow tables and swap
    /// them in, while the server keeps serving.
    Rebuild {
        /// Read models: activity, patients, schedule, access_log, chart,
        /// medications, messaging, billing, notifications, alerts, analytics,
        /// redis (the
        /// Redis read models: emptied and filled again).
        names: Vec<String>,
        /// Every read model.
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Publish every event to NATS JetStream (--nats-url) until
    /// SIGINT/SIGTERM, without serving HTTP (ADR 0018).
    Relay,
    /// Run one fan-out consumer (notifications, with its reminders and
    /// deliveries; alerts; analytics) until SIGINT/SIGTERM, without serving HTTP: from NATS when
    /// --nats-url is set, else from the log (ADR 0020).
    Consume {
        /// notifications, alerts or analytics.
        name: String,
    },
    /// Compliance: verify the log's hash chain, write signed checkpoints.
    #[command(subcommand)]
    Replay(crate::replay_cli::ReplayCommand),
    /// Compliance: erase a patient by destroying their data key (ADR
    /// 0024). Every event about them then reads as erased, and the read
    /// models drop them when they reach the erasure. Cannot be undone.
    Erase {
        /// The patient's id.
        #[arg(long)]
        patient: uuid::Uuid,
        /// The legal ground, kept in the log with the erasure.
        #[arg(long)]
        reason: String,
    },
    /// Write a reproducible synthetic clinic (staff, providers, patients,
    /// visits, charts, prescriptions, bills, threads) through the command
    /// layer, for demonstrations and load tests (ADR 0027).
    Seed(crate::seed::SeedArgs),
}

/// User accounts.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account (the first admin, typically). Reads the password from stdin.
    Add {
        /// Login name.
        #[arg(long)]
        username: String,
        /// admin, doctor, nurse, staff, compliance or analyst.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a new password for an account (a locked-out admin, typically):
    /// the lock lifts and every session ends. Reads the password from stdin.
    ResetPassword {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// The new password, from standard input.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}

/// The command line acts as the operating-system user who ran it.
pub(crate) fn operator() -> EventMetadata {
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    EventMetadata::by(Actor::new(format!("cli:{operator}"), "operator"))
}

/// Accounts over `db`, those of earlier releases moved to their user ids
/// first (ADR 0006), so that they can be found by name.
async fn open_identity(settings: &Settings, db: &Db) -> anyhow::Result<Identity> {
    let log = EventLog::open_with(db.clone(), settings.keyring()?).await?;
    let identity = Identity::new(CommandBus::new(log));
    identity
        .adopt_legacy_accounts()
        .await
        .context("moving accounts of an earlier release to their user ids")?;
    Ok(identity)
}

/// Connects to the configured database and makes sure its schema is
/// current: migrating it when this role may, or saying what to run.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url.as_ref().map(|s| s.expose());
    let db = Db::connect(url, &settings.data_dir).await?;
    db.ensure_current().await?;
    Ok(db)
}

/// [`open_database`] for a command that works on a clinic's log (verify,
/// history, backup, rebuild, erase): the database must be there, never made
/// afresh, or a mistyped name would be answered about an empty log, and
/// succeed.
pub async fn open_existing(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url.as_ref().map(|s| s.expose());
    let db = Db::connect_existing(url, &settings.data_dir).await?;
    db.ensure_current().await?;
    Ok(db)
}

/// Runs one subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            let address = listener.local_addr()?;
            let backend = match &settings.database_url {
                Some(_) => "Postgres (DATABASE_URL)".to_owned(),
                None => format!("embedded SQLite in {}", settings.data_dir.display()),
            };
            // Announce only once the database is reached and current.
            let server = crate::server::Prepared::open(&settings).await?;
            println!("anamnesis listening on http://{address} ({backend})");
            if !server.has_users().await? {
                // The program as it was started, so the hint runs as shown.
                let program = std::env::args()
                    .next()
                    .unwrap_or_else(|| "anamnesis".into());
                let mut hint = program.clone();
                if let Some(dir) = settings.data_dir.to_str().filter(|d| *d != "./data") {
                    hint.push_str(&format!(" --data-dir {dir}"));
                }
                let env = if settings.database_url.is_some() {
                    " (with the same DATABASE_URL)"
                } else {
                    ""
                };
                println!(
                    "no user accounts yet; create the first admin{env} with:\n  \
                     echo 'a long passphrase' | {hint} users add --username admin --role admin --password-stdin"
                );
            }
            server
                .serve(listener, crate::server::shutdown_signal())
                .await
        }
        Command::Migrate { owner_url } => {
            let url = owner_url
                .as_ref()
                .or(settings.database_url.as_ref())
                .map(|s| s.expose());
            let db = Db::connect(url, &settings.data_dir)
                .await
                .context("migrate")?;
            db.migrate().await.context("migrate")?;
            println!("{} database schema is up to date", db.backend());
            db.close().await;
            Ok(())
        }
        Command::Users(UsersCommand::Add {
            username,
            role,
            password_stdin: _,
        }) => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            anyhow::ensure!(
                role != Role::Patient,
                "patient accounts are created by POST /v1/auth/register"
            );
            let password = password_from_stdin()?;
            let db = open_database(&settings).await?;
            let identity = open_identity(&settings, &db).await?;
            let metadata = operator();
            let account = NewAccount {
                user_id: uuid::Uuid::now_v7(),
                username: username.clone(),
                password,
                role,
                patient_id: None,
            };
            let created = identity.create(account, &metadata).await;
            db.close().await;
            let (user_id, _) = created.map_err(|e| anyhow::anyhow!("creating {username}: {e}"))?;
            println!("created {} user {username} ({user_id})", role.as_str());
            Ok(())
        }
        Command::Replay(command) => crate::replay_cli::run(&settings, command).await,
        Command::Erase { patient, reason } => erase(&settings, patient, &reason).await,
        Command::Seed(args) => crate::seed::run(&settings, &args).await,
        Command::Relay => crate::relay_cli::run(&settings).await,
        Command::Consume { name } => crate::consume_cli::run(&settings, &name).await,
        Command::Rebuild { names, all } => crate::rebuild_cli::run(&settings, &names, all).await,
        Command::Backup { out } => crate::backup_cli::backup(&settings, &out).await,
        Command::Restore { from, owner_url } => {
            let url = owner_url
                .as_ref()
                .or(settings.database_url.as_ref())
                .map(|s| s.expose());
            crate::backup_cli::restore(&settings, url, &from).await
        }
        Command::Users(UsersCommand::ResetPassword {
            username,
            password_stdin: _,
        }) => {
            let password = password_from_stdin()?;
            let db = open_existing(&settings).await?;
            let identity = open_identity(&settings, &db).await?;
            let reset = identity
                .reset_password(&username, password, &operator())
                .await;
            db.close().await;
            reset.map_err(|e| anyhow::anyhow!("resetting {username}: {e}"))?;
            println!(
                "password of {username} reset; the account is unlocked and its sessions ended"
            );
            Ok(())
        }
    }
}

/// `anamnesis erase`: the same erasure as `POST /v1/patients/{id}/erasure`,
/// by the operator who ran it.
async fn erase(settings: &Settings, patient: uuid::Uuid, reason: &str) -> anyhow::Result<()> {
    let reason = anamnesis_domain::text::parse(reason, anamnesis_domain::text::Lines::Multi, 500)
        .map_err(|_| {
        anyhow::anyhow!(
            "--reason: the legal ground, 1 to 500 characters without control characters"
        )
    })?;
    let db = open_existing(settings).await?;
    let log = EventLog::open_with(db.clone(), settings.keyring()?).await?;
    let bus = CommandBus::new(log);
    let mut metadata = operator();
    metadata.reason = Some(reason);
    let erased = anamnesis_commands::erasure::erase(&bus, patient, &metadata).await;
    db.close().await;
    let done = erased.map_err(|e| match e {
        anamnesis_commands::erasure::ErasureError::Command(
            anamnesis_commands::dispatch::CommandError::Rejected(
                anamnesis_domain::patient::PatientError::NotRegistered,
            ),
        ) => anyhow::anyhow!("no patient {patient}"),
        anamnesis_commands::erasure::ErasureError::Command(
            anamnesis_commands::dispatch::CommandError::Erased
            | anamnesis_commands::dispatch::CommandError::Rejected(
                anamnesis_domain::patient::PatientError::Erased,
            ),
        ) => anyhow::anyhow!("patient {patient} was already erased"),
        other => anyhow::anyhow!("erasing patient {patient}: {other}"),
    })?;
    println!(
        "patient {patient} erased at position {}: their data key is destroyed; the read models \
         drop them as they reach that position",
        done.position
    );
    Ok(())
}
