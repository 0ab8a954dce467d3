//! Who read a patient's record: the access log (ADR 0012), for compliance
//! (by patient, by user, by time) and for the patient themself.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use anamnesis_projections::access_log::{self as read_model, AccessEntry, AccessFilter};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, instant_param, page_size, uuid_param, MinPosition};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

fn limit(raw: Option<String>) -> Result<i64, ApiError> {
    page_size(raw, 50, 500)
}

fn cursor(raw: Option<String>) -> Result<Option<i64>, ApiError> {
    raw.map(|c| {
        c.parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| bad_param("cursor", "cursor is the next_cursor of a previous page"))
    })
    .transpose()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessPage {
    pub items: Vec<AccessEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn page(items: Vec<AccessEntry>, more: bool) -> AccessPage {
    let next_cursor = more
        .then(|| items.last().map(|e| e.position.to_string()))
        .flatten();
    AccessPage { items, next_cursor }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccessParams {
    /// Reads of this patient's record.
    pub patient_id: Option<String>,
    /// Reads by this user.
    pub user_id: Option<String>,
    /// RFC 3339: recorded at or after.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: recorded at or before.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// Recorded reads of patient data, by patient, by user and by time (compliance).
#[utoipa::path(get, path = "/v1/access-log", tag = "compliance", security(("bearer" = [])),
    params(AccessParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = AccessPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn access_log(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<AccessParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccessPage>, ApiError> {
    authorize(&who, Action::ReadAccessLog, &Context::NONE)?;
    let Query(p) = params.map_err(|_| {
        bad_query("query parameters are patient_id, user_id, from, to, cursor, limit")
    })?;
    let filter = AccessFilter {
        patient_id: uuid_param("patient_id", p.patient_id)?,
        actor_id: uuid_param("user_id", p.user_id)?,
        from: instant_param("from", p.from)?,
        to: instant_param("to", p.to)?,
        after: cursor(p.cursor)?,
        limit: limit(p.limit)?,
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, more) = read_model::entries(state.reads(), &filter).await?;
    Ok(Json(page(items, more)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MyAccessParams {
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// Who looked at my record: every recorded read of the signed-in patient's data.
#[utoipa::path(get, path = "/v1/me/access-log", tag = "compliance", security(("bearer" = [])),
    params(MyAccessParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = AccessPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn my_access_log(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<MyAccessParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccessPage>, ApiError> {
    let me = who.patient_id.ok_or(ApiError::Forbidden)?;
    authorize(&who, Action::OwnAccessLog, &Context::patient(me))?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are cursor and limit"))?;
    let filter = AccessFilter {
        patient_id: Some(me.to_string()),
        after: cursor(p.cursor)?,
        limit: limit(p.limit)?,
        ..Default::default()
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, more) = read_model::entries(state.reads(), &filter).await?;
    Ok(Json(page(items, more)))
}
