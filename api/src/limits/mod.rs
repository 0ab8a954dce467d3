//! Rate limits (issue 13, item 4): what a hostile client may not do.
//!
//! - **Sign-in, registration and password endpoints, per client address**:
//!   password guessing and account creation from one address are slowed
//!   whichever accounts they aim at.
//! - **Sign-in, per account name**: guessing one account's password from
//!   many addresses is slowed too, and other accounts are not affected
//!   (the lockout after failed passwords, ADR 0006, still applies).
//! - **Every request with a token, per token**: an overall budget, so one
//!   stolen or runaway token cannot take the server's capacity.
//!
//! Over a limit: `429 rate_limited` (problem+json) with `Retry-After` in
//! whole seconds, and nothing done. Each limit is a GCRA bucket per key.
//! Without Redis they are kept in this process (the `governor` crate): with
//! several instances each enforces its own. With `--redis-url` they are
//! kept in Redis ([`shared`], ADR 0026), so that all instances share one
//! budget; while Redis does not answer, each instance falls back to its own.

mod shared;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub use shared::Shared;

/// The paths limited per client address.
pub(crate) const AUTH_PATHS: [&str; 4] = [
    "/v1/auth/login",
    "/v1/auth/login/mfa",
    "/v1/auth/register",
    "/v1/auth/password",
];

/// How the limits are set (`--auth-rate-per-minute`, ...); 0 turns one off.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Requests per minute to the sign-in, registration and password
    /// endpoints from one client address (also the burst).
    pub auth_per_minute: u32,
    /// Sign-in attempts per minute for one account name (also the burst).
    pub account_per_minute: u32,
    /// Requests per second with one token, sustained...
    pub token_per_second: u32,
    /// ...and at once.
    pub token_burst: u32,
}

/// The three limits.
#[derive(Debug, Clone, Copy)]
enum Which {
    Address,
    Account,
    Token,
}

impl Which {
    /// Its metric label and Redis key part.
    fn name(self) -> &'static str {
        match self {
            Which::Address => "address",
            Which::Account => "account",
            Which::Token => "token",
        }
    }
}

/// One limit's bucket: one request per `interval`, `burst` at once.
#[derive(Debug, Clone, Copy)]
struct Rule {
    interval: Duration,
    burst: u32,
}

/// One limit: its rule and this process's own limiter of it.
struct Limit {
    rule: Rule,
    local: DefaultKeyedRateLimiter<[u8; 16]>,
}

impl Limit {
    fn new(per: Duration, n: u32, burst: u32) -> Option<Self> {
        let n = NonZeroU32::new(n)?;
        let burst = NonZeroU32::new(burst).unwrap_or(n);
        let interval = per / n.get();
        let quota = Quota::with_period(interval)?.allow_burst(burst);
        Some(Self {
            rule: Rule {
                interval,
                burst: burst.get(),
            },
            local: RateLimiter::keyed(quota),
        })
    }
}

/// The limiters of one server.
pub struct Limits {
    address: Option<Limit>,
    account: Option<Limit>,
    token: Option<Limit>,
    shared: Option<Shared>,
    clock: DefaultClock,
}

impl Limits {
    /// Limiters for `settings`, kept in Redis when `shared` is given.
    pub fn new(settings: LimitSettings, shared: Option<Shared>) -> Arc<Self> {
        let minute = Duration::from_secs(60);
        let (auth, account) = (settings.auth_per_minute, settings.account_per_minute);
        Arc::new(Self {
            address: Limit::new(minute, auth, auth),
            account: Limit::new(minute, account, account),
            token: Limit::new(
                Duration::from_secs(1),
                settings.token_per_second,
                settings.token_burst,
            ),
            shared,
            clock: DefaultClock::default(),
        })
    }

    /// Forgets keys that have been quiet long enough to be full again:
    /// memory stays bounded by recent clients. (Redis keys expire.)
    pub fn forget_quiet(&self) {
        for limit in [&self.address, &self.account, &self.token]
            .into_iter()
            .flatten()
        {
            limit.local.retain_recent();
        }
    }

    fn limit(&self, which: Which) -> Option<&Limit> {
        match which {
            Which::Address => self.address.as_ref(),
            Which::Account => self.account.as_ref(),
            Which::Token => self.token.as_ref(),
        }
    }

    /// Counts one request under `key` (any bytes naming the client, the
    /// account or the token; only a digest of them is kept).
    async fn check(&self, which: Which, key: &[u8]) -> Result<(), ApiError> {
        let Some(limit) = self.limit(which) else {
            return Ok(());
        };
        let key = digest(which, key);
        let shared = match &self.shared {
            Some(shared) => shared.check(which, &key, limit.rule).await,
            None => None,
        };
        let wait = match shared {
            Some(wait) => wait,
            None => match limit.local.check_key(&key) {
                Ok(()) => Duration::ZERO,
                Err(not_until) => not_until.wait_time_from(self.clock.now()),
            },
        };
        if wait.is_zero() {
            return Ok(());
        }
        metrics::counter!("anamnesis_rate_limited_total", "limit" => which.name()).increment(1);
        Err(ApiError::RateLimited {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        })
    }
}

/// A key's digest: no address, account name or token is kept, in memory
/// or in Redis.
fn digest(which: Which, key: &[u8]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(which.name().as_bytes());
    hasher.update([0u8]);
    hasher.update(key);
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The longest sign-in body read to find its account name: the JSON limit
/// of every route, so the limits answer as the route would.
const LOGIN_BODY: usize = crate::server::MAX_BODY_BYTES;

/// The middleware: the address limit on the auth paths, the account limit
/// on sign-in (its name read from the body, which is then passed on), the
/// token budget on everything with a bearer token.
pub async fn middleware(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    match check(&limits, req).await {
        Ok(req) => next.run(req).await,
        Err(error) => error.into_response(),
    }
}

async fn check(limits: &Limits, req: Request) -> Result<Request, ApiError> {
    let path = req.uri().path().to_owned();
    if AUTH_PATHS.contains(&path.as_str()) {
        if let Some(ConnectInfo(address)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            let ip = address.ip().to_string();
            limits.check(Which::Address, ip.as_bytes()).await?;
        }
    }
    if let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::token_of)
    {
        limits.check(Which::Token, token.as_bytes()).await?;
    }
    if path == "/v1/auth/login" && limits.account.is_some() {
        let (parts, body) = req.into_parts();
        // Past the limit, or cut off: what the route answers to a body it
        // cannot take whole.
        let bytes = axum::body::to_bytes(body, LOGIN_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        // The name as the account's is kept (trimmed, lowercased): spaces
        // around it are the same account, not a fresh budget.
        let name = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("username")?.as_str().map(|n| n.trim().to_lowercase()));
        if let Some(name) = name {
            limits.check(Which::Account, name.as_bytes()).await?;
        }
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_refused_with_a_wait_and_other_keys_are_not() {
        let limits = Limits::new(
            LimitSettings {
                auth_per_minute: 0,
                account_per_minute: 3,
                token_per_second: 0,
                token_burst: 0,
            },
            None,
        );
        for _ in 0..3 {
            assert!(limits.check(Which::Account, b"marie").await.is_ok());
        }
        match limits.check(Which::Account, b"marie").await {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((1..=20).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
        assert!(limits.check(Which::Account, b"pierre").await.is_ok());
        // Off: never limited.
        for _ in 0..100 {
            assert!(limits.check(Which::Token, b"a token").await.is_ok());
        }
    }
}
