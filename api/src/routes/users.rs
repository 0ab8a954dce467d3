//! Staff and provider accounts, managed by admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use anamnesis_commands::identity::NewAccount;
use anamnesis_domain::user::{Role, UserCommand};

use super::Accepted;
use crate::auth::Principal;
use crate::error::{ApiError, Problem, Rule};
use crate::extract::{Body, Path};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

// No `Debug`: it holds a password, which must never reach a log.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    /// doctor, nurse, staff, admin, compliance or analyst (patients register themselves).
    pub role: String,
}

/// Create a staff or provider account (admins only).
#[utoipa::path(post, path = "/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = Accepted), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(req): Body<CreateUserRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::ManageUsers, &Context::NONE)?;
    let role = Role::parse(&req.role).map_err(Rule::problem)?;
    if role == Role::Patient {
        return Err(ApiError::invalid(
            "patient_link",
            Some("role"),
            "patient accounts are created by POST /v1/auth/register",
        ));
    }
    let user_id = uuid::Uuid::now_v7();
    let account = NewAccount {
        user_id,
        username: req.username,
        password: req.password,
        role,
        patient_id: None,
    };
    let metadata = Key::metadata(
        key.0.as_ref(),
        &who,
        StatusCode::CREATED,
        &user_id.to_string(),
    );
    let (user_id, done) = state.identity().create(account, &metadata).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: user_id.to_string(),
            position: done.position,
        }),
    ))
}

async fn set_active(
    state: &AppState,
    (who, key): (&Principal, RequestKey),
    username: &str,
    command: UserCommand,
) -> Result<Json<Accepted>, ApiError> {
    authorize(who, Action::ManageUsers, &Context::NONE)?;
    let user_id = state.identity().resolve(username).await?;
    let id = user_id.to_string();
    let metadata = Key::metadata(key.0.as_ref(), who, StatusCode::OK, &id);
    let done = state
        .identity()
        .execute(user_id, command, &metadata)
        .await?;
    // The account's sessions end on this instance before the answer; other
    // instances learn it from the log.
    state.sessions().invalidate(user_id);
    Ok(Json(Accepted {
        id,
        position: done.position,
    }))
}

/// Stop an account from logging in; its sessions end (admins only).
#[utoipa::path(post, path = "/v1/users/{username}/deactivate", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn deactivate(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(username): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    set_active(&state, (&who, key), &username, UserCommand::Deactivate).await
}

/// Let a deactivated account log in again (admins only).
#[utoipa::path(post, path = "/v1/users/{username}/reactivate", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reactivate(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(username): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    set_active(&state, (&who, key), &username, UserCommand::Reactivate).await
}
