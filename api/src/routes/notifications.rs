//! The in-app inbox of notifications (ADR 0019): what the notifications
//! projector made for the caller, newest first, with unread counts; marking
//! one read. A notification names a patient by id at most; the page's
//! patients are recorded in the access log, as an inbox of threads is.

use axum::extract::{Query, State};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use anamnesis_projections::notifications::{self as read_model, NotificationView};

use crate::access_log::{ids, record};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, page_size, MinPosition, Path};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// `true`: only the unread.
    pub unread: Option<String>,
    /// Notifications made before this log position (the last item's
    /// `position` of the previous page).
    #[param(value_type = Option<i64>)]
    pub before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationView>,
    /// Whether older notifications follow (ask with `before`).
    pub more: bool,
    /// How many of the caller's notifications are unread.
    pub unread: i64,
}

/// The caller's notifications, newest first, with the unread count.
#[utoipa::path(get, path = "/v1/me/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = NotificationPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn my_notifications(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<NotificationParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NotificationPage>, ApiError> {
    authorize(&who, Action::ReadNotifications, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are unread, before, limit"))?;
    let unread_only = match p.unread.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_param("unread", "unread is true or false")),
    };
    let before =
        p.before
            .map(|b| {
                b.parse::<i64>().ok().filter(|b| *b > 0).ok_or_else(|| {
                    bad_param("before", "before is a log position (a positive integer)")
                })
            })
            .transpose()?;
    let limit = page_size(p.limit, 50, 200)?;
    // The inbox holds the notifications' rows and the urgent alerts'.
    min.wait_all([
        state.progress(read_model::NAME),
        state.progress(anamnesis_projections::alerts::NAME),
    ])
    .await?;
    let user = who.user_id.to_string();
    let (items, more) = read_model::inbox(state.reads(), &user, unread_only, before, limit).await?;
    let unread = read_model::unread(state.reads(), &user).await?;
    // Which patients have news for this user is patient data: recorded.
    let patients = ids(items.iter().filter_map(|i| i.patient_id.as_deref()))?;
    record(&state, &who, "GET /v1/me/notifications", patients).await?;
    Ok(Json(NotificationPage {
        items,
        more,
        unread,
    }))
}

/// Mark one of the caller's notifications read (again: no change).
#[utoipa::path(post, path = "/v1/me/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn mark_notification_read(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    authorize(&who, Action::ReadNotifications, &Context::NONE)?;
    // An id with a control character (a NUL, which Postgres text refuses)
    // names no notification.
    let found = id.len() <= 40
        && !id.chars().any(char::is_control)
        && read_model::mark_read(
            state.reads(),
            &who.user_id.to_string(),
            &id,
            Utc::now().timestamp(),
        )
        .await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
