//! Prescriptions and medication administration (ADR 0015): medication
//! orders as commands to the `Medication` aggregate (prescribing through
//! `anamnesis_commands::medication`, which checks the patient's recorded
//! allergies and fences their record), read from the `medications`,
//! `medication_history` and `medication_administrations` read models. The
//! dose schedule is computed from the active orders in the clinic's zone.
//! Every route asks the policy first, with the caller's standing to the
//! patient (`crate::care`); every read is recorded in the access log,
//! marked when made under a break-the-glass grant.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::medication::{prescribe as prescribe_order, Prescription};
use anamnesis_commands::EventMetadata;
use anamnesis_domain::medication::{
    Dose, Frequency, Medication, MedicationCommand, Order, Outcome, Prescriber,
};
use anamnesis_projections::medications::{
    self as read_model, AdministrationView, HistoryView, MedicationView,
};

use super::Accepted;
use crate::access_log::{marked, record_marked};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, instant_param, Body, MinPosition, Path};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

use crate::extract::id_of;

use crate::care::context_marked as context;

/// The audit metadata of a medication command, marked under break-the-glass.
/// A reason goes into it only as the one text rule lets it (no control
/// characters, at most 500 characters): it is shown by history and replay.
fn metadata(
    key: &RequestKey,
    who: &Principal,
    (status, id): (StatusCode, &str),
    glass: bool,
    reason: Option<&str>,
) -> Result<EventMetadata, ApiError> {
    let mut m = marked(Key::metadata(key.0.as_ref(), who, status, id), glass);
    m.reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            anamnesis_domain::text::parse(r, anamnesis_domain::text::Lines::Multi, 500).map_err(
                |e| {
                    let code = match e {
                        anamnesis_domain::text::TextError::TooLong => "too_long",
                        _ => "invalid_characters",
                    };
                    ApiError::invalid(
                        code,
                        Some("reason"),
                        "reason is text of up to 500 characters, without control characters",
                    )
                },
            )?,
        ),
    };
    Ok(m)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescribeBody {
    pub order: Order,
    /// Prescribe over the patient's recorded allergies that conflict, for
    /// this reason (kept in the event).
    pub allergy_override_reason: Option<String>,
}

/// Prescribe a medication (a doctor in the patient's care). Checked against
/// the patient's recorded allergies, by substance and by drug class: a
/// conflict is `422 allergy_conflict` naming the allergies, unless the
/// request gives an override reason. A drug already active for the patient
/// is `409 duplicate_medication`.
#[utoipa::path(post, path = "/v1/patients/{id}/medications", tag = "medications", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PrescribeBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn prescribe(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<PrescribeBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = id_of(&id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, Action::Prescribe, &context)?;
    let medication_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &medication_id.to_string()),
        glass,
        body.allergy_override_reason.as_deref(),
    )
    .map_err(|e| match e {
        ApiError::Unprocessable { code, detail, .. } => ApiError::Unprocessable {
            code,
            field: Some("allergy_override_reason".into()),
            detail,
        },
        other => other,
    })?;
    let request = Prescription {
        patient_id: patient,
        prescriber: who.user_id,
        order: body.order,
        override_reason: body.allergy_override_reason,
    };
    let zone = state.scheduler().zone();
    let done =
        match prescribe_order(state.bus(), medication_id, request, &m, (Utc::now(), zone)).await {
            Ok(done) => done,
            Err(e) => {
                let refused = ApiError::from(e);
                // The refusal names the patient's allergies: a read of their record.
                if matches!(refused, ApiError::AllergyConflict { .. }) {
                    record_marked(
                        &state,
                        &who,
                        "POST /v1/patients/{id}/medications",
                        [patient],
                        glass,
                    )
                    .await?;
                }
                return Err(refused);
            }
        };
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: medication_id.to_string(),
            position: done.position,
        }),
    ))
}

/// A medication as the write side knows it, with the context of `who`
/// acting on it.
async fn loaded(
    state: &AppState,
    who: &Principal,
    medication_id: &str,
) -> Result<(Medication, Prescriber, Context, bool), ApiError> {
    let id = id_of(medication_id)?.to_string();
    let (medication, _, _) = state
        .bus()
        .load::<Medication>(&id)
        .await
        .map_err(ApiError::from)?;
    let origin = medication.origin().ok_or(ApiError::NotFound)?;
    let (context, glass) = context(state, who, origin.patient_id).await?;
    Ok((medication, origin, context, glass))
}

/// Runs `command` on medication `medication_id` once `action` is allowed.
async fn run(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    (medication_id, action): (&str, Action),
    command: MedicationCommand,
    (status, reason): (StatusCode, Option<&str>),
) -> Result<Json<Accepted>, ApiError> {
    let (_, _, context, glass) = loaded(state, who, medication_id).await?;
    authorize(who, action, &context)?;
    let id = id_of(medication_id)?.to_string();
    let m = metadata(key, who, (status, &id), glass, reason)?;
    let done = state
        .bus()
        .execute::<Medication>(&id, command, &(), &m)
        .await?;
    Ok(Json(Accepted {
        id,
        position: done.position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseBody {
    pub dose: Dose,
    /// A new frequency; absent keeps the one in effect.
    pub frequency: Option<Frequency>,
    /// Why the dose changes.
    pub reason: String,
}

/// Change a medication's dose (and frequency): a new version, with a
/// reason (a doctor in the patient's care).
#[utoipa::path(post, path = "/v1/medications/{medication_id}/dose", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path)), request_body = DoseBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn change_dose(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(medication_id): Path<String>,
    Body(body): Body<DoseBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = MedicationCommand::ChangeDose {
        dose: body.dose,
        frequency: body.frequency,
        reason: body.reason,
    };
    run(
        &state,
        (&who, &key),
        (&medication_id, Action::ChangeMedication),
        command,
        (StatusCode::OK, Some(&reason)),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// `discontinued` (stopped early, with a reason) or `completed`.
    pub outcome: StopOutcome,
    /// Why it is discontinued (required for `discontinued`).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopOutcome {
    Discontinued,
    Completed,
}

/// End a medication: discontinue it (with a reason) or complete it (a
/// doctor in the patient's care). It leaves the active list.
#[utoipa::path(post, path = "/v1/medications/{medication_id}/stop", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path)), request_body = StopBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn stop(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(medication_id): Path<String>,
    Body(body): Body<StopBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let now = Utc::now();
    let command = match body.outcome {
        StopOutcome::Discontinued => MedicationCommand::Discontinue {
            reason: body.reason.unwrap_or_default(),
            now,
        },
        StopOutcome::Completed => MedicationCommand::Complete { now },
    };
    run(
        &state,
        (&who, &key),
        (&medication_id, Action::ChangeMedication),
        command,
        (StatusCode::OK, reason.as_deref()),
    )
    .await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefillRequestBody {
    /// A word for the doctor.
    pub note: Option<String>,
}

/// Ask for a refill (the patient, of their own medication). One request
/// waits at a time; the answer's `id` is the medication, and the request's
/// id is in the medication's `pending_refill`.
#[utoipa::path(post, path = "/v1/medications/{medication_id}/refill-requests", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path)), request_body = RefillRequestBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn request_refill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(medication_id): Path<String>,
    Body(body): Body<RefillRequestBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let command = MedicationCommand::RequestRefill {
        request_id: Uuid::now_v7(),
        note: body.note,
    };
    let done = run(
        &state,
        (&who, &key),
        (&medication_id, Action::RequestRefill),
        command,
        (StatusCode::CREATED, None),
    )
    .await?;
    Ok((StatusCode::CREATED, done))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefillDecisionBody {
    /// The waiting request (the medication's `pending_refill`).
    pub request_id: Uuid,
    pub approve: bool,
    /// Why it is denied (required when not approved).
    pub reason: Option<String>,
}

/// Approve (one authorized refill is used) or deny a waiting refill
/// request (a doctor in the patient's care).
#[utoipa::path(post, path = "/v1/medications/{medication_id}/refill-decision", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path)), request_body = RefillDecisionBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn decide_refill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(medication_id): Path<String>,
    Body(body): Body<RefillDecisionBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = if body.approve {
        MedicationCommand::ApproveRefill {
            request_id: body.request_id,
        }
    } else {
        MedicationCommand::DenyRefill {
            request_id: body.request_id,
            reason: body.reason.unwrap_or_default(),
        }
    };
    run(
        &state,
        (&who, &key),
        (&medication_id, Action::ChangeMedication),
        command,
        (StatusCode::OK, reason.as_deref()),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministrationBody {
    pub outcome: Outcome,
    /// When (RFC 3339): within the last 7 days, not in the future.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// Why a dose was held or refused (required then).
    pub note: Option<String>,
}

/// Record a dose given, held or refused (a nurse or doctor in the
/// patient's care).
#[utoipa::path(post, path = "/v1/medications/{medication_id}/administrations", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path)), request_body = AdministrationBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn administer(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(medication_id): Path<String>,
    Body(body): Body<AdministrationBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let command = MedicationCommand::Administer {
        administration_id: Uuid::now_v7(),
        outcome: body.outcome,
        at: body.at,
        note: body.note,
        now: Utc::now(),
    };
    let done = run(
        &state,
        (&who, &key),
        (&medication_id, Action::RecordAdministration),
        command,
        (StatusCode::CREATED, None),
    )
    .await?;
    Ok((StatusCode::CREATED, done))
}

// --- reads ---------------------------------------------------------------------

/// Whether `who` may read `patient`'s medications, and under break-the-glass.
async fn may_read(state: &AppState, who: &Principal, patient: Uuid) -> Result<bool, ApiError> {
    let (context, glass) = context(state, who, patient).await?;
    authorize(who, Action::ReadMedications, &context)?;
    Ok(glass)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active` (the active medication list) or `all` (the default).
    pub status: Option<String>,
}

/// A patient's medications: active first, then ended ones.
#[utoipa::path(get, path = "/v1/patients/{id}/medications", tag = "medications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ListParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Vec<MedicationView>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<MedicationView>>, ApiError> {
    let patient = id_of(&id)?;
    let glass = may_read(&state, &who, patient).await?;
    let Query(p) = params.map_err(|_| bad_query("the query parameter is status"))?;
    let active_only = match p.status.as_deref() {
        None | Some("all") => false,
        Some("active") => true,
        Some(_) => return Err(bad_param("status", "status is active or all")),
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let items = read_model::list(state.reads(), &patient.to_string(), active_only).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/patients/{id}/medications",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(items))
}

/// A medication, once the caller may read it.
async fn readable(
    state: &AppState,
    who: &Principal,
    min: MinPosition,
    medication_id: &str,
) -> Result<(MedicationView, Uuid, bool), ApiError> {
    let id = id_of(medication_id)?.to_string();
    min.wait(state.progress(read_model::NAME)).await?;
    let view = read_model::view(state.reads(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let patient = Uuid::parse_str(&view.patient_id)
        .map_err(|_| ApiError::Internal("a medication names a patient that is no UUID".into()))?;
    let glass = may_read(state, who, patient).await?;
    Ok((view, patient, glass))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MedicationDetail {
    pub medication: MedicationView,
    /// Doses given, held or refused, newest first.
    pub administrations: Vec<AdministrationView>,
}

/// One medication as now in effect, with its administrations.
#[utoipa::path(get, path = "/v1/medications/{medication_id}", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = MedicationDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_medication(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(medication_id): Path<String>,
) -> Result<Json<MedicationDetail>, ApiError> {
    let (medication, patient, glass) = readable(&state, &who, min, &medication_id).await?;
    let administrations = read_model::administrations(state.reads(), &medication.id).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/medications/{medication_id}",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(MedicationDetail {
        medication,
        administrations,
    }))
}

/// A medication's history: every event (prescribed, each dose change,
/// refills, administrations, its end), with who and when, oldest first.
#[utoipa::path(get, path = "/v1/medications/{medication_id}/history", tag = "medications", security(("bearer" = [])),
    params(("medication_id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Vec<HistoryView>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn history(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(medication_id): Path<String>,
) -> Result<Json<Vec<HistoryView>>, ApiError> {
    let (medication, patient, glass) = readable(&state, &who, min, &medication_id).await?;
    let lines = read_model::history_of(state.reads(), &medication.id).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/medications/{medication_id}/history",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(lines))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DoseParams {
    /// RFC 3339; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; default a day after `from`, at most 14 days after it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

/// A dose due.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DueDose {
    pub medication_id: String,
    /// The drug's name.
    pub medication: String,
    #[schema(value_type = Object)]
    pub dose: Dose,
    /// When, with the clinic's offset.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<chrono::FixedOffset>,
}

/// The longest window one dose-schedule query covers.
const DOSE_WINDOW_DAYS: i64 = 14;

/// A patient's next doses: every dose of their active medications due in
/// the window, in time order, in the clinic's time zone.
#[utoipa::path(get, path = "/v1/patients/{id}/doses", tag = "medications", security(("bearer" = [])),
    params(("id" = Uuid, Path), DoseParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Vec<DueDose>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn doses(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<DoseParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DueDose>>, ApiError> {
    let patient = id_of(&id)?;
    let glass = may_read(&state, &who, patient).await?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are from and to"))?;
    let from = instant_param("from", p.from)?.unwrap_or_else(Utc::now);
    let to = instant_param("to", p.to)?.unwrap_or(from + Duration::days(1));
    if to <= from || to - from > Duration::days(DOSE_WINDOW_DAYS) {
        return Err(bad_param(
            "to",
            "to must be after from, and at most 14 days after it",
        ));
    }
    min.wait(state.progress(read_model::NAME)).await?;
    let orders = read_model::active_orders(state.reads(), &patient.to_string()).await?;
    let zone = state.scheduler().zone();
    let mut due = Vec::new();
    for (medication_id, order) in &orders {
        for at in order.doses(zone, from, to) {
            due.push((at, medication_id, order));
        }
    }
    due.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    record_marked(
        &state,
        &who,
        "GET /v1/patients/{id}/doses",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(
        due.into_iter()
            .map(|(at, medication_id, order)| DueDose {
                medication_id: medication_id.clone(),
                medication: order.medication.name.clone(),
                dose: order.dose,
                at: zone.local(at),
            })
            .collect(),
    ))
}
