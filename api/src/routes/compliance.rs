//! Compliance: a patient's history and their record as of any moment
//! (`anamnesis_replay`), for the compliance role. Both are reads of patient
//! data, attributed like every other.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_domain::user::Role;
use anamnesis_projections::patients::PatientView;
use anamnesis_replay::as_of::{self, Point};
use anamnesis_replay::history::{self, Entry, Kind};
use anamnesis_replay::ReplayError;

use super::schedule::{appointment_view, AppointmentView};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, instant_param, Body, Path};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// RFC 3339: from this time (inclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: up to this time (inclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `all` (default), `changes` (no access records) or `reads` (access records only).
    pub kind: Option<String>,
}

/// One event of a patient's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub position: i64,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub reason: Option<String>,
    pub break_glass: bool,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    /// What changed: field, before, after.
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<anamnesis_replay::history::Change>,
    /// The event's content was erased with its patient: only its metadata
    /// remains.
    pub erased: bool,
}

impl From<Entry> for HistoryEntry {
    fn from(e: Entry) -> Self {
        Self {
            position: e.position,
            recorded_at: e.recorded_at,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            reason: e.reason,
            break_glass: e.break_glass,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            event_type: e.event_type,
            changes: e.changes,
            erased: e.erased,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub patient_id: String,
    pub items: Vec<HistoryEntry>,
}

/// Every event about a patient, in order: who, role, when, why, what changed
/// (compliance).
#[utoipa::path(get, path = "/v1/patients/{id}/history", tag = "compliance", security(("bearer" = [])),
    params(("id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = History), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patient_history(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    authorize(&who, Action::ReadHistory, &Context::patient(id))?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are from and to (RFC 3339), kind"))?;
    let (from, to) = (instant_param("from", p.from)?, instant_param("to", p.to)?);
    let kind = match p.kind.as_deref() {
        None => Kind::All,
        Some(k) => {
            Kind::parse(k).ok_or_else(|| bad_param("kind", "kind is all, changes or reads"))?
        }
    };
    if !registered(&state, id).await? {
        return Err(ApiError::NotFound);
    }
    let items = history::history(&state.log().reader(), id, from, to).await?;
    crate::access_log::record(&state, &who, "GET /v1/patients/{id}/history", [id]).await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient history read");
    Ok(Json(History {
        patient_id: id.to_string(),
        items: items
            .into_iter()
            .filter(|e| kind.admits(e))
            .map(HistoryEntry::from)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfParams {
    /// RFC 3339: the record as known at this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Or: as known at this log position.
    #[param(value_type = Option<i64>)]
    pub position: Option<String>,
}

/// A patient's record as it was known at a moment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordAsOf {
    /// The last event about the patient included.
    pub position: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<DateTime<Utc>>,
    /// Demographics, allergies, history; absent before registration.
    pub patient: Option<PatientView>,
    pub appointments: Vec<AppointmentView>,
    /// Each chart entry's then-current version, newest first.
    pub chart: Vec<anamnesis_projections::chart::EntryView>,
    /// The care team by assignment then.
    pub care_team: Vec<anamnesis_projections::chart::MemberView>,
    /// Every medication order, as then in effect.
    pub medications: Vec<anamnesis_projections::medications::MedicationView>,
    /// Message threads about the patient, with their messages then.
    pub threads: Vec<anamnesis_projections::messaging::ThreadRecord>,
    /// Every bill with its balance then, newest date of service first.
    pub bills: Vec<anamnesis_projections::billing::BillSummary>,
    /// The coverage on record then.
    pub coverage: Vec<anamnesis_projections::billing::CoverageView>,
}

/// A patient's whole record as it was known at a time or log position,
/// folded from the log by the live projectors (compliance).
#[utoipa::path(get, path = "/v1/patients/{id}/as-of", tag = "compliance", security(("bearer" = [])),
    params(("id" = Uuid, Path), AsOfParams),
    responses((status = 200, body = RecordAsOf), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patient_as_of(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    params: Result<Query<AsOfParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RecordAsOf>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    authorize(&who, Action::ReadHistory, &Context::patient(id))?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are at (RFC 3339) or position"))?;
    let point = match (instant_param("at", p.at)?, p.position) {
        (Some(t), None) => Point::Time(t),
        (None, Some(n)) => Point::Position(
            n.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad_param("position", "position is a log position (0 or more)"))?,
        ),
        _ => return Err(bad_query("give exactly one of at (RFC 3339) and position")),
    };
    if !registered(&state, id).await? {
        return Err(ApiError::NotFound);
    }
    let record = as_of::as_of(&state.log().reader(), id, point).await?;
    crate::access_log::record(&state, &who, "GET /v1/patients/{id}/as-of", [id]).await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient record as-of read");
    let appointments = record
        .appointments
        .into_iter()
        .map(|row| appointment_view(&state, row, true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(RecordAsOf {
        position: record.position,
        recorded_at: record.recorded_at,
        patient: record.patient,
        appointments,
        chart: record.chart,
        care_team: record.care_team,
        medications: record.medications,
        threads: record.threads,
        bills: record.bills,
        coverage: record.coverage,
    }))
}

/// A patient's export: the whole record as it stands, then its history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Export {
    /// `anamnesis.export.v1`.
    pub format: String,
    pub patient_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub exported_at: DateTime<Utc>,
    /// Everything on record now, as `GET /v1/patients/{id}/as-of` answers it
    /// (message threads about a patient always have the patient in them).
    pub record: RecordAsOf,
    /// Every event about the patient, oldest first: who, role, when, why,
    /// what changed.
    pub history: Vec<HistoryEntry>,
}

/// Everything about a patient, as JSON, for them to take elsewhere (the
/// patient themself, or compliance): streamed, the history one entry at a
/// time after the record.
#[utoipa::path(get, path = "/v1/patients/{id}/export", tag = "compliance", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Export), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn export_patient(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    authorize(&who, Action::ExportRecord, &Context::patient(id))?;
    let reader = state.log().reader();
    let record = as_of::as_of(&reader, id, Point::Position(i64::MAX)).await?;
    if record.patient.is_none() {
        return Err(ApiError::NotFound);
    }
    let mut history = history::history(&reader, id, None, None).await?;
    let mut record = record;
    if who.role == Role::Patient {
        own_view(&mut record, &mut history);
    }
    crate::access_log::record(&state, &who, "GET /v1/patients/{id}/export", [id]).await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient record exported");
    let appointments = record
        .appointments
        .into_iter()
        .map(|row| appointment_view(&state, row, true))
        .collect::<Result<Vec<_>, _>>()?;
    let record = RecordAsOf {
        position: record.position,
        recorded_at: record.recorded_at,
        patient: record.patient,
        appointments,
        chart: record.chart,
        care_team: record.care_team,
        medications: record.medications,
        threads: record.threads,
        bills: record.bills,
        coverage: record.coverage,
    };
    // The head, then the history's entries one chunk each, then the close:
    // a long history goes out as it is written, not as one buffer.
    let head = serde_json::json!({
        "format": "anamnesis.export.v1",
        "patient_id": id.to_string(),
        "exported_at": Utc::now(),
        "record": record,
    });
    let mut opening = serde_json::to_vec(&head).map_err(|e| ApiError::Internal(e.to_string()))?;
    opening.pop(); // the closing brace: the history follows
    opening.extend_from_slice(b",\"history\":[");
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(opening)];
    for (n, entry) in history.into_iter().enumerate() {
        let mut chunk = if n == 0 { Vec::new() } else { b",".to_vec() };
        serde_json::to_writer(&mut chunk, &HistoryEntry::from(entry))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        chunks.push(Ok(chunk));
    }
    chunks.push(Ok(b"]}".to_vec()));
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header(
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"record.json\"",
        )
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Whether the log holds a record for patient `id` (registered, whether
/// erased since or not). History and as-of of anyone else is 404 and
/// records no read: such reads once answered 200, each leaving an access
/// record that named the made-up patient (after which even the unfiltered
/// history "found" them).
async fn registered(state: &AppState, id: Uuid) -> Result<bool, ApiError> {
    let stream = state
        .log()
        .reader()
        .read_stream("patient", &id.to_string(), 0)
        .await?;
    Ok(!stream.is_empty())
}

/// The patient's own export shows what the API shows them: their signed
/// (or final) chart entries, and of those the events from signing on (a
/// draft's text, and its revisions, are the author's until signed); not
/// the care team (compliance's and the team's to read). It once held
/// every draft and the care team.
fn own_view(record: &mut as_of::AsOf, history: &mut Vec<Entry>) {
    record
        .chart
        .retain(|e| super::chart::shown_to_patient(&e.status));
    record.care_team.clear();
    let visible: std::collections::BTreeSet<&str> =
        record.chart.iter().map(|e| e.id.as_str()).collect();
    history.retain(|h| match h.aggregate_type.as_str() {
        "chart_entry" => {
            visible.contains(h.aggregate_id.as_str())
                && !matches!(
                    h.event_type.as_str(),
                    "chart_entry.drafted" | "chart_entry.revised"
                )
        }
        "care_team" => false,
        _ => true,
    });
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// The legal ground for the erasure (up to 500 characters): kept in the
    /// log with the erasure, in the clear.
    pub reason: String,
}

/// What an erasure did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub patient_id: String,
    /// The erasure event's position: read models have removed the patient
    /// once they reach it (`X-Min-Position`).
    pub position: i64,
}

/// Erase a patient (compliance, with a legal reason): their data key is
/// destroyed with the `patient.erased` event, every earlier event about them
/// reads as erased from then on, and every read model, Redis and analytics
/// drop them (de-identified counts stay). Refused with `409
/// erasure_impossible` when events about them are stored unencrypted.
#[utoipa::path(post, path = "/v1/patients/{id}/erasure", tag = "compliance", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ErasureBody,
    responses((status = 200, body = Erased), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 410, body = Problem),
              (status = 422, body = Problem)))]
pub async fn erase_patient(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Body(body): Body<ErasureBody>,
) -> Result<Json<Erased>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    authorize(&who, Action::ErasePatient, &Context::patient(id))?;
    let reason =
        anamnesis_domain::text::parse(&body.reason, anamnesis_domain::text::Lines::Multi, 500)
            .map_err(|e| {
                let code = match e {
                    anamnesis_domain::text::TextError::Empty => "empty_field",
                    anamnesis_domain::text::TextError::TooLong => "too_long",
                    anamnesis_domain::text::TextError::InvalidCharacters => "invalid_characters",
                };
                ApiError::invalid(
            code,
            Some("reason"),
            "reason (the legal ground) is text of 1 to 500 characters, without control characters",
        )
            })?;
    let mut metadata = anamnesis_commands::EventMetadata::by(who.actor());
    metadata.reason = Some(reason);
    let done = anamnesis_commands::erasure::erase(state.bus(), id, &metadata)
        .await
        .map_err(erasure_problem)?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient erased");
    Ok(Json(Erased {
        patient_id: id.to_string(),
        position: done.position,
    }))
}

fn erasure_problem(e: anamnesis_commands::erasure::ErasureError) -> ApiError {
    use anamnesis_commands::erasure::ErasureError as E;
    match e {
        E::InTheClear(_) | E::NotEncrypting => ApiError::Conflict {
            code: "erasure_impossible",
            detail: e.to_string(),
        },
        E::Command(c) => c.into(),
        E::Store(s) => s.into(),
    }
}
