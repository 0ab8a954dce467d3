//! Login, refresh, logout and patient self-registration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use anamnesis_domain::user::UserCommand;

use super::patients::PatientInput;
use super::Accepted;
use crate::auth::{Principal, TokenPair};
use crate::error::{ApiError, Problem};
use crate::extract::Body;
use crate::idempotency::{Key, RequestKey};
use crate::state::AppState;

// No `Debug`: it holds a password, which must never reach a log.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Log in with a username and password. An account with a second factor,
/// or whose role must have one (`--mfa-roles`), gets a challenge instead of
/// tokens (ADR 0025): answer it at `POST /v1/auth/login/mfa`, or enrol with it.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "tokens, or a second-factor challenge (`mfa_required: true`)",
               body = super::mfa::LoginAnswer),
              (status = 401, description = "wrong credentials, a locked account, or deactivated", body = Problem),
              (status = 503, description = "too many logins at once: retry after `Retry-After` seconds", body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    Body(req): Body<LoginRequest>,
) -> Result<Json<super::mfa::LoginAnswer>, ApiError> {
    let login = state.identity().login(&req.username, req.password).await?;
    Ok(Json(super::mfa::login_answer(&state, login)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Trade a refresh token for a new access token, while its session is open.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    Body(req): Body<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let who = state.tokens().check_refresh(&req.refresh_token)?;
    let closed = ApiError::Unauthorized {
        code: "session_closed",
        detail: "the session has ended; log in again",
    };
    let user = state
        .identity()
        .account(who.user_id)
        .await?
        .ok_or(ApiError::Unauthorized {
            code: "session_closed",
            detail: "the session has ended; log in again",
        })?;
    let account = user.account().ok_or(ApiError::NotFound)?;
    // A session lasts its lifetime from the login that opened it, however
    // often it is refreshed.
    let ends = match user.session_ends(who.session_id) {
        Some(ends) if user.is_active() && ends > chrono::Utc::now() => ends,
        _ => return Err(closed),
    };
    Ok(Json(state.tokens().issue(
        account,
        who.session_id,
        ends.timestamp(),
    )?))
}

/// End the current session: its refresh token stops working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
) -> Result<StatusCode, ApiError> {
    let session = who.session_id.to_string();
    let metadata = Key::metadata(key.0.as_ref(), &who, StatusCode::NO_CONTENT, &session);
    state
        .identity()
        .execute(
            who.user_id,
            UserCommand::EndSession {
                session_id: who.session_id,
            },
            &metadata,
        )
        .await?;
    state.sessions().invalidate(who.user_id);
    Ok(StatusCode::NO_CONTENT)
}

// No `Debug`: it holds a password, which must never reach a log.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change your own password. Every session of the account ends, this one
/// included: log in again with the new password.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses((status = 204, description = "changed; every session ended"),
              (status = 400, description = "unreadable body", body = Problem),
              (status = 401, description = "not signed in, or the current password is wrong", body = Problem),
              (status = 422, description = "the new password breaks a rule", body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(req): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let id = who.user_id.to_string();
    let metadata = Key::metadata(key.0.as_ref(), &who, StatusCode::NO_CONTENT, &id);
    let done = state
        .identity()
        .change_password(
            who.user_id,
            req.current_password,
            req.new_password,
            &metadata,
        )
        .await;
    state.sessions().invalidate(who.user_id);
    done?;
    Ok(StatusCode::NO_CONTENT)
}

// No `Debug`: it holds a password, which must never reach a log.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    /// The new patient's demographics.
    pub patient: PatientInput,
}

/// A patient signs up: creates their account and their patient record together.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Accepted), (status = 400, body = Problem),
              (status = 409, description = "username taken", body = Problem),
              (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    key: RequestKey,
    Body(req): Body<RegisterRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let today = chrono::Utc::now().date_naive();
    let (user_id, patient_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let recorded = key
        .0
        .map(|k| k.recorded(StatusCode::CREATED, &patient_id.to_string()));
    let done = state
        .identity()
        .register_patient(
            &req.username,
            req.password,
            req.patient.into_command(),
            today,
            (user_id, patient_id),
            recorded,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: done.patient_id.to_string(),
            position: done.position,
        }),
    ))
}
