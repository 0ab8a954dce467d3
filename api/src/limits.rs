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
//! whole seconds, and nothing done. Limits are kept in this process (GCRA,
//! the `governor` crate): with several instances each enforces its own.

use std::net::{IpAddr, SocketAddr};
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

/// The paths limited per client address.
const AUTH_PATHS: [&str; 4] = [
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

/// The limiters of one server.
pub struct Limits {
    address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    account: Option<DefaultKeyedRateLimiter<String>>,
    token: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    clock: DefaultClock,
}

fn quota(per: Duration, n: u32, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(burst).unwrap_or(n);
    Quota::with_period(per / n.get()).map(|q| q.allow_burst(burst))
}

impl Limits {
    /// Limiters for `settings`.
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        let minute = Duration::from_secs(60);
        Arc::new(Self {
            address: quota(minute, settings.auth_per_minute, settings.auth_per_minute)
                .map(RateLimiter::keyed),
            account: quota(
                minute,
                settings.account_per_minute,
                settings.account_per_minute,
            )
            .map(RateLimiter::keyed),
            token: quota(
                Duration::from_secs(1),
                settings.token_per_second,
                settings.token_burst,
            )
            .map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        })
    }

    /// Forgets keys that have been quiet long enough to be full again:
    /// memory stays bounded by recent clients.
    pub fn forget_quiet(&self) {
        if let Some(l) = &self.address {
            l.retain_recent();
        }
        if let Some(l) = &self.account {
            l.retain_recent();
        }
        if let Some(l) = &self.token {
            l.retain_recent();
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<K>>,
        key: &K,
        which: &'static str,
    ) -> Result<(), ApiError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            metrics::counter!("anamnesis_rate_limited_total", "limit" => which).increment(1);
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// A token's key: a digest, so that no token is kept in memory.
fn token_key(token: &str) -> [u8; 16] {
    let digest = Sha256::digest(token.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The longest sign-in body read to find its account name.
const LOGIN_BODY: usize = 16 * 1024;

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
            limits.check(&limits.address, &address.ip(), "address")?;
        }
    }
    if let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        limits.check(&limits.token, &token_key(token.trim()), "token")?;
    }
    if path == "/v1/auth/login" && limits.account.is_some() {
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::to_bytes(body, LOGIN_BODY)
                .await
                .map_err(|_| ApiError::BadRequest {
                    code: "invalid_body",
                    field: None,
                    detail: "the request body is unreadable or too large".into(),
                })?;
        let name = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("username")?.as_str().map(str::to_lowercase));
        if let Some(name) = name {
            limits.check(&limits.account, &name, "account")?;
        }
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_refused_with_a_wait_and_other_keys_are_not() {
        let limits = Limits::new(LimitSettings {
            auth_per_minute: 0,
            account_per_minute: 3,
            token_per_second: 0,
            token_burst: 0,
        });
        let marie = "marie".to_owned();
        for _ in 0..3 {
            assert!(limits.check(&limits.account, &marie, "account").is_ok());
        }
        match limits.check(&limits.account, &marie, "account") {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((1..=20).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
        assert!(limits
            .check(&limits.account, &"pierre".to_owned(), "account")
            .is_ok());
        // Off: never limited.
        for _ in 0..100 {
            assert!(limits.check(&limits.token, &[0; 16], "token").is_ok());
        }
    }
}
