//! Billing and insurance (ADR 0016): the price list, each patient's
//! coverage, bills with their lines, claims, payments, adjustments and
//! refunds; bills listed by patient, status, payer and date with totals,
//! and receivables aging. Amounts are JSON integers in minor units of the
//! clinic's currency; a float is refused as malformed.
//!
//! Staff run billing; a patient reads and pays their own bills; compliance
//! reads. Every read of a patient's bills or coverage is recorded.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::billing::{ClaimRequest, LineRequest, OpenRequest};
use anamnesis_commands::dispatch::Executed;
use anamnesis_commands::EventMetadata;
use anamnesis_domain::billing::{
    AdjustmentKind, Bill, BillCommand, BillStatus, Coverage, CoverageCommand, PriceList,
    PriceListCommand, Rank, PRICE_LIST_ID,
};
use anamnesis_domain::patient::Patient;
use anamnesis_projections::billing::{
    self as read_model, AgingBucket, BillDetail, BillQuery, BillSummary, CoverageView, PriceView,
    Totals,
};

use super::Accepted;
use crate::access_log::{ids, record};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{
    bad_param, bad_query, iso_date, iso_date_opt, page_size, parse_iso_date, uuid_param, Body,
    MinPosition, Path,
};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

mod bills;
mod reads;

pub use bills::*;
pub use reads::*;

use crate::extract::id_of;

/// Today in the clinic's zone.
fn today(state: &AppState) -> NaiveDate {
    state.scheduler().zone().date_of(Utc::now())
}

fn metadata(
    key: &RequestKey,
    who: &Principal,
    (status, id): (StatusCode, &str),
    reason: Option<&str>,
) -> EventMetadata {
    let mut m = Key::metadata(key.0.as_ref(), who, status, id);
    m.reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    m
}

fn accepted(id: impl ToString, done: Executed) -> Json<Accepted> {
    Json(Accepted {
        id: id.to_string(),
        position: done.position,
    })
}

/// The patient record must exist.
async fn registered(state: &AppState, patient: Uuid) -> Result<(), ApiError> {
    let (p, _, _) = state
        .bus()
        .load::<Patient>(&patient.to_string())
        .await
        .map_err(ApiError::from)?;
    if p.is_registered() {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// The patient of bill `raw`, from the write side (404: no such bill).
async fn patient_of(state: &AppState, raw: &str) -> Result<(Uuid, Uuid), ApiError> {
    let bill_id = id_of(raw)?;
    let (bill, _, _) = state
        .bus()
        .load::<Bill>(&bill_id.to_string())
        .await
        .map_err(ApiError::from)?;
    let opening = bill.opening().ok_or(ApiError::NotFound)?;
    Ok((bill_id, opening.patient_id))
}

/// Authorizes `action` on bill `raw` and runs `command` on it.
async fn on_bill(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    (raw, action): (&str, Action),
    command: BillCommand,
    reason: Option<&str>,
) -> Result<Json<Accepted>, ApiError> {
    let (bill_id, patient) = patient_of(state, raw).await?;
    authorize(who, action, &Context::patient(patient))?;
    let id = bill_id.to_string();
    let m = metadata(key, who, (StatusCode::OK, &id), reason);
    let done = state.bus().execute::<Bill>(&id, command, &(), &m).await?;
    Ok(accepted(id, done))
}

// --- price list -----------------------------------------------------------------

/// The price list: every active service code and its unit price (minor units).
#[utoipa::path(get, path = "/v1/billing/price-list", tag = "billing", security(("bearer" = [])),
    params(("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Vec<PriceView>), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_prices(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
) -> Result<Json<Vec<PriceView>>, ApiError> {
    authorize(&who, Action::ReadPriceList, &Context::NONE)?;
    min.wait(state.progress(read_model::NAME)).await?;
    Ok(Json(read_model::price_list_view(state.reads()).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    pub description: String,
    /// Minor units (cents), an integer.
    pub unit_price: i64,
}

/// List a service code, or change its description or price.
#[utoipa::path(put, path = "/v1/billing/price-list/{code}", tag = "billing", security(("bearer" = [])),
    params(("code" = String, Path)), request_body = PriceBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_price(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(code): Path<String>,
    Body(body): Body<PriceBody>,
) -> Result<Json<Accepted>, ApiError> {
    authorize(&who, Action::ManagePriceList, &Context::NONE)?;
    let m = metadata(&key, &who, (StatusCode::OK, PRICE_LIST_ID), None);
    let command = PriceListCommand::Set {
        code,
        description: body.description,
        unit_price: body.unit_price,
    };
    let done = state
        .bus()
        .execute::<PriceList>(PRICE_LIST_ID, command, &(), &m)
        .await?;
    Ok(accepted(PRICE_LIST_ID, done))
}

/// Take a service code off the price list (bills keep their lines).
#[utoipa::path(post, path = "/v1/billing/price-list/{code}/retire", tag = "billing", security(("bearer" = [])),
    params(("code" = String, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn retire_price(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(code): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    authorize(&who, Action::ManagePriceList, &Context::NONE)?;
    let m = metadata(&key, &who, (StatusCode::OK, PRICE_LIST_ID), None);
    let done = state
        .bus()
        .execute::<PriceList>(PRICE_LIST_ID, PriceListCommand::Retire { code }, &(), &m)
        .await?;
    Ok(accepted(PRICE_LIST_ID, done))
}

// --- coverage -------------------------------------------------------------------

/// A patient's insurance coverage, primary first.
#[utoipa::path(get, path = "/v1/patients/{id}/coverage", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Vec<CoverageView>), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn coverage(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<Vec<CoverageView>>, ApiError> {
    let patient = id_of(&id)?;
    authorize(&who, Action::ReadCoverage, &Context::patient(patient))?;
    min.wait(state.progress(read_model::NAME)).await?;
    let rows = read_model::coverage_of(state.reads(), &patient.to_string()).await?;
    record(&state, &who, "GET /v1/patients/{id}/coverage", [patient]).await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoverageBody {
    pub payer: String,
    pub member_id: String,
    pub plan: String,
    /// `YYYY-MM-DD`.
    #[serde(deserialize_with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub valid_from: NaiveDate,
    /// `YYYY-MM-DD`; open-ended when absent.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_to: Option<NaiveDate>,
    #[schema(value_type = String, example = "primary")]
    pub rank: Rank,
}

/// Record a coverage of a patient: payer, member id, plan, dates, rank.
#[utoipa::path(post, path = "/v1/patients/{id}/coverage", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CoverageBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_coverage(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<CoverageBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = id_of(&id)?;
    authorize(&who, Action::ManageCoverage, &Context::patient(patient))?;
    registered(&state, patient).await?;
    let coverage_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &coverage_id.to_string()),
        None,
    );
    let command = CoverageCommand::Add {
        coverage_id,
        payer: body.payer,
        member_id: body.member_id,
        plan: body.plan,
        valid_from: body.valid_from,
        valid_to: body.valid_to,
        rank: body.rank,
    };
    let done = state
        .bus()
        .execute::<Coverage>(&patient.to_string(), command, &(), &m)
        .await?;
    Ok((StatusCode::CREATED, accepted(coverage_id, done)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

/// End a coverage, for a reason: it pays no new claim.
#[utoipa::path(post, path = "/v1/patients/{id}/coverage/{coverage_id}/end", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("coverage_id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn end_coverage(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, coverage_id)): Path<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let patient = id_of(&id)?;
    let coverage_id = id_of(&coverage_id)?;
    authorize(&who, Action::ManageCoverage, &Context::patient(patient))?;
    let m = metadata(
        &key,
        &who,
        (StatusCode::OK, &coverage_id.to_string()),
        Some(&body.reason),
    );
    let command = CoverageCommand::End {
        coverage_id,
        reason: body.reason,
    };
    let done = state
        .bus()
        .execute::<Coverage>(&patient.to_string(), command, &(), &m)
        .await?;
    Ok(accepted(coverage_id, done))
}
