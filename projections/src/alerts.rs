//! Urgent alerts (ADR 0020): a critical lab result reaches the responsible
//! doctor, and an emergency (break-the-glass) access reaches every active
//! compliance officer. Their own consumer, with their own checkpoint and
//! tables, so that no backlog of ordinary notifications (a burst of
//! bookings, a rebuild of the inbox) can ever delay one. They show in the
//! same inbox (`crate::notifications::inbox` reads both tables).

use anamnesis_domain::chart::{CareEvent, EntryEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::user::{Role, UserEvent};

use crate::notifications::{note, About, Note, Outbox};
use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql;

/// The consumer's checkpoint name.
pub const NAME: &str = "alerts";

const CRITICAL: Note = Note {
    urgent: true,
    ..note("critical_result", "Critical result", "chart_entry")
};
const GLASS: Note = Note {
    urgent: true,
    ..note("break_glass", "Emergency access to a record", "patient")
};

/// An event of the aggregates alerts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    User(UserEvent),
    Entry(EntryEvent),
    Care(CareEvent),
}

impl Decode for AlertEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        Ok(match event_type.split('.').next().unwrap_or("") {
            "user" => Self::User(UserEvent::from_stored(event_type, version, payload)?),
            "chart_entry" => Self::Entry(EntryEvent::from_stored(event_type, version, payload)?),
            "care_team" => Self::Care(CareEvent::from_stored(event_type, version, payload)?),
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Makes urgent alerts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alerts;

impl Projector for Alerts {
    type Event = AlertEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["user", "chart_entry", "care_team"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["alerts", "alert_users"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<AlertEvent>],
    ) -> Result<(), ProjectionError> {
        let mut out = Outbox::new("alerts");
        // Users created are one insert, up to the next statement on
        // alert_users (a deactivation, a reactivation, a broken glass).
        let mut users = sql::Run::unchecked(
            "alert_users (user_id, role, active)",
            "ON CONFLICT (user_id) DO NOTHING",
        );
        for e in events {
            apply(tx, &mut out, &mut users, e).await?;
        }
        users.flush(tx).await?;
        out.write(tx).await
    }

    /// The patient's alerts go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(tx, &["DELETE FROM alerts WHERE patient_id = $1"], patient)
            .await?;
        Ok(())
    }
}

async fn apply(
    tx: &mut Tx,
    out: &mut Outbox,
    users: &mut sql::Run,
    e: &Envelope<AlertEvent>,
) -> Result<(), ProjectionError> {
    use AlertEvent as A;
    let id = e.id().to_owned();
    let alert = |to: Vec<String>, what: Note, patient: Option<String>| (to, what, patient);
    let made = match &e.event {
        A::User(UserEvent::UserCreated { user_id, role, .. }) => {
            let row = vec![
                user_id.to_string().into(),
                role.as_str().into(),
                1_i64.into(),
            ];
            users.push(String::new(), e.position(), row);
            None
        }
        A::User(UserEvent::UserDeactivated) | A::User(UserEvent::UserReactivated) => {
            users.flush(tx).await?;
            let active = i64::from(matches!(e.event, A::User(UserEvent::UserReactivated)));
            sql::execute(
                tx,
                "UPDATE alert_users SET active = $2 WHERE user_id = $1",
                &[id.as_str().into(), active.into()],
            )
            .await?;
            None
        }
        // The doctor who recorded it is responsible for acting on it.
        A::Entry(EntryEvent::CriticalResultRecorded { origin, .. }) => Some(alert(
            vec![origin.author.to_string()],
            CRITICAL,
            Some(origin.patient_id.to_string()),
        )),
        // The doctor whose amendment made it critical.
        A::Entry(EntryEvent::CriticalResultAmended { .. }) => Some(alert(
            vec![e.stored.actor_id.clone()],
            CRITICAL,
            e.stored.patient_id.map(|p| p.to_string()),
        )),
        // Compliance hears of every emergency access, at once.
        A::Care(CareEvent::GlassBroken { .. }) => {
            users.flush(tx).await?;
            let to = sql::returning(
                tx,
                "SELECT user_id FROM alert_users WHERE role = $1 AND active = 1 ORDER BY user_id",
                &[Role::Compliance.as_str().into()],
            )
            .await?;
            Some(alert(to, GLASS, Some(id.clone())))
        }
        _ => None,
    };
    if let Some((to, what, patient)) = made {
        let about = About {
            what,
            patient: patient.as_deref(),
            subject: &id,
        };
        out.add(&e.stored, &to, about, 0);
    }
    Ok(())
}
