//! `anamnesis rebuild NAME… | --all` (ADR 0014): each read model folded
//! again from the whole log into shadow tables and swapped in, while the
//! server keeps serving, with a progress bar.

use std::io::IsTerminal;
use std::time::Instant;

use anamnesis_commands::{Db, LogReader};
use anamnesis_projections::rebuild::{rebuild, Rebuilt};
use anamnesis_projections::runner::Projector;
use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

/// Rebuilds `names` (known names, `redis` only when Redis is configured),
/// several at a time on Postgres ([`jobs`]); the events folded in all and
/// the seconds it took.
pub async fn rebuild_named(settings: &Settings, names: &[&str]) -> anyhow::Result<(u64, f64)> {
    let db = crate::cli::open_database(settings).await?;
    let result = rebuild_all(settings, &db, names).await;
    db.close().await;
    result
}

/// Read models rebuilt at the same time: on Postgres, each folds on a
/// database session of its own, and one model's rebuild leaves the machine
/// idle while it waits for its session's round trips (ADR 0014). On SQLite
/// one at a time: every fold runs in this process, and swaps share the one
/// write lock.
fn jobs(db: &Db) -> usize {
    match db {
        Db::Postgres(_) => 3,
        Db::Sqlite(_) => 1,
    }
}

/// The order `--all` starts the read models in: the longest rebuilds first
/// (on a clinic's log, ADR 0014), so that the last to finish is a short one.
const LONGEST_FIRST: [&str; 11] = [
    "notifications",
    "analytics",
    "activity",
    "schedule",
    "chart",
    "billing",
    "patients",
    "alerts",
    "messaging",
    "medications",
    "access_log",
];

async fn rebuild_all(settings: &Settings, db: &Db, names: &[&str]) -> anyhow::Result<(u64, f64)> {
    use futures::{StreamExt, TryStreamExt};
    let reader = LogReader::detached_with(db.clone(), settings.keyring()?);
    let bars = MultiProgress::with_draw_target(draw_target());
    let started = Instant::now();
    // The Redis read models are computed from `patients` and `schedule`:
    // they go last, once those stand.
    let (redis_too, mut in_db): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| **n == "redis");
    in_db.sort_by_key(|n| LONGEST_FIRST.iter().position(|m| m == n));
    let mut total: u64 = futures::stream::iter(
        in_db
            .into_iter()
            .map(|name| one_named(settings, db, &reader, &bars, name)),
    )
    .buffer_unordered(jobs(db))
    .map_ok(|done| done.events)
    .try_fold(0, |sum, events| async move { Ok(sum + events) })
    .await?;
    if !redis_too.is_empty() {
        total += redis(settings, db, &reader, &bars).await?.events;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} read model(s): {total} events in {seconds:.1} s ({:.0} events/s)",
        names.len(),
        total as f64 / seconds.max(1e-9)
    );
    Ok((total, seconds))
}

/// The rebuild of the read model kept in the database under `name`.
fn one_named<'a>(
    settings: &'a Settings,
    db: &'a Db,
    reader: &'a LogReader,
    bars: &'a MultiProgress,
    name: &'a str,
) -> futures::future::BoxFuture<'a, anyhow::Result<Rebuilt>> {
    use anamnesis_projections::billing::Billing;
    use anamnesis_projections::{
        access_log::AccessLog, activity::Activity, alerts::Alerts, chart::Chart,
        medications::Medications, messaging::Messaging, notifications::Notifications,
        patients::Patients, schedule::Schedule,
    };
    use futures::FutureExt;
    match name {
        "activity" => one(db, reader, &Activity, bars).boxed(),
        "patients" => one(db, reader, &Patients, bars).boxed(),
        "schedule" => one(db, reader, &Schedule, bars).boxed(),
        "access_log" => one(db, reader, &AccessLog, bars).boxed(),
        "chart" => one(db, reader, &Chart, bars).boxed(),
        "medications" => one(db, reader, &Medications, bars).boxed(),
        "messaging" => one(db, reader, &Messaging, bars).boxed(),
        "billing" => one(db, reader, &Billing, bars).boxed(),
        "notifications" => one(db, reader, &Notifications, bars).boxed(),
        "alerts" => one(db, reader, &Alerts, bars).boxed(),
        "analytics" => async move {
            let analytics = anamnesis_projections::analytics::Analytics::new(settings.zone()?);
            one(db, reader, &analytics, bars).await
        }
        .boxed(),
        other => {
            let other = other.to_owned();
            async move { anyhow::bail!("no read model is called {other:?}") }.boxed()
        }
    }
}

async fn one<P: Projector>(
    db: &Db,
    reader: &LogReader,
    projector: &P,
    bars: &MultiProgress,
) -> anyhow::Result<Rebuilt> {
    let name = projector.name();
    let bar = bars.add(bar(name));
    let done = rebuild(db, reader, projector, |position, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    bars.remove(&bar);
    let done =
        done.with_context(|| format!("rebuilding {name} (the live tables are unchanged)"))?;
    bars.suspend(|| {
        println!(
            "{name}: {} events folded in {:.2} s ({:.0} events/s), swapped in {:.2} s, at position {}",
            done.events,
            done.fold_seconds,
            done.events as f64 / done.fold_seconds.max(1e-9),
            done.swap_seconds,
            done.position
        )
    });
    Ok(done)
}

/// Empties the Redis read models (every key under the prefix) and fills
/// them again from the whole log. The `patients` and `schedule` read models
/// they are computed from must be current (a server running, or rebuilt
/// first: `--all` does them before).
async fn redis(
    settings: &Settings,
    db: &Db,
    reader: &LogReader,
    bars: &MultiProgress,
) -> anyhow::Result<Rebuilt> {
    use anamnesis_projections::redis::{catch_up, clear, Cache, Upstream};
    let config = settings
        .redis()?
        .context("rebuild redis: no Redis is configured (--redis-url / REDIS_URL)")?;
    let cache = Cache::open(config).context("--redis-url / REDIS_URL")?;
    let started = Instant::now();
    let cleared = clear(&cache)
        .await
        .context("clearing the Redis read models")?;
    let bar = bars.add(bar("redis"));
    let mut upstream = Upstream::Polling(db.clone());
    let position = catch_up(&cache, (reader, db), &mut upstream, |position, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    bars.remove(&bar);
    let position = position.context("refilling the Redis read models")?;
    let seconds = started.elapsed().as_secs_f64();
    bars.suspend(|| {
        println!(
            "redis: {cleared} keys cleared, refilled up to position {position} in {seconds:.2} s"
        )
    });
    Ok(Rebuilt {
        events: 0,
        position,
        fold_seconds: seconds,
        swap_seconds: 0.0,
    })
}

/// Progress bars on stderr when it is a terminal.
fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A read model's progress bar.
fn bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template =
        format!("rebuilding {name} {{bar:40}} {{pos}}/{{len}} positions, {{per_sec}}, eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--all` starts every read model kept in the database, each once: a
    /// read model missing from the order would be rebuilt last, not never,
    /// but the order is meant to name them all.
    #[test]
    fn the_start_order_names_every_read_model_in_the_database_once() {
        let mut ordered = LONGEST_FIRST.to_vec();
        let mut all = ALL_BUT_REDIS.to_vec();
        ordered.sort_unstable();
        all.sort_unstable();
        assert_eq!(ordered, all);
    }
}
