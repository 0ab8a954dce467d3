//! `anamnesis rebuild NAME… | --all` (ADR 0014): each read model folded
//! again from the whole log into shadow tables and swapped in, while the
//! server keeps serving, with a progress bar.

use std::io::IsTerminal;
use std::time::Instant;

use anamnesis_commands::{Db, LogReader};
use anamnesis_projections::rebuild::{rebuild, Rebuilt};
use anamnesis_projections::runner::Projector;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;

/// The read models, by the name their checkpoint is kept under (`redis`:
/// the Redis read models, ADR 0022, when Redis is configured).
pub const NAMES: [&str; 12] = [
    "activity",
    "patients",
    "schedule",
    "access_log",
    "chart",
    "medications",
    "messaging",
    "billing",
    "notifications",
    "alerts",
    "analytics",
    "redis",
];

/// Rebuilds `names` (every read model when `all`).
pub async fn run(settings: &Settings, names: &[String], all: bool) -> anyhow::Result<()> {
    let mut wanted: Vec<&str> = if all {
        NAMES.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    anyhow::ensure!(
        !wanted.is_empty(),
        "name the read models to rebuild ({}), or say --all",
        NAMES.join(", ")
    );
    if let Some(unknown) = wanted.iter().find(|n| !NAMES.contains(n)) {
        anyhow::bail!(
            "no read model is called {unknown:?}; they are {}",
            NAMES.join(", ")
        );
    }
    let db = crate::cli::open_database(settings).await?;
    if wanted.contains(&"redis") && settings.redis_url.is_none() {
        anyhow::ensure!(
            all,
            "rebuild redis: no Redis is configured (--redis-url / REDIS_URL)"
        );
        wanted.retain(|n| *n != "redis");
    }
    let result = rebuild_all(settings, &db, &wanted).await;
    db.close().await;
    result.map(|_| ())
}

/// Every read model kept in the database (all but `redis`).
pub const ALL_BUT_REDIS: &[&str] = match NAMES.split_last() {
    Some((_, rest)) => rest,
    None => &[],
};

/// Rebuilds `names` (known names, `redis` only when Redis is configured)
/// one after the other; the events folded in all and the seconds it took.
pub async fn rebuild_named(settings: &Settings, names: &[&str]) -> anyhow::Result<(u64, f64)> {
    let db = crate::cli::open_database(settings).await?;
    let result = rebuild_all(settings, &db, names).await;
    db.close().await;
    result
}

async fn rebuild_all(settings: &Settings, db: &Db, names: &[&str]) -> anyhow::Result<(u64, f64)> {
    use anamnesis_projections::billing::Billing;
    use anamnesis_projections::{
        access_log::AccessLog, activity::Activity, chart::Chart, medications::Medications,
        patients::Patients, schedule::Schedule,
    };
    let reader = LogReader::detached_with(db.clone(), settings.keyring()?);
    let started = Instant::now();
    let mut total = 0u64;
    for &name in names {
        let done = match name {
            "activity" => one(db, &reader, &Activity).await?,
            "patients" => one(db, &reader, &Patients).await?,
            "schedule" => one(db, &reader, &Schedule).await?,
            "access_log" => one(db, &reader, &AccessLog).await?,
            "chart" => one(db, &reader, &Chart).await?,
            "medications" => one(db, &reader, &Medications).await?,
            "messaging" => one(db, &reader, &anamnesis_projections::messaging::Messaging).await?,
            "billing" => one(db, &reader, &Billing).await?,
            "notifications" => {
                one(
                    db,
                    &reader,
                    &anamnesis_projections::notifications::Notifications,
                )
                .await?
            }
            "alerts" => one(db, &reader, &anamnesis_projections::alerts::Alerts).await?,
            "analytics" => {
                let analytics = anamnesis_projections::analytics::Analytics::new(settings.zone()?);
                one(db, &reader, &analytics).await?
            }
            "redis" => redis(settings, db, &reader).await?,
            other => anyhow::bail!("no read model is called {other:?}"),
        };
        total += done.events;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} read model(s): {total} events in {seconds:.1} s ({:.0} events/s)",
        names.len(),
        total as f64 / seconds.max(1e-9)
    );
    Ok((total, seconds))
}

async fn one<P: Projector>(db: &Db, reader: &LogReader, projector: &P) -> anyhow::Result<Rebuilt> {
    let name = projector.name();
    let bar = bar(name);
    let done = rebuild(db, reader, projector, |position, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    let done =
        done.with_context(|| format!("rebuilding {name} (the live tables are unchanged)"))?;
    println!(
        "{name}: {} events folded in {:.2} s ({:.0} events/s), swapped in {:.2} s, at position {}",
        done.events,
        done.fold_seconds,
        done.events as f64 / done.fold_seconds.max(1e-9),
        done.swap_seconds,
        done.position
    );
    Ok(done)
}

/// Empties the Redis read models (every key under the prefix) and fills
/// them again from the whole log. The `patients` and `schedule` read models
/// they are computed from must be current (a server running, or rebuilt
/// first: `--all` does them before).
async fn redis(settings: &Settings, db: &Db, reader: &LogReader) -> anyhow::Result<Rebuilt> {
    use anamnesis_projections::redis::{catch_up, clear, Cache, Upstream};
    let config = settings
        .redis()?
        .context("rebuild redis: no Redis is configured (--redis-url / REDIS_URL)")?;
    let cache = Cache::open(config).context("--redis-url / REDIS_URL")?;
    let started = Instant::now();
    let cleared = clear(&cache)
        .await
        .context("clearing the Redis read models")?;
    let bar = bar("redis");
    let mut upstream = Upstream::Polling(db.clone());
    let position = catch_up(&cache, (reader, db), &mut upstream, |position, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    let position = position.context("refilling the Redis read models")?;
    let seconds = started.elapsed().as_secs_f64();
    println!("redis: {cleared} keys cleared, refilled up to position {position} in {seconds:.2} s");
    Ok(Rebuilt {
        events: 0,
        position,
        fold_seconds: seconds,
        swap_seconds: 0.0,
    })
}

/// A progress bar on stderr when it is a terminal.
fn bar(name: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let template =
        format!("rebuilding {name} {{bar:40}} {{pos}}/{{len}} positions, {{per_sec}}, eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
