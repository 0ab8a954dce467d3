//! Patient summary cards (ADR 0022): what a front-desk list or a chart
//! header shows of a patient at a glance. Read from Redis when it holds the
//! card, else from the `patients` and `schedule` read models; the answer is
//! the same. The policy and the access log are those of reading the patient.

use axum::extract::State;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Serialize;

use anamnesis_projections::redis::{card_from_database, AllergyBrief, CardData, Upcoming};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{id_of, sourced, MinPosition, NoCache, Path, Source, Sourced};
use crate::policy::{authorize, Action, Care, View};
use crate::state::AppState;

/// A patient at a glance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatientCard {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// `female`, `male`, `other` or `unknown`.
    pub sex: String,
    /// The medical record number (the first identifier of system `mrn`).
    pub mrn: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub deceased_on: Option<NaiveDate>,
    /// Clinical: absent for roles that may not see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allergies: Option<Vec<AllergyBrief>>,
    /// The next booked appointment, if any.
    pub next_appointment: Option<NextAppointment>,
    /// Global position of the patient's last event reflected here.
    pub version: i64,
}

/// A booked appointment ahead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextAppointment {
    pub appointment_id: String,
    pub provider_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: DateTime<FixedOffset>,
}

fn local(state: &AppState, seconds: i64) -> Result<DateTime<FixedOffset>, ApiError> {
    DateTime::from_timestamp(seconds, 0)
        .map(|t| state.scheduler().zone().local(t))
        .ok_or_else(|| ApiError::Internal("an appointment's time is out of range".into()))
}

fn card(
    state: &AppState,
    data: CardData,
    next: Option<Upcoming>,
    view: View,
) -> Result<PatientCard, ApiError> {
    let next_appointment = next
        .map(|u| {
            Ok::<_, ApiError>(NextAppointment {
                starts_at: local(state, u.starts_at)?,
                ends_at: local(state, u.ends_at)?,
                appointment_id: u.appointment_id,
                provider_id: u.provider_id,
            })
        })
        .transpose()?;
    Ok(PatientCard {
        id: data.id,
        family_name: data.family_name,
        given_name: data.given_name,
        birth_date: data.birth_date,
        sex: data.sex,
        mrn: data.mrn,
        deceased_on: data.deceased_on,
        allergies: (view == View::Clinical).then_some(data.allergies),
        next_appointment,
        version: data.version,
    })
}

/// The card from Redis, if it holds it and reflects `min`.
async fn cached(
    state: &AppState,
    id: uuid::Uuid,
    now: i64,
    (min, fresh): (MinPosition, NoCache),
) -> Option<(CardData, Option<Upcoming>)> {
    let cache = state.redis().filter(|_| !fresh.0)?;
    let outcome = match cache.card(id, min.0).await {
        Ok(data) => match data.next_after(now) {
            Some(next) => {
                let next = next.cloned();
                Ok((data, next))
            }
            // Every appointment it kept has begun: the database knows more.
            None => Err("empty"),
        },
        Err(miss) => Err(miss.as_str()),
    };
    let label = match &outcome {
        Ok(_) => "hit",
        Err(why) => why,
    };
    metrics::counter!("anamnesis_redis_reads_total", "model" => "card", "outcome" => label)
        .increment(1);
    outcome.ok()
}

/// A patient's summary card: name, birth date, sex, MRN, date of death,
/// allergies (clinical roles) and the next booked appointment.
#[utoipa::path(get, path = "/v1/patients/{id}/card", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position"),
           ("Cache-Control" = Option<String>, Header, description = "`no-cache`: read the database, not Redis")),
    responses((status = 200, body = PatientCard, headers(("X-Read-Source" = String, description = "redis or database"))),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 503, body = Problem)))]
pub async fn patient_card(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    fresh: NoCache,
    Path(id): Path<String>,
) -> Result<Sourced<PatientCard>, ApiError> {
    let id = id_of(&id)?;
    let context = crate::care::context(&state, &who, id).await?;
    let view = authorize(&who, Action::ReadPatient, &context)?;
    let now = Utc::now().timestamp();
    let (source, data, next) = match cached(&state, id, now, (min, fresh)).await {
        Some((data, next)) => (Source::Redis, data, next),
        None => {
            min.wait(state.progress(anamnesis_projections::patients::NAME))
                .await?;
            min.wait(state.progress(anamnesis_projections::schedule::NAME))
                .await?;
            let data = card_from_database(state.reads(), &id.to_string(), now)
                .await?
                .ok_or(ApiError::NotFound)?;
            let next = data.upcoming.first().cloned();
            (Source::Database, data, next)
        }
    };
    let glass = context.care == Care::Glass;
    crate::access_log::record_marked(&state, &who, "GET /v1/patients/{id}/card", [id], glass)
        .await?;
    tracing::info!(target: "access", actor = %who.user_id, role = who.role.as_str(), patient = %id, "patient card read");
    Ok(sourced(source, card(&state, data, next, view)?))
}
