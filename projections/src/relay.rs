//! The relay (ADR 0018): publishes every event of the log, in log order,
//! to the JetStream stream `CLINIC_EVENTS`, subject
//! `clinic.<aggregate>.<event>`, each message with `Nats-Msg-Id` = the
//! event's id, and waits for the acks before it moves its checkpoint.
//!
//! **The stream is the record of what was published.** On every (re)start
//! the relay reads the stream's last message and resumes after the log
//! position it carries, so an event acked before a crash is not sent again
//! and one that was not is. Every message also says which event must be
//! the stream's last before it (`Nats-Expected-Last-Msg-Id`): if one
//! publish of a pipelined batch fails, every later one is refused by the
//! server too, so the stream never holds a gap or two events out of order.
//!
//! No patient data in subjects or headers; the body is the event's
//! envelope (ids, types, position, time, actor, whom it is about), never
//! its payload: consumers read what they need from the log, so NATS holds
//! nothing to erase (issue 13).

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use anamnesis_commands::{Db, LogReader, StoredEvent};

use crate::runner::{checkpoint, ensure_checkpoint_row, Lease, Report};

/// The relay's checkpoint name.
pub const NAME: &str = "relay";

/// The header that carries an event's log position.
pub const POSITION_HEADER: &str = "Anamnesis-Position";

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The NATS server (`nats://host:4222`).
    pub url: String,
    /// The JetStream stream, created if missing.
    pub stream: String,
    /// The first token of every subject.
    pub prefix: String,
    /// Events read from the log per batch.
    pub batch: i64,
    /// Publishes awaiting their ack at most.
    pub in_flight: usize,
    /// The stream keeps messages this long...
    pub max_age: Duration,
    /// ...and at most this many bytes (the oldest go first).
    pub max_bytes: i64,
}

impl RelayConfig {
    /// The defaults for `url`: stream `CLINIC_EVENTS`, subjects `clinic.…`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "CLINIC_EVENTS".into(),
            prefix: "clinic".into(),
            batch: 2_000,
            in_flight: 256,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// What a message says: the event's envelope, never its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    /// The patient the event is about, where it has one.
    pub patient_id: Option<Uuid>,
}

impl Envelope {
    fn of(e: &StoredEvent) -> Self {
        Self {
            event_id: e.event_id,
            position: e.global_position,
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            event_version: e.event_version.clone(),
            recorded_at: e.recorded_at,
            actor_id: e.actor_id.clone(),
            actor_role: e.actor_role.clone(),
            patient_id: e.patient_id,
        }
    }
}

/// Why a step of the relay failed (never patient data).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("reading the log: {0}")]
    Log(String),
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] sqlx::Error),
    /// An event whose type cannot be a subject: stuck on it, never skipped.
    #[error("event {position} has a type that is no subject ({event_type:?})")]
    Subject { position: i64, event_type: String },
    #[error("the stream's last message carries no readable position")]
    Unpositioned,
}

fn nats(e: impl std::fmt::Display) -> RelayError {
    RelayError::Nats(e.to_string())
}

/// `prefix.<aggregate>.<event>` for a stored event, refusing anything but
/// lower-case letters, digits and `_` in the tokens (a type is never data,
/// but the relay checks rather than trusts).
pub fn subject(prefix: &str, e: &StoredEvent) -> Result<String, RelayError> {
    let bad = || RelayError::Subject {
        position: e.global_position,
        event_type: e.event_type.clone(),
    };
    let (aggregate, event) = e.event_type.split_once('.').ok_or_else(bad)?;
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if aggregate != e.aggregate_type || !token(aggregate) || !token(event) {
        return Err(bad());
    }
    Ok(format!("{prefix}.{aggregate}.{event}"))
}

/// The stream as the relay makes it when it is missing: file storage, the
/// oldest messages dropped past the age and size limits, a 2-minute
/// duplicate window. Consumers make it the same way if they start first.
pub fn stream_config(config: &RelayConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.prefix)],
        max_age: config.max_age,
        max_bytes: config.max_bytes,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// A connection to the stream, and the last event it holds.
struct Session {
    js: jetstream::Context,
    /// The position of the last event published.
    last: i64,
    /// The last message's id, which the next must follow; `None` when the
    /// stream holds no message.
    last_id: Option<Uuid>,
}

impl Session {
    /// Connects, creates the stream if missing, and finds where it ends.
    /// A stream that never held a message gets the whole log; one whose
    /// messages all aged out resumes from the checkpoint `saved`.
    async fn open(config: &RelayConfig, saved: i64) -> Result<Self, RelayError> {
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(5))
                .name("anamnesis-relay")
                .connect(config.url.as_str()),
        )
        .await
        .map_err(|_| RelayError::Nats("no answer from the server".into()))?
        .map_err(nats)?;
        let js = jetstream::new(client);
        let mut stream = js
            .get_or_create_stream(stream_config(config))
            .await
            .map_err(nats)?;
        let state = stream.info().await.map_err(nats)?.state.clone();
        if state.messages == 0 {
            let last = if state.last_sequence == 0 { 0 } else { saved };
            return Ok(Self {
                js,
                last,
                last_id: None,
            });
        }
        {
            let message = stream
                .get_raw_message(state.last_sequence)
                .await
                .map_err(nats)?;
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let position = header(POSITION_HEADER)
                .parse::<i64>()
                .map_err(|_| RelayError::Unpositioned)?;
            let id =
                Uuid::parse_str(&header("Nats-Msg-Id")).map_err(|_| RelayError::Unpositioned)?;
            Ok(Self {
                js,
                last: position,
                last_id: Some(id),
            })
        }
    }

    /// Publishes `events` in order, `in_flight` at a time; returns the last
    /// one the stream acknowledged.
    async fn publish(
        &mut self,
        config: &RelayConfig,
        events: &[StoredEvent],
    ) -> Result<(), RelayError> {
        let mut waiting: VecDeque<(i64, Uuid, PublishAckFuture)> = VecDeque::new();
        let mut expected = self.last_id;
        for e in events {
            let body = serde_json::to_vec(&Envelope::of(e))
                .map_err(|err| RelayError::Nats(err.to_string()))?;
            let mut message = PublishMessage::build()
                .payload(body.into())
                .message_id(e.event_id.to_string())
                .header(POSITION_HEADER, e.global_position.to_string().as_str());
            if let Some(previous) = expected {
                message = message.expected_last_message_id(previous.to_string());
            }
            let ack = self
                .js
                .send_publish(subject(&config.prefix, e)?, message)
                .await
                .map_err(nats)?;
            waiting.push_back((e.global_position, e.event_id, ack));
            expected = Some(e.event_id);
            if waiting.len() >= config.in_flight {
                self.settle(waiting.pop_front()).await?;
            }
        }
        while let Some(next) = waiting.pop_front() {
            self.settle(Some(next)).await?;
        }
        Ok(())
    }

    async fn settle(
        &mut self,
        next: Option<(i64, Uuid, PublishAckFuture)>,
    ) -> Result<(), RelayError> {
        if let Some((position, id, ack)) = next {
            ack.await.map_err(nats)?;
            self.last = position;
            self.last_id = Some(id);
        }
        Ok(())
    }
}

async fn save(db: &Db, position: i64) -> Result<(), sqlx::Error> {
    // The relay is the checkpoint's one writer (its lease): it says where
    // the stream ends, which may be behind an earlier value if the stream
    // was made anew.
    let sql = "UPDATE checkpoints SET position = $2, updated_at = $3 WHERE name = $1";
    match db {
        Db::Postgres(p) => {
            sqlx::query(sql)
                .bind(NAME)
                .bind(position)
                .bind(Utc::now())
                .execute(p)
                .await?;
        }
        Db::Sqlite(p) => {
            sqlx::query(sql)
                .bind(NAME)
                .bind(position)
                .bind(Utc::now())
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Publishes the log to NATS until `shutdown` turns true: one process at a
/// time on Postgres (the others stand by), reporting its position and
/// whether it is stuck. NATS unreachable: it backs off (up to 30 s) and
/// resumes where the stream ends; nothing is lost and the order is kept.
pub async fn run(
    reader: LogReader,
    db: Db,
    config: RelayConfig,
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
    let mut session: Option<Session> = None;
    let first_pause = Duration::from_millis(250);
    let mut pause = first_pause;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        if !held {
            session = None;
            if let Ok(at) = checkpoint(&db, NAME).await {
                progress.send_if_modified(|p| std::mem::replace(p, at) != at);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let stepped = step(&reader, &db, &config, &mut session).await;
        match stepped {
            Ok(Some(position)) => {
                crate::runner::report_recovered(NAME, &failure);
                pause = first_pause;
                progress.send_if_modified(|p| std::mem::replace(p, position) != position);
            }
            Ok(None) => {
                crate::runner::report_recovered(NAME, &failure);
                pause = first_pause;
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(error) => {
                session = None;
                let at = checkpoint(&db, NAME).await.unwrap_or(*progress.borrow());
                crate::runner::report_stuck(NAME, &failure, at, &error.to_string());
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One batch: opens the session if needed, publishes what follows the
/// stream's last event, saves the checkpoint. `Ok(None)`: nothing to publish.
async fn step(
    reader: &LogReader,
    db: &Db,
    config: &RelayConfig,
    session: &mut Option<Session>,
) -> Result<Option<i64>, RelayError> {
    let s = match session {
        Some(s) => s,
        None => {
            ensure_checkpoint_row(db, NAME).await?;
            let saved = checkpoint(db, NAME).await?;
            let opened = Session::open(config, saved).await?;
            if opened.last != saved {
                if opened.last < saved {
                    tracing::warn!(
                        stream = %config.stream,
                        from = opened.last,
                        "the stream holds less than the relay published; publishing again from there"
                    );
                }
                save(db, opened.last).await?;
            }
            session.insert(opened)
        }
    };
    let after = s.last;
    let events = reader
        .read_from(after, config.batch)
        .await
        .map_err(|e| RelayError::Log(e.to_string()))?;
    if events.is_empty() {
        return Ok(None);
    }
    let published = s.publish(config, &events).await;
    // Whatever was acked is in the stream: record it even when a later
    // publish of the batch failed.
    if s.last > after {
        save(db, s.last).await?;
        metrics::counter!("anamnesis_relay_published_total").increment((s.last - after) as u64);
    }
    published?;
    Ok(Some(s.last))
}
