//! The limits kept in Redis (ADR 0026), so that every instance of a clinic
//! draws on one budget: GCRA, one Lua script per check (read, decide and
//! write in one atomic step on the Redis server, on its clock), each key
//! expiring when its bucket is full again.
//!
//! Keys are `<prefix>:limit:<address|account|token>:<32 hex digits>`, a
//! digest of the address, the account name or the token: no name, address
//! or token is written to Redis.
//!
//! Redis away (an error, or no answer within [`ANSWER_LIMIT`]): the check
//! falls back to this process's own limiter, as without Redis, and Redis
//! is tried again at most once a second. The switch is logged both ways
//! and `anamnesis_rate_limits_shared` says which is in force.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Rule, Which};

/// The longest a check waits for Redis before this process decides alone.
const ANSWER_LIMIT: Duration = Duration::from_millis(250);
/// While Redis is away, how often a request tries it again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// GCRA (as the in-memory `governor` does it): a key holds its bucket's
/// "theoretical arrival time" in microseconds of the Redis server's clock.
/// `ARGV[1]`: the emission interval (µs); `ARGV[2]`: the burst.
/// Returns 0 when the request is allowed (and counted), else how many
/// microseconds until it would be.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - now - tolerance
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.ceil((next_tat - now) / 1000))
return 0
";

/// The limits' handle on Redis.
pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    health: Mutex<Health>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the prefix is shown.
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Whether Redis answers, and when to try it again if not.
struct Health {
    up: bool,
    retry_at: Instant,
}

impl Shared {
    /// A handle on Redis at `url`, keys under `prefix`. Connects lazily: a
    /// Redis that is down now is used once it answers.
    pub fn open(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(ANSWER_LIMIT))
            .set_response_timeout(Some(ANSWER_LIMIT))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        metrics::gauge!("anamnesis_rate_limits_shared").set(1.0);
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(GCRA),
            health: Mutex::new(Health {
                up: true,
                retry_at: Instant::now(),
            }),
        })
    }

    /// Checks and counts one request against `rule` under `key`: `Some`
    /// wait (zero: allowed) when Redis decided, `None` when it could not
    /// and this process must.
    pub(super) async fn check(&self, which: Which, key: &[u8; 16], rule: Rule) -> Option<Duration> {
        if !self.worth_trying() {
            return None;
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!(
            "{}:limit:{}:{}",
            self.prefix,
            which.name(),
            hex::encode(key)
        ));
        invocation
            .arg(u64::try_from(rule.interval.as_micros()).unwrap_or(u64::MAX))
            .arg(rule.burst);
        let answer = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(ANSWER_LIMIT, answer).await {
            Ok(Ok(wait)) => {
                self.answered();
                Some(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer within 250 ms");
                None
            }
        }
    }

    /// Up, or down for a second since the last try (then this request tries).
    fn worth_trying(&self) -> bool {
        let Ok(mut health) = self.health.lock() else {
            return true;
        };
        if health.up {
            return true;
        }
        let now = Instant::now();
        if now < health.retry_at {
            return false;
        }
        health.retry_at = now + RETRY_EVERY;
        true
    }

    fn answered(&self) {
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        if !health.up {
            health.up = true;
            metrics::gauge!("anamnesis_rate_limits_shared").set(1.0);
            tracing::info!("rate limits: Redis answers again; the limits are shared again");
        }
    }

    fn failed(&self, error: &str) {
        metrics::counter!("anamnesis_rate_limit_redis_errors_total").increment(1);
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        health.retry_at = Instant::now() + RETRY_EVERY;
        if health.up {
            health.up = false;
            metrics::gauge!("anamnesis_rate_limits_shared").set(0.0);
            // The error is Redis's (connection, timeout): no key, no client.
            tracing::warn!(
                error,
                "rate limits: Redis does not answer; each instance limits on its own until it does"
            );
        }
    }
}
