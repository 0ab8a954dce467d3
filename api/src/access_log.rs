//! Recording reads of patient data (ADR 0012). A handler that answers with a
//! patient's data first records the read in the log, and answers only once
//! the record is committed: a read that cannot be recorded is not answered
//! (`503 access_not_recorded`).

use std::collections::BTreeSet;

use uuid::Uuid;

use anamnesis_commands::{AppendError, AppendRequest, EventLog, EventMetadata, NewEvent};
use anamnesis_domain::access::{AccessEvent, ACCESS_TYPE};
use anamnesis_domain::codec::StoredForm;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Records that `who` read `what` (a route, as documented) of each patient
/// in `patients`, all in one commit; returns once they are durable.
pub async fn record(
    state: &AppState,
    who: &Principal,
    what: &'static str,
    patients: impl IntoIterator<Item = Uuid>,
) -> Result<(), ApiError> {
    record_marked(state, who, what, patients, false).await
}

/// [`record`], marked as made under a break-the-glass grant when
/// `break_glass` (the record and its metadata both say so).
pub async fn record_marked(
    state: &AppState,
    who: &Principal,
    what: &'static str,
    patients: impl IntoIterator<Item = Uuid>,
    break_glass: bool,
) -> Result<(), ApiError> {
    let metadata = marked(EventMetadata::by(who.actor()), break_glass);
    match append(state.log(), metadata, what, patients, break_glass).await {
        Ok(()) => Ok(()),
        Err(e) => {
            metrics::counter!("anamnesis_access_records_failed_total").increment(1);
            tracing::error!(error = %e, "a read was refused: its access record could not be made durable");
            Err(ApiError::Unavailable {
                code: "access_not_recorded",
                detail: "the read could not be recorded in the access log, so it is not answered; \
                         retry shortly"
                    .into(),
            })
        }
    }
}

/// Appends the access records of a read of `what` of each of `patients`
/// by the actor of `metadata`, in one commit; returns once they are
/// durable. The server's reads and the command line's go through here.
pub async fn append(
    log: &EventLog,
    metadata: EventMetadata,
    what: &str,
    patients: impl IntoIterator<Item = Uuid>,
    break_glass: bool,
) -> Result<(), AppendError> {
    let patients: BTreeSet<Uuid> = patients.into_iter().collect();
    if patients.is_empty() {
        return Ok(());
    }
    let event = AccessEvent::Read {
        what: what.to_owned(),
        break_glass,
    }
    .to_stored()
    .map_err(|_| AppendError::Invalid("an access record that does not encode"))?;
    let requests = patients
        .into_iter()
        .map(|patient| AppendRequest {
            aggregate_type: ACCESS_TYPE.to_owned(),
            aggregate_id: Uuid::now_v7().to_string(),
            expected_sequence: 0,
            events: vec![NewEvent {
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
            }],
            metadata: metadata.clone(),
            keys: Default::default(),
            credential: None,
            mfa: None,
            guards: Default::default(),
            patient_id: Some(patient),
        })
        .collect();
    log.append_atomic(requests).await.map(|_| ())
}

/// `metadata`, marked as written under a break-the-glass grant when
/// `break_glass` (history shows the marker, ADR 0010).
pub fn marked(mut metadata: EventMetadata, break_glass: bool) -> EventMetadata {
    if break_glass {
        metadata.extra.insert("break_glass".into(), "true".into());
    }
    metadata
}

/// The patient ids of rows that name one as text (read models keep ids as
/// text). One that is no id is damage: the read is refused, not recorded short.
pub fn ids<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Uuid>, ApiError> {
    texts
        .into_iter()
        .map(|t| {
            Uuid::parse_str(t).map_err(|_| {
                ApiError::Internal("a read model holds a patient id that is no UUID".into())
            })
        })
        .collect()
}
