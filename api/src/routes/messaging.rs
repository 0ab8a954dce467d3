//! Secure messaging (ADR 0017): threads about one patient between the
//! patient's own account and members of their care team or the front desk,
//! written as commands to the `Thread` aggregate and read from the
//! `message_threads`, `thread_participants` and `thread_messages` read
//! models. Who takes part is read from the thread's stream on every
//! request; a non-participant gets 403 for a thread that exists. Every
//! read of a thread or an inbox is recorded in the access log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_domain::messaging::{
    Invitee, MessagingError, Party, Thread, ThreadCommand, PARTICIPANTS_MAX,
};
use anamnesis_domain::patient::Patient;
use anamnesis_domain::user::{Role, User};
use anamnesis_projections::messaging::{
    self as read_model, InboxItem, MessageView, ParticipantView, Reach, ThreadView,
};

use super::Accepted;
use crate::access_log::{ids, record};
use crate::auth::Principal;
use crate::care;
use crate::error::{ApiError, Problem, Rule};
use crate::extract::{bad_param, bad_query, page_size, Body, MinPosition, Path};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Care, Context};
use crate::state::AppState;

use crate::extract::id_of;

/// How `user_id` stands to `patient` (whose own account is `account`), as
/// a thread admits them: the patient's account, an active doctor or nurse
/// on their care team (not under a break-the-glass grant), active
/// front-desk staff; anyone else has no standing.
async fn party_of(
    state: &AppState,
    patient: Uuid,
    account: Option<Uuid>,
    user_id: Uuid,
) -> Result<Option<Party>, ApiError> {
    if account == Some(user_id) {
        return Ok(Some(Party::Patient));
    }
    let (user, _, _) = state
        .bus()
        .load::<User>(&user_id.to_string())
        .await
        .map_err(ApiError::from)?;
    let Some(a) = user.account().filter(|_| user.is_active()) else {
        return Ok(None);
    };
    Ok(match a.role {
        Role::Staff => Some(Party::FrontDesk),
        Role::Doctor | Role::Nurse => {
            // The invitee's standing, looked up as their own requests are.
            let them = Principal {
                user_id,
                role: a.role,
                patient_id: None,
                session_id: Uuid::nil(),
            };
            let (care, _) = care::standing(state, &them, patient).await?;
            (care == Care::Team).then_some(Party::CareTeam)
        }
        _ => None,
    })
}

/// A thread as the write side knows it, and the policy context of `who`
/// acting on it: a participant counts as one while they still stand to
/// the patient (a doctor or nurse on the care team).
async fn loaded(
    state: &AppState,
    who: &Principal,
    thread_id: Uuid,
) -> Result<(Thread, Uuid, i64, Context), ApiError> {
    let (thread, _, position) = state
        .bus()
        .load::<Thread>(&thread_id.to_string())
        .await
        .map_err(ApiError::from)?;
    let patient = thread.patient_id().ok_or(ApiError::NotFound)?;
    let participant = match thread.member(who.user_id) {
        None => false,
        Some(_) if matches!(who.role, Role::Doctor | Role::Nurse) => {
            care::context(state, who, patient).await?.care == Care::Team
        }
        Some(_) => true,
    };
    let context = Context {
        participant,
        ..Context::patient(patient)
    };
    Ok((thread, patient, position, context))
}

/// Runs `command` on thread `thread_id` (already authorized).
async fn run(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    thread_id: Uuid,
    command: ThreadCommand,
    (status, result): (StatusCode, &str),
) -> Result<i64, ApiError> {
    let m = Key::metadata(key.0.as_ref(), who, status, result);
    let done = state
        .bus()
        .execute::<Thread>(&thread_id.to_string(), command, &(), &m)
        .await?;
    Ok(done.position)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The patient the thread is about.
    pub patient_id: Uuid,
    /// One line, up to 200 characters.
    pub subject: String,
    /// The first message, 1 to 10,000 characters.
    pub body: String,
    /// Who else takes part (user ids): members of the patient's care team
    /// or front-desk staff. The starter and the patient's own account take
    /// part without being named.
    #[serde(default)]
    pub participants: Vec<Uuid>,
}

/// Start a thread about a patient, with its first message: the patient
/// themself, a doctor or nurse on their care team, or the front desk.
#[utoipa::path(post, path = "/v1/threads", tag = "messaging", security(("bearer" = [])),
    request_body = StartBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn start_thread(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<StartBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let patient = body.patient_id;
    let context = care::context(&state, &who, patient).await?;
    // A break-the-glass grant opens the record, not a correspondence.
    if context.care == Care::Glass {
        return Err(ApiError::Forbidden);
    }
    authorize(&who, Action::StartThread, &context)?;
    let (record, _, _) = state
        .bus()
        .load::<Patient>(&patient.to_string())
        .await
        .map_err(ApiError::from)?;
    if !record.is_registered() {
        return Err(ApiError::NotFound);
    }
    let account = record.account();
    let mut users = vec![who.user_id];
    for u in account.into_iter().chain(body.participants) {
        if !users.contains(&u) {
            users.push(u);
        }
    }
    // Refused before anyone is looked up.
    if users.len() > PARTICIPANTS_MAX {
        return Err(MessagingError::TooManyParticipants(PARTICIPANTS_MAX).problem());
    }
    let mut participants = Vec::with_capacity(users.len());
    for user_id in users {
        participants.push(Invitee {
            user_id,
            party: party_of(&state, patient, account, user_id).await?,
        });
    }
    let thread_id = Uuid::now_v7();
    let command = ThreadCommand::Start {
        patient_id: patient,
        subject: body.subject,
        starter: who.user_id,
        participants,
        body: body.body,
        at: Utc::now(),
    };
    let id = thread_id.to_string();
    let m = Key::metadata(key.0.as_ref(), &who, StatusCode::CREATED, &id);
    let done = state.bus().create::<Thread>(&id, command, &(), &m).await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id,
            position: done.position,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// 1 to 10,000 characters; lines allowed.
    pub body: String,
}

/// Post a message to a thread (its participants).
#[utoipa::path(post, path = "/v1/threads/{id}/messages", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = MessageBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn post_message(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<MessageBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let thread_id = id_of(&id)?;
    let (_, _, _, context) = loaded(&state, &who, thread_id).await?;
    authorize(&who, Action::PostMessage, &context)?;
    let command = ThreadCommand::Post {
        author: who.user_id,
        body: body.body,
        at: Utc::now(),
    };
    let id = thread_id.to_string();
    let position = run(
        &state,
        (&who, &key),
        thread_id,
        command,
        (StatusCode::CREATED, &id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Accepted { id, position })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantBody {
    /// A member of the patient's care team or front-desk staff.
    pub user_id: Uuid,
}

/// Add someone to a thread (a participant adds a member of the patient's
/// care team or the front desk).
#[utoipa::path(post, path = "/v1/threads/{id}/participants", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ParticipantBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn add_participant(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ParticipantBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let thread_id = id_of(&id)?;
    let (_, patient, _, context) = loaded(&state, &who, thread_id).await?;
    authorize(&who, Action::ManageThread, &context)?;
    let (record, _, _) = state
        .bus()
        .load::<Patient>(&patient.to_string())
        .await
        .map_err(ApiError::from)?;
    let party = party_of(&state, patient, record.account(), body.user_id).await?;
    let command = ThreadCommand::AddParticipant {
        by: who.user_id,
        invitee: Invitee {
            user_id: body.user_id,
            party,
        },
    };
    let result = body.user_id.to_string();
    let position = run(
        &state,
        (&who, &key),
        thread_id,
        command,
        (StatusCode::CREATED, &result),
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// The number of the last message read (messages count from 1).
    pub up_to: u32,
}

/// Mark a thread read up to a message: the caller's read receipt (it never
/// moves back). The thread's unread count falls with it.
#[utoipa::path(post, path = "/v1/threads/{id}/read", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReadBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn mark_read(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ReadBody>,
) -> Result<Json<Accepted>, ApiError> {
    let thread_id = id_of(&id)?;
    let (_, _, _, context) = loaded(&state, &who, thread_id).await?;
    authorize(&who, Action::ManageThread, &context)?;
    let command = ThreadCommand::MarkRead {
        user_id: who.user_id,
        up_to: body.up_to,
    };
    let id = thread_id.to_string();
    let position = run(
        &state,
        (&who, &key),
        thread_id,
        command,
        (StatusCode::OK, &id),
    )
    .await?;
    Ok(Json(Accepted { id, position }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveBody {
    /// `true` hides the thread from the caller's inbox (until a new
    /// message arrives); `false` brings it back.
    pub archived: bool,
}

/// Archive a thread out of the caller's inbox, or bring it back.
#[utoipa::path(post, path = "/v1/threads/{id}/archive", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ArchiveBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn archive_thread(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ArchiveBody>,
) -> Result<Json<Accepted>, ApiError> {
    let thread_id = id_of(&id)?;
    let (_, _, _, context) = loaded(&state, &who, thread_id).await?;
    authorize(&who, Action::ManageThread, &context)?;
    let user_id = who.user_id;
    let command = if body.archived {
        ThreadCommand::Archive { user_id }
    } else {
        ThreadCommand::Unarchive { user_id }
    };
    let id = thread_id.to_string();
    let position = run(
        &state,
        (&who, &key),
        thread_id,
        command,
        (StatusCode::OK, &id),
    )
    .await?;
    Ok(Json(Accepted { id, position }))
}

// --- reads ---------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ThreadParams {
    /// Messages after this number (default 0: from the first).
    #[param(value_type = Option<i64>)]
    pub after: Option<String>,
    /// Messages per page, 1 to 500 (default 100).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadPage {
    pub thread: ThreadView,
    /// Who takes part, with their read receipts.
    pub participants: Vec<ParticipantView>,
    /// Messages, oldest first.
    pub messages: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// A thread: its subject, participants with their read receipts, and its
/// messages (its participants; compliance, recorded).
#[utoipa::path(get, path = "/v1/threads/{id}", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path), ThreadParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = ThreadPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_thread(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<ThreadParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ThreadPage>, ApiError> {
    let thread_id = id_of(&id)?;
    let (_, patient, position, context) = loaded(&state, &who, thread_id).await?;
    authorize(&who, Action::ReadThread, &context)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are after, limit"))?;
    let after = p
        .after
        .map(|a| {
            a.parse::<i64>()
                .ok()
                .filter(|a| *a >= 0)
                .ok_or_else(|| bad_param("after", "after is a message number"))
        })
        .transpose()?
        .unwrap_or(0);
    let limit = page_size(p.limit, 100, 500)?;
    // The thread as the write side saw it, at least.
    MinPosition(Some(min.0.unwrap_or(0).max(position)))
        .wait(state.progress(read_model::NAME))
        .await?;
    let id = thread_id.to_string();
    let thread = read_model::thread_view(state.reads(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let participants = read_model::participants(state.reads(), &id).await?;
    let (messages, more) = read_model::messages(state.reads(), &id, after, limit).await?;
    record(&state, &who, "GET /v1/threads/{id}", [patient]).await?;
    let next_after = more.then(|| messages.last().map(|m| m.number)).flatten();
    Ok(Json(ThreadPage {
        thread,
        participants,
        messages,
        next_after,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// `true` lists the archived threads instead (default false).
    #[param(value_type = Option<bool>)]
    pub archived: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxPage {
    /// Threads the caller takes part in, latest message first.
    pub items: Vec<InboxItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Unread messages over every thread in the inbox (not archived).
    pub unread_total: i64,
    /// Threads in the inbox with unread messages.
    pub unread_threads: i64,
}

fn inbox_cursor(raw: Option<String>) -> Result<Option<(i64, String)>, ApiError> {
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

/// The caller's inbox: the threads they take part in, with unread counts
/// per thread and in total.
#[utoipa::path(get, path = "/v1/me/threads", tag = "messaging", security(("bearer" = [])),
    params(InboxParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = InboxPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn inbox(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<InboxParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InboxPage>, ApiError> {
    authorize(&who, Action::ReadInbox, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are archived, cursor, limit"))?;
    let archived = match p.archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_param("archived", "archived is true or false")),
    };
    let before = inbox_cursor(p.cursor)?;
    let limit = page_size(p.limit, 50, 200)?;
    min.wait(state.progress(read_model::NAME)).await?;
    // A doctor or nurse sees the threads of patients still in their care
    // (as the care-team and appointment read models say, like a search page).
    let reach = if matches!(who.role, Role::Doctor | Role::Nurse) {
        min.wait(state.progress(anamnesis_projections::chart::NAME))
            .await?;
        min.wait(state.progress(anamnesis_projections::schedule::NAME))
            .await?;
        Reach::InCareSince((Utc::now() - state.clinical().care_after_visit).timestamp())
    } else {
        Reach::All
    };
    let user = who.user_id.to_string();
    let (items, more) =
        read_model::inbox(state.reads(), (&user, reach), archived, before, limit).await?;
    let (unread_total, unread_threads) =
        read_model::unread_total(state.reads(), (&user, reach)).await?;
    // Subjects are patient data: the page's patients are recorded as read.
    let patients = ids(items.iter().map(|i| i.patient_id.as_str()))?;
    record(&state, &who, "GET /v1/me/threads", patients).await?;
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|i| format!("{}_{}", i.last_message_at.0.timestamp(), i.thread_id))
        })
        .flatten();
    Ok(Json(InboxPage {
        items,
        next_cursor,
        unread_total,
        unread_threads,
    }))
}
