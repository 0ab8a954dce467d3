//! `anamnesis backup` and `anamnesis restore` (ADR 0011): the log and the
//! write-side tables beside it, to a JSON Lines file and back, the chain
//! verified both ways. Read models are rebuilt by the server, not copied.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anamnesis_commands::backup::{self, Header, Line, Restore, Trailer};
use anamnesis_commands::log::chain::{verify_run, GENESIS};
use anamnesis_commands::log::describe_json_error;
use anamnesis_commands::{Db, LogReader, StoredEvent};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;

/// Events read, verified and written per window.
const WINDOW: usize = 4_000;

/// A progress bar on stderr, at a terminal only.
fn progress(verb: &str, total: i64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total.max(0) as u64), target);
    let template = format!("{verb} {{bar:40}} {{pos}}/{{len}} events, {{per_sec}}, eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Writes a backup of the configured database to `out`: the head and the
/// side tables read in one snapshot, then every event up to that head,
/// verified as it is read (a log that fails verification is not backed up).
/// Written to `out.partial` (mode 0600) and renamed once complete.
pub async fn backup(settings: &Settings, out: &Path) -> anyhow::Result<()> {
    let db = crate::cli::open_existing(settings).await?;
    let result = write_backup(&db, out).await;
    db.close().await;
    result
}

async fn write_backup(db: &Db, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let snapshot = backup::snapshot(db)
        .await
        .context("reading the log head and the credentials, claims and idempotency keys")?;
    let head = snapshot.head_position;
    let partial = partial_path(out);
    let file =
        create_private(&partial).with_context(|| format!("creating {}", partial.display()))?;
    // A backup that fails leaves no file behind: the partial one holds
    // password hashes and patient keys as much as a whole one does.
    let mut unfinished = Unfinished(Some(&partial));
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let header = Header {
        format: backup::FORMAT.into(),
        version: backup::VERSION,
        backend: db.backend().into(),
        head_position: head,
        head_hash: snapshot.head_hash.clone(),
        events: head,
        credentials: snapshot.credentials.len(),
        mfa: snapshot.mfa.len(),
        patient_keys: snapshot.patient_keys.len(),
        claims: snapshot.claims.len(),
        idempotency_keys: snapshot.idempotency.len(),
        taken_at: chrono::Utc::now(),
    };
    write_line(&mut w, &Line::Header(header))?;
    for c in snapshot.credentials {
        write_line(&mut w, &Line::Credential(c))?;
    }
    for m in snapshot.mfa {
        write_line(&mut w, &Line::Mfa(m))?;
    }
    for k in snapshot.patient_keys {
        write_line(&mut w, &Line::PatientKey(k))?;
    }
    for c in snapshot.claims {
        write_line(&mut w, &Line::Claim(c))?;
    }
    for i in snapshot.idempotency {
        write_line(&mut w, &Line::Idempotency(i))?;
    }

    let reader = LogReader::detached(db.clone());
    let bar = progress("backing up", head);
    let mut at = (0, GENESIS.to_vec());
    while at.0 < head {
        let limit = (head - at.0).min(WINDOW as i64);
        let window = reader
            .read_from(at.0, limit)
            .await
            .context("reading the log")?;
        anyhow::ensure!(
            !window.is_empty(),
            "the log ends at position {} before its head {head}",
            at.0
        );
        at = verify_run(at, &window).map_err(|b| {
            anyhow::anyhow!(
                "the event log fails verification at position {}: {b}; not backed up",
                b.position()
            )
        })?;
        for e in window {
            write_line(&mut w, &Line::Event(e))?;
        }
        bar.set_position(at.0 as u64);
    }
    bar.finish_and_clear();
    anyhow::ensure!(
        at.1 == snapshot.head_hash,
        "log_head does not carry the hash of the event at position {head}; not backed up"
    );
    write_line(
        &mut w,
        &Line::Trailer(Trailer {
            events: head,
            head_hash: at.1.clone(),
        }),
    )?;
    let file = w.into_inner().context("writing the backup")?;
    file.sync_all().context("syncing the backup")?;
    drop(file);
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    unfinished.0 = None;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "backup of {head} events up to position {head}, head hash {}, written to {}; \
         {:.0} events/s in {seconds:.2} s",
        hex::encode(&at.1),
        out.display(),
        head as f64 / seconds.max(1e-9),
    );
    Ok(())
}

/// The partial file of a backup under way: removed when dropped, unless
/// the backup completed (and renamed it).
struct Unfinished<'a>(Option<&'a Path>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("could not remove the unfinished {}: {e}", path.display());
            }
        }
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A new file only its owner can read: a backup holds patient data and
/// password hashes.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_line(w: &mut impl Write, line: &Line) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *w, line).context("writing the backup")?;
    w.write_all(b"\n").context("writing the backup")?;
    Ok(())
}

/// Restores `from` into the database at `url` (the schema owner's; the
/// configured database when `None`): migrates it, refuses unless its log is
/// empty, verifies the file's chain while loading it, and commits only a
/// file that verifies to the end and agrees with its header and trailer.
pub async fn restore(settings: &Settings, url: Option<&str>, from: &Path) -> anyhow::Result<()> {
    let db = Db::connect(url, &settings.data_dir)
        .await
        .context("restore")?;
    let result = async {
        db.migrate().await.context("migrating the database")?;
        load(&db, from).await
    }
    .await;
    db.close().await;
    result
}

async fn load(db: &Db, from: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut lines = BufReader::with_capacity(1 << 20, file).lines();
    let header = match next_line(&mut lines, 1)? {
        Some(Line::Header(h)) => h,
        _ => anyhow::bail!("{} is not an anamnesis backup (no header)", from.display()),
    };
    anyhow::ensure!(
        header.format == backup::FORMAT && header.version == backup::VERSION,
        "{} is format {} version {}; this anamnesis reads {} version {}",
        from.display(),
        header.format,
        header.version,
        backup::FORMAT,
        backup::VERSION
    );
    let mut restore = Restore::begin(db).await?;
    let bar = progress("restoring", header.head_position);
    let mut at = (0, GENESIS.to_vec());
    let mut window: Vec<StoredEvent> = Vec::with_capacity(WINDOW);
    let (mut credentials, mut claims, mut keys) = (0, 0, 0);
    let mut mfa = 0;
    let mut patient_keys = 0;
    let mut number = 1;
    let trailer = loop {
        number += 1;
        match next_line(&mut lines, number)? {
            None => anyhow::bail!(
                "the backup ends at line {number} before its trailer: it was cut short"
            ),
            Some(Line::Header(_)) => {
                anyhow::bail!("line {number} of the backup is a second header")
            }
            Some(Line::Credential(c)) => {
                restore
                    .credential(&c)
                    .await
                    .context("restoring a credential")?;
                credentials += 1;
            }
            Some(Line::Mfa(m)) => {
                restore.mfa(&m).await.context("restoring a second factor")?;
                mfa += 1;
            }
            Some(Line::PatientKey(k)) => {
                restore
                    .patient_key(&k)
                    .await
                    .context("restoring a patient's key")?;
                patient_keys += 1;
            }
            Some(Line::Claim(c)) => {
                restore
                    .claim(&c)
                    .await
                    .context("restoring a unique claim")?;
                claims += 1;
            }
            Some(Line::Idempotency(i)) => {
                restore
                    .idempotency(&i)
                    .await
                    .context("restoring an idempotency key")?;
                keys += 1;
            }
            Some(Line::Event(e)) => {
                window.push(e);
                if window.len() == WINDOW {
                    at = load_window(&mut restore, at, &mut window).await?;
                    bar.set_position(at.0 as u64);
                }
            }
            Some(Line::Trailer(t)) => break t,
        }
    };
    at = load_window(&mut restore, at, &mut window).await?;
    bar.finish_and_clear();
    anyhow::ensure!(
        next_line(&mut lines, number + 1)?.is_none(),
        "the backup has lines after its trailer"
    );
    anyhow::ensure!(
        at.0 == header.head_position
            && at.0 == header.events
            && at.0 == trailer.events
            && at.1 == header.head_hash
            && at.1 == trailer.head_hash,
        "the backup's events end at position {} (hash {}), but its header names position {} \
         (hash {}) and its trailer {} events (hash {})",
        at.0,
        hex::encode(&at.1),
        header.head_position,
        hex::encode(&header.head_hash),
        trailer.events,
        hex::encode(&trailer.head_hash)
    );
    anyhow::ensure!(
        (credentials, claims, keys) == (header.credentials, header.claims, header.idempotency_keys),
        "the backup holds {credentials} credentials, {claims} claims and {keys} idempotency \
         keys; its header names {}, {} and {}",
        header.credentials,
        header.claims,
        header.idempotency_keys
    );
    anyhow::ensure!(
        mfa == header.mfa,
        "the backup holds {mfa} second factors; its header names {}",
        header.mfa
    );
    anyhow::ensure!(
        patient_keys == header.patient_keys,
        "the backup holds {patient_keys} patient keys; its header names {}",
        header.patient_keys
    );
    restore
        .commit(at.0, &at.1)
        .await
        .context("committing the restore")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "restored {} events up to position {}, head hash {}, {credentials} credentials, \
         {claims} unique claims, {keys} idempotency keys into the {} database \
         (backup taken {} from {}); {:.0} events/s in {seconds:.2} s; \
         the server rebuilds the read models when it starts",
        at.0,
        at.0,
        hex::encode(&at.1),
        db.backend(),
        header.taken_at,
        header.backend,
        at.0 as f64 / seconds.max(1e-9),
    );
    Ok(())
}

/// Verifies a window of events against the chain so far, then inserts it.
async fn load_window(
    restore: &mut Restore,
    at: (i64, Vec<u8>),
    window: &mut Vec<StoredEvent>,
) -> anyhow::Result<(i64, Vec<u8>)> {
    if window.is_empty() {
        return Ok(at);
    }
    let at = verify_run(at, window.iter()).map_err(|b| {
        anyhow::anyhow!(
            "the backup fails verification at position {}: {b}; nothing was restored",
            b.position()
        )
    })?;
    restore.events(window).await.context("restoring events")?;
    window.clear();
    Ok(at)
}

/// The next line, parsed; `None` at the end of the file. Errors name the
/// line and the JSON problem, never a value.
fn next_line(
    lines: &mut std::io::Lines<BufReader<File>>,
    number: usize,
) -> anyhow::Result<Option<Line>> {
    let Some(text) = lines.next() else {
        return Ok(None);
    };
    let text = text.with_context(|| format!("reading line {number} of the backup"))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        anyhow::anyhow!(
            "line {number} of the backup is unreadable: {}",
            describe_json_error(&e)
        )
    })
}
