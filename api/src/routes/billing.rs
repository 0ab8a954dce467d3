//! Billing and insurance (ADR 0016): the price list, each patient's
//! coverage, bills with their lines, claims, payments, adjustments and
//! refunds; bills listed by patient, status, payer and date with totals,
//! and receivables aging. Amounts are JSON integers in minor units of the
//! clinic's currency; a float is refused as malformed.
//!
//! Staff run billing; a patient reads and pays their own bills; compliance
//! reads. Every read of a patient's bills or coverage is recorded.

use axum::extract::{Path, Query, State};
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
    MinPosition,
};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

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

// --- bills: draft, issue, void --------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    pub patient_id: Uuid,
    /// The appointment (encounter) billed; it must be the patient's.
    pub appointment_id: Option<Uuid>,
    /// `YYYY-MM-DD`; default: the appointment's day, or today.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub service_date: Option<NaiveDate>,
}

/// Open a draft bill for a patient, optionally for one of their appointments.
#[utoipa::path(post, path = "/v1/bills", tag = "billing", security(("bearer" = [])),
    request_body = OpenBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn open_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<OpenBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::ManageBill, &Context::patient(body.patient_id))?;
    registered(&state, body.patient_id).await?;
    let bill_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &bill_id.to_string()),
        None,
    );
    let request = OpenRequest {
        bill_id,
        patient_id: body.patient_id,
        appointment_id: body.appointment_id,
        service_date: body.service_date,
        today: today(&state),
    };
    let done = state.billing().open(request, &m).await?;
    Ok((StatusCode::CREATED, accepted(bill_id, done)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// A service code on the price list.
    pub code: String,
    pub quantity: i64,
    /// Minor units; default: the price list's.
    pub unit_price: Option<i64>,
}

/// Add a line to a draft bill.
#[utoipa::path(post, path = "/v1/bills/{id}/lines", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = LineBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_line(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<LineBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(&state, &id).await?;
    authorize(&who, Action::ManageBill, &Context::patient(patient))?;
    let line_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &line_id.to_string()),
        None,
    );
    let request = LineRequest {
        line_id,
        code: body.code,
        quantity: body.quantity,
        unit_price: body.unit_price,
    };
    let done = state.billing().add_line(bill_id, request, &m).await?;
    Ok((StatusCode::CREATED, accepted(line_id, done)))
}

/// Remove a line from a draft bill.
#[utoipa::path(delete, path = "/v1/bills/{id}/lines/{line_id}", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("line_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn remove_line(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, line_id)): Path<(String, String)>,
) -> Result<Json<Accepted>, ApiError> {
    let line_id = id_of(&line_id)?;
    let command = BillCommand::RemoveLine { line_id };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        None,
    )
    .await
}

/// Issue a draft bill: its lines are final and it can be claimed and paid.
#[utoipa::path(post, path = "/v1/bills/{id}/issue", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn issue_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    let command = BillCommand::Issue {
        today: today(&state),
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        None,
    )
    .await
}

/// Void a bill, for a reason (not one with an open or paid claim).
#[utoipa::path(post, path = "/v1/bills/{id}/void", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn void_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = BillCommand::Void {
        reason: body.reason,
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        Some(&reason),
    )
    .await
}

// --- claims ---------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// One of the patient's coverages, valid on the date of service.
    pub coverage_id: Uuid,
    /// Minor units claimed: at most what the patient still owes.
    pub amount: i64,
}

/// Submit a claim for part or all of an issued bill to a coverage's payer.
#[utoipa::path(post, path = "/v1/bills/{id}/claims", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ClaimBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn submit_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ClaimBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(&state, &id).await?;
    authorize(&who, Action::ManageClaims, &Context::patient(patient))?;
    let claim_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &claim_id.to_string()),
        None,
    );
    let request = ClaimRequest {
        claim_id,
        coverage_id: body.coverage_id,
        amount: body.amount,
        today: today(&state),
    };
    let done = state
        .billing()
        .submit_claim(bill_id, patient, request, &m)
        .await?;
    Ok((StatusCode::CREATED, accepted(claim_id, done)))
}

/// What a payer answered to a claim.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClaimResponseBody {
    /// Accepted for adjudication.
    Accepted,
    /// Rejected, with the payer's reason codes; it may be resubmitted.
    Rejected { reason_codes: Vec<String> },
    /// Decided and paid: `paid` (minor units) equal to the claim is paid,
    /// less is partly paid, zero is denied (both with reason codes).
    Adjudicated {
        paid: i64,
        #[serde(default)]
        reason_codes: Vec<String>,
    },
}

/// Record a payer's response to a claim: accepted, rejected, or adjudicated
/// with what it paid.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/response", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ClaimResponseBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn claim_response(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ClaimResponseBody>,
) -> Result<Json<Accepted>, ApiError> {
    let claim_id = id_of(&claim_id)?;
    let command = match body {
        ClaimResponseBody::Accepted => BillCommand::AcceptClaim { claim_id },
        ClaimResponseBody::Rejected { reason_codes } => BillCommand::RejectClaim {
            claim_id,
            reason_codes,
        },
        ClaimResponseBody::Adjudicated { paid, reason_codes } => BillCommand::Adjudicate {
            claim_id,
            paid,
            reason_codes,
        },
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageClaims),
        command,
        None,
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResubmitBody {
    /// Minor units claimed this time.
    pub amount: i64,
}

/// Resubmit a rejected claim (corrected), for an amount.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/resubmit", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ResubmitBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn resubmit_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ResubmitBody>,
) -> Result<Json<Accepted>, ApiError> {
    let command = BillCommand::ResubmitClaim {
        claim_id: id_of(&claim_id)?,
        amount: body.amount,
        today: today(&state),
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageClaims),
        command,
        None,
    )
    .await
}

/// Give up a rejected claim, for a reason: its amount is the patient's again.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/withdraw", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn withdraw_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = BillCommand::WithdrawClaim {
        claim_id: id_of(&claim_id)?,
        reason: body.reason,
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageClaims),
        command,
        Some(&reason),
    )
    .await
}

// --- money ----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// Minor units: at most what the patient owes.
    pub amount: i64,
    /// How it was paid (card, cash, transfer, ...).
    pub method: String,
}

/// Pay a bill (the patient their own, or staff on their behalf).
#[utoipa::path(post, path = "/v1/bills/{id}/payments", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PaymentBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn pay_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<PaymentBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let payment_id = Uuid::now_v7();
    let command = BillCommand::Pay {
        payment_id,
        amount: body.amount,
        method: body.method,
        today: today(&state),
    };
    money(
        &state,
        (&who, &key),
        (&id, Action::PayBill),
        payment_id,
        command,
        None,
    )
    .await
}

/// Runs a command that moves money under a new id: 201 with that id.
async fn money(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    (raw, action): (&str, Action),
    movement_id: Uuid,
    command: BillCommand,
    reason: Option<&str>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(state, raw).await?;
    authorize(who, action, &Context::patient(patient))?;
    let m = metadata(
        key,
        who,
        (StatusCode::CREATED, &movement_id.to_string()),
        reason,
    );
    let done = state
        .bus()
        .execute::<Bill>(&bill_id.to_string(), command, &(), &m)
        .await?;
    Ok((StatusCode::CREATED, accepted(movement_id, done)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    #[schema(value_type = String, example = "write_off")]
    pub kind: AdjustmentKind,
    /// Minor units: at most what the patient owes.
    pub amount: i64,
    pub reason: String,
}

/// Adjust or write off part of what the patient owes, for a reason.
#[utoipa::path(post, path = "/v1/bills/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AdjustmentBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn adjust_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<AdjustmentBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let adjustment_id = Uuid::now_v7();
    let reason = body.reason.clone();
    let command = BillCommand::Adjust {
        adjustment_id,
        kind: body.kind,
        amount: body.amount,
        reason: body.reason,
    };
    let target = (id.as_str(), Action::AdjustBill);
    money(
        &state,
        (&who, &key),
        target,
        adjustment_id,
        command,
        Some(&reason),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units: at most what the patient paid and was not refunded.
    pub amount: i64,
    pub reason: String,
}

/// Pay money back to the patient, for a reason.
#[utoipa::path(post, path = "/v1/bills/{id}/refunds", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RefundBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn refund_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<RefundBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let refund_id = Uuid::now_v7();
    let reason = body.reason.clone();
    let command = BillCommand::Refund {
        refund_id,
        amount: body.amount,
        reason: body.reason,
        today: today(&state),
    };
    let target = (id.as_str(), Action::AdjustBill);
    money(
        &state,
        (&who, &key),
        target,
        refund_id,
        command,
        Some(&reason),
    )
    .await
}

// --- reads ----------------------------------------------------------------------

/// One bill with its lines, claims, payments, adjustments and refunds.
#[utoipa::path(get, path = "/v1/bills/{id}", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_bill(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<BillDetail>, ApiError> {
    let bill_id = id_of(&id)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let detail = read_model::bill(state.reads(), &bill_id.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    let patient = ids([detail.bill.patient_id.as_str()])?;
    let context = Context {
        patient: patient.first().copied(),
        ..Context::NONE
    };
    authorize(&who, Action::ReadBill, &context)?;
    record(&state, &who, "GET /v1/bills/{id}", patient).await?;
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BillParams {
    /// Bills of this patient.
    pub patient_id: Option<String>,
    /// draft, issued or void.
    pub status: Option<String>,
    /// Bills with a claim to this payer (exact name).
    pub payer: Option<String>,
    /// `YYYY-MM-DD`: date of service at or after.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`: date of service at or before.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillPage {
    pub items: Vec<BillSummary>,
    /// The sums over every bill the filters match, not only this page's.
    pub totals: Totals,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn date_param(field: &str, raw: Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(|d| parse_iso_date(&d).ok_or_else(|| bad_param(field, "a date is YYYY-MM-DD")))
        .transpose()
}

fn status_param(raw: Option<String>) -> Result<Option<BillStatus>, ApiError> {
    raw.map(|s| match s.as_str() {
        "draft" => Ok(BillStatus::Draft),
        "issued" => Ok(BillStatus::Issued),
        "void" => Ok(BillStatus::Void),
        _ => Err(bad_param("status", "status is draft, issued or void")),
    })
    .transpose()
}

fn bill_cursor(raw: Option<String>) -> Result<Option<(i64, String)>, ApiError> {
    raw.map(|c| {
        c.split_once('_')
            .and_then(|(d, id)| {
                Some((
                    d.parse::<i64>().ok()?,
                    Uuid::parse_str(id).ok()?.to_string(),
                ))
            })
            .ok_or_else(|| bad_param("cursor", "cursor is the next_cursor of a previous page"))
    })
    .transpose()
}

/// Runs a bill query, records the read of every patient on the page.
async fn page(
    state: &AppState,
    who: &Principal,
    (min, what): (MinPosition, &'static str),
    query: BillQuery,
) -> Result<Json<BillPage>, ApiError> {
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, totals, more) = read_model::bills(state.reads(), &query).await?;
    let patients = ids(items.iter().map(|b| b.patient_id.as_str()))?;
    // The totals speak of the patient filtered on, even on an empty page.
    let filtered = query
        .patient_id
        .as_deref()
        .map(|p| ids([p]))
        .transpose()?
        .unwrap_or_default();
    record(state, who, what, patients.into_iter().chain(filtered)).await?;
    let next_cursor = more
        .then(|| items.last())
        .flatten()
        .map(|b| format!("{}_{}", read_model::day_number(b.service_date), b.bill_id));
    Ok(Json(BillPage {
        items,
        totals,
        next_cursor,
    }))
}

/// Bills by patient, status, payer and date of service, newest first, with
/// the totals of all that match (minor units, summed as integers).
#[utoipa::path(get, path = "/v1/bills", tag = "billing", security(("bearer" = [])),
    params(BillParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_bills(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<BillParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BillPage>, ApiError> {
    authorize(&who, Action::ListBills, &Context::NONE)?;
    let Query(p) = params.map_err(|_| {
        bad_query("query parameters are patient_id, status, payer, from, to, cursor, limit")
    })?;
    let payer = p
        .payer
        .map(|q| {
            anamnesis_domain::text::parse(&q, anamnesis_domain::text::Lines::Single, 120)
                .map_err(|_| bad_param("payer", "payer is one line of up to 120 characters"))
        })
        .transpose()?;
    let query = BillQuery {
        patient_id: uuid_param("patient_id", p.patient_id)?,
        status: status_param(p.status)?,
        payer,
        from: date_param("from", p.from)?,
        to: date_param("to", p.to)?,
        before: bill_cursor(p.cursor)?,
        limit: page_size(p.limit, 50, 200)?,
    };
    page(&state, &who, (min, "GET /v1/bills"), query).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientBillParams {
    /// draft, issued or void.
    pub status: Option<String>,
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    pub cursor: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// A patient's bills, newest first, with their totals (the patient's own).
#[utoipa::path(get, path = "/v1/patients/{id}/bills", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), PatientBillParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn patient_bills(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<PatientBillParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BillPage>, ApiError> {
    let patient = id_of(&id)?;
    authorize(&who, Action::ReadBill, &Context::patient(patient))?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are status, from, to, cursor, limit"))?;
    let query = BillQuery {
        patient_id: Some(patient.to_string()),
        status: status_param(p.status)?,
        payer: None,
        from: date_param("from", p.from)?,
        to: date_param("to", p.to)?,
        before: bill_cursor(p.cursor)?,
        limit: page_size(p.limit, 50, 200)?,
    };
    page(&state, &who, (min, "GET /v1/patients/{id}/bills"), query).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgingParams {
    /// `YYYY-MM-DD`; default today.
    #[param(value_type = Option<String>, format = Date)]
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Aging {
    pub as_of: NaiveDate,
    pub currency: String,
    /// 0-30, 31-60, 61-90 and 90+ days since issue.
    pub buckets: Vec<AgingBucket>,
}

/// Receivables aging: what is owed on issued bills by days since issue (no
/// patient data: counts and sums only).
#[utoipa::path(get, path = "/v1/billing/aging", tag = "billing", security(("bearer" = [])),
    params(AgingParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Aging), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn aging(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<AgingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Aging>, ApiError> {
    authorize(&who, Action::ListBills, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("the query parameter is as_of"))?;
    let as_of = date_param("as_of", p.as_of)?.unwrap_or_else(|| today(&state));
    min.wait(state.progress(read_model::NAME)).await?;
    let buckets = read_model::aging(state.reads(), as_of).await?;
    Ok(Json(Aging {
        as_of,
        currency: state.billing().currency().to_string(),
        buckets,
    }))
}
