//! Signed tokens and the authenticated principal.
//!
//! Access tokens are short-lived HS256 JWTs checked without a database read;
//! refresh tokens name a session that logout or deactivation closes.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::Actor;
use anamnesis_domain::user::{Account, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// Seconds an access token lives.
pub const ACCESS_TTL: i64 = 15 * 60;
/// Seconds a refresh token lives: as long as its session
/// (`anamnesis_domain::user::session_lifetime`).
pub fn refresh_ttl() -> i64 {
    anamnesis_domain::user::session_lifetime().num_seconds()
}
/// The key file kept in the data directory when no key is configured.
pub const KEY_FILE: &str = "token.key";
/// Who issues our tokens (`iss`).
pub const ISSUER: &str = "anamnesis";
/// Whom they are for (`aud`): this API, not some other service sharing a key.
pub const AUDIENCE: &str = "anamnesis-api";
/// Clock skew tolerated between instances, in seconds.
pub const LEEWAY: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Access,
    Refresh,
    /// A second-factor login challenge (ADR 0025): `sid` is the challenge's
    /// id. No route but the MFA ones takes it.
    Challenge,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// User id (also the id of the user's stream).
    sub: Uuid,
    role: Role,
    /// The patient record, for patient accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<Uuid>,
    sid: Uuid,
    typ: Kind,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account's id, and its stream's.
    pub user_id: Uuid,
    pub role: Role,
    pub patient_id: Option<Uuid>,
    pub session_id: Uuid,
}

impl Principal {
    /// The actor of the events this principal causes.
    pub fn actor(&self) -> Actor {
        Actor::new(self.user_id.to_string(), self.role.as_str())
    }
}

/// Issues and checks tokens with one symmetric key.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// A pair of tokens for a session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
}

impl Tokens {
    /// From a key as written in the flag, the environment or the key file:
    /// the same text means the same key wherever it is written. Surrounding
    /// white space is ignored.
    pub fn from_key_text(key: &str) -> anyhow::Result<Self> {
        Self::from_secret(key.trim().as_bytes())
    }

    /// From a secret of at least 32 bytes.
    fn from_secret(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "the token signing key must be at least 32 bytes"
        );
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// The key in `dir/token.key`, generated there (readable by the owner
    /// only) on first use.
    pub fn from_data_dir(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::io::Write;
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let key: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut f) => f
                    .write_all(hex::encode(key).as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        // The file's text is the key, exactly as --token-key would take it.
        Self::from_key_text(&text).with_context(|| format!("the key in {}", path.display()))
    }

    /// Access and refresh tokens for a session opened now.
    pub fn issue_new(&self, account: &Account, session_id: Uuid) -> Result<TokenPair, ApiError> {
        self.issue(account, session_id, Utc::now().timestamp() + refresh_ttl())
    }

    /// Access and refresh tokens for a session that ends at `ends` (Unix
    /// seconds): neither outlives it, so refreshing never extends a session
    /// past its lifetime from the login that opened it.
    pub fn issue(
        &self,
        account: &Account,
        session_id: Uuid,
        ends: i64,
    ) -> Result<TokenPair, ApiError> {
        let now = Utc::now().timestamp();
        let make = |typ: Kind, ttl: i64| {
            let claims = Claims {
                sub: account.user_id,
                role: account.role,
                pid: account.patient_id,
                sid: session_id,
                typ,
                iss: ISSUER.to_owned(),
                aud: AUDIENCE.to_owned(),
                iat: now,
                exp: (now + ttl).min(ends),
            };
            encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
        };
        Ok(TokenPair {
            access_token: make(Kind::Access, ACCESS_TTL)?,
            token_type: "Bearer",
            expires_in: ACCESS_TTL.min(ends - now).max(0),
            refresh_token: make(Kind::Refresh, refresh_ttl())?,
        })
    }

    /// A login challenge's token for `account`, naming `challenge_id`; it
    /// lives as long as the challenge.
    pub fn issue_challenge(
        &self,
        account: &Account,
        challenge_id: Uuid,
    ) -> Result<(String, i64), ApiError> {
        let now = Utc::now().timestamp();
        let ttl = anamnesis_domain::user::challenge_lifetime().num_seconds();
        let claims = Claims {
            sub: account.user_id,
            role: account.role,
            pid: account.patient_id,
            sid: challenge_id,
            typ: Kind::Challenge,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + ttl,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
        Ok((token, ttl))
    }

    /// The principal of a challenge token; its `session_id` is the
    /// challenge's id (whether it is open is checked by the write side).
    pub fn check_challenge(&self, token: &str) -> Result<Principal, ApiError> {
        self.check(token, Kind::Challenge)
    }

    fn check(&self, token: &str, kind: Kind) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::Unauthorized {
                code: "invalid_token",
                detail: "the token is invalid or expired",
            })?
            .claims;
        if claims.typ != kind {
            return Err(ApiError::Unauthorized {
                code: "invalid_token",
                detail: "wrong kind of token",
            });
        }
        Ok(Principal {
            user_id: claims.sub,
            role: claims.role,
            patient_id: claims.pid,
            session_id: claims.sid,
        })
    }

    /// The user id of a valid access token, for scoping per-user state
    /// (idempotency keys); `None` for anything else.
    pub fn subject(&self, token: &str) -> Option<String> {
        self.check(token, Kind::Access)
            .ok()
            .map(|p| p.user_id.to_string())
    }

    /// The principal of a refresh token (its session is checked by the caller).
    pub fn check_refresh(&self, token: &str) -> Result<Principal, ApiError> {
        self.check(token, Kind::Refresh)
    }
}

/// The token of an `Authorization` header's value: the `Bearer` scheme, in
/// any case (RFC 9110 §11.1), then the token.
pub fn token_of(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token of a request.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(token_of)
        .ok_or(ApiError::Unauthorized {
            code: "unauthenticated",
            detail: "send Authorization: Bearer <access token>",
        })
}

impl Principal {
    /// The principal of an access token whose session is open.
    pub async fn signed_in(token: &str, state: &AppState) -> Result<Self, ApiError> {
        let who = state.tokens().check(token, Kind::Access)?;
        state.sessions().check(&who).await?;
        Ok(who)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        let who = state.tokens().check(token, Kind::Access)?;
        state.sessions().check(&who).await?;
        Ok(who)
    }
}
