//! The clinical record (ADR 0013): chart entries written as commands to the
//! `ChartEntry` aggregate, read from the `chart_entries` and
//! `chart_versions` read models; the care team and break-the-glass grants.
//! Every route asks the policy first, with the caller's standing to the
//! patient (`crate::care`); every read of chart data is recorded, marked
//! when made under a break-the-glass grant.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::EventMetadata;
use anamnesis_domain::chart::{
    CareCommand, CareTeam, ChartEntry, Document, EntryBody, EntryCommand, EntryStatus, Kind, Origin,
};
use anamnesis_domain::patient::Patient;
use anamnesis_domain::schedule::Appointment;
use anamnesis_domain::user::{Role, User};
use anamnesis_projections::chart::{
    self as read_model, EntryView, GrantView, MemberView, Timeline, VersionView,
};

use super::Accepted;
use crate::access_log::{marked, record_marked};
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{
    bad_param, bad_query, instant_param, page_size, uuid_param, Body, MinPosition, Path,
};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{self, authorize, Action, Context};
use crate::state::AppState;

use crate::extract::id_of;

use crate::care::context_marked as context;

/// The audit metadata of a chart command, marked under break-the-glass.
fn metadata(
    key: &RequestKey,
    who: &Principal,
    (status, id): (StatusCode, &str),
    glass: bool,
    reason: Option<&str>,
) -> EventMetadata {
    let mut m = marked(Key::metadata(key.0.as_ref(), who, status, id), glass);
    m.reason = reason.map(str::to_owned);
    m
}

/// Whether the patient record exists (a chart entry is for a registered patient).
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

/// The action an entry of `kind` needs: nurses record vitals and
/// immunizations; everything else is a doctor's.
fn action_for(kind: Kind) -> Action {
    match kind {
        Kind::Vitals | Kind::Immunization => Action::RecordVitals,
        _ => Action::WriteEntry,
    }
}

/// Write an entry to a patient's chart: a note (drafted), vital signs,
/// a lab result, a diagnosis, a procedure or an immunization (recorded).
/// The body's `kind` says which. Documents are uploaded with their bytes.
#[utoipa::path(post, path = "/v1/patients/{id}/chart", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = EntryBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
              (status = 503, body = Problem)))]
pub async fn write_entry(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<EntryBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = id_of(&id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, action_for(body.kind()), &context)?;
    registered(&state, patient).await?;
    let now = Utc::now();
    let origin = Origin {
        patient_id: patient,
        author: who.user_id,
    };
    let command = match &body {
        EntryBody::Document(_) => {
            return Err(ApiError::invalid(
                "document_must_be_uploaded",
                Some("kind"),
                "a document is uploaded with its bytes: POST /v1/patients/{id}/chart/documents",
            ))
        }
        EntryBody::Note(n) => {
            if let Some(appointment) = n.appointment_id {
                of_patient(&state, appointment, patient).await?;
            }
            EntryCommand::Draft { origin, body, now }
        }
        _ => EntryCommand::Record { origin, body, now },
    };
    create(&state, (&who, &key), command, glass).await
}

/// Appends a new entry under a fresh id.
async fn create(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    command: EntryCommand,
    glass: bool,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let entry_id = Uuid::now_v7().to_string();
    let m = metadata(key, who, (StatusCode::CREATED, &entry_id), glass, None);
    let done = state
        .bus()
        .create::<ChartEntry>(&entry_id, command, &(), &m)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: entry_id,
            position: done.position,
        }),
    ))
}

/// A note's appointment must be one of this patient's.
async fn of_patient(state: &AppState, appointment: Uuid, patient: Uuid) -> Result<(), ApiError> {
    let (a, _, _) = state
        .bus()
        .load::<Appointment>(&appointment.to_string())
        .await
        .map_err(ApiError::from)?;
    match a.booking() {
        Some(b) if b.patient_id == patient => Ok(()),
        _ => Err(ApiError::invalid(
            "unknown_appointment",
            Some("appointment_id"),
            "no appointment of this patient has that id",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentParams {
    /// The document's title.
    pub title: String,
}

/// Upload a document to a patient's chart: the request body is the bytes,
/// `Content-Type` their media type. The bytes are kept apart,
/// content-addressed; the entry holds their SHA-256.
#[utoipa::path(post, path = "/v1/patients/{id}/chart/documents", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path), DocumentParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the document's bytes, sent with their own media type"),
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn upload_document(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    params: Result<Query<DocumentParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = id_of(&id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, Action::WriteEntry, &context)?;
    let Query(p) = params.map_err(|_| bad_query("query parameter is title"))?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // Read here, not by an extractor: the server's body limit is for JSON.
    let bytes: Bytes = axum::body::to_bytes(body, state.clinical().documents.max_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "empty_document",
            None,
            "the document has no bytes",
        ));
    }
    registered(&state, patient).await?;
    // Checked before the bytes are stored: a refused upload stores nothing.
    let described = anamnesis_domain::chart::document(Document {
        title: p.title,
        media_type,
        sha256: crate::documents::sha256(&bytes),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
    })
    .map_err(crate::error::Rule::problem)?;
    let sha = state.clinical().documents.put(bytes).await?;
    debug_assert_eq!(sha, described.sha256);
    let command = EntryCommand::Record {
        origin: Origin {
            patient_id: patient,
            author: who.user_id,
        },
        body: EntryBody::Document(described),
        now: Utc::now(),
    };
    create(&state, (&who, &key), command, glass).await
}

/// An entry as the write side knows it, with the context of `who` acting on it.
async fn loaded(
    state: &AppState,
    who: &Principal,
    entry_id: &str,
) -> Result<(ChartEntry, Origin, Context, bool), ApiError> {
    let id = id_of(entry_id)?.to_string();
    let (entry, _, _) = state
        .bus()
        .load::<ChartEntry>(&id)
        .await
        .map_err(ApiError::from)?;
    let origin = entry.origin().ok_or(ApiError::NotFound)?;
    let (context, glass) = context(state, who, origin.patient_id).await?;
    Ok((entry, origin, context, glass))
}

/// Runs `command` on entry `entry_id` (already authorized).
async fn run(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    entry_id: &str,
    command: EntryCommand,
    (glass, reason): (bool, Option<&str>),
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(entry_id)?.to_string();
    let m = metadata(key, who, (StatusCode::OK, &id), glass, reason);
    let done = state
        .bus()
        .execute::<ChartEntry>(&id, command, &(), &m)
        .await?;
    Ok(Json(Accepted {
        id,
        position: done.position,
    }))
}

/// Rewrite a draft note (its author, before signing).
#[utoipa::path(put, path = "/v1/chart/{entry_id}", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path)), request_body = EntryBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn revise_draft(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(entry_id): Path<String>,
    Body(body): Body<EntryBody>,
) -> Result<Json<Accepted>, ApiError> {
    let (_, origin, context, glass) = loaded(&state, &who, &entry_id).await?;
    authorize(&who, Action::WriteEntry, &context)?;
    policy::is_author(&who, origin.author)?;
    if let EntryBody::Note(n) = &body {
        if let Some(appointment) = n.appointment_id {
            of_patient(&state, appointment, origin.patient_id).await?;
        }
    }
    let command = EntryCommand::Revise {
        body,
        now: Utc::now(),
    };
    run(&state, (&who, &key), &entry_id, command, (glass, None)).await
}

/// Sign a draft note (its author).
#[utoipa::path(post, path = "/v1/chart/{entry_id}/sign", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn sign_note(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(entry_id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    let (_, origin, context, glass) = loaded(&state, &who, &entry_id).await?;
    authorize(&who, Action::WriteEntry, &context)?;
    policy::is_author(&who, origin.author)?;
    let command = EntryCommand::Sign { now: Utc::now() };
    run(&state, (&who, &key), &entry_id, command, (glass, None)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendBody {
    /// Why the entry changes.
    pub reason: String,
    /// The new version, of the same kind.
    pub entry: EntryBody,
}

/// Amend a signed or recorded entry: a new version, with a reason (its
/// author, or a doctor).
#[utoipa::path(post, path = "/v1/chart/{entry_id}/amend", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path)), request_body = AmendBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn amend_entry(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(entry_id): Path<String>,
    Body(body): Body<AmendBody>,
) -> Result<Json<Accepted>, ApiError> {
    let (entry, origin, context, glass) = loaded(&state, &who, &entry_id).await?;
    authorize(&who, Action::AmendEntry, &context)?;
    policy::may_change(&who, origin.author)?;
    // A nurse amends only what a nurse may write.
    if let Some(kind) = entry.kind() {
        authorize(&who, action_for(kind), &context)?;
    }
    if let EntryBody::Note(n) = &body.entry {
        if let Some(appointment) = n.appointment_id {
            of_patient(&state, appointment, origin.patient_id).await?;
        }
    }
    let reason = body.reason.clone();
    let command = EntryCommand::Amend {
        body: body.entry,
        reason: body.reason,
        now: Utc::now(),
    };
    let why = Some(reason.trim()).filter(|r| !r.is_empty());
    run(&state, (&who, &key), &entry_id, command, (glass, why)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

/// Mark an entry entered in error, with a reason: kept in its history,
/// hidden from the chart (its author, or a doctor).
#[utoipa::path(post, path = "/v1/chart/{entry_id}/entered-in-error", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn enter_in_error(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(entry_id): Path<String>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let (_, origin, context, glass) = loaded(&state, &who, &entry_id).await?;
    authorize(&who, Action::AmendEntry, &context)?;
    policy::may_change(&who, origin.author)?;
    let reason = body.reason.clone();
    let command = EntryCommand::EnterInError {
        reason: body.reason,
    };
    let why = Some(reason.trim()).filter(|r| !r.is_empty());
    run(&state, (&who, &key), &entry_id, command, (glass, why)).await
}

// --- reads ---------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// note, vitals, lab, diagnosis, procedure, immunization or document.
    pub kind: Option<String>,
    /// RFC 3339: entries at or after (by clinical time).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: entries at or before.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Entries written by this user.
    pub author_id: Option<String>,
    /// Notes of this appointment (encounter).
    pub appointment_id: Option<String>,
    /// Free text over titles and notes, any case.
    pub q: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelinePage {
    pub items: Vec<EntryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn timeline_cursor(raw: Option<String>) -> Result<Option<(i64, String)>, ApiError> {
    raw.map(|c| {
        c.split_once('_')
            .and_then(|(s, id)| {
                Some((
                    s.parse::<i64>().ok()?,
                    Uuid::parse_str(id).ok()?.to_string(),
                ))
            })
            .ok_or_else(|| bad_param("cursor", "cursor is the next_cursor of a previous page"))
    })
    .transpose()
}

/// Whether a read is allowed, and whether the patient's own view applies.
async fn may_read(
    state: &AppState,
    who: &Principal,
    patient: Uuid,
) -> Result<(bool, bool), ApiError> {
    let (context, glass) = context(state, who, patient).await?;
    authorize(who, Action::ReadChart, &context)?;
    Ok((who.role == Role::Patient, glass))
}

/// A patient's chart: the current version of every entry (not those
/// entered in error), newest first by clinical time, with filters. The
/// patient sees their signed entries only.
#[utoipa::path(get, path = "/v1/patients/{id}/chart", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path), TimelineParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = TimelinePage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn timeline(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<TimelineParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TimelinePage>, ApiError> {
    let patient = id_of(&id)?;
    let (own, glass) = may_read(&state, &who, patient).await?;
    let Query(p) = params.map_err(|_| {
        bad_query(
            "query parameters are kind, from, to, author_id, appointment_id, q, cursor, limit",
        )
    })?;
    let kind = p
        .kind
        .map(|k| {
            Kind::parse(&k)
                .map(|k| k.as_str().to_owned())
                .ok_or_else(|| {
                    bad_param(
                        "kind",
                        "kind is note, vitals, lab, diagnosis, procedure, immunization or document",
                    )
                })
        })
        .transpose()?;
    let text =
        p.q.map(|q| {
            anamnesis_domain::text::parse(&q, anamnesis_domain::text::Lines::Single, 200)
                .map_err(|_| bad_param("q", "q is one line of up to 200 characters"))
        })
        .transpose()?;
    let query = Timeline {
        patient_id: patient.to_string(),
        kind,
        from: instant_param("from", p.from)?,
        to: instant_param("to", p.to)?,
        author_id: uuid_param("author_id", p.author_id)?,
        appointment_id: uuid_param("appointment_id", p.appointment_id)?,
        text,
        signed_only: own,
        before: timeline_cursor(p.cursor)?,
        limit: page_size(p.limit, 50, 200)?,
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, more) = read_model::timeline(state.reads(), &query).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/patients/{id}/chart",
        [patient],
        glass,
    )
    .await?;
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|e| format!("{}_{}", e.effective_at.timestamp(), e.id))
        })
        .flatten();
    Ok(Json(TimelinePage { items, next_cursor }))
}

/// Whether the patient reads an entry of this status: signed or final
/// ones only (a draft is its author's until signed).
pub(crate) fn shown_to_patient(status: &str) -> bool {
    [EntryStatus::Signed, EntryStatus::Final]
        .iter()
        .any(|s| s.as_str() == status)
}

/// An entry, once the caller may read it: the patient reads their signed
/// entries only.
async fn readable(
    state: &AppState,
    who: &Principal,
    min: MinPosition,
    entry_id: &str,
) -> Result<(EntryView, Uuid, bool), ApiError> {
    let id = id_of(entry_id)?.to_string();
    min.wait(state.progress(read_model::NAME)).await?;
    let entry = read_model::entry_view(state.reads(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let patient = Uuid::parse_str(&entry.patient_id)
        .map_err(|_| ApiError::Internal("a chart entry names a patient that is no UUID".into()))?;
    let (own, glass) = may_read(state, who, patient).await?;
    if own && !shown_to_patient(&entry.status) {
        return Err(ApiError::NotFound);
    }
    Ok((entry, patient, glass))
}

/// One entry: its current version, status and version count.
#[utoipa::path(get, path = "/v1/chart/{entry_id}", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = EntryView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_entry(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(entry_id): Path<String>,
) -> Result<Json<EntryView>, ApiError> {
    let (entry, patient, glass) = readable(&state, &who, min, &entry_id).await?;
    record_marked(&state, &who, "GET /v1/chart/{entry_id}", [patient], glass).await?;
    Ok(Json(entry))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionList {
    pub entry: EntryView,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
}

/// One entry's full history of versions, with who made each and why.
#[utoipa::path(get, path = "/v1/chart/{entry_id}/versions", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = VersionList), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn entry_versions(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(entry_id): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let (entry, patient, glass) = readable(&state, &who, min, &entry_id).await?;
    let versions = read_model::versions(state.reads(), &entry.id).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/chart/{entry_id}/versions",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(VersionList { entry, versions }))
}

/// A document's bytes, as uploaded (checked against the hash on the log).
#[utoipa::path(get, path = "/v1/chart/{entry_id}/content", tag = "chart", security(("bearer" = [])),
    params(("entry_id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, description = "the document's bytes, with their media type", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn document_content(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(entry_id): Path<String>,
) -> Result<Response, ApiError> {
    let (entry, patient, glass) = readable(&state, &who, min, &entry_id).await?;
    if entry.kind != Kind::Document.as_str() {
        return Err(ApiError::NotFound);
    }
    let field = |name: &str| {
        entry.current[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Internal(format!("a document entry without {name}")))
    };
    let (sha, media_type) = (field("sha256")?, field("media_type")?);
    let bytes = state.clinical().documents.get(&sha).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/chart/{entry_id}/content",
        [patient],
        glass,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                "x-content-sha256"
                    .parse()
                    .map_err(|_| ApiError::Internal("header".into()))?,
                sha,
            ),
        ],
        bytes,
    )
        .into_response())
}

// --- the care team -----------------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CareTeamView {
    /// Members by assignment (providers of the patient's appointments are
    /// on the team too, from booking until a while after the visit).
    pub members: Vec<MemberView>,
}

/// A patient's care team by assignment.
#[utoipa::path(get, path = "/v1/patients/{id}/care-team", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = CareTeamView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn care_team(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<CareTeamView>, ApiError> {
    let patient = id_of(&id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, Action::ReadCareTeam, &context)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let members = read_model::members(state.reads(), &patient.to_string()).await?;
    record_marked(
        &state,
        &who,
        "GET /v1/patients/{id}/care-team",
        [patient],
        glass,
    )
    .await?;
    Ok(Json(CareTeamView { members }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// A doctor's or nurse's user id.
    pub user_id: Uuid,
    pub reason: String,
}

/// Whether `user_id` is an active doctor or nurse.
async fn clinician(state: &AppState, user_id: Uuid) -> Result<bool, ApiError> {
    let (user, _, _) = state
        .bus()
        .load::<User>(&user_id.to_string())
        .await
        .map_err(ApiError::from)?;
    Ok(user
        .account()
        .filter(|_| user.is_active())
        .is_some_and(|a| matches!(a.role, Role::Doctor | Role::Nurse)))
}

async fn run_care(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    patient: Uuid,
    command: CareCommand,
    (status, result, glass, reason): (StatusCode, &str, bool, &str),
) -> Result<i64, ApiError> {
    let m = metadata(key, who, (status, result), glass, Some(reason));
    let done = state
        .bus()
        .execute::<CareTeam>(&patient.to_string(), command, &(), &m)
        .await?;
    Ok(done.position)
}

/// Put a doctor or nurse on a patient's care team, with a reason (staff,
/// or a doctor in the patient's care).
#[utoipa::path(post, path = "/v1/patients/{id}/care-team", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = MemberBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<MemberBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = id_of(&id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, Action::ManageCareTeam, &context)?;
    registered(&state, patient).await?;
    let clinician = clinician(&state, body.user_id).await?;
    let result = body.user_id.to_string();
    let reason = body.reason.clone();
    let command = CareCommand::Add {
        user_id: body.user_id,
        clinician,
        reason: body.reason,
    };
    let position = run_care(
        &state,
        (&who, &key),
        patient,
        command,
        (StatusCode::CREATED, &result, glass, &reason),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: result,
            position,
        }),
    ))
}

/// Take a member off a patient's care team, with a reason.
#[utoipa::path(post, path = "/v1/patients/{id}/care-team/{user_id}/removal", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, user_id)): Path<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let patient = id_of(&id)?;
    let user_id = id_of(&user_id)?;
    let (context, glass) = context(&state, &who, patient).await?;
    authorize(&who, Action::ManageCareTeam, &context)?;
    let result = user_id.to_string();
    let reason = body.reason.clone();
    let command = CareCommand::Remove {
        user_id,
        reason: body.reason,
    };
    let position = run_care(
        &state,
        (&who, &key),
        patient,
        command,
        (StatusCode::OK, &result, glass, &reason),
    )
    .await?;
    Ok(Json(Accepted {
        id: result,
        position,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantAccepted {
    /// The grant's id.
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    pub position: i64,
}

/// Break the glass: a doctor or nurse outside the patient's care states a
/// reason and reaches the patient's record until the grant expires (one
/// hour by default). Every access under it is marked, and compliance
/// lists every grant.
#[utoipa::path(post, path = "/v1/patients/{id}/break-glass", tag = "chart", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 201, body = GrantAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn break_glass(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ReasonBody>,
) -> Result<(StatusCode, Json<GrantAccepted>), ApiError> {
    let patient = id_of(&id)?;
    authorize(&who, Action::BreakGlass, &Context::patient(patient))?;
    registered(&state, patient).await?;
    let grant_id = Uuid::now_v7();
    let now = Utc::now();
    let lasts = state.clinical().break_glass;
    let reason = body.reason.clone();
    let command = CareCommand::BreakGlass {
        grant_id,
        user_id: who.user_id,
        clinician: matches!(who.role, Role::Doctor | Role::Nurse),
        reason: body.reason,
        now,
        lasts,
    };
    let result = grant_id.to_string();
    let position = run_care(
        &state,
        (&who, &key),
        patient,
        command,
        (StatusCode::CREATED, &result, true, &reason),
    )
    .await?;
    tracing::warn!(target: "access", actor = %who.user_id, role = who.role.as_str(), grant = %grant_id, "break-the-glass grant");
    metrics::counter!("anamnesis_break_glass_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(GrantAccepted {
            id: result,
            expires_at: now + lasts,
            position,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantParams {
    pub patient_id: Option<String>,
    pub user_id: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantPage {
    pub items: Vec<GrantView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Every break-the-glass grant: who, for whom, why, when, until when (compliance).
#[utoipa::path(get, path = "/v1/break-glass", tag = "compliance", security(("bearer" = [])),
    params(GrantParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = GrantPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_grants(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<GrantParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GrantPage>, ApiError> {
    authorize(&who, Action::ListGrants, &Context::NONE)?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are patient_id, user_id, cursor, limit"))?;
    let patient = uuid_param("patient_id", p.patient_id)?;
    let user = uuid_param("user_id", p.user_id)?;
    let after =
        p.cursor
            .map(|c| {
                c.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
                    bad_param("cursor", "cursor is the next_cursor of a previous page")
                })
            })
            .transpose()?
            .unwrap_or(0);
    let limit = page_size(p.limit, 50, 500)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, more) = read_model::grants(
        state.reads(),
        (patient.as_deref(), user.as_deref()),
        after,
        limit,
    )
    .await?;
    let next_cursor = more
        .then(|| items.last().map(|g| g.position.to_string()))
        .flatten();
    // A grant's reason is the clinician's account of the patient's
    // situation: a read of each listed patient's data (it was unrecorded).
    let patients = crate::access_log::ids(items.iter().map(|g| g.patient_id.as_str()))?;
    crate::access_log::record(&state, &who, "GET /v1/break-glass", patients).await?;
    Ok(Json(GrantPage { items, next_cursor }))
}
