//! `anamnesis replay …`: what compliance officers run on the command line.
//! Verification and checkpoints (ADR 0009); a patient's history and their
//! record as of a moment (ADR 0010).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anamnesis_commands::LogReader;
use anamnesis_replay::{Anchor, Checkpoint, CheckpointKey, PublicKey, VerifyError};
use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;

/// Compliance: the log's integrity.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Recompute the hash chain over the whole log and check that log_head
    /// names its last event. Exits non-zero naming the first break.
    Verify {
        /// Also prove the log agrees with this signed checkpoint: the event
        /// at its position carries its hash (nothing before it was
        /// rewritten, the log was not cut short before it).
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
        /// The public key (64 hex digits) the checkpoint must be signed
        /// with. Default: the public half of the configured signing key.
        #[arg(long, requires = "against")]
        public_key: Option<String>,
    },
    /// Verify the whole chain, then write a signed checkpoint of its head
    /// (position, hash, time) to FILE, to be kept away from the database.
    Checkpoint {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Every event about a patient, in order: time, actor, role, reason,
    /// break-glass, event type, and what changed (before → after).
    History {
        /// The patient's record id.
        #[arg(long)]
        patient: uuid::Uuid,
        /// From this time (RFC 3339, inclusive).
        #[arg(long, value_parser = instant)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Up to this time (RFC 3339, inclusive).
        #[arg(long, value_parser = instant)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// `table` (for people) or `json` (one document).
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// `all`, `changes` (no access records) or `reads` (access records only).
        #[arg(long, default_value = "all", value_parser = ["all", "changes", "reads"])]
        kind: String,
    },
    /// The patient's whole record as it was known at a time or a log
    /// position, folded from the log by the live projectors (JSON).
    AsOf {
        /// The patient's record id.
        #[arg(long)]
        patient: uuid::Uuid,
        /// As known at this time (RFC 3339).
        #[arg(long, value_parser = instant, required_unless_present = "position", conflicts_with = "position")]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// As known at this log position.
        #[arg(long)]
        position: Option<i64>,
    },
}

/// An RFC 3339 time with offset, for a flag.
fn instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::extract::parse_instant(text)
        .ok_or_else(|| "expected an RFC 3339 time with offset, e.g. 2026-12-01T09:30:00Z".into())
}

/// Runs one `replay` subcommand.
pub async fn run(settings: &Settings, command: ReplayCommand) -> anyhow::Result<()> {
    let db = crate::cli::open_existing(settings).await?;
    let reader = LogReader::detached(db.clone());
    let result = match command {
        ReplayCommand::Verify {
            against,
            public_key,
        } => verify(settings, &reader, against.as_deref(), public_key.as_deref()).await,
        ReplayCommand::Checkpoint { out } => checkpoint(settings, &reader, &out).await,
        ReplayCommand::History {
            patient,
            from,
            to,
            format,
            kind,
        } => {
            let reader = LogReader::detached_with(db.clone(), settings.keyring()?);
            let shown = async {
                recorded(settings, &db, &reader, patient, "replay history").await?;
                history(&reader, patient, (from, to), (&format, &kind)).await
            };
            shown.await
        }
        ReplayCommand::AsOf {
            patient,
            at,
            position,
        } => {
            let point = match (at, position) {
                (Some(t), _) => anamnesis_replay::as_of::Point::Time(t),
                (None, Some(p)) => anamnesis_replay::as_of::Point::Position(p),
                (None, None) => anyhow::bail!("give --at or --position"),
            };
            let reader = LogReader::detached_with(db.clone(), settings.keyring()?);
            let shown = async {
                recorded(settings, &db, &reader, patient, "replay as-of").await?;
                as_of(&reader, patient, point).await
            };
            shown.await
        }
    };
    db.close().await;
    result
}

async fn verify(
    settings: &Settings,
    reader: &LogReader,
    against: Option<&Path>,
    public_key: Option<&str>,
) -> anyhow::Result<()> {
    let checkpoint = match against {
        None => None,
        Some(path) => {
            let trusted = trusted_key(settings, public_key)?;
            let statement = Checkpoint::read(path)?;
            let anchor = statement.verify(&trusted, path)?;
            Some((path, statement, anchor))
        }
    };
    let checks: Vec<Anchor> = checkpoint.iter().map(|(_, _, a)| a.clone()).collect();
    let (verified, seconds) = verify_with_progress(reader, &checks).await?;
    let rate = verified.events as f64 / seconds.max(1e-9);
    println!(
        "chain verified: {} events up to position {}, head hash {}; {rate:.0} events/s in {seconds:.2} s",
        verified.events,
        verified.head.position,
        hex::encode(&verified.head.hash),
    );
    if let Some((path, statement, anchor)) = checkpoint {
        println!(
            "agrees with the checkpoint {} (position {}, taken {})",
            path.display(),
            anchor.position,
            statement.time
        );
    }
    Ok(())
}

async fn checkpoint(settings: &Settings, reader: &LogReader, out: &Path) -> anyhow::Result<()> {
    // A checkpoint handed out is evidence: never written over.
    anyhow::ensure!(
        !out.exists(),
        "{} exists: a checkpoint is never written over; choose another file",
        out.display()
    );
    let key = settings.checkpoint_key()?;
    let (verified, _) = verify_with_progress(reader, &[]).await?;
    anyhow::ensure!(
        verified.head.position > 0,
        "the log is empty: there is nothing to vouch for yet"
    );
    key.sign(&verified.head, chrono::Utc::now())
        .write(out)
        .with_context(|| format!("writing the checkpoint to {}", out.display()))?;
    println!(
        "checkpoint of position {} (hash {}) written to {}; public key {}",
        verified.head.position,
        hex::encode(&verified.head.hash),
        out.display(),
        key.public().to_hex()
    );
    Ok(())
}

/// The key a checkpoint must be signed with: --public-key, else the public
/// half of the configured key (never a freshly generated one).
fn trusted_key(settings: &Settings, public_key: Option<&str>) -> anyhow::Result<PublicKey> {
    if let Some(text) = public_key {
        return PublicKey::from_hex(text).context("--public-key");
    }
    if settings.signing_key.is_some() {
        return Ok(settings.checkpoint_key()?.public());
    }
    CheckpointKey::existing_in(&settings.data_dir)?
        .map(|k| k.public())
        .with_context(|| {
            format!(
                "no key to check the checkpoint with: pass --public-key, or --signing-key, \
                 or run with the --data-dir holding {}",
                anamnesis_replay::checkpoint::KEY_FILE
            )
        })
}

/// Verifies the whole log with a progress bar on stderr (at a terminal
/// only). Returns how far, and how long it took.
async fn verify_with_progress(
    reader: &LogReader,
    checks: &[Anchor],
) -> anyhow::Result<(anamnesis_replay::Verified, f64)> {
    let total = reader.head().await.context("reading the log head")?;
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total.max(0) as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    let started = Instant::now();
    let result = anamnesis_replay::verify(reader, None, checks, &mut |position| {
        if position > total {
            bar.set_length(position as u64);
        }
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(verified) => Ok((verified, seconds)),
        Err(VerifyError::Broken(b)) => Err(anyhow::anyhow!(
            "the event log fails verification at position {}: {b}",
            b.position()
        )),
        Err(e) => Err(e).context("verifying the event log"),
    }
}

/// Records that the operator running this command read `what` of
/// `patient`, before anything is shown (ADR 0012): a read the access log
/// cannot take is not answered, and a patient with no record is refused
/// without a record.
async fn recorded(
    settings: &Settings,
    db: &anamnesis_commands::Db,
    reader: &LogReader,
    patient: uuid::Uuid,
    what: &str,
) -> anyhow::Result<()> {
    let registered = !reader
        .read_stream("patient", &patient.to_string(), 0)
        .await
        .context("reading the patient's record")?
        .is_empty();
    anyhow::ensure!(registered, "no patient {patient}");
    let log = anamnesis_commands::EventLog::open_with(db.clone(), settings.keyring()?).await?;
    crate::access_log::append(&log, crate::cli::operator(), what, [patient], false)
        .await
        .context("recording the read in the access log; nothing is shown without it")
}

async fn history(
    reader: &LogReader,
    patient: uuid::Uuid,
    (from, to): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
    (format, kind): (&str, &str),
) -> anyhow::Result<()> {
    use anamnesis_replay::history::Kind;
    let kind = Kind::parse(kind).unwrap_or(Kind::All);
    let entries: Vec<_> = anamnesis_replay::history::history(reader, patient, from, to)
        .await
        .context("reading the patient's history")?
        .into_iter()
        .filter(|e| kind.admits(e))
        .collect();
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no events about patient {patient} in that window");
        return Ok(());
    }
    for e in &entries {
        let glass = if e.break_glass {
            "  BREAK-THE-GLASS"
        } else {
            ""
        };
        println!(
            "{:>8}  {}  {} ({}){glass}  {}",
            e.position,
            e.recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.actor_id,
            e.actor_role,
            e.event_type,
        );
        if let Some(reason) = &e.reason {
            println!("          reason: {reason}");
        }
        if e.erased {
            println!("          (erased with the patient)");
        }
        for c in &e.changes {
            let show = |v: &Option<serde_json::Value>| match v {
                None => "—".to_owned(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            println!(
                "          {}: {} → {}",
                c.field,
                show(&c.before),
                show(&c.after)
            );
        }
    }
    Ok(())
}

async fn as_of(
    reader: &LogReader,
    patient: uuid::Uuid,
    point: anamnesis_replay::as_of::Point,
) -> anyhow::Result<()> {
    let record = anamnesis_replay::as_of::as_of(reader, patient, point)
        .await
        .context("folding the patient's record")?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}
