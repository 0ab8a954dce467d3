//! The Redis read models (ADR 0022): free slots per provider and local day,
//! and a summary card per patient, kept by a projector of their own and
//! read before the database.
//!
//! Keys hold ids only: `<prefix>:slots:<provider>:<YYYY-MM-DD>`,
//! `<prefix>:card:<patient>` and `<prefix>:checkpoint`. Values may hold
//! patient data (a card names the patient): see the ADR for what a site
//! must do about it.
//!
//! Every value is computed from the database's read models and the log,
//! the same way the database answers a query, so the two answers agree;
//! the checkpoint says how far the log is reflected, and lives in Redis
//! with the values (one `MULTI/EXEC`): an emptied Redis has no checkpoint,
//! and the projector fills it again from position 0 by itself.

mod cards;
mod projector;
mod slots;
mod touched;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use anamnesis_domain::schedule::ClinicZone;
use chrono::NaiveDate;
use uuid::Uuid;

pub use cards::{card_from_database, AllergyBrief, CardData, Upcoming};
pub use projector::{catch_up, clear, fill, run, Upstream, NAME};
pub use slots::{day_slots, DaySlots};

/// The longest a read waits for Redis before the database answers instead.
const READ_LIMIT: Duration = Duration::from_millis(250);

/// Where the Redis read models live and what they cover.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// The first part of every key (a site, or a test, of its own).
    pub prefix: String,
    /// The clinic's zone: days are its local days.
    pub zone: ClinicZone,
    /// Days ahead of today that free slots are kept for (the booking horizon).
    pub horizon_days: i64,
}

/// Why a read was answered by the database instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Redis did not answer (in time).
    Down,
    /// A value is not there (not yet filled, or emptied).
    Empty,
    /// Redis reflects the log only up to before the position asked for.
    Behind,
}

impl Miss {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::Down => "down",
            Miss::Empty => "empty",
            Miss::Behind => "behind",
        }
    }
}

/// A handle on the Redis read models: reads for queries, and what the
/// projector writes with. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    client: ::redis::Client,
    reads: ConnectionManager,
    config: Arc<RedisConfig>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Cache")
            .field("prefix", &self.config.prefix)
            .finish()
    }
}

/// Why Redis could not be used (never patient data: ids and positions).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("reading the log: {0}")]
    Log(#[from] anamnesis_commands::StoreError),
    #[error("reading a read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event {position} cannot be read: {detail}")]
    Event { position: i64, detail: String },
    #[error("the {name} read model stays behind position {position}")]
    Upstream { name: &'static str, position: i64 },
    #[error("{0} is not in its read model")]
    Unknown(String),
    #[error("a value under {key} is damaged")]
    Damaged { key: String },
}

impl Cache {
    /// A handle on Redis at `config.url`. Connects lazily: a Redis that is
    /// down now is reached once it is up.
    pub fn open(config: RedisConfig) -> Result<Self, RedisError> {
        let client = ::redis::Client::open(config.url.as_str())?;
        let reads = manager(&client)?;
        Ok(Self {
            client,
            reads,
            config: Arc::new(config),
        })
    }

    /// A connection of its own (the projector's, for `WATCH`).
    pub(crate) fn dedicated(&self) -> Result<ConnectionManager, RedisError> {
        manager(&self.client)
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn checkpoint_key(&self) -> String {
        format!("{}:checkpoint", self.config.prefix)
    }

    pub(crate) fn slots_key(&self, provider: Uuid, day: NaiveDate) -> String {
        format!(
            "{}:slots:{provider}:{}",
            self.config.prefix,
            day.format("%Y-%m-%d")
        )
    }

    pub(crate) fn card_key(&self, patient: Uuid) -> String {
        format!("{}:card:{patient}", self.config.prefix)
    }

    /// The checkpoint and `keys`' values in one round trip; a miss when
    /// Redis does not answer, is behind `min`, or lacks any of them.
    async fn values(&self, keys: Vec<String>, min: Option<i64>) -> Result<Vec<String>, Miss> {
        let mut conn = self.reads.clone();
        let mut all = Vec::with_capacity(keys.len() + 1);
        all.push(self.checkpoint_key());
        all.extend(keys);
        let got = tokio::time::timeout(
            READ_LIMIT,
            ::redis::cmd("MGET")
                .arg(&all)
                .query_async::<Vec<Option<String>>>(&mut conn),
        )
        .await;
        let mut values = match got {
            Ok(Ok(v)) if v.len() == all.len() => v.into_iter(),
            _ => return Err(Miss::Down),
        };
        let checkpoint = values
            .next()
            .flatten()
            .and_then(|c| c.parse::<i64>().ok())
            .ok_or(Miss::Empty)?;
        if min.is_some_and(|m| checkpoint < m) {
            return Err(Miss::Behind);
        }
        values.map(|v| v.ok_or(Miss::Empty)).collect()
    }

    /// Every free slot of `provider` on local days `from..=to`, past ones
    /// included (the caller drops those before now), if Redis has them all
    /// and reflects position `min`.
    pub async fn slots(
        &self,
        provider: Uuid,
        (from, to): (NaiveDate, NaiveDate),
        min: Option<i64>,
    ) -> Result<Vec<DaySlots>, Miss> {
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        let keys = days.iter().map(|d| self.slots_key(provider, *d)).collect();
        let values = self.values(keys, min).await?;
        values
            .iter()
            .map(|v| serde_json::from_str::<DaySlots>(v).map_err(|_| Miss::Empty))
            .collect()
    }

    /// Patient `patient`'s card, if Redis has it and reflects position `min`.
    pub async fn card(&self, patient: Uuid, min: Option<i64>) -> Result<CardData, Miss> {
        let values = self.values(vec![self.card_key(patient)], min).await?;
        let value = values.first().ok_or(Miss::Empty)?;
        serde_json::from_str(value).map_err(|_| Miss::Empty)
    }
}

/// A connection manager that gives up fast: reads fall back to the
/// database rather than wait for a Redis that is away.
fn manager(client: &::redis::Client) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(
        client.clone(),
        config,
    )?)
}

/// The keys matching `pattern`, by `SCAN` (never `KEYS`, which blocks).
pub(crate) async fn scan(
    conn: &mut ConnectionManager,
    pattern: &str,
) -> Result<Vec<String>, RedisError> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}
