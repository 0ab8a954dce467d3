//! Chain verification: recomputes every event's hash from the stored bytes,
//! streaming the log in windows (bounded memory), and compares the end of
//! the chain with `log_head` and, on the way, with signed checkpoints.

use anamnesis_commands::log::chain::{self, ChainBreak};
use anamnesis_commands::{LogReader, StoreError, StoredEvent};

/// Events read per query. Reading the next window overlaps with hashing
/// this one, so the database and the hashing each keep a core busy.
pub const WINDOW: i64 = 4_000;

/// A position and the hash the event there must carry: what a checkpoint
/// (or an earlier verification) recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub position: i64,
    pub hash: Vec<u8>,
}

impl Anchor {
    /// The start of every chain: position 0, the genesis hash.
    pub fn genesis() -> Self {
        Self {
            position: 0,
            hash: chain::GENESIS.to_vec(),
        }
    }
}

/// Where, and how, the log fails to verify. Positions and hashes only:
/// never anything of an event's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// An event was edited, deleted, inserted or moved.
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    /// `log_head` names a position past the last event: the log was cut short.
    #[error(
        "log_head names position {head} but the log ends at position {last}: \
         the events after position {last} were removed (truncation)"
    )]
    Truncated { head: i64, last: i64 },
    /// Events lie past the position `log_head` names.
    #[error(
        "the log holds events past position {head}, where log_head says it ends: \
         position {} was written outside anamnesis", .head + 1
    )]
    PastHead { head: i64 },
    /// `log_head` does not carry the last event's hash.
    #[error(
        "log_head does not carry the hash of the last event, at position {position} \
         (expected hash {}, stored {})",
        hex::encode(.expected),
        hex::encode(.stored)
    )]
    HeadHash {
        position: i64,
        /// The last event's hash.
        expected: Vec<u8>,
        /// The hash `log_head` holds.
        stored: Vec<u8>,
    },
    /// The log ends before a position a checkpoint vouches for.
    #[error(
        "a checkpoint vouches for position {position} but the log holds no event there: \
         the log was truncated"
    )]
    AnchorMissing { position: i64 },
    /// The event at a checkpoint's position carries another hash: the log
    /// was rewritten at or before that position (the chain recomputed).
    #[error(
        "the event at position {position} carries hash {}, where the checkpoint says {}: \
         the log was rewritten at or before position {position}",
        hex::encode(.stored),
        hex::encode(.expected)
    )]
    AnchorDiffers {
        position: i64,
        /// The hash the checkpoint records.
        expected: Vec<u8>,
        /// The hash the event carries now.
        stored: Vec<u8>,
    },
}

impl Break {
    /// The first position that fails.
    pub fn position(&self) -> i64 {
        match self {
            Break::Chain(b) => b.position(),
            Break::Truncated { last, .. } => last + 1,
            Break::AnchorMissing { position } => *position,
            Break::PastHead { head } => head + 1,
            Break::HeadHash { position, .. } | Break::AnchorDiffers { position, .. } => *position,
        }
    }
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log is broken.
    #[error(transparent)]
    Broken(#[from] Break),
    /// The log could not be read; nothing is known either way.
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    /// A verification task failed.
    #[error("verification task failed: {0}")]
    Task(String),
}

/// How far the log verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The last event, and its hash (`log_head` agrees).
    pub head: Anchor,
    /// How many events were hashed.
    pub events: u64,
}

/// Verifies the log from `from` (genesis when `None`) to its end and checks
/// that `log_head` names the last event and its hash.
///
/// Starting from an anchor, the event at its position must exist, be intact
/// and carry the anchor's hash. Each of `checks` (positions after `from`)
/// must carry its hash too. `progress` gets the position verified so far,
/// after each window.
pub async fn verify(
    reader: &LogReader,
    from: Option<&Anchor>,
    checks: &[Anchor],
    progress: &mut (dyn FnMut(i64) + Send),
) -> Result<Verified, VerifyError> {
    let mut at = match from {
        None => (0, chain::GENESIS.to_vec()),
        Some(anchor) if anchor.position == 0 => (0, chain::GENESIS.to_vec()),
        Some(anchor) => start_at(reader, anchor).await?,
    };
    let mut checks: Vec<&Anchor> = checks.iter().filter(|c| c.position > at.0).collect();
    checks.sort_by_key(|c| std::cmp::Reverse(c.position));
    let mut events = 0u64;
    loop {
        let mut next = fetch(reader, at.0);
        loop {
            let batch = next.await.map_err(|e| VerifyError::Task(e.to_string()))??;
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                break;
            };
            let (first, last) = (first.global_position, last.global_position);
            // Read the next window while this one is hashed.
            next = fetch(reader, last);
            let n = batch.len();
            let (verified, batch) =
                tokio::task::spawn_blocking(move || (chain::verify_run(at, &batch), batch))
                    .await
                    .map_err(|e| VerifyError::Task(e.to_string()))?;
            at = verified.map_err(Break::from)?;
            while let Some(check) = checks.last().filter(|c| c.position <= at.0) {
                let stored = usize::try_from(check.position - first)
                    .ok()
                    .and_then(|i| batch.get(i))
                    .map(|e| e.hash.clone())
                    .unwrap_or_default();
                if stored != check.hash {
                    return Err(Break::AnchorDiffers {
                        position: check.position,
                        expected: check.hash.clone(),
                        stored,
                    }
                    .into());
                }
                checks.pop();
            }
            events += n as u64;
            debug_assert_eq!(at.0, last);
            progress(at.0);
        }
        // Rows and the head commit together: a head read after the last
        // row was read is at or past it, unless the log was cut short.
        let (head, head_hash) = reader.head_entry().await?;
        if head < at.0 {
            return Err(Break::PastHead { head }.into());
        }
        if head > at.0 {
            if reader.read_from(at.0, 1).await?.is_empty() {
                return Err(Break::Truncated { head, last: at.0 }.into());
            }
            continue; // appended meanwhile: verify those too
        }
        if head_hash != at.1 {
            return Err(Break::HeadHash {
                position: head,
                expected: at.1,
                stored: head_hash,
            }
            .into());
        }
        if let Some(check) = checks.last() {
            return Err(Break::AnchorMissing {
                position: check.position,
            }
            .into());
        }
        return Ok(Verified {
            head: Anchor {
                position: at.0,
                hash: at.1,
            },
            events,
        });
    }
}

/// The event at `anchor.position`, checked: it exists, its content hashes
/// to its stored hash, and that hash is the anchor's.
async fn start_at(reader: &LogReader, anchor: &Anchor) -> Result<(i64, Vec<u8>), VerifyError> {
    let found = reader.read_from(anchor.position - 1, 1).await?;
    let Some(event) = found
        .into_iter()
        .next()
        .filter(|e| e.global_position == anchor.position)
    else {
        return Err(Break::AnchorMissing {
            position: anchor.position,
        }
        .into());
    };
    chain::verify_run(
        (event.global_position - 1, event.prev_hash.clone()),
        [&event],
    )
    .map_err(Break::from)?;
    if event.hash != anchor.hash {
        return Err(Break::AnchorDiffers {
            position: anchor.position,
            expected: anchor.hash.clone(),
            stored: event.hash,
        }
        .into());
    }
    Ok((event.global_position, event.hash))
}

fn fetch(
    reader: &LogReader,
    after: i64,
) -> tokio::task::JoinHandle<Result<Vec<StoredEvent>, StoreError>> {
    let reader = reader.clone();
    tokio::spawn(async move { reader.read_from(after, WINDOW).await })
}
