//! Scheduling: providers, working hours, closures, free slots and
//! appointments. Commands go through `Scheduler` (ADR 0008); lists come from
//! the `schedule` read model. Times are RFC 3339 with the clinic's offset.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anamnesis_commands::schedule::{BookingRequest, ClosureRequest, Loaded};
use anamnesis_domain::schedule::{
    Appointment, AppointmentCommand, AvailabilityInput, Calendar, ClosureSpan, Day, DayHours,
    Interval, Period, Provider, ProviderCommand, ScheduleError, USER_SCOPE,
};
use anamnesis_domain::unique::UniqueKey;
use anamnesis_domain::user::{Role, User};
use anamnesis_projections::schedule::{
    self as read_model, AppointmentFilter, AppointmentRow, ProviderView,
};

use super::Accepted;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{
    bad_param, bad_query, instant, instant_opt, instant_param, iso_date_opt, page_size,
    parse_iso_date, sourced, uuid_param, Body, MinPosition, NoCache, Path, Source, Sourced,
};
use crate::idempotency::{Key, RequestKey};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

use crate::extract::id_of;

/// The user account of provider `id`, from the write side (`None`: no such
/// provider). An enrolled provider's account never changes: the scheduler
/// answers from what it has seen, and reads the stream only for a provider
/// it has not seen enrolled.
async fn provider_user(state: &AppState, id: Uuid) -> Result<Option<Uuid>, ApiError> {
    Ok(state.scheduler().provider_user(id).await?)
}

/// The provider record of user `user_id`, if they are one.
async fn provider_of_user(state: &AppState, user_id: Uuid) -> Result<Option<Uuid>, ApiError> {
    let key = UniqueKey {
        scope: USER_SCOPE,
        key: user_id.to_string(),
    };
    state
        .log()
        .claim_holder(&key)
        .await?
        .map(|(_, id)| {
            Uuid::parse_str(&id)
                .map_err(|_| ApiError::Internal("a provider stream is not named by a UUID".into()))
        })
        .transpose()
}

fn metadata(
    key: &RequestKey,
    who: &Principal,
    status: StatusCode,
    id: Uuid,
) -> anamnesis_commands::EventMetadata {
    Key::metadata(key.0.as_ref(), who, status, &id.to_string())
}

// ---------------------------------------------------------------- providers

/// A new provider: an existing doctor or nurse account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub user_id: Uuid,
    pub display_name: String,
    pub specialty: String,
    /// Minutes, 5 to 480 in steps of 5.
    pub default_minutes: i64,
}

/// Make a doctor or nurse bookable (admin).
#[utoipa::path(post, path = "/v1/providers", tag = "scheduling", security(("bearer" = [])),
    request_body = EnrollBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn enroll_provider(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<EnrollBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::EnrollProvider, &Context::NONE)?;
    let (user, _, _) = state
        .bus()
        .load::<User>(&body.user_id.to_string())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user_role = user.account().filter(|_| user.is_active()).map(|a| a.role);
    let id = Uuid::now_v7();
    let command = ProviderCommand::Enroll {
        user_id: body.user_id,
        user_role,
        display_name: body.display_name,
        specialty: body.specialty,
        default_minutes: body.default_minutes,
    };
    let done = state
        .bus()
        .create::<Provider>(
            &id.to_string(),
            command,
            &(),
            &metadata(&key, &who, StatusCode::CREATED, id),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: id.to_string(),
            position: done.position,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProviderParams {
    /// Exact specialty, any case.
    pub specialty: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

fn limit(raw: Option<String>) -> Result<i64, ApiError> {
    page_size(raw, 20, 100)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderPage {
    pub items: Vec<ProviderView>,
    pub next_cursor: Option<String>,
}

/// List providers, by specialty (any signed-in user: no patient data).
#[utoipa::path(get, path = "/v1/providers", tag = "scheduling", security(("bearer" = [])),
    params(ProviderParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = ProviderPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 503, body = Problem)))]
pub async fn list_providers(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<ProviderParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ProviderPage>, ApiError> {
    authorize(&who, Action::ListProviders, &Context::NONE)?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are specialty, cursor, limit"))?;
    let limit = limit(p.limit)?;
    let specialty = p
        .specialty
        .map(|s| {
            anamnesis_domain::text::parse(&s, anamnesis_domain::text::Lines::Single, 100)
                .map_err(|_| bad_param("specialty", "specialty is one line of text"))
        })
        .transpose()?;
    let after = p
        .cursor
        .map(|c| {
            id_of(&c)
                .map(|u| u.to_string())
                .map_err(|_| bad_param("cursor", "cursor is a next_cursor"))
        })
        .transpose()?;
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, more) =
        read_model::providers(state.reads(), specialty.as_deref(), after.as_deref(), limit).await?;
    let next_cursor = more
        .then(|| items.last().map(|p| p.provider_id.clone()))
        .flatten();
    Ok(Json(ProviderPage { items, next_cursor }))
}

/// Weekly hours as shown and sent.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursBody {
    /// monday … sunday.
    #[schema(value_type = String)]
    pub day: Day,
    /// Local working intervals of that day.
    pub intervals: Vec<IntervalBody>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalBody {
    /// Local time `HH:MM`, on a five-minute step.
    #[schema(value_type = String, example = "09:00")]
    pub start: String,
    /// Local time `HH:MM`, after start.
    #[schema(value_type = String, example = "12:00")]
    pub end: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityBody {
    pub hours: Vec<HoursBody>,
    /// Minutes, 5 to 480 in steps of 5.
    pub slot_minutes: i64,
    /// `YYYY-MM-DD`: the first day the hours apply.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_from: Option<NaiveDate>,
    /// `YYYY-MM-DD`: the last day the hours apply.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<NaiveDate>,
}

fn local_time(field: &str, text: &str) -> Result<NaiveTime, ApiError> {
    let shaped = text.len() == 5 && text.as_bytes()[2] == b':';
    shaped
        .then(|| NaiveTime::parse_from_str(text, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| bad_param(field, "a local time is HH:MM"))
}

/// A provider's profile, weekly hours and time off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderDetail {
    #[serde(flatten)]
    pub provider: ProviderView,
    /// The clinic's time zone (IANA name): hours are local time in it.
    pub time_zone: String,
    pub availability: Option<AvailabilityOut>,
    pub time_off: Vec<ClosureView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailabilityOut {
    pub hours: Vec<HoursBody>,
    pub slot_minutes: i64,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_from: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<NaiveDate>,
}

/// A closure as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClosureView {
    pub closure_id: String,
    /// Absent for a clinic holiday.
    pub provider_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: DateTime<FixedOffset>,
    pub whole_days: bool,
    pub reason: String,
}

/// One provider, with hours and time off (any signed-in user).
#[utoipa::path(get, path = "/v1/providers/{id}", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = ProviderDetail), (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 503, body = Problem)))]
pub async fn get_provider(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<ProviderDetail>, ApiError> {
    let id = id_of(&id)?;
    authorize(&who, Action::ListProviders, &Context::NONE)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let view = read_model::provider(state.reads(), &id.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    let (provider, _) = state.scheduler().calendar(id).await?;
    let zone = state.scheduler().zone();
    let availability = provider.availability().map(|a| AvailabilityOut {
        hours: a
            .hours
            .iter()
            .map(|d| HoursBody {
                day: d.day,
                intervals: d
                    .intervals
                    .iter()
                    .map(|i| IntervalBody {
                        start: i.start.format("%H:%M").to_string(),
                        end: i.end.format("%H:%M").to_string(),
                    })
                    .collect(),
            })
            .collect(),
        slot_minutes: a.slot_minutes,
        effective_from: a.effective_from,
        effective_to: a.effective_to,
    });
    let time_off = provider
        .time_off()
        .iter()
        .map(|c| ClosureView {
            closure_id: c.closure_id.to_string(),
            provider_id: Some(id.to_string()),
            starts_at: zone.local(c.period.start),
            ends_at: zone.local(c.period.end),
            whole_days: c.whole_days,
            reason: c.reason.clone(),
        })
        .collect();
    Ok(Json(ProviderDetail {
        provider: view,
        time_zone: zone.name().to_owned(),
        availability,
        time_off,
    }))
}

/// Set a provider's weekly hours (admin, staff, or the provider).
#[utoipa::path(put, path = "/v1/providers/{id}/availability", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AvailabilityBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_availability(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<AvailabilityBody>,
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(&id)?;
    let user = provider_user(&state, id).await?;
    authorize(&who, Action::ManageAvailability, &Context::provider(user))?;
    let mut hours = Vec::with_capacity(body.hours.len());
    for d in body.hours {
        let mut intervals = Vec::with_capacity(d.intervals.len());
        for i in d.intervals {
            intervals.push(Interval {
                start: local_time("hours", &i.start)?,
                end: local_time("hours", &i.end)?,
            });
        }
        hours.push(DayHours {
            day: d.day,
            intervals,
        });
    }
    let command = ProviderCommand::SetAvailability {
        input: AvailabilityInput {
            hours,
            slot_minutes: body.slot_minutes,
            effective_from: body.effective_from,
            effective_to: body.effective_to,
        },
    };
    let done = state
        .bus()
        .execute::<Provider>(
            &id.to_string(),
            command,
            &(),
            &metadata(&key, &who, StatusCode::OK, id),
        )
        .await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position: done.position,
    }))
}

// ---------------------------------------------------------------- closures

/// A closure: whole local days (`from_date`, `to_date`), or a period
/// (`starts_at`, `ends_at`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosureBody {
    /// `YYYY-MM-DD`, first whole day.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub from_date: Option<NaiveDate>,
    /// `YYYY-MM-DD`, last whole day (inclusive).
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub to_date: Option<NaiveDate>,
    /// RFC 3339, on a five-minute step.
    #[serde(default, deserialize_with = "instant_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "instant_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<DateTime<Utc>>,
    pub reason: String,
    /// Cancel the appointments it covers (each cancelled by the clinic with
    /// this reason) instead of refusing with their ids.
    #[serde(default)]
    pub cancel_affected: bool,
}

impl ClosureBody {
    fn span(&self) -> Result<ClosureSpan, ApiError> {
        match (self.from_date, self.to_date, self.starts_at, self.ends_at) {
            (Some(from), to, None, None) => Ok(ClosureSpan::Days {
                from,
                to: to.unwrap_or(from),
            }),
            (None, None, Some(start), Some(end)) => Ok(ClosureSpan::Period { start, end }),
            _ => Err(ApiError::BadRequest {
                code: "invalid_closure",
                field: None,
                detail: "give from_date (and to_date) for whole days, or starts_at and ends_at"
                    .into(),
            }),
        }
    }
}

/// What a closure did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClosureAccepted {
    pub id: String,
    pub position: i64,
    /// Appointments it cancelled (with `cancel_affected`).
    pub cancelled: Vec<String>,
}

async fn add_closure(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    provider_id: Option<Uuid>,
    body: ClosureBody,
) -> Result<(StatusCode, Json<ClosureAccepted>), ApiError> {
    let span = body.span()?;
    let closure_id = Uuid::now_v7();
    let request = ClosureRequest {
        closure_id,
        provider_id,
        span,
        reason: body.reason,
        cancel_affected: body.cancel_affected,
    };
    let added = state
        .scheduler()
        .add_closure(
            request,
            &metadata(key, who, StatusCode::CREATED, closure_id),
            Utc::now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClosureAccepted {
            id: closure_id.to_string(),
            position: added.executed.position,
            cancelled: added.cancelled.iter().map(Uuid::to_string).collect(),
        }),
    ))
}

/// Add a provider's time off (admin, staff, or the provider). Over booked
/// appointments: `409 closure_over_bookings` with their ids, unless
/// `cancel_affected`.
#[utoipa::path(post, path = "/v1/providers/{id}/time-off", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ClosureBody,
    responses((status = 201, body = ClosureAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn add_time_off(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ClosureBody>,
) -> Result<(StatusCode, Json<ClosureAccepted>), ApiError> {
    let id = id_of(&id)?;
    let user = provider_user(&state, id).await?;
    authorize(&who, Action::ManageAvailability, &Context::provider(user))?;
    if user.is_none() {
        return Err(ApiError::NotFound);
    }
    add_closure(&state, (&who, &key), Some(id), body).await
}

/// Withdraw a provider's time off.
#[utoipa::path(delete, path = "/v1/providers/{id}/time-off/{closure_id}", tag = "scheduling",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("closure_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn remove_time_off(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, closure_id)): Path<(String, String)>,
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(&id)?;
    let closure_id = id_of(&closure_id)?;
    let user = provider_user(&state, id).await?;
    authorize(&who, Action::ManageAvailability, &Context::provider(user))?;
    let done = state
        .bus()
        .execute::<Provider>(
            &id.to_string(),
            ProviderCommand::RemoveTimeOff { closure_id },
            &(),
            &metadata(&key, &who, StatusCode::OK, closure_id),
        )
        .await?;
    Ok(Json(Accepted {
        id: closure_id.to_string(),
        position: done.position,
    }))
}

/// Add a clinic-wide holiday (admin). Over booked appointments: `409
/// closure_over_bookings` with their ids, unless `cancel_affected`.
#[utoipa::path(post, path = "/v1/holidays", tag = "scheduling", security(("bearer" = [])),
    request_body = ClosureBody,
    responses((status = 201, body = ClosureAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_holiday(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<ClosureBody>,
) -> Result<(StatusCode, Json<ClosureAccepted>), ApiError> {
    authorize(&who, Action::ManageHolidays, &Context::NONE)?;
    add_closure(&state, (&who, &key), None, body).await
}

/// Withdraw a clinic holiday (admin).
#[utoipa::path(delete, path = "/v1/holidays/{closure_id}", tag = "scheduling",
    security(("bearer" = [])), params(("closure_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn remove_holiday(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(closure_id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    authorize(&who, Action::ManageHolidays, &Context::NONE)?;
    let closure_id = id_of(&closure_id)?;
    let done = state
        .bus()
        .execute::<anamnesis_domain::schedule::ClinicCalendar>(
            anamnesis_domain::schedule::CLINIC_CALENDAR_ID,
            anamnesis_domain::schedule::ClinicCommand::RemoveHoliday { closure_id },
            &(),
            &metadata(&key, &who, StatusCode::OK, closure_id),
        )
        .await?;
    Ok(Json(Accepted {
        id: closure_id.to_string(),
        position: done.position,
    }))
}

// ---------------------------------------------------------------- free slots

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlotParams {
    /// `YYYY-MM-DD`, first local day (default today).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`, last local day (default `from`); within the horizon.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

/// A free slot.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Slot {
    pub provider_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: DateTime<FixedOffset>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotList {
    pub time_zone: String,
    pub items: Vec<Slot>,
}

/// The local dates `from..=to`, today by default, refused past the horizon.
fn date_range(
    state: &AppState,
    from: Option<String>,
    to: Option<String>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let zone = state.scheduler().zone();
    let today = zone.date_of(Utc::now());
    let date = |field: &str, v: Option<String>| {
        v.map(|d| parse_iso_date(&d).ok_or_else(|| bad_param(field, "a date is YYYY-MM-DD")))
            .transpose()
    };
    let from = date("from", from)?.unwrap_or(today);
    let to = date("to", to)?.unwrap_or(from);
    if to < from {
        return Err(bad_param("to", "to is before from"));
    }
    let horizon = today + Duration::days(state.horizon_days());
    if to > horizon || from < today - Duration::days(1) {
        return Err(ApiError::BadRequest {
            code: "beyond_horizon",
            field: Some("to".into()),
            detail: format!(
                "free slots are searched from today up to {} days ahead ({horizon})",
                state.horizon_days()
            ),
        });
    }
    Ok((from, to))
}

/// Free slots of a provider over local dates (any signed-in user). Read
/// from Redis when it holds them (ADR 0022), else from the database; the
/// answer is the same.
#[utoipa::path(get, path = "/v1/providers/{id}/slots", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path), SlotParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position"),
           ("Cache-Control" = Option<String>, Header, description = "`no-cache`: read the database, not Redis")),
    responses((status = 200, body = SlotList, headers(("X-Read-Source" = String, description = "redis or database"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn provider_slots(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    fresh: NoCache,
    Path(id): Path<String>,
    params: Result<Query<SlotParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sourced<SlotList>, ApiError> {
    let id = id_of(&id)?;
    authorize(&who, Action::ListProviders, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are from, to (YYYY-MM-DD)"))?;
    let (from, to) = date_range(&state, p.from, p.to)?;
    let time_zone = state.scheduler().zone().name().to_owned();
    if let Some(items) = cached_slots(&state, (id, from, to), usize::MAX, (min, fresh)).await {
        return Ok(sourced(Source::Redis, SlotList { time_zone, items }));
    }
    min.wait(state.progress(read_model::NAME)).await?;
    let items = slots_of(&state, (id, &mut None), from, to, usize::MAX).await?;
    Ok(sourced(Source::Database, SlotList { time_zone, items }))
}

/// Up to `max` free slots of provider `id` on local dates `from..=to` from
/// Redis, if it holds them all and reflects `min` (`None`: ask the database).
async fn cached_slots(
    state: &AppState,
    (id, from, to): (Uuid, NaiveDate, NaiveDate),
    max: usize,
    (min, fresh): (MinPosition, NoCache),
) -> Option<Vec<Slot>> {
    let cache = state.redis().filter(|_| !fresh.0)?;
    let days = match cache.slots(id, (from, to), min.0).await {
        Ok(days) => days,
        Err(miss) => {
            metrics::counter!("anamnesis_redis_reads_total", "model" => "slots", "outcome" => miss.as_str())
                .increment(1);
            return None;
        }
    };
    metrics::counter!("anamnesis_redis_reads_total", "model" => "slots", "outcome" => "hit")
        .increment(1);
    let zone = state.scheduler().zone();
    let now = Utc::now();
    Some(
        days.iter()
            .flat_map(|d| d.after(now))
            .take(max)
            .map(|s| Slot {
                provider_id: id.to_string(),
                starts_at: zone.local(s.start),
                ends_at: zone.local(s.end),
            })
            .collect(),
    )
}

/// Up to `max` free slots of provider `id` on local dates `from..=to`,
/// from its calendar (loaded into `calendar` when `None`; 404 when there
/// is no such provider) and the `schedule` read model.
async fn slots_of(
    state: &AppState,
    (id, calendar): (Uuid, &mut Option<Calendar>),
    from: NaiveDate,
    to: NaiveDate,
    max: usize,
) -> Result<Vec<Slot>, ApiError> {
    let calendar = match calendar {
        Some(c) => c,
        None => {
            let (provider, loaded) = state.scheduler().calendar(id).await?;
            if provider.profile().is_none() {
                return Err(ApiError::NotFound);
            }
            calendar.insert(loaded)
        }
    };
    let zone = calendar.zone;
    let start = zone.day(from).0.timestamp();
    let end = zone.day(to).1.timestamp();
    let busy = read_model::busy(state.reads(), &id.to_string(), start, end).await?;
    Ok(calendar
        .free_slots(from, to, Utc::now(), &busy)
        .into_iter()
        .take(max)
        .map(|s: Period| Slot {
            provider_id: id.to_string(),
            starts_at: zone.local(s.start),
            ends_at: zone.local(s.end),
        })
        .collect())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextSlotParams {
    /// Specialty, any case.
    pub specialty: String,
    /// `YYYY-MM-DD`, first local day searched (default today).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// How many slots, 1 to 50 (default 10).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// The next free slots for a specialty, across its providers, earliest
/// first. Each provider's days are read from Redis when it holds them
/// (ADR 0022), else from the database; the answer is the same.
#[utoipa::path(get, path = "/v1/slots", tag = "scheduling", security(("bearer" = [])),
    params(NextSlotParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position"),
           ("Cache-Control" = Option<String>, Header, description = "`no-cache`: read the database, not Redis")),
    responses((status = 200, body = SlotList, headers(("X-Read-Source" = String, description = "redis, or database when any part came from it"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 503, body = Problem)))]
pub async fn next_slots(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    fresh: NoCache,
    params: Result<Query<NextSlotParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sourced<SlotList>, ApiError> {
    authorize(&who, Action::ListProviders, &Context::NONE)?;
    let Query(p) = params
        .map_err(|_| bad_query("query parameters are specialty, from (YYYY-MM-DD), limit"))?;
    let max = match p.limit {
        None => 10,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=50).contains(l))
            .ok_or_else(|| bad_param("limit", "limit is 1 to 50"))?,
    };
    let (from, _) = date_range(&state, p.from, None)?;
    let zone = state.scheduler().zone();
    let horizon = zone.date_of(Utc::now()) + Duration::days(state.horizon_days());
    min.wait(state.progress(read_model::NAME)).await?;
    let (providers, _) =
        read_model::providers(state.reads(), Some(&p.specialty), None, 100).await?;
    // Each provider is searched a week at a time until there are enough
    // slots or the horizon is reached; a calendar is read from the log
    // once, and only for a provider whose days Redis does not hold.
    let mut calendars = Vec::with_capacity(providers.len());
    for provider in &providers {
        let id = Uuid::parse_str(&provider.provider_id)
            .map_err(|_| ApiError::Internal("a provider id is not a UUID".into()))?;
        calendars.push((id, None));
    }
    let mut source = Source::Redis;
    let mut items = Vec::new();
    let mut start = from;
    while items.len() < max && start <= horizon {
        let end = (start + Duration::days(6)).min(horizon);
        let mut week = Vec::new();
        for (id, calendar) in calendars.iter_mut() {
            match cached_slots(&state, (*id, start, end), max, (min, fresh)).await {
                Some(slots) => week.extend(slots),
                None => {
                    source = Source::Database;
                    week.extend(slots_of(&state, (*id, calendar), start, end, max).await?);
                }
            }
        }
        week.sort_by_key(|s| s.starts_at);
        items.extend(week.into_iter().take(max - items.len()));
        start = end + Duration::days(1);
    }
    if calendars.is_empty() {
        source = Source::Database;
    }
    Ok(sourced(
        source,
        SlotList {
            time_zone: zone.name().to_owned(),
            items,
        },
    ))
}

// ---------------------------------------------------------------- appointments

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    pub provider_id: Uuid,
    pub patient_id: Uuid,
    /// RFC 3339 with offset, on a five-minute step.
    #[serde(deserialize_with = "instant")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<Utc>,
    /// Default: the provider's default appointment length.
    #[serde(default, deserialize_with = "instant_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<DateTime<Utc>>,
    pub reason_for_visit: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverbookBody {
    #[serde(flatten)]
    pub booking: BookBody,
    /// Why the provider's calendar may be double-booked (audited).
    pub overbook_reason: String,
}

async fn book(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    (body, user): (BookBody, Option<Uuid>),
    overbook_reason: Option<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let id = Uuid::now_v7();
    // A provider whose account (`user`) was deactivated is not booked; an
    // unknown provider is refused as such by the booking itself.
    let provider_active = match user {
        Some(user) => state.sessions().account_active(user).await?,
        None => true,
    };
    let request = BookingRequest {
        provider_id: body.provider_id,
        patient_id: body.patient_id,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        reason_for_visit: body.reason_for_visit,
        overbook_reason,
        provider_active,
    };
    let done = state
        .scheduler()
        .book(
            id,
            request,
            &metadata(key, who, StatusCode::CREATED, id),
            Utc::now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            id: id.to_string(),
            position: done.position,
        }),
    ))
}

/// Book an appointment: a patient for themself, staff for anyone, a provider
/// with themself. A taken slot is `409 slot_taken`; the patient's own
/// overlapping appointment `409 patient_double_booked`.
#[utoipa::path(post, path = "/v1/appointments", tag = "scheduling", security(("bearer" = [])),
    request_body = BookBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn book_appointment(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<BookBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let user = provider_user(&state, body.provider_id).await?;
    authorize(
        &who,
        Action::BookAppointment,
        &Context::appointment(body.patient_id, user),
    )?;
    book(&state, (&who, &key), (body, user), None).await
}

/// Book over the provider's other appointments (staff, with a reason).
/// Working hours, closures, the past and the patient's own calendar still hold.
#[utoipa::path(post, path = "/v1/appointments/overbook", tag = "scheduling", security(("bearer" = [])),
    request_body = OverbookBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn overbook_appointment(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<OverbookBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::Overbook, &Context::NONE)?;
    let user = provider_user(&state, body.booking.provider_id).await?;
    book(
        &state,
        (&who, &key),
        (body.booking, user),
        Some(body.overbook_reason),
    )
    .await
}

/// An appointment as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentView {
    pub appointment_id: String,
    pub provider_id: String,
    pub patient_id: String,
    /// The patient's name, for staff, compliance, the patient and the provider.
    pub patient_name: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: DateTime<FixedOffset>,
    /// booked, checked_in, in_progress, completed, cancelled or no_show.
    pub status: String,
    /// Shown with the patient's name only.
    pub reason_for_visit: Option<String>,
    pub overbook_reason: Option<String>,
    /// Shown with the patient's name only.
    pub cancel_reason: Option<String>,
    /// Cancelled less than 24 h ahead.
    pub late_cancellation: bool,
    /// Cancelled by the clinic (a closure).
    pub cancelled_by_clinic: bool,
}

/// An appointment row as shown; without `names` (a role that may see the
/// calendar but not who is on it) no patient name or reason is shown.
pub(crate) fn appointment_view(
    state: &AppState,
    row: AppointmentRow,
    names: bool,
) -> Result<AppointmentView, ApiError> {
    let zone = state.scheduler().zone();
    let at = |s: i64| {
        DateTime::from_timestamp(s, 0)
            .map(|t| zone.local(t))
            .ok_or_else(|| ApiError::Internal("an appointment's time is out of range".into()))
    };
    Ok(AppointmentView {
        patient_name: match (names, &row.given_name, &row.family_name) {
            (true, Some(g), Some(f)) => Some(format!("{g} {f}")),
            _ => None,
        },
        starts_at: at(row.starts_at)?,
        ends_at: at(row.ends_at)?,
        appointment_id: row.appointment_id,
        provider_id: row.provider_id,
        patient_id: row.patient_id,
        status: row.status,
        reason_for_visit: names.then_some(row.reason_for_visit),
        // Free text like the reason for the visit: shown where names are.
        overbook_reason: row.overbook_reason.filter(|_| names),
        cancel_reason: row.cancel_reason.filter(|_| names),
        late_cancellation: row.late != 0,
        cancelled_by_clinic: row.by_clinic != 0,
    })
}

/// One appointment (staff, compliance, the patient, the provider).
#[utoipa::path(get, path = "/v1/appointments/{id}", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = AppointmentView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_appointment(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<AppointmentView>, ApiError> {
    let id = id_of(&id)?;
    let (context, _) = appointment_context(&state, id).await?;
    authorize(&who, Action::ReadAppointment, &context)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let row = read_model::appointment(state.reads(), &id.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    let read = crate::access_log::ids([row.patient_id.as_str()])?;
    crate::access_log::record(&state, &who, "GET /v1/appointments/{id}", read).await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), appointment = %id, "appointment read");
    Ok(Json(appointment_view(&state, row, true)?))
}

/// Whose appointment `id` is, from the write side (404 when there is
/// none), with the appointment as loaded, for the command to decide on.
async fn appointment_context(
    state: &AppState,
    id: Uuid,
) -> Result<(Context, Loaded<Appointment>), ApiError> {
    let loaded = state.bus().load::<Appointment>(&id.to_string()).await?;
    let booking = loaded.0.booking().ok_or(ApiError::NotFound)?;
    let user = provider_user(state, booking.provider_id).await?;
    Ok((Context::appointment(booking.patient_id, user), loaded))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub reason: String,
}

/// Cancel (staff, the patient, the provider); less than 24 h ahead it is marked late.
#[utoipa::path(post, path = "/v1/appointments/{id}/cancel", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CancelBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn cancel_appointment(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<CancelBody>,
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(&id)?;
    let (context, loaded) = appointment_context(&state, id).await?;
    authorize(&who, Action::ChangeAppointment, &context)?;
    let command = AppointmentCommand::Cancel {
        reason: body.reason,
        by_clinic: false,
        now: Utc::now(),
    };
    let done = state
        .scheduler()
        .appointment(
            loaded,
            id,
            command,
            &metadata(&key, &who, StatusCode::OK, id),
        )
        .await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position: done.position,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// RFC 3339 with offset, on a five-minute step.
    #[serde(deserialize_with = "instant")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<Utc>,
    /// Default: the same length as before.
    #[serde(default, deserialize_with = "instant_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<DateTime<Utc>>,
}

/// Move to another time with the same provider, atomically: the old time is
/// released only if the new one is taken.
#[utoipa::path(post, path = "/v1/appointments/{id}/reschedule", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RescheduleBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn reschedule_appointment(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<RescheduleBody>,
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(&id)?;
    let (context, loaded) = appointment_context(&state, id).await?;
    authorize(&who, Action::ChangeAppointment, &context)?;
    let done = state
        .scheduler()
        .reschedule(
            loaded,
            id,
            (body.starts_at, body.ends_at),
            &metadata(&key, &who, StatusCode::OK, id),
            Utc::now(),
        )
        .await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position: done.position,
    }))
}

/// One step of the visit: check-in, start, complete, no-show.
async fn visit_step(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    id: &str,
    step: fn(DateTime<Utc>) -> AppointmentCommand,
) -> Result<Json<Accepted>, ApiError> {
    let id = id_of(id)?;
    let (context, loaded) = appointment_context(state, id).await?;
    authorize(who, Action::RunVisit, &context)?;
    let done = state
        .scheduler()
        .appointment(
            loaded,
            id,
            step(Utc::now()),
            &metadata(key, who, StatusCode::OK, id),
        )
        .await?;
    Ok(Json(Accepted {
        id: id.to_string(),
        position: done.position,
    }))
}

/// The patient arrived (staff, the provider).
#[utoipa::path(post, path = "/v1/appointments/{id}/check-in", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn check_in(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    visit_step(&state, (&who, &key), &id, |now| {
        AppointmentCommand::CheckIn { now }
    })
    .await
}

/// The visit began (staff, the provider).
#[utoipa::path(post, path = "/v1/appointments/{id}/start", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn start_visit(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    visit_step(&state, (&who, &key), &id, |now| AppointmentCommand::Start {
        now,
    })
    .await
}

/// The visit ended (staff, the provider).
#[utoipa::path(post, path = "/v1/appointments/{id}/complete", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn complete_visit(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    visit_step(&state, (&who, &key), &id, |now| {
        AppointmentCommand::Complete { now }
    })
    .await
}

/// The patient did not come (staff, the provider; only after the start time).
#[utoipa::path(post, path = "/v1/appointments/{id}/no-show", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn no_show(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    visit_step(&state, (&who, &key), &id, |now| {
        AppointmentCommand::NoShow { now }
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppointmentParams {
    /// Comma-separated statuses (booked, checked_in, in_progress, completed, cancelled, no_show).
    pub status: Option<String>,
    pub provider_id: Option<String>,
    pub patient_id: Option<String>,
    /// RFC 3339: starting at or after.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: starting before.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentPage {
    pub items: Vec<AppointmentView>,
    pub next_cursor: Option<String>,
}

fn statuses(raw: Option<String>) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|s| {
            anamnesis_domain::schedule::Status::parse(s.trim())
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| bad_param("status", "status is booked, checked_in, in_progress, completed, cancelled or no_show"))
        })
        .collect()
}

fn cursor(raw: Option<String>) -> Result<Option<(i64, String)>, ApiError> {
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

fn next_cursor(items: &[AppointmentView], more: bool) -> Option<String> {
    more.then(|| {
        items
            .last()
            .map(|a| format!("{}_{}", a.starts_at.timestamp(), a.appointment_id))
    })
    .flatten()
}

/// Appointments by status, provider, patient and time, for the front desk
/// (staff, compliance).
#[utoipa::path(get, path = "/v1/appointments", tag = "scheduling", security(("bearer" = [])),
    params(AppointmentParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = AppointmentPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_appointments(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<AppointmentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AppointmentPage>, ApiError> {
    authorize(&who, Action::ListAppointments, &Context::NONE)?;
    let Query(p) = params.map_err(|_| {
        bad_query("query parameters are status, provider_id, patient_id, from, to, cursor, limit")
    })?;
    let filter = AppointmentFilter {
        provider_id: uuid_param("provider_id", p.provider_id)?,
        patient_id: uuid_param("patient_id", p.patient_id)?,
        statuses: statuses(p.status)?,
        from: instant_param("from", p.from)?.map(|t| t.timestamp()),
        to: instant_param("to", p.to)?.map(|t| t.timestamp()),
        after: cursor(p.cursor)?,
        limit: limit(p.limit)?,
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let (rows, more) = read_model::appointments(state.reads(), &filter).await?;
    let read = crate::access_log::ids(rows.iter().map(|r| r.patient_id.as_str()))?;
    crate::access_log::record(&state, &who, "GET /v1/appointments", read).await?;
    let items = rows
        .into_iter()
        .map(|r| appointment_view(&state, r, true))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), results = items.len(), "appointment list");
    Ok(Json(AppointmentPage {
        next_cursor: next_cursor(&items, more),
        items,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScheduleParams {
    /// `YYYY-MM-DD`, the local day (default today).
    #[param(value_type = Option<String>, format = Date)]
    pub date: Option<String>,
    /// 1 (a day) or 7 (a week); default 1.
    #[param(value_type = Option<i64>)]
    pub days: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub provider_id: String,
    pub time_zone: String,
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// Every appointment starting those days, cancelled ones included.
    pub appointments: Vec<AppointmentView>,
}

/// A provider's day or week: patient names for staff, compliance and the
/// provider; none for other roles.
#[utoipa::path(get, path = "/v1/providers/{id}/schedule", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path), ScheduleParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = ScheduleView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn provider_schedule(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<ScheduleParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = id_of(&id)?;
    let user = provider_user(&state, id).await?;
    let context = Context::provider(user);
    authorize(&who, Action::ReadSchedule, &context)?;
    if user.is_none() {
        return Err(ApiError::NotFound);
    }
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are date (YYYY-MM-DD), days (1 or 7)"))?;
    let zone = state.scheduler().zone();
    let from = match p.date {
        None => zone.date_of(Utc::now()),
        Some(d) => parse_iso_date(&d).ok_or_else(|| bad_param("date", "a date is YYYY-MM-DD"))?,
    };
    let days = match p.days.as_deref() {
        None | Some("1") => 1,
        Some("7") => 7,
        Some(_) => return Err(bad_param("days", "days is 1 or 7")),
    };
    let to = from + Duration::days(days - 1);
    let names = matches!(who.role, Role::Staff | Role::Compliance) || context.is_provider(&who);
    min.wait(state.progress(read_model::NAME)).await?;
    let filter = AppointmentFilter {
        provider_id: Some(id.to_string()),
        from: Some(zone.day(from).0.timestamp()),
        to: Some(zone.day(to).1.timestamp()),
        limit: 1000,
        ..Default::default()
    };
    let (rows, _) = read_model::appointments(state.reads(), &filter).await?;
    if names {
        let read = crate::access_log::ids(rows.iter().map(|r| r.patient_id.as_str()))?;
        crate::access_log::record(&state, &who, "GET /v1/providers/{id}/schedule", read).await?;
    }
    let appointments = rows
        .into_iter()
        .map(|r| appointment_view(&state, r, names))
        .collect::<Result<Vec<_>, _>>()?;
    if names {
        tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), results = appointments.len(), "provider schedule read");
    }
    Ok(Json(ScheduleView {
        provider_id: id.to_string(),
        time_zone: zone.name().to_owned(),
        from,
        to,
        appointments,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientAppointmentParams {
    /// `upcoming` (default: starting now or later, soonest first) or `past`
    /// (started before now, in start order).
    pub when: Option<String>,
    pub cursor: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// A patient's appointments, upcoming or past, with status.
#[utoipa::path(get, path = "/v1/patients/{id}/appointments", tag = "scheduling", security(("bearer" = [])),
    params(("id" = Uuid, Path), PatientAppointmentParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = AppointmentPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn patient_appointments(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<PatientAppointmentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AppointmentPage>, ApiError> {
    let id = id_of(&id)?;
    authorize(&who, Action::PatientAppointments, &Context::patient(id))?;
    let Query(p) = params
        .map_err(|_| bad_query("query parameters are when (upcoming or past), cursor, limit"))?;
    let now = Utc::now().timestamp();
    let (from, to) = match p.when.as_deref() {
        None | Some("upcoming") => (Some(now), None),
        Some("past") => (None, Some(now)),
        Some(_) => return Err(bad_param("when", "when is upcoming or past")),
    };
    let filter = AppointmentFilter {
        patient_id: Some(id.to_string()),
        from,
        to,
        after: cursor(p.cursor)?,
        limit: limit(p.limit)?,
        ..Default::default()
    };
    min.wait(state.progress(read_model::NAME)).await?;
    let (rows, more) = read_model::appointments(state.reads(), &filter).await?;
    // A doctor or nurse outside the patient's care sees when, not why: the
    // reasons for visit are clinical (they were once shown to any). One
    // that reads under a break-the-glass grant is marked, as everywhere.
    let (context, glass) = crate::care::context_marked(&state, &who, id).await?;
    let reasons = !matches!(who.role, Role::Doctor | Role::Nurse)
        || context.care != crate::policy::Care::None;
    let what = "GET /v1/patients/{id}/appointments";
    crate::access_log::record_marked(&state, &who, what, [id], glass).await?;
    let items = rows
        .into_iter()
        .map(|r| appointment_view(&state, r, reasons))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient appointments read");
    Ok(Json(AppointmentPage {
        next_cursor: next_cursor(&items, more),
        items,
    }))
}

/// The provider record of the caller, for clients that book "with me".
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyProvider {
    pub provider_id: Option<String>,
}

/// Which provider record the signed-in doctor or nurse is, if any.
#[utoipa::path(get, path = "/v1/me/provider", tag = "scheduling", security(("bearer" = [])),
    responses((status = 200, body = MyProvider), (status = 401, body = Problem)))]
pub async fn my_provider(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<MyProvider>, ApiError> {
    authorize(&who, Action::ListProviders, &Context::NONE)?;
    Ok(Json(MyProvider {
        provider_id: provider_of_user(&state, who.user_id)
            .await?
            .map(|u| u.to_string()),
    }))
}

impl crate::error::Rule for ScheduleError {
    fn problem(self) -> ApiError {
        crate::error::schedule_rule(self)
    }
}
