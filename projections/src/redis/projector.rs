//! The projector of the Redis read models: a catch-up loop of its own on
//! the log (not `runner::Projector`, which commits in the database with its
//! checkpoint). Each step watches the checkpoint key, reads a batch of the
//! patient and scheduling events after it, works out which cards and which
//! (provider, day) pairs they touch, computes those values from the read
//! models (once these have reached the batch's end), and writes the values
//! and the new checkpoint in one `MULTI/EXEC`. An emptied Redis has no
//! checkpoint: the projector starts again from 0 by itself.

use std::collections::BTreeSet;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use anamnesis_commands::{Db, LogReader};
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::slots::{calendar, clinic, day_slots};
use super::touched::{targets, Days, Touched};
use super::{cards, scan, Cache, RedisError};
use crate::runner::{Failure, Lease, Report};

pub use super::touched::Upstream;

/// The projector's name (its lease, its metrics, `/readyz`).
pub const NAME: &str = "redis";

/// The aggregate types whose events change a card or a day's slots.
const TYPES: [&str; 4] = ["patient", "provider", "clinic_calendar", "appointment"];
/// Events per batch.
const BATCH: i64 = 500;
/// Positions scanned per read beyond the checkpoint (as the runner does).
const SCAN_WINDOW: i64 = 20_000;
/// The longest pause between two tries while Redis is away.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The local days kept: from yesterday (a query may start there) to the
/// end of the horizon.
fn window(cache: &Cache, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let today = cache.config.zone.date_of(now);
    (
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(cache.config.horizon_days),
    )
}

/// One write: values to set (key, value, expiry as a Unix time or none)
/// and keys to delete.
#[derive(Default)]
struct Writes {
    set: Vec<(String, String, Option<i64>)>,
    delete: Vec<String>,
}

impl Writes {
    fn len(&self) -> usize {
        self.set.len() + self.delete.len()
    }
}

/// The values of the given providers' days and patients' cards, now.
async fn compute(
    cache: &Cache,
    (reader, db): (&LogReader, &Db),
    mut touched: Touched,
) -> Result<Writes, RedisError> {
    let zone = cache.config.zone;
    let now = Utc::now();
    let window = window(cache, now);
    let mut writes = Writes::default();
    if !matches!(touched.every_provider, Days::Nothing) {
        for id in reader.stream_ids("provider").await? {
            let id = Uuid::parse_str(&id).map_err(|_| RedisError::Damaged {
                key: format!("provider/{id}"),
            })?;
            touched
                .providers
                .entry(id)
                .or_default()
                .merge(&touched.every_provider);
        }
    }
    let wanted: Vec<(Uuid, Vec<NaiveDate>)> = touched
        .providers
        .iter()
        .map(|(id, days)| (*id, days.within(window)))
        .filter(|(_, days)| !days.is_empty())
        .collect();
    if !wanted.is_empty() {
        let clinic = clinic(reader).await?;
        for (id, days) in wanted {
            let Some(calendar) = calendar(reader, zone, &clinic, id).await? else {
                continue;
            };
            for (day, slots) in day_slots(db, (id, &calendar), &days).await? {
                let value = serde_json::to_string(&slots).map_err(|_| RedisError::Damaged {
                    key: cache.slots_key(id, day),
                })?;
                // Gone a day after the day ends: past days are never read.
                let expires = zone.day(day).1.timestamp() + 24 * 3600;
                writes
                    .set
                    .push((cache.slots_key(id, day), value, Some(expires)));
            }
        }
    }
    for patient in touched.patients {
        let key = cache.card_key(patient);
        match cards::card_from_database(db, &patient.to_string(), now.timestamp()).await? {
            Some(card) => {
                let value = serde_json::to_string(&card)
                    .map_err(|_| RedisError::Damaged { key: key.clone() })?;
                writes.set.push((key, value, None));
            }
            None => writes.delete.push(key),
        }
    }
    Ok(writes)
}

/// Writes `writes` and (when given) the checkpoint in one transaction,
/// unless the checkpoint key changed since it was watched: `false` then.
async fn commit(
    cache: &Cache,
    conn: &mut ConnectionManager,
    writes: &Writes,
    to: Option<i64>,
) -> Result<bool, RedisError> {
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    for (key, value, expires) in &writes.set {
        match expires {
            Some(at) => pipe
                .cmd("SET")
                .arg(key)
                .arg(value)
                .arg("EXAT")
                .arg(*at)
                .ignore(),
            None => pipe.cmd("SET").arg(key).arg(value).ignore(),
        };
    }
    for key in &writes.delete {
        pipe.cmd("DEL").arg(key).ignore();
    }
    if let Some(to) = to {
        pipe.cmd("SET").arg(cache.checkpoint_key()).arg(to).ignore();
    }
    let done: Option<()> = pipe.query_async(conn).await?;
    Ok(done.is_some())
}

/// Watches the checkpoint key and reads it (0 when absent).
async fn watch_checkpoint(cache: &Cache, conn: &mut ConnectionManager) -> Result<i64, RedisError> {
    let key = cache.checkpoint_key();
    ::redis::cmd("WATCH")
        .arg(&key)
        .query_async::<()>(conn)
        .await?;
    let at: Option<i64> = ::redis::cmd("GET").arg(&key).query_async(conn).await?;
    Ok(at.unwrap_or(0))
}

async fn unwatch(conn: &mut ConnectionManager) -> Result<(), RedisError> {
    Ok(::redis::cmd("UNWATCH").query_async::<()>(conn).await?)
}

/// What one step did.
enum Stepped {
    /// Redis now reflects the log up to here.
    Advanced(i64),
    /// Nothing after the checkpoint.
    CaughtUp(i64),
    /// The checkpoint moved under the step (a rebuild, another writer):
    /// nothing was written.
    Raced,
}

/// One batch after Redis's checkpoint.
async fn step(
    cache: &Cache,
    conn: &mut ConnectionManager,
    (reader, db): (&LogReader, &Db),
    upstream: &mut Upstream,
) -> Result<Stepped, RedisError> {
    let at = watch_checkpoint(cache, conn).await?;
    let signalled = *reader.subscribe().borrow();
    let head = if signalled > at {
        signalled
    } else {
        reader.head().await?
    };
    if at >= head {
        unwatch(conn).await?;
        return Ok(Stepped::CaughtUp(at));
    }
    let until = head.min(at + SCAN_WINDOW);
    let events = reader.read_types(&TYPES, (at, until), BATCH, true).await?;
    let reached = match events.last() {
        Some(last) if events.len() as i64 >= BATCH => last.global_position,
        _ => until,
    };
    let writes = if events.is_empty() {
        Writes::default()
    } else {
        let mut touched = Touched::of(&events, cache.config.zone)?;
        // The two read models project exactly these types: once each holds
        // its last event of the batch, they hold the whole batch.
        upstream.reach(&targets(&events)).await?;
        touched.resolve(db, cache.config.zone).await?;
        compute(cache, (reader, db), touched).await?
    };
    if !commit(cache, conn, &writes, Some(reached)).await? {
        return Ok(Stepped::Raced);
    }
    metrics::counter!("anamnesis_redis_values_written_total").increment(writes.len() as u64);
    Ok(Stepped::Advanced(reached))
}

/// Computes every provider's days `days` again (the horizon moved on, or
/// the projector started), under the current checkpoint. `false` when the
/// checkpoint moved meanwhile (nothing written).
pub async fn fill(
    cache: &Cache,
    (reader, db): (&LogReader, &Db),
    upstream: &mut Upstream,
    days: (NaiveDate, NaiveDate),
) -> Result<bool, RedisError> {
    let mut conn = cache.dedicated()?;
    let at = watch_checkpoint(cache, &mut conn).await?;
    if at == 0 {
        // Empty: the catch-up from 0 fills every provider's days.
        unwatch(&mut conn).await?;
        return Ok(true);
    }
    upstream
        .reach(&[(crate::patients::NAME, at), (crate::schedule::NAME, at)])
        .await?;
    let mut every = BTreeSet::new();
    every.extend(days.0.iter_days().take_while(|d| *d <= days.1));
    let touched = Touched {
        every_provider: Days::Some(every),
        ..Default::default()
    };
    let writes = compute(cache, (reader, db), touched).await?;
    commit(cache, &mut conn, &writes, None).await
}

/// Deletes every key under the prefix, the checkpoint with them.
pub async fn clear(cache: &Cache) -> Result<usize, RedisError> {
    let mut conn = cache.dedicated()?;
    let keys = scan(&mut conn, &format!("{}:*", cache.config.prefix)).await?;
    for chunk in keys.chunks(500) {
        ::redis::cmd("UNLINK")
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(keys.len())
}

/// Catches Redis up with the log's head as it is now (`rebuild`), calling
/// `progress(position, head)` after each batch; returns the position reached.
pub async fn catch_up(
    cache: &Cache,
    (reader, db): (&LogReader, &Db),
    upstream: &mut Upstream,
    mut progress: impl FnMut(i64, i64),
) -> Result<i64, RedisError> {
    let mut conn = cache.dedicated()?;
    let head = reader.head().await?;
    loop {
        match step(cache, &mut conn, (reader, db), upstream).await? {
            Stepped::Advanced(at) if at < head => progress(at, head),
            Stepped::Advanced(at) | Stepped::CaughtUp(at) => {
                progress(at, head);
                return Ok(at);
            }
            Stepped::Raced => {}
        }
    }
}

fn failing(set: bool) {
    metrics::gauge!("anamnesis_projection_failing", "projection" => NAME).set(if set {
        1.0
    } else {
        0.0
    });
}

/// Keeps Redis current until `shutdown` turns true: one process at a time
/// on Postgres (the others stand by), reporting its checkpoint and whether
/// it is stuck. Redis away: it backs off and resumes from
/// Redis's checkpoint, from 0 when Redis came back empty.
/// (Backs off up to [`MAX_PAUSE`]: probing Redis costs little.)
pub async fn run(
    cache: Cache,
    (reader, db): (LogReader, Db),
    mut upstream: Upstream,
    report: Report,
    mut shutdown: watch::Receiver<bool>,
) {
    let Report {
        progress,
        failure,
        active,
    } = report;
    let mut wake = reader.subscribe();
    let mut lease = Lease::new(&db, NAME);
    let first_pause = Duration::from_millis(250);
    let mut pause = first_pause;
    // The last day of the horizon filled for every provider.
    let mut filled: Option<NaiveDate> = None;
    let mut conn = match cache.dedicated() {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "the Redis projector cannot start");
            failing(true);
            failure.send_replace(Some(Failure {
                checkpoint: 0,
                error: error.to_string(),
            }));
            return;
        }
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        if !held {
            filled = None;
            // Standing by: what Redis reflects is still worth showing.
            let at: Result<Option<i64>, _> = ::redis::cmd("GET")
                .arg(cache.checkpoint_key())
                .query_async(&mut conn)
                .await;
            if let Ok(at) = at {
                progress.send_replace(at.unwrap_or(0));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let stepped = match step(&cache, &mut conn, (&reader, &db), &mut upstream).await {
            Ok(Stepped::CaughtUp(at)) => {
                let (first, last) = window(&cache, Utc::now());
                if filled == Some(last) {
                    Ok(Stepped::CaughtUp(at))
                } else {
                    let from = filled.map_or(first, |f| f.succ_opt().unwrap_or(f).max(first));
                    match fill(&cache, (&reader, &db), &mut upstream, (from, last)).await {
                        Ok(true) => {
                            filled = Some(last);
                            Ok(Stepped::CaughtUp(at))
                        }
                        Ok(false) => Ok(Stepped::Raced),
                        Err(e) => Err(e),
                    }
                }
            }
            other => other,
        };
        match stepped {
            Ok(stepped) => {
                if failure.borrow().is_some() {
                    tracing::info!("the Redis projector writes again");
                    failure.send_replace(None);
                    failing(false);
                }
                pause = first_pause;
                match stepped {
                    Stepped::Advanced(at) => {
                        progress.send_replace(at);
                    }
                    Stepped::CaughtUp(at) => {
                        progress.send_replace(at);
                        tokio::select! {
                            _ = wake.changed() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                    Stepped::Raced => {
                        // Emptied or rebuilt: the next steps refill it.
                        filled = None;
                    }
                }
            }
            Err(error) => {
                // A new connection next time: a WATCH may be left on this one.
                if let Ok(c) = cache.dedicated() {
                    conn = c;
                }
                let at = *progress.borrow();
                if failure.borrow().is_none() {
                    tracing::warn!(checkpoint = at, %error, "the Redis projector cannot write; retrying");
                }
                metrics::counter!("anamnesis_projection_failures_total", "projection" => NAME)
                    .increment(1);
                failing(true);
                failure.send_replace(Some(Failure {
                    checkpoint: at,
                    error: error.to_string(),
                }));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
