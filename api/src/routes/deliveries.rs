//! What admins see of e-mail and webhook deliveries (ADR 0023): every
//! delivery and every attempt, with its time, outcome and error (an HTTP
//! status, an SMTP code). No patient data: no patient, subject or address.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use anamnesis_projections::deliveries::{self, AttemptView, DeliveryView};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, page_size, Path};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only deliveries in this status: pending, sending, sent, dead,
    /// expired, unknown or skipped.
    pub status: Option<String>,
    /// Deliveries with ids below this (the last item's `id` of the
    /// previous page).
    #[param(value_type = Option<i64>)]
    pub before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Whether older deliveries follow (ask with `before`).
    pub more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// Every attempt, the first first.
    pub attempts_made: Vec<AttemptView>,
}

/// Deliveries of notifications by e-mail and webhook, newest first.
#[utoipa::path(get, path = "/v1/admin/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(DeliveryParams),
    responses((status = 200, body = DeliveryPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    who: Principal,
    params: Result<Query<DeliveryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    authorize(&who, Action::ReadDeliveries, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are status, before, limit"))?;
    if let Some(status) = p.status.as_deref() {
        if !deliveries::STATUSES.contains(&status) {
            return Err(bad_param(
                "status",
                "status is pending, sending, sent, dead, expired, unknown or skipped",
            ));
        }
    }
    let before =
        p.before
            .map(|b| {
                b.parse::<i64>().ok().filter(|b| *b > 0).ok_or_else(|| {
                    bad_param("before", "before is a delivery id (a positive integer)")
                })
            })
            .transpose()?;
    let limit = page_size(p.limit, 50, 200)?;
    let (items, more) = deliveries::list(state.reads(), p.status.as_deref(), before, limit).await?;
    Ok(Json(DeliveryPage { items, more }))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/admin/deliveries/{id}", tag = "deliveries", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_delivery(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    authorize(&who, Action::ReadDeliveries, &Context::NONE)?;
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    let delivery = deliveries::get(state.reads(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let attempts_made = deliveries::attempts(state.reads(), id).await?;
    Ok(Json(DeliveryDetail {
        delivery,
        attempts_made,
    }))
}
