//! Consumers fed by NATS JetStream (ADR 0020): a projector whose output is
//! a fan-out (the inbox, urgent alerts, analytics) runs as a durable pull
//! consumer of the relay's stream when NATS is configured, and straight
//! from the log (`crate::runner`) when it is not. The projector's code is
//! the same either way: it does not know where its events come from.
//!
//! **What NATS gives, what the log gives.** A message is an event's
//! envelope (ADR 0018: ids and position, never the payload). The consumer
//! takes a batch of messages, then applies, from the log, every event of
//! its types up to the highest position the batch delivered: the payloads
//! come through the one codec, and an event the stream lost (aged out, a
//! stream made anew) is still applied, in order, never skipped. It acks
//! the messages only after the transaction that applied their events has
//! committed.
//!
//! **Exactly once.** The transaction that writes the consumer's output
//! also writes its checkpoint (moved by compare-and-set, as every runner's)
//! and one `processed_events` row per event (consumer, event id), and
//! applies only the events whose row is new. A message delivered again
//! (a crash between the commit and the ack, NATS restarted, an ack lost)
//! finds its event at or before the checkpoint and is only acked.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, AckKind};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::watch;

use anamnesis_commands::{Db, LogReader};

use crate::relay::{self, RelayConfig};
use crate::runner::{
    self, checkpoint, Cursor, Envelope, Lease, ProjectionError, Projector, Report, Stepped, Tx,
};
use crate::sql::{self, Value};

/// Messages asked for per fetch.
const FETCH: usize = 1_000;
/// Events applied per transaction.
const BATCH: i64 = 500;
/// How long NATS waits for an ack before delivering a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Where a consumer reads its messages.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The relay's stream and subjects (the consumer reads what it publishes).
    pub relay: RelayConfig,
    /// The durable consumer's name on the stream: `anamnesis-<projector>`
    /// unless given.
    pub durable: Option<String>,
}

impl ConsumerConfig {
    /// Reads the relay's stream of `relay`.
    pub fn new(relay: RelayConfig) -> Self {
        Self {
            relay,
            durable: None,
        }
    }

    fn durable_of(&self, projector: &str) -> String {
        self.durable
            .clone()
            .unwrap_or_else(|| format!("anamnesis-{projector}"))
    }
}

/// A projector that records each event it applies in `processed_events`,
/// in the batch's transaction, and applies only events not recorded yet.
/// Its tables, name and types are its inner projector's.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<P>(pub P);

impl<P> Projector for Recorded<P>
where
    P: Projector,
    P::Event: Clone,
{
    type Event = P::Event;

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        self.0.aggregate_types()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<P::Event>],
    ) -> Result<(), ProjectionError> {
        let fresh = record(tx, self.0.name(), events).await?;
        if fresh.len() == events.len() {
            return self.0.apply_batch(tx, events).await;
        }
        let kept: Vec<Envelope<P::Event>> = events
            .iter()
            .filter(|e| fresh.contains(&e.stored.event_id.to_string()))
            .cloned()
            .collect();
        if kept.len() < events.len() {
            metrics::counter!("anamnesis_consumer_duplicates_total", "consumer" => self.0.name())
                .increment((events.len() - kept.len()) as u64);
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.0.apply_batch(tx, &kept).await
    }

    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        self.0.erase(tx, patient).await
    }
}

/// Writes a `processed_events` row per event; returns the ids that had none.
async fn record<E>(
    tx: &mut Tx,
    consumer: &str,
    events: &[Envelope<E>],
) -> Result<HashSet<String>, ProjectionError> {
    let now = Utc::now().timestamp();
    let rows: Vec<Vec<Value>> = events
        .iter()
        .map(|e| {
            vec![
                consumer.into(),
                e.stored.event_id.to_string().into(),
                e.position().into(),
                now.into(),
            ]
        })
        .collect();
    let fresh = sql::insert_rows_returning(
        tx,
        "processed_events (consumer, event_id, position, processed_at)",
        "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
        &rows,
    )
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Why a consumer's step failed (never patient data).
#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] sqlx::Error),
}

fn nats(e: impl std::fmt::Display) -> ConsumeError {
    ConsumeError::Nats(e.to_string())
}

/// Runs `projector` as the durable pull consumer `anamnesis-<name>` of the
/// relay's stream until `shutdown` turns true, reporting like a projector.
/// One process at a time on Postgres (the projector's lease: the embedded
/// runner of the same projector and this consumer never both apply).
/// NATS unreachable: it says so and backs off; nothing is applied until
/// the stream delivers again, and then nothing is lost or repeated.
pub async fn run<P>(
    reader: LogReader,
    db: Db,
    projector: P,
    config: ConsumerConfig,
    report: Report,
    mut shutdown: watch::Receiver<bool>,
) where
    P: Projector,
    P::Event: Clone,
{
    let Report {
        progress,
        failure,
        active,
    } = report;
    let projector = Recorded(projector);
    let name = projector.name();
    let mut wake = reader.subscribe();
    let mut lease = Lease::new(&db, name);
    let mut session: Option<Session> = None;
    let mut cursor: Option<Cursor> = None;
    let first_pause = Duration::from_millis(250);
    let mut pause = first_pause;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        if !held {
            (session, cursor) = (None, None);
            if let Ok(at) = checkpoint(&db, name).await {
                progress.send_if_modified(|p| std::mem::replace(p, at) != at);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let stepped = step(&reader, &db, &projector, &config, &mut session, &mut cursor).await;
        match stepped {
            Ok(delivered) => {
                runner::report_recovered(name, &failure);
                pause = first_pause;
                if let Some(c) = &cursor {
                    let at = c.scanned;
                    progress.send_if_modified(|p| std::mem::replace(p, at) != at);
                }
                if delivered == 0 {
                    // Nothing in the stream: wait for the log to grow (the
                    // relay publishes right after), then ask again soon.
                    let behind = match (&cursor, reader.head().await) {
                        (Some(c), Ok(head)) => c.scanned < head,
                        _ => false,
                    };
                    let wait = if behind {
                        Duration::from_millis(20)
                    } else {
                        Duration::from_secs(1)
                    };
                    tokio::select! {
                        _ = wake.changed() => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            Err(error) => {
                (session, cursor) = (None, None);
                let at = checkpoint(&db, name).await.unwrap_or(*progress.borrow());
                runner::report_stuck(name, &failure, at, &error.to_string());
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// A connection and the durable consumer on it.
struct Session {
    client: async_nats::Client,
    consumer: jetstream::consumer::PullConsumer,
    /// The position of the last message delivered and not acked when the
    /// session opened (a consumer killed mid-batch): applied at once, not
    /// after NATS's ack wait brings the messages back.
    unacked: i64,
}

/// How long a fetch may take before NATS counts as gone.
const FETCH_LIMIT: Duration = Duration::from_secs(5);

/// Opens the durable consumer, creating the stream (as the relay would)
/// and the consumer if missing.
async fn open(config: &ConsumerConfig, name: &str) -> Result<Session, ConsumeError> {
    let client = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name(format!("anamnesis-consumer-{name}"))
            .connect(config.relay.url.as_str()),
    )
    .await
    .map_err(|_| ConsumeError::Nats("no answer from the server".into()))?
    .map_err(nats)?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(relay::stream_config(&config.relay))
        .await
        .map_err(nats)?;
    let durable = config.durable_of(name);
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                description: Some(format!("the {name} consumer of Anamnesis")),
                filter_subject: format!("{}.>", config.relay.prefix),
                // An ack covers every message before it: one per fetch.
                ack_policy: jetstream::consumer::AckPolicy::All,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_wait: ACK_WAIT,
                max_ack_pending: (FETCH * 4) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(nats)?;
    let info = consumer.get_info().await.map_err(nats)?;
    let unacked = if info.delivered.stream_sequence > info.ack_floor.stream_sequence {
        let last = stream
            .get_raw_message(info.delivered.stream_sequence)
            .await
            .map_err(nats)?;
        last.headers
            .get(relay::POSITION_HEADER)
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .ok_or_else(|| {
                ConsumeError::Nats(format!(
                    "stream message {} carries no log position",
                    info.delivered.stream_sequence
                ))
            })?
    } else {
        0
    };
    Ok(Session {
        client,
        consumer,
        unacked,
    })
}

/// One fetch: the messages the stream has now (up to [`FETCH`]), every
/// event of the projector's types up to the highest position among them
/// applied from the log, then the acks. Returns how many messages came.
async fn step<P>(
    reader: &LogReader,
    db: &Db,
    projector: &Recorded<P>,
    config: &ConsumerConfig,
    session: &mut Option<Session>,
    cursor: &mut Option<Cursor>,
) -> Result<usize, ConsumeError>
where
    P: Projector,
    P::Event: Clone,
{
    let name = projector.name();
    let opened = match session {
        Some(s) => s,
        None => session.insert(open(config, name).await?),
    };
    // A client that lost its server keeps trying in the background: say
    // so rather than wait quietly.
    if opened.client.connection_state() != async_nats::connection::State::Connected {
        return Err(ConsumeError::Nats("disconnected from the server".into()));
    }
    let cursor = match cursor {
        Some(c) => c,
        None => {
            runner::ensure_checkpoint_row(db, name).await?;
            cursor.insert(Cursor::at(checkpoint(db, name).await?))
        }
    };
    let fetched = tokio::time::timeout(FETCH_LIMIT, async {
        let mut batch = opened
            .consumer
            .fetch()
            .max_messages(FETCH)
            .messages()
            .await
            .map_err(nats)?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(nats)?);
        }
        Ok::<_, ConsumeError>(messages)
    })
    .await
    .map_err(|_| ConsumeError::Nats("no answer to a fetch".into()))??;
    let mut messages = Vec::new();
    let mut until = std::mem::take(&mut opened.unacked);
    for message in fetched {
        match serde_json::from_slice::<relay::Envelope>(&message.payload) {
            Ok(envelope) => until = until.max(envelope.position),
            Err(error) => {
                // Not an event of the relay's: nothing of the log is behind
                // it (events are read from the log), so it is taken out of
                // the stream's redelivery, loudly.
                tracing::error!(consumer = name, %error, "a message in the stream is no event envelope; terminated");
                metrics::counter!("anamnesis_consumer_foreign_messages_total", "consumer" => name)
                    .increment(1);
                message.ack_with(AckKind::Term).await.map_err(nats)?;
                continue;
            }
        }
        messages.push(message);
    }
    let started = Instant::now();
    while cursor.scanned < until {
        match runner::step_until(reader, db, projector, cursor, BATCH, until).await? {
            Stepped::Advanced(_) => {}
            // The log ends before what the stream delivered (a stream from
            // another database?): apply what there is, ack the rest.
            Stepped::CaughtUp(_) => break,
        }
    }
    if !messages.is_empty() {
        metrics::histogram!("anamnesis_consumer_batch_seconds", "consumer" => name)
            .record(started.elapsed().as_secs_f64());
    }
    if let Some(last) = messages.last() {
        last.ack().await.map_err(nats)?;
    }
    Ok(messages.len())
}
