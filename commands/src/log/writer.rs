//! Group commit: one writer task per process takes the appends that queued up
//! while the previous transaction was committing and commits them together.
//!
//! Positions and the hash chain are assigned in `plan_batch`, inside the
//! backend's transaction and under its lock on the one-row log head, so they
//! are gap-free and in commit order. A command whose expected sequence is stale
//! is answered with a conflict and left out; the others in its batch go on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::chain::event_hash;
use super::{AppendError, AppendRequest, Appended, Db, StoreError, StoredEvent};

/// The most commands one transaction takes. Large enough that a busy server
/// amortises its commits, small enough to stay well inside Postgres's
/// bind-parameter limit and to keep one transaction short.
pub(crate) const MAX_BATCH_COMMANDS: usize = 512;

pub(crate) struct Pending {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// Stream key: (aggregate type, aggregate id).
pub(crate) type StreamKey = (String, String);

/// The outcome of planning one batch against the head and stream sequences.
pub(crate) struct Plan {
    pub rows: Vec<StoredEvent>,
    pub results: Vec<Result<Appended, AppendError>>,
    pub head_position: i64,
    pub head_hash: Vec<u8>,
}

/// Assigns positions, sequences and hashes to the events of every request
/// whose expected sequence matches, in queue order.
pub(crate) fn plan_batch(
    head: (i64, Vec<u8>),
    mut sequences: HashMap<StreamKey, i64>,
    requests: &[&AppendRequest],
    recorded_at: DateTime<Utc>,
) -> Plan {
    let (mut position, mut hash) = head;
    let mut rows = Vec::new();
    let mut results = Vec::with_capacity(requests.len());
    for req in requests {
        let key = (req.aggregate_type.clone(), req.aggregate_id.clone());
        let actual = sequences.get(&key).copied().unwrap_or(0);
        if actual != req.expected_sequence {
            results.push(Err(AppendError::Conflict {
                aggregate_type: req.aggregate_type.clone(),
                aggregate_id: req.aggregate_id.clone(),
                expected: req.expected_sequence,
                actual,
            }));
            continue;
        }
        let first_position = position + 1;
        let mut sequence = actual;
        // A map of strings always serializes; the fallback is never taken.
        let extra = serde_json::to_string(&req.metadata.extra).unwrap_or_else(|_| "{}".into());
        for event in &req.events {
            position += 1;
            sequence += 1;
            let mut row = StoredEvent {
                global_position: position,
                event_id: Uuid::now_v7(),
                aggregate_type: req.aggregate_type.clone(),
                aggregate_id: req.aggregate_id.clone(),
                sequence,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.to_string(),
                metadata: extra.clone(),
                recorded_at,
                actor_id: req.metadata.actor.id.clone(),
                actor_role: req.metadata.actor.role.clone(),
                reason: req.metadata.reason.clone(),
                correlation_id: req.metadata.correlation_id,
                causation_id: req.metadata.causation_id,
                prev_hash: hash.clone(),
                hash: Vec::new(),
            };
            row.hash = event_hash(&row.prev_hash, &row).to_vec();
            hash = row.hash.clone();
            rows.push(row);
        }
        sequences.insert(key, sequence);
        results.push(Ok(Appended {
            first_position,
            last_position: position,
            last_sequence: sequence,
        }));
    }
    Plan {
        rows,
        results,
        head_position: position,
        head_hash: hash,
    }
}

/// The current time at the precision both backends store.
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Runs until every sender is dropped.
/// Each message on the queue is a group of commands that go into one
/// transaction together (unless that transaction fails, see `commit`).
pub(crate) async fn run(db: Db, mut queue: mpsc::Receiver<Vec<Pending>>, head: watch::Sender<i64>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH_COMMANDS);
    while let Some(first) = queue.recv().await {
        batch.extend(first);
        while batch.len() < MAX_BATCH_COMMANDS {
            match queue.try_recv() {
                Ok(next) => batch.extend(next),
                Err(_) => break,
            }
        }
        commit(&db, std::mem::take(&mut batch), &head).await;
    }
}

async fn commit(db: &Db, batch: Vec<Pending>, head: &watch::Sender<i64>) {
    let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
    let started = std::time::Instant::now();
    match db.commit_batch(&requests).await {
        Ok((results, position)) => {
            tracing::debug!(
                commands = requests.len(),
                micros = started.elapsed().as_micros() as u64,
                "batch committed"
            );
            advance(head, position);
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(result);
            }
        }
        Err(error) if batch.len() > 1 => {
            // Something in the batch made the whole transaction fail. Commit each
            // command on its own so that one bad command fails alone.
            tracing::warn!(%error, commands = batch.len(), "batch append failed; retrying its commands one by one");
            for pending in batch {
                Box::pin(commit(db, vec![pending], head)).await;
            }
        }
        Err(error) => {
            tracing::error!(%error, "append failed");
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(AppendError::Store(StoreError::WriterFailed(
                        error.to_string(),
                    ))));
            }
        }
    }
}

/// Moves the head signal forward (never back) and wakes its watchers.
pub(crate) fn advance(head: &watch::Sender<i64>, position: i64) {
    head.send_if_modified(|h| {
        let newer = position > *h;
        if newer {
            *h = position;
        }
        newer
    });
}
