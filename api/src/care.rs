//! How a doctor or nurse stands to a patient, for the policy (ADR 0013):
//! on the care team by assignment (the care-team stream, read from the log
//! at each request), by an appointment with them (from booking until a
//! configured time after the visit, read from the appointments), or under
//! an unexpired break-the-glass grant (the same stream). The policy
//! decides; this only looks the facts up.
//!
//! The appointments read model may lag the log by a few milliseconds: a
//! refusal is only given once it has caught up with the log as it stood
//! when the request came, so that a booking just made counts.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use anamnesis_domain::chart::{CareTeam, Grant, Standing};
use anamnesis_domain::user::Role;
use anamnesis_projections::schedule as appointments;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::policy::{Care, Context};
use crate::state::AppState;

/// How long a refusal waits for the appointments to catch up.
const CATCH_UP: Duration = Duration::from_secs(2);

/// What the clinical record needs configured.
#[derive(Debug, Clone)]
pub struct ClinicalSettings {
    /// How long after a visit its provider stays on the care team.
    pub care_after_visit: chrono::Duration,
    /// How long a break-the-glass grant lasts.
    pub break_glass: chrono::Duration,
    /// Where document bytes go.
    pub documents: crate::documents::Documents,
    /// The clinic's one currency: every bill records it (ADR 0016).
    pub currency: anamnesis_domain::billing::Currency,
}

/// `who`'s standing to `patient`, with the grant when it is one.
pub async fn standing(
    state: &AppState,
    who: &Principal,
    patient: Uuid,
) -> Result<(Care, Option<Grant>), ApiError> {
    if !matches!(who.role, Role::Doctor | Role::Nurse) {
        return Ok((Care::None, None));
    }
    let now = Utc::now();
    let (team, _, _) = state
        .bus()
        .load::<CareTeam>(&patient.to_string())
        .await
        .map_err(ApiError::from)?;
    let standing = team.standing(who.user_id, now);
    if standing == Some(Standing::Member) {
        return Ok((Care::Team, None));
    }
    if by_appointment(state, who, patient, now).await? {
        return Ok((Care::Team, None));
    }
    Ok(match standing {
        Some(Standing::Glass(grant)) => (Care::Glass, Some(grant)),
        _ => (Care::None, None),
    })
}

/// The policy context of an action on `patient`'s record by `who`.
pub async fn context(
    state: &AppState,
    who: &Principal,
    patient: Uuid,
) -> Result<Context, ApiError> {
    let (care, _) = standing(state, who, patient).await?;
    Ok(Context::in_care(patient, care))
}

/// [`context`], and whether it is a break-the-glass access (for marking
/// reads and commands).
pub async fn context_marked(
    state: &AppState,
    who: &Principal,
    patient: Uuid,
) -> Result<(Context, bool), ApiError> {
    let context = context(state, who, patient).await?;
    Ok((context, context.care == crate::policy::Care::Glass))
}

async fn by_appointment(
    state: &AppState,
    who: &Principal,
    patient: Uuid,
    now: chrono::DateTime<Utc>,
) -> Result<bool, ApiError> {
    let since = (now - state.clinical().care_after_visit).timestamp();
    let (patient, user) = (patient.to_string(), who.user_id.to_string());
    let ask = || appointments::provider_of_patient(state.reads(), &patient, &user, since);
    if ask().await? {
        return Ok(true);
    }
    // Refuse only on an answer read after the read model has seen the log
    // as it stood when the first answer was wrong: the projector may have
    // committed the booking between that answer and now.
    let head = state.log().head_position().await?;
    let mut progress = state.progress(appointments::NAME);
    let caught_up = tokio::time::timeout(CATCH_UP, progress.wait_for(|p| *p >= head))
        .await
        .is_ok_and(|r| r.is_ok());
    if !caught_up {
        return Err(ApiError::NotCaughtUp {
            position: head,
            reached: *progress.borrow(),
        });
    }
    Ok(ask().await?)
}
