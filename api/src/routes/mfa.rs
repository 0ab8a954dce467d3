//! Multi-factor authentication (ADR 0025): the second login step, TOTP
//! enrolment with recovery codes, turning it off, and an admin's reset.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::identity::{Login, MfaAnswer};
use anamnesis_commands::{Actor, EventMetadata};
use anamnesis_domain::text::{self, Lines, TextError};
use anamnesis_domain::user::MfaPurpose;

use super::Accepted;
use crate::auth::{bearer, Principal, TokenPair};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Path};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

/// What a right password answers with when the account has a second factor,
/// or its role must have one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaChallenge {
    /// Always `true`: no tokens yet.
    pub mfa_required: bool,
    /// `true`: the account must enrol an authenticator first. The challenge
    /// is then the bearer token of `POST /v1/me/mfa/totp` and
    /// `POST /v1/me/mfa/totp/confirm` only (the confirmation answers with
    /// the tokens); every other route refuses it.
    pub enrolment_required: bool,
    /// Single-use, answered at `POST /v1/auth/login/mfa`.
    pub challenge: String,
    /// Seconds until the challenge expires.
    pub expires_in: i64,
}

/// A login's answer: tokens, or a second-factor challenge.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Tokens(TokenPair),
    Challenge(MfaChallenge),
}

/// The answer to a right password.
pub fn login_answer(state: &AppState, login: Login) -> Result<LoginAnswer, ApiError> {
    Ok(match login {
        Login::Session(session) => LoginAnswer::Tokens(
            state
                .tokens()
                .issue_new(&session.account, session.session_id)?,
        ),
        Login::Challenge {
            challenge_id,
            purpose,
            account,
            ..
        } => {
            let (challenge, expires_in) = state.tokens().issue_challenge(&account, challenge_id)?;
            LoginAnswer::Challenge(MfaChallenge {
                mfa_required: true,
                enrolment_required: purpose == MfaPurpose::Enrol,
                challenge,
                expires_in,
            })
        }
    })
}

// No `Debug`: it holds a second factor.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// The challenge the password step answered with.
    pub challenge: String,
    /// A current code of the authenticator...
    pub code: Option<String>,
    /// ...or one of the recovery codes (each works once).
    pub recovery_code: Option<String>,
}

/// The second login step: answer a challenge with a code or a recovery code.
#[utoipa::path(post, path = "/v1/auth/login/mfa", tag = "auth", request_body = MfaLoginRequest,
    responses((status = 200, body = TokenPair),
              (status = 400, description = "neither or both of `code` and `recovery_code`", body = Problem),
              (status = 401, description = "`invalid_mfa_code` (wrong, replayed or used; counts towards the lockout), \
                `mfa_challenge_closed`, `mfa_enrolment_required`, or a locked account", body = Problem)))]
pub async fn login_mfa(
    State(state): State<AppState>,
    Body(req): Body<MfaLoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let answer = match (req.code, req.recovery_code) {
        (Some(code), None) => MfaAnswer::Code(code),
        (None, Some(code)) => MfaAnswer::RecoveryCode(code),
        _ => {
            return Err(ApiError::BadRequest {
                code: "invalid_body",
                field: Some("code".into()),
                detail: "send either `code` or `recovery_code`".into(),
            })
        }
    };
    let challenge = state.tokens().check_challenge(&req.challenge)?;
    let session = state
        .identity()
        .complete_login(challenge.user_id, challenge.session_id, answer)
        .await?;
    Ok(Json(
        state
            .tokens()
            .issue_new(&session.account, session.session_id)?,
    ))
}

/// Who is enrolling: a signed-in user, or a user holding an enrolment
/// challenge (their role must use a second factor and they have none).
struct Enroller {
    user_id: Uuid,
    actor: Actor,
    challenge: Option<Uuid>,
    principal: Option<Principal>,
}

async fn enroller(state: &AppState, headers: &HeaderMap) -> Result<Enroller, ApiError> {
    let token = bearer(headers)?;
    if let Ok(challenge) = state.tokens().check_challenge(token) {
        return Ok(Enroller {
            user_id: challenge.user_id,
            actor: challenge.actor(),
            challenge: Some(challenge.session_id),
            principal: None,
        });
    }
    let who = Principal::signed_in(token, state).await?;
    Ok(Enroller {
        user_id: who.user_id,
        actor: who.actor(),
        challenge: None,
        principal: Some(who),
    })
}

/// A started enrolment. Its `Debug` shows no secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// The shared secret, base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/Anamnesis:<username>?secret=…&issuer=Anamnesis`:
    /// show it as a QR code.
    pub otpauth_uri: String,
    pub position: i64,
}

/// Start enrolling a TOTP authenticator (SHA-1, 6 digits, 30 s): a new
/// secret, until confirmed. With an access token, or with the enrolment
/// challenge of a login.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment),
              (status = 401, body = Problem),
              (status = 409, description = "`mfa_already_enrolled`: disable it (or have an admin reset it) first", body = Problem)))]
pub async fn start_enrolment(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let me = enroller(&state, &headers).await?;
    let metadata = EventMetadata::by(me.actor.clone());
    let started = state
        .identity()
        .start_enrolment(me.user_id, me.challenge, &metadata)
        .await?;
    Ok(Json(TotpEnrolment {
        secret: started.secret,
        otpauth_uri: started.uri,
        position: started.position,
    }))
}

// No `Debug`: it holds a second factor.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A current 6-digit code of the authenticator.
    pub code: String,
}

/// A confirmed enrolment. No `Debug`: it holds the recovery codes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpConfirmed {
    /// One-time recovery codes, shown this once (only their digests are kept).
    pub recovery_codes: Vec<String>,
    /// Under an enrolment challenge: the session it opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenPair>,
    pub position: i64,
}

/// Confirm the enrolment with a current code; answers the recovery codes
/// (and, under an enrolment challenge, the login's tokens).
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, body = TotpConfirmed),
              (status = 401, description = "`invalid_mfa_code` (under a challenge it counts towards the lockout)", body = Problem),
              (status = 409, body = Problem),
              (status = 422, description = "`mfa_not_started`", body = Problem)))]
pub async fn confirm_enrolment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(req): Body<CodeRequest>,
) -> Result<Json<TotpConfirmed>, ApiError> {
    let me = enroller(&state, &headers).await?;
    let metadata = EventMetadata::by(me.actor.clone());
    let confirmed = state
        .identity()
        .confirm_enrolment(me.user_id, &req.code, me.challenge, &metadata)
        .await?;
    let tokens = match &confirmed.session {
        Some(s) => Some(state.tokens().issue_new(&s.account, s.session_id)?),
        None => None,
    };
    if me.principal.is_some() {
        state.sessions().invalidate(me.user_id);
    }
    Ok(Json(TotpConfirmed {
        recovery_codes: confirmed.recovery_codes,
        tokens,
        position: confirmed.position,
    }))
}

/// Turn your own second factor off, with a current code. Refused
/// (`mfa_required`) when your role must use one.
#[utoipa::path(post, path = "/v1/me/mfa/totp/disable", tag = "auth", security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, body = Accepted),
              (status = 401, body = Problem),
              (status = 422, description = "`mfa_required` or `mfa_not_enrolled`", body = Problem)))]
pub async fn disable(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(req): Body<CodeRequest>,
) -> Result<Json<Accepted>, ApiError> {
    let id = who.user_id.to_string();
    let metadata = Key::metadata(key.0.as_ref(), &who, StatusCode::OK, &id);
    let done = state
        .identity()
        .disable_mfa(who.user_id, &req.code, &metadata)
        .await?;
    Ok(Json(Accepted {
        id,
        position: done.position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Why (recorded with the event): a lost phone, a new device.
    pub reason: String,
}

/// Remove a user's second factor (admins only), with a reason; their next
/// login asks them to enrol again if their role must use one.
#[utoipa::path(post, path = "/v1/users/{username}/mfa/reset", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = ResetRequest,
    responses((status = 200, body = Accepted), (status = 403, body = Problem),
              (status = 404, body = Problem),
              (status = 422, description = "`mfa_not_enrolled`, or no reason", body = Problem)))]
pub async fn reset(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(username): Path<String>,
    Body(req): Body<ResetRequest>,
) -> Result<Json<Accepted>, ApiError> {
    authorize(&who, Action::ManageUsers, &Context::NONE)?;
    let reason = text::parse(&req.reason, Lines::Multi, 500).map_err(|e| {
        let code = match e {
            TextError::Empty => "reason_required",
            TextError::TooLong => "too_long",
            TextError::InvalidCharacters => "invalid_characters",
        };
        ApiError::invalid(
            code,
            Some("reason"),
            "reason is text of 1 to 500 characters, without control characters",
        )
    })?;
    let user_id = state.identity().resolve(&username).await?;
    let id = user_id.to_string();
    let mut metadata = Key::metadata(key.0.as_ref(), &who, StatusCode::OK, &id);
    metadata.reason = Some(reason);
    let done = state.identity().reset_mfa(user_id, &metadata).await?;
    Ok(Json(Accepted {
        id,
        position: done.position,
    }))
}
