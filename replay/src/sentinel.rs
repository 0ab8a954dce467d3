//! The server's own verification and checkpoints (ADR 0009): at start-up it
//! verifies the log since the newest signed checkpoint, then follows the
//! log, verifying each new event once, and signs a checkpoint of the
//! verified head every N events or M minutes into a directory outside the
//! database. It never signs past a break.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::time::Instant;

use anamnesis_commands::LogReader;

use crate::checkpoint::{self, CheckpointKey};
use crate::verify::{self, Anchor, VerifyError};

/// When to sign, and where.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// Where checkpoint files go (outside the database).
    pub dir: PathBuf,
    /// Sign once this many events have been verified since the last checkpoint.
    pub every_events: i64,
    /// Sign at least this often while the log grows.
    pub every: Duration,
    /// With no checkpoint yet, verify from genesis only up to this many
    /// events; a larger log is verified from its head on (and sealed), and
    /// the operator runs `anamnesis replay verify` once.
    pub full_verify_limit: i64,
}

/// Where verification stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainState {
    /// The start-up verification is running.
    Verifying,
    /// Everything up to `verified_position` verified.
    Verified,
    /// The log is broken at `break_position`; nothing is signed any more.
    Broken,
}

/// What `/readyz` and `/metrics` show. Positions and causes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    pub state: ChainState,
    /// The last position verified.
    pub verified_position: i64,
    /// Whether verification reaches back to genesis or to a signed
    /// checkpoint (false: a large log first seen without a checkpoint).
    pub anchored: bool,
    /// The newest checkpoint signed or found.
    pub checkpoint_position: Option<i64>,
    /// Where the log is broken.
    pub break_position: Option<i64>,
    /// Why not verified, or what last failed (a read, a checkpoint write).
    pub problem: Option<String>,
}

impl ChainStatus {
    /// Before anything is known.
    pub fn starting() -> Self {
        Self {
            state: ChainState::Verifying,
            verified_position: 0,
            anchored: true,
            checkpoint_position: None,
            break_position: None,
            problem: None,
        }
    }

    /// Whether the server may take traffic: the start-up verification
    /// passed and no break was found since.
    pub fn ready(&self) -> bool {
        self.state == ChainState::Verified
    }
}

/// Verification does not run more often than this while the log grows.
const PACE: Duration = Duration::from_millis(200);
/// Pause after a failed read before trying again.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until `stopped` turns true or the log is found broken.
pub async fn run(
    reader: LogReader,
    key: CheckpointKey,
    config: SentinelConfig,
    status: watch::Sender<ChainStatus>,
    mut stopped: watch::Receiver<bool>,
) {
    let broken = |status: &watch::Sender<ChainStatus>, position: Option<i64>, why: String| {
        tracing::error!(position, problem = %why, "the event log failed verification");
        status.send_modify(|s| {
            s.state = ChainState::Broken;
            s.break_position = position;
            s.problem = Some(why);
        });
    };
    let newest = match checkpoint::newest_in(&config.dir, &key.public()) {
        Ok(newest) => newest.map(|(_, anchor)| anchor),
        Err(e) => return broken(&status, None, format!("checkpoint: {e}")),
    };
    status.send_modify(|s| s.checkpoint_position = newest.as_ref().map(|a| a.position));
    // Start-up: from the newest checkpoint, from genesis for a small log, or
    // from the head of a large one never checkpointed.
    let mut at = loop {
        let start = match &newest {
            Some(anchor) => Ok(anchor.clone()),
            None => start_without_checkpoint(&reader, &config, &status).await,
        };
        let result = match start {
            Ok(start) => verify::verify(&reader, Some(&start), &[], &mut |p| {
                status.send_modify(|s| s.verified_position = p)
            })
            .await
            .map(|v| v.head),
            Err(e) => Err(e),
        };
        match result {
            Ok(head) => break head,
            Err(VerifyError::Broken(b)) => {
                return broken(&status, Some(b.position()), b.to_string());
            }
            Err(e) => {
                status.send_modify(|s| s.problem = Some(e.to_string()));
                if pause(&mut stopped, RETRY).await {
                    return;
                }
            }
        }
    };
    tracing::info!(position = at.position, "event log verified");
    status.send_modify(|s| {
        s.state = ChainState::Verified;
        s.verified_position = at.position;
        s.problem = None;
    });
    let mut signed = newest.as_ref().map(|a| a.position).unwrap_or(0);
    let mut signed_at = Instant::now();
    if newest.is_none() || at.position - signed >= config.every_events {
        sign(&key, &config, &at, &status, &mut signed);
    }
    let mut growth = reader.subscribe();
    loop {
        let due = signed_at + config.every;
        tokio::select! {
            changed = growth.changed() => {
                // A reader with no growth signal falls back to polling.
                if changed.is_err() && pause(&mut stopped, Duration::from_secs(1)).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(due) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        match verify::verify(&reader, Some(&at), &[], &mut |_| {}).await {
            Ok(v) => {
                at = v.head;
                status.send_modify(|s| {
                    s.verified_position = at.position;
                    s.problem = None;
                });
            }
            Err(VerifyError::Broken(b)) => {
                return broken(&status, Some(b.position()), b.to_string());
            }
            Err(e) => {
                status.send_modify(|s| s.problem = Some(e.to_string()));
            }
        }
        let by_count = at.position - signed >= config.every_events;
        let by_time = Instant::now() >= due && at.position > signed;
        if by_count || by_time {
            sign(&key, &config, &at, &status, &mut signed);
            signed_at = Instant::now();
        } else if Instant::now() >= due {
            signed_at = Instant::now();
        }
        if pause(&mut stopped, PACE).await {
            return;
        }
    }
}

/// Where to start when there is no checkpoint: genesis for a log of up to
/// `full_verify_limit` events, else the head event (checked on its own).
async fn start_without_checkpoint(
    reader: &LogReader,
    config: &SentinelConfig,
    status: &watch::Sender<ChainStatus>,
) -> Result<Anchor, VerifyError> {
    let (head, hash) = reader.head_entry().await?;
    if head <= config.full_verify_limit {
        return Ok(Anchor::genesis());
    }
    tracing::warn!(
        events = head,
        limit = config.full_verify_limit,
        "no checkpoint yet and the log is large: verifying from its head on; \
         run `anamnesis replay verify` once to check it from genesis"
    );
    status.send_modify(|s| s.anchored = false);
    Ok(Anchor {
        position: head,
        hash,
    })
}

fn sign(
    key: &CheckpointKey,
    config: &SentinelConfig,
    at: &Anchor,
    status: &watch::Sender<ChainStatus>,
    signed: &mut i64,
) {
    if at.position == 0 {
        return; // nothing to vouch for yet
    }
    match key.sign(at, Utc::now()).write_in(&config.dir) {
        Ok(path) => {
            tracing::info!(position = at.position, file = %path.display(), "checkpoint signed");
            metrics::counter!("anamnesis_checkpoints_written_total").increment(1);
            *signed = at.position;
            status.send_modify(|s| s.checkpoint_position = Some(at.position));
        }
        Err(e) => {
            tracing::error!(error = %e, "writing a checkpoint failed");
            metrics::counter!("anamnesis_checkpoint_failures_total").increment(1);
            status.send_modify(|s| s.problem = Some(format!("writing a checkpoint: {e}")));
        }
    }
}

/// Waits `duration` unless stopped first; true when stopped.
async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}
