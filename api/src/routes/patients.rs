//! The patients slice: commands to the Patient aggregate, queries to the
//! `patients` read model. Every route asks the policy first.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_domain::patient::{
    AddressInput, DemographicsInput, Patient, PatientCommand, Severity, Sex,
};
use anamnesis_projections::patients::{self as read_model, PatientView, Resume, Search};

use anamnesis_commands::dispatch::Decision;
use anamnesis_domain::chart::{CareCommand, CareTeam};
use anamnesis_domain::user::Role;

use super::Accepted;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{
    bad_param, iso_date, iso_date_opt, page_size, parse_iso_date, Body, MinPosition, Path,
};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context, View};
use crate::state::AppState;

/// A patient's demographics, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    pub family_name: String,
    pub given_name: String,
    /// `YYYY-MM-DD`, not in the future.
    #[serde(deserialize_with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// female, male, other or unknown.
    #[schema(value_type = Option<String>)]
    pub sex: Option<Sex>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<AddressBody>,
    #[serde(default)]
    pub identifiers: Vec<IdentifierBody>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    pub line: String,
    pub city: String,
    pub postal_code: String,
    pub region: Option<String>,
    pub country: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierBody {
    /// `mrn`, an insurer's code, ...
    pub system: String,
    pub value: String,
}

impl PatientInput {
    pub fn into_command(self) -> DemographicsInput {
        DemographicsInput {
            family_name: self.family_name,
            given_name: self.given_name,
            birth_date: self.birth_date,
            sex: self.sex,
            phone: self.phone,
            email: self.email,
            address: self.address.map(|a| AddressInput {
                line: a.line,
                city: a.city,
                postal_code: a.postal_code,
                region: a.region,
                country: a.country,
            }),
            identifiers: self
                .identifiers
                .into_iter()
                .map(|i| (i.system, i.value))
                .collect(),
        }
    }
}

fn patient_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Runs `command` on patient `id` as `who`; a request's idempotency key
/// goes with it, recorded as answering `status` with `result_id`.
async fn run(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    id: Uuid,
    command: PatientCommand,
    (status, result_id): (StatusCode, Uuid),
) -> Result<i64, ApiError> {
    run_marked(state, (who, key), id, command, (status, result_id), false).await
}

/// [`run`], marked as written under a break-the-glass grant when `glass`.
async fn run_marked(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    id: Uuid,
    command: PatientCommand,
    (status, result_id): (StatusCode, Uuid),
    glass: bool,
) -> Result<i64, ApiError> {
    let metadata = crate::access_log::marked(
        Key::metadata(key.0.as_ref(), who, status, &result_id.to_string()),
        glass,
    );
    let done = state
        .bus()
        .execute::<Patient>(&id.to_string(), command, &(), &metadata)
        .await?;
    Ok(done.position)
}

/// Register a patient (front desk, doctors).
#[utoipa::path(post, path = "/v1/patients", tag = "patients", security(("bearer" = [])),
    request_body = PatientInput,
    responses((status = 201, body = Accepted), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn register_patient(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(input): Body<PatientInput>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::RegisterPatient, &Context::NONE)?;
    let id = Uuid::now_v7();
    let command = PatientCommand::Register {
        demographics: input.into_command(),
        user_id: None,
        today: today(),
    };
    let metadata = Key::metadata(key.0.as_ref(), &who, StatusCode::CREATED, &id.to_string());
    let position = if who.role == Role::Doctor {
        register_in_care(&state, &who, id, command, metadata).await?
    } else {
        // A fresh id: no stream to read (`create` falls back if there is one).
        state
            .bus()
            .create::<Patient>(&id.to_string(), command, &(), &metadata)
            .await?
            .position
    };
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: id.to_string(),
            position,
        }),
    ))
}

/// Registers a patient and puts the registering doctor on their care team,
/// in one commit (ADR 0013): the doctor who registers a patient is the one
/// about to treat them.
async fn register_in_care(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    command: PatientCommand,
    metadata: anamnesis_commands::EventMetadata,
) -> Result<i64, ApiError> {
    let stream = id.to_string();
    let bus = state.bus();
    let patient = bus
        .decide_from((Patient::default(), 0, 0), &stream, command, &(), &metadata)
        .await?;
    let join = CareCommand::Add {
        user_id: who.user_id,
        clinician: true,
        reason: "registered the patient".into(),
    };
    let mut care_metadata = metadata.clone();
    care_metadata.idempotency = None;
    let care = bus
        .decide_from(
            (CareTeam::default(), 0, 0),
            &stream,
            join,
            &(),
            &care_metadata,
        )
        .await?;
    let (Decision::Append(patient), Decision::Append(care)) = (patient, care) else {
        return Err(ApiError::Internal("a registration decided nothing".into()));
    };
    let appended = bus
        .log()
        .append_atomic(vec![*patient, *care])
        .await
        .map_err(|e| {
            ApiError::from(anamnesis_commands::dispatch::CommandError::<
                anamnesis_domain::patient::PatientError,
            >::from_append(e))
        })?;
    appended
        .last()
        .map(|a| a.last_position)
        .ok_or_else(|| ApiError::Internal("an append answered nothing".into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Prefix of the family or given name, any case.
    pub name: Option<String>,
    /// `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub birth_date: Option<String>,
    /// An identifier's value (MRN, insurance number).
    pub identifier: Option<String>,
    /// The `next_cursor` of a previous page of the same search: opaque.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// A free-text query value, held to the same rules as stored text.
fn query_text(value: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    use anamnesis_domain::text::{self, Lines, TextError};
    value
        .map(|v| {
            text::parse(&v, Lines::Single, 200).map_err(|e| match e {
                TextError::Empty => ApiError::BadRequest {
                    code: "empty_field",
                    field: Some(field.to_owned()),
                    detail: format!("{field} must not be empty"),
                },
                TextError::TooLong => bad_param(field, "too long"),
                TextError::InvalidCharacters => {
                    bad_param(field, "contains control or formatting characters")
                }
            })
        })
        .transpose()
}

impl SearchParams {
    fn parse(self) -> Result<Search, ApiError> {
        let limit = page_size(self.limit, 20, 100)?;
        let birth_date = self
            .birth_date
            .map(|d| {
                parse_iso_date(&d)
                    .ok_or_else(|| bad_param("birth_date", "birth_date is YYYY-MM-DD"))
            })
            .transpose()?;
        let name = query_text(self.name, "name")?;
        // A name search's cursor names its phase (family or given name); a
        // cursor from the other kind of search is refused, not misread.
        let after = self
            .cursor
            .map(|c| {
                Resume::parse(&c, name.is_some()).ok_or_else(|| {
                    bad_param("cursor", "cursor is the next_cursor of a previous page")
                })
            })
            .transpose()?;
        Ok(Search {
            name,
            birth_date,
            identifier: query_text(self.identifier, "identifier")?,
            after,
            limit,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatientPage {
    pub items: Vec<PatientView>,
    /// Opaque: pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn shown(mut view: PatientView, as_seen: View) -> PatientView {
    if as_seen == View::Demographics {
        view.allergies = None;
        view.conditions = None;
    }
    view
}

/// The profile as one read: with the link to the chart for those who may
/// read it (ADR 0013).
fn profile(view: PatientView, as_seen: View, who: &Principal, context: &Context) -> PatientView {
    let mut view = shown(view, as_seen);
    if authorize(who, Action::ReadChart, context).is_ok() {
        view.chart = Some(format!("/v1/patients/{}/chart", view.id));
    }
    view
}

/// Search patients by name prefix, birth date or identifier. A name search
/// lists the family name matches, then the given-name-only matches, each
/// alphabetically; a search without a name lists by registration.
#[utoipa::path(get, path = "/v1/patients", tag = "patients", security(("bearer" = [])),
    params(SearchParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = PatientPage), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn search_patients(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PatientPage>, ApiError> {
    let view = authorize(&who, Action::SearchPatients, &Context::NONE)?;
    let Query(params) = params.map_err(|_| ApiError::BadRequest {
        code: "invalid_query",
        field: None,
        detail: "query parameters are name, birth_date (YYYY-MM-DD), identifier, cursor, limit"
            .into(),
    })?;
    let search = params.parse()?;
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, next) = read_model::search(state.reads(), &search).await?;
    let read = crate::access_log::ids(items.iter().map(|p| p.id.as_str()))?;
    crate::access_log::record(&state, &who, "GET /v1/patients", read).await?;
    let next_cursor = next.map(|resume| resume.to_string());
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), results = items.len(), "patient search");
    // Doctors and nurses see the clinical lists of the patients in their
    // care; the others' demographics only (ADR 0013).
    let in_care: Vec<String> = if matches!(who.role, Role::Doctor | Role::Nurse) {
        let ids: Vec<String> = items.iter().map(|p| p.id.clone()).collect();
        let since = (Utc::now() - state.clinical().care_after_visit).timestamp();
        anamnesis_projections::chart::in_care(state.reads(), &who.user_id.to_string(), &ids, since)
            .await?
    } else {
        Vec::new()
    };
    Ok(Json(PatientPage {
        items: items
            .into_iter()
            .map(|p| {
                let as_seen = if in_care.contains(&p.id) {
                    View::Clinical
                } else {
                    view
                };
                shown(p, as_seen)
            })
            .collect(),
        next_cursor,
    }))
}

/// One patient's profile: demographics, and for clinical roles allergies and history.
#[utoipa::path(get, path = "/v1/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = PatientView), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_patient(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<PatientView>, ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    let view = authorize(&who, Action::ReadPatient, &context)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let patient = read_model::get(state.reads(), &id.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    let glass = context.care == crate::policy::Care::Glass;
    crate::access_log::record_marked(&state, &who, "GET /v1/patients/{id}", [id], glass).await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient read");
    Ok(Json(profile(patient, view, &who, &context)))
}

/// Replace a patient's demographics.
#[utoipa::path(put, path = "/v1/patients/{id}/demographics", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PatientInput,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_demographics(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(input): Body<PatientInput>,
) -> Result<Json<Accepted>, ApiError> {
    let id = patient_id(&id)?;
    authorize(&who, Action::UpdateDemographics, &Context::patient(id))?;
    let command = PatientCommand::UpdateDemographics {
        demographics: input.into_command(),
        today: today(),
    };
    let position = run(&state, (&who, &key), id, command, (StatusCode::OK, id)).await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllergyBody {
    pub substance: String,
    pub reaction: String,
    /// mild, moderate, severe or life_threatening.
    #[schema(value_type = String)]
    pub severity: Severity,
}

/// Record an allergy.
#[utoipa::path(post, path = "/v1/patients/{id}/allergies", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AllergyBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn record_allergy(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<AllergyBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    authorize(&who, Action::RecordAllergy, &context)?;
    let allergy_id = Uuid::now_v7();
    let command = PatientCommand::RecordAllergy {
        allergy_id,
        substance: body.substance,
        reaction: body.reaction,
        severity: body.severity,
    };
    let answer = (StatusCode::CREATED, allergy_id);
    let glass = context.care == crate::policy::Care::Glass;
    let position = run_marked(&state, (&who, &key), id, command, answer, glass).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: allergy_id.to_string(),
            position,
        }),
    ))
}

/// Remove an allergy (entered in error, or refuted).
#[utoipa::path(delete, path = "/v1/patients/{id}/allergies/{allergy_id}", tag = "patients",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("allergy_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_allergy(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, allergy_id)): Path<(String, String)>,
) -> Result<Json<Accepted>, ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    authorize(&who, Action::RemoveAllergy, &context)?;
    let allergy_id = patient_id(&allergy_id)?;
    let command = PatientCommand::RemoveAllergy { allergy_id };
    let answer = (StatusCode::OK, allergy_id);
    let glass = context.care == crate::policy::Care::Glass;
    let position = run_marked(&state, (&who, &key), id, command, answer, glass).await?;
    Ok(Json(Accepted {
        id: allergy_id.to_string(),
        position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionBody {
    /// ICD-10 or SNOMED CT code.
    pub code: Option<String>,
    pub description: String,
    /// `YYYY-MM-DD`, not before birth, not in the future.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub onset: Option<NaiveDate>,
}

/// Add a condition to the medical history.
#[utoipa::path(post, path = "/v1/patients/{id}/conditions", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ConditionBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_condition(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ConditionBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    authorize(&who, Action::ManageConditions, &context)?;
    let condition_id = Uuid::now_v7();
    let command = PatientCommand::AddCondition {
        condition_id,
        code: body.code,
        description: body.description,
        onset: body.onset,
        today: today(),
    };
    let answer = (StatusCode::CREATED, condition_id);
    let glass = context.care == crate::policy::Care::Glass;
    let position = run_marked(&state, (&who, &key), id, command, answer, glass).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: condition_id.to_string(),
            position,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `YYYY-MM-DD`, not before birth or onset, not in the future.
    #[serde(deserialize_with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub resolved_on: NaiveDate,
}

/// Mark a condition resolved.
#[utoipa::path(post, path = "/v1/patients/{id}/conditions/{condition_id}/resolve", tag = "patients",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("condition_id" = Uuid, Path)),
    request_body = ResolveBody,
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn resolve_condition(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, condition_id)): Path<(String, String)>,
    Body(body): Body<ResolveBody>,
) -> Result<Json<Accepted>, ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    authorize(&who, Action::ManageConditions, &context)?;
    let condition_id = patient_id(&condition_id)?;
    let command = PatientCommand::ResolveCondition {
        condition_id,
        resolved_on: body.resolved_on,
        today: today(),
    };
    let answer = (StatusCode::OK, condition_id);
    let glass = context.care == crate::policy::Care::Glass;
    let position = run_marked(&state, (&who, &key), id, command, answer, glass).await?;
    Ok(Json(Accepted {
        id: condition_id.to_string(),
        position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeceasedBody {
    /// `YYYY-MM-DD`, not before birth, not in the future.
    #[serde(deserialize_with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub deceased_on: NaiveDate,
}

/// Record the patient's death.
#[utoipa::path(post, path = "/v1/patients/{id}/deceased", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = DeceasedBody,
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn mark_deceased(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<DeceasedBody>,
) -> Result<Json<Accepted>, ApiError> {
    let id = patient_id(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    authorize(&who, Action::MarkDeceased, &context)?;
    let command = PatientCommand::MarkDeceased {
        deceased_on: body.deceased_on,
        today: today(),
    };
    let glass = context.care == crate::policy::Care::Glass;
    let position = run_marked(
        &state,
        (&who, &key),
        id,
        command,
        (StatusCode::OK, id),
        glass,
    )
    .await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position,
    }))
}
