//! The sender: one loop per lane (urgent, ordinary), each active in one
//! process at a time (a Postgres advisory lock, as projectors are).
//!
//! A step claims due rows (pending, next attempt due) in a small batch:
//! `sending`, the attempt counted and its row written, **committed before
//! the channel is called**. Each outcome is then recorded in a transaction
//! of its own: `sent`; `skipped` (no address); or a failure, retried after
//! an exponential, jittered, capped delay until the last attempt, after
//! which the delivery is `dead` (kept), logged at error, counted, and
//! every active admin gets a `delivery_failed` notification.
//!
//! A lane that becomes active finds the rows its predecessor left
//! `sending` (it crashed between the call and the outcome): a webhook is
//! retried (the receiver drops a repeat by its `Idempotency-Key`); an
//! e-mail is marked `unknown` and not sent again (SMTP has no such key).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::watch;

use anamnesis_commands::Db;

use super::channels::{Channels, Outcome};
use super::DeliverySettings;
use crate::runner::{begin, Failure, Lease, Report, Tx};
use crate::sql;

/// A sender lane: urgent notifications have their own, so a backlog of
/// ordinary ones never delays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// Its name in `/readyz` and its lock.
    pub name: &'static str,
    pub urgent: bool,
}

/// The lane of urgent notifications.
pub const URGENT: Lane = Lane {
    name: "deliveries_urgent",
    urgent: true,
};
/// The lane of the others.
pub const ORDINARY: Lane = Lane {
    name: "deliveries",
    urgent: false,
};
/// Both lanes.
pub const LANES: [Lane; 2] = [URGENT, ORDINARY];

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub id: i64,
    pub notification_id: String,
    pub channel: String,
    pub recipient_id: String,
    pub kind: String,
    pub title: String,
    pub urgent: i64,
    pub patient_id: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub position: i64,
    pub caused_at_ms: i64,
    /// This attempt's number, from 1.
    pub attempts: i64,
}

/// How long a lane that stands by waits before trying the lock again.
const STANDBY: Duration = Duration::from_millis(500);

/// Runs `lane` until `shutdown` turns true, sending over `channels`,
/// publishing on `report`: `progress` is the id of the last delivery whose
/// outcome it recorded (not a log position).
pub async fn run(
    db: Db,
    settings: DeliverySettings,
    channels: Arc<Channels>,
    lane: Lane,
    report: Report,
    mut shutdown: watch::Receiver<bool>,
) {
    let Report {
        progress,
        failure,
        active,
    } = report;
    let mut lease = Lease::new(&db, lane.name);
    let mut recovered = false;
    let mut pause = Duration::from_secs(1);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        if !held {
            recovered = false;
            tokio::select! {
                _ = tokio::time::sleep(STANDBY) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let stepped = async {
            if !recovered {
                recover(&db, &channels, lane).await?;
                recovered = true;
            }
            step(&db, &settings, &channels, lane).await
        }
        .await;
        match stepped {
            Ok((claimed, last)) => {
                if failure.borrow().is_some() {
                    tracing::info!(lane = lane.name, "the delivery sender recovered");
                    failure.send_replace(None);
                    pause = Duration::from_secs(1);
                }
                if let Some(last) = last {
                    progress.send_if_modified(|p| std::mem::replace(p, last) != last);
                }
                if claimed == 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(settings.poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            Err(error) => {
                // Whatever this step left `sending` (an outcome it could not
                // record) is settled as after a crash once the tables answer.
                recovered = false;
                tracing::error!(lane = lane.name, %error, "the delivery sender cannot reach its tables; retrying");
                metrics::counter!("anamnesis_delivery_sender_failures_total", "lane" => lane.name)
                    .increment(1);
                failure.send_replace(Some(Failure {
                    checkpoint: *progress.borrow(),
                    error: error.to_string(),
                }));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn commit(tx: Tx) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(t) => t.commit().await,
        Tx::Sqlite(t) => t.commit().await,
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Settles what a crashed sender left `sending` on `lane`.
async fn recover(db: &Db, channels: &Channels, lane: Lane) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let _turn = db.write_turn().await;
    let mut tx = begin(db).await?;
    let urgent = i64::from(lane.urgent);
    for channel in channels.names() {
        let (status, outcome, error) = if channel == super::EMAIL {
            (
                "unknown",
                "unknown",
                "the sender stopped before the outcome was known; not sent again",
            )
        } else {
            (
                "pending",
                "interrupted",
                "the sender stopped before the outcome was known; retried with the same Idempotency-Key",
            )
        };
        sql::execute(
            &mut tx,
            "UPDATE delivery_attempts SET finished_at_ms = $1, outcome = $2, error = $3 \
             WHERE outcome IS NULL AND delivery_id IN (SELECT id FROM deliveries \
             WHERE status = 'sending' AND urgent = $4 AND channel = $5)",
            &[
                now.into(),
                outcome.into(),
                error.into(),
                urgent.into(),
                channel.into(),
            ],
        )
        .await?;
        let n = sql::execute(
            &mut tx,
            "UPDATE deliveries SET status = $1, next_at_ms = $2, updated_at_ms = $2, \
             last_error = $3 WHERE status = 'sending' AND urgent = $4 AND channel = $5",
            &[
                status.into(),
                now.into(),
                error.into(),
                urgent.into(),
                channel.into(),
            ],
        )
        .await?;
        if n > 0 {
            tracing::warn!(
                lane = lane.name,
                channel,
                deliveries = n,
                outcome = status,
                "deliveries left under way by a stopped sender"
            );
        }
    }
    commit(tx).await
}

/// Claims a batch of due deliveries, sends them, records each outcome.
/// Returns how many it claimed and the last id it finished.
async fn step(
    db: &Db,
    settings: &DeliverySettings,
    channels: &Channels,
    lane: Lane,
) -> Result<(usize, Option<i64>), sqlx::Error> {
    let claimed = claim(db, settings, channels, lane).await?;
    let outcomes = futures::future::join_all(claimed.iter().map(|d| channels.send(db, d))).await;
    let mut last = None;
    for (d, outcome) in claimed.iter().zip(outcomes) {
        finish(db, settings, d, outcome).await?;
        last = Some(last.unwrap_or(d.id).max(d.id));
    }
    Ok((claimed.len(), last))
}

/// Expires first attempts that waited too long, then marks a batch of due
/// rows `sending` with an open attempt each, and commits.
async fn claim(
    db: &Db,
    settings: &DeliverySettings,
    channels: &Channels,
    lane: Lane,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_ms();
    let names = channels.names();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let urgent = i64::from(lane.urgent);
    // Idle, the look costs one indexed read and no write lock (SQLite's is
    // the whole file's).
    // Only channels this sender has: another's rows wait for it.
    let look = format!(
        "SELECT id FROM deliveries WHERE status = 'pending' AND urgent = $1 \
         AND next_at_ms <= $2 AND channel IN ({}) LIMIT 1",
        placeholders(3, names.len())
    );
    let due: Option<i64> = match db {
        Db::Postgres(p) => {
            let mut q = sqlx::query_scalar(&look).bind(urgent).bind(now);
            for n in &names {
                q = q.bind(*n);
            }
            q.fetch_optional(p).await?
        }
        Db::Sqlite(p) => {
            let mut q = sqlx::query_scalar(&look).bind(urgent).bind(now);
            for n in &names {
                q = q.bind(*n);
            }
            q.fetch_optional(p).await?
        }
    };
    if due.is_none() {
        return Ok(Vec::new());
    }
    let max_age = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
    let _turn = db.write_turn().await;
    let mut tx = begin(db).await?;
    sql::execute(
        &mut tx,
        "UPDATE deliveries SET status = 'expired', updated_at_ms = $1, \
         last_error = 'not sent in time: old news is not sent' \
         WHERE status = 'pending' AND urgent = $2 AND attempts = 0 AND caused_at_ms < $3",
        &[
            now.into(),
            urgent.into(),
            now.saturating_sub(max_age).into(),
        ],
    )
    .await?;
    let query = format!(
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at_ms = $1 \
         WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND urgent = $2 \
         AND next_at_ms <= $1 AND channel IN ({}) ORDER BY next_at_ms, id LIMIT $3) \
         RETURNING id, notification_id, channel, recipient_id, kind, title, urgent, patient_id, \
         subject_type, subject_id, position, caused_at_ms, attempts",
        placeholders(4, names.len())
    );
    let mut claimed: Vec<Claimed> = match &mut tx {
        Tx::Postgres(c) => {
            let mut q = sqlx::query_as(&query)
                .bind(now)
                .bind(urgent)
                .bind(settings.batch);
            for n in &names {
                q = q.bind(*n);
            }
            q.fetch_all(&mut **c).await?
        }
        Tx::Sqlite(c) => {
            let mut q = sqlx::query_as(&query)
                .bind(now)
                .bind(urgent)
                .bind(settings.batch);
            for n in &names {
                q = q.bind(*n);
            }
            q.fetch_all(&mut **c).await?
        }
    };
    claimed.sort_by_key(|d| d.id);
    for d in &claimed {
        sql::execute(
            &mut tx,
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (delivery_id, attempt) DO NOTHING",
            &[d.id.into(), d.attempts.into(), now.into()],
        )
        .await?;
    }
    commit(tx).await?;
    Ok(claimed)
}

/// `$first, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The delay before attempt `attempts + 1`: the backoff doubled per
/// attempt made, capped, and drawn between half of it and all of it.
pub(crate) fn delay(settings: &DeliverySettings, attempts: i64) -> Duration {
    let base = settings.backoff.as_millis() as u64;
    let cap = settings.backoff_max.as_millis() as u64;
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
    let full = base.saturating_mul(1u64 << doublings).min(cap).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(full / 2..=full))
}

/// Records what attempt `d` came to.
async fn finish(
    db: &Db,
    settings: &DeliverySettings,
    d: &Claimed,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let channel = if d.channel == super::EMAIL {
        super::EMAIL
    } else {
        super::WEBHOOK
    };
    let (status, attempt_outcome, error, next) = match &outcome {
        Outcome::Sent => ("sent", "sent", None, now),
        Outcome::Skipped(why) => ("skipped", "skipped", Some(why.clone()), now),
        Outcome::Failed(why) if d.attempts >= settings.max_attempts => {
            ("dead", "failed", Some(why.clone()), now)
        }
        Outcome::Failed(why) => {
            let wait = i64::try_from(delay(settings, d.attempts).as_millis()).unwrap_or(i64::MAX);
            (
                "pending",
                "failed",
                Some(why.clone()),
                now.saturating_add(wait),
            )
        }
    };
    let _turn = db.write_turn().await;
    let mut tx = begin(db).await?;
    sql::execute(
        &mut tx,
        "UPDATE delivery_attempts SET finished_at_ms = $3, outcome = $4, error = $5 \
         WHERE delivery_id = $1 AND attempt = $2",
        &[
            d.id.into(),
            d.attempts.into(),
            now.into(),
            attempt_outcome.into(),
            error.clone().into(),
        ],
    )
    .await?;
    sql::execute(
        &mut tx,
        "UPDATE deliveries SET status = $2, next_at_ms = $3, updated_at_ms = $4, last_error = $5 \
         WHERE id = $1 AND status = 'sending'",
        &[
            d.id.into(),
            status.into(),
            next.into(),
            now.into(),
            error.clone().into(),
        ],
    )
    .await?;
    if status == "dead" {
        tell_admins(&mut tx, d, now).await?;
    }
    commit(tx).await?;
    match status {
        "sent" => {
            metrics::counter!("anamnesis_deliveries_sent_total", "channel" => channel).increment(1)
        }
        "skipped" => metrics::counter!("anamnesis_deliveries_skipped_total", "channel" => channel)
            .increment(1),
        "dead" => {
            metrics::counter!("anamnesis_deliveries_dead_total", "channel" => channel).increment(1);
            tracing::error!(
                delivery = d.id,
                channel,
                kind = %d.kind,
                attempts = d.attempts,
                error = error.as_deref().unwrap_or(""),
                "a notification could not be delivered: dead after its last attempt"
            );
        }
        _ => {
            metrics::counter!("anamnesis_delivery_failures_total", "channel" => channel)
                .increment(1);
            tracing::warn!(
                delivery = d.id,
                channel,
                attempt = d.attempts,
                error = error.as_deref().unwrap_or(""),
                "a delivery attempt failed; retrying later"
            );
        }
    }
    Ok(())
}

/// Every active admin's in-app notification that delivery `d` is dead:
/// ids derived from the delivery, so made once.
async fn tell_admins(tx: &mut Tx, d: &Claimed, now_ms: i64) -> Result<(), sqlx::Error> {
    sql::execute(
        tx,
        "INSERT INTO notifications (notification_id, recipient_id, kind, title, patient_id, \
         subject_type, subject_id, urgent, created_at, position) \
         SELECT 'delivery.' || $1 || '.' || CAST(ROW_NUMBER() OVER (ORDER BY u.user_id) - 1 AS TEXT), \
         u.user_id, 'delivery_failed', 'A notification could not be delivered', NULL, \
         'delivery', $1, 0, $2, $3 \
         FROM notify_users u WHERE u.role = 'admin' AND u.active = 1 \
         ON CONFLICT (notification_id) DO NOTHING",
        &[
            d.id.to_string().into(),
            (now_ms / 1000).into(),
            d.position.into(),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_attempt_and_stops_at_the_cap() {
        let mut s = DeliverySettings::new();
        s.backoff = Duration::from_millis(100);
        s.backoff_max = Duration::from_millis(1000);
        for _ in 0..50 {
            let first = delay(&s, 1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = delay(&s, 3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            let late = delay(&s, 30).as_millis();
            assert!((500..=1000).contains(&late), "{late}");
        }
    }
}
