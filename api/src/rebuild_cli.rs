//! `anamnesis rebuild NAME… | --all` (ADR 0014): each read model folded
//! again from the whole log into shadow tables and swapped in, while the
//! server keeps serving, with a progress bar.

use std::io::IsTerminal;
use std::time::Instant;

use anamnesis_commands::{Db, LogReader};
use anamnesis_projections::rebuild::{rebuild, rebuild_fed, Feed, Rebuilt, Subscription};
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
    let db = crate::cli::open_existing(settings).await?;
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
/// all at once from one read of the log on Postgres ([`shared_read`]); the
/// events folded in all and the seconds it took.
pub async fn rebuild_named(settings: &Settings, names: &[&str]) -> anyhow::Result<Totals> {
    let db = crate::cli::open_existing(settings).await?;
    let result = rebuild_all(settings, &db, names).await;
    db.close().await;
    result
}

/// Whether the read models rebuild at the same time, from one shared read
/// of the log ([`Feed`]): on Postgres, where each folds on a database
/// session of its own (one model's rebuild alone leaves the machine idle
/// while it waits for its session's round trips, ADR 0014). On SQLite one
/// at a time, each reading for itself: every fold runs in this process,
/// and swaps share the one write lock.
fn shared_read(db: &Db) -> bool {
    matches!(db, Db::Postgres(_))
}

/// What a rebuild of several read models did.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    /// Events folded, summed over the read models (a log's event counts
    /// once for each read model that folds it).
    pub folded: u64,
    /// The log's head when the rebuild started: the events it was rebuilt
    /// from.
    pub log: i64,
    /// Seconds from the start to the last swap.
    pub seconds: f64,
}

impl Totals {
    /// Events of the log per second: the figure to compare across runs
    /// and with the goal (ADR 0014).
    pub fn log_rate(&self) -> f64 {
        self.log.max(0) as f64 / self.seconds.max(1e-9)
    }
}

async fn rebuild_all(settings: &Settings, db: &Db, names: &[&str]) -> anyhow::Result<Totals> {
    use futures::{StreamExt, TryStreamExt};
    let reader = LogReader::detached_with(db.clone(), settings.keyring()?);
    let bars = MultiProgress::with_draw_target(draw_target());
    let started = Instant::now();
    // The head now: at most the one each rebuild reads (the feed's, or its
    // own), since the log only grows.
    let log = reader.head().await?;
    // The Redis read models are computed from `patients` and `schedule`:
    // they go last, once those stand.
    let (redis_too, in_db): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| **n == "redis");
    // Where several rebuild at once, they fold from one read of the log,
    // all at the same time (the read goes at the pace of the slowest).
    let (feed, mut subscriptions) = if shared_read(db) && in_db.len() > 1 {
        let (feed, subscriptions) = Feed::open(&reader, in_db.len()).await?;
        (Some(feed), subscriptions)
    } else {
        (None, Vec::new())
    };
    // Fed, every rebuild must run at once: the feed waits for each
    // subscription in turn, so one not yet started would stop the others.
    let at_once = if feed.is_some() { in_db.len() } else { 1 };
    let folds = futures::stream::iter(
        in_db
            .into_iter()
            .map(|name| one_named(settings, db, &reader, &bars, name, subscriptions.pop())),
    )
    .buffer_unordered(at_once)
    .map_ok(|done| done.events)
    .try_fold(0, |sum, events| async move { Ok(sum + events) });
    let mut total: u64 = match feed {
        Some(feed) => tokio::join!(folds, feed.run()).0?,
        None => folds.await?,
    };
    if !redis_too.is_empty() {
        total += redis(settings, db, &reader, &bars).await?.events;
    }
    let totals = Totals {
        folded: total,
        log,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!(
        "rebuilt {} read model(s) from a log of {log} events in {:.1} s: {:.0} log events/s \
         ({total} events folded, {:.0}/s)",
        names.len(),
        totals.seconds,
        totals.log_rate(),
        total as f64 / totals.seconds.max(1e-9)
    );
    Ok(totals)
}

/// The rebuild of the read model kept in the database under `name`.
fn one_named<'a>(
    settings: &'a Settings,
    db: &'a Db,
    reader: &'a LogReader,
    bars: &'a MultiProgress,
    name: &'a str,
    feed: Option<Subscription>,
) -> futures::future::BoxFuture<'a, anyhow::Result<Rebuilt>> {
    use anamnesis_projections::billing::Billing;
    use anamnesis_projections::{
        access_log::AccessLog, activity::Activity, alerts::Alerts, chart::Chart,
        medications::Medications, messaging::Messaging, notifications::Notifications,
        patients::Patients, schedule::Schedule,
    };
    use futures::FutureExt;
    match name {
        "activity" => one(db, reader, &Activity, bars, feed).boxed(),
        "patients" => one(db, reader, &Patients, bars, feed).boxed(),
        "schedule" => one(db, reader, &Schedule, bars, feed).boxed(),
        "access_log" => one(db, reader, &AccessLog, bars, feed).boxed(),
        "chart" => one(db, reader, &Chart, bars, feed).boxed(),
        "medications" => one(db, reader, &Medications, bars, feed).boxed(),
        "messaging" => one(db, reader, &Messaging, bars, feed).boxed(),
        "billing" => one(db, reader, &Billing, bars, feed).boxed(),
        "notifications" => one(db, reader, &Notifications, bars, feed).boxed(),
        "alerts" => one(db, reader, &Alerts, bars, feed).boxed(),
        "analytics" => async move {
            let analytics = anamnesis_projections::analytics::Analytics::new(settings.zone()?);
            one(db, reader, &analytics, bars, feed).await
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
    feed: Option<Subscription>,
) -> anyhow::Result<Rebuilt> {
    let name = projector.name();
    let bar = bars.add(bar(name));
    let progress = |position: i64, head: i64| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    };
    let done = match feed {
        Some(feed) => rebuild_fed(db, reader, projector, feed, progress).await,
        None => rebuild(db, reader, projector, progress).await,
    };
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
