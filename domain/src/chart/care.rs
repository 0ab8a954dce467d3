//! A patient's care team: the doctors and nurses explicitly assigned to
//! them, and the break-the-glass grants made for them. One stream per
//! patient, its id the patient's id.
//!
//! The other way onto a care team, an appointment with the patient, is not
//! in this stream: it is read from the appointments (the policy combines
//! both, ADR 0013). This aggregate answers "is this user on the team, or
//! holding a grant, at this instant" from its state; it decides nothing
//! about access itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::error::{text, ChartError};

/// The longest break-the-glass grant.
pub fn longest_grant() -> Duration {
    Duration::hours(24)
}

/// A fact about a patient's care team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CareEvent {
    /// A doctor or nurse was assigned to the patient's care, for a reason.
    #[serde(rename = "care_team.member_added")]
    MemberAdded { user_id: Uuid, reason: String },
    /// A member was taken off the team, for a reason.
    #[serde(rename = "care_team.member_removed")]
    MemberRemoved { user_id: Uuid, reason: String },
    /// A doctor or nurse outside the team broke the glass: access to this
    /// patient until `expires_at`, for a reason.
    #[serde(rename = "care_team.glass_broken")]
    GlassBroken {
        grant_id: Uuid,
        user_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
}

impl DomainEvent for CareEvent {
    fn event_type(&self) -> String {
        match self {
            CareEvent::MemberAdded { .. } => "care_team.member_added",
            CareEvent::MemberRemoved { .. } => "care_team.member_removed",
            CareEvent::GlassBroken { .. } => "care_team.glass_broken",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for CareEvent {}

/// What may be asked of a care team. `clinician` is whether the user named
/// is an active doctor or nurse, as the write side found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CareCommand {
    Add {
        user_id: Uuid,
        clinician: bool,
        reason: String,
    },
    Remove {
        user_id: Uuid,
        reason: String,
    },
    BreakGlass {
        grant_id: Uuid,
        user_id: Uuid,
        clinician: bool,
        reason: String,
        now: DateTime<Utc>,
        lasts: Duration,
    },
}

/// A break-the-glass grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// How a user reaches the patient, as far as this stream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Assigned to the team.
    Member,
    /// Holding an unexpired break-the-glass grant.
    Glass(Grant),
}

/// A patient's care team.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeam {
    members: BTreeMap<Uuid, String>,
    grants: Vec<Grant>,
}

impl CareTeam {
    /// The assigned members.
    pub fn members(&self) -> impl Iterator<Item = &Uuid> {
        self.members.keys()
    }

    /// How `user` reaches the patient at `now`, if this stream gives them a way.
    pub fn standing(&self, user: Uuid, now: DateTime<Utc>) -> Option<Standing> {
        if self.members.contains_key(&user) {
            return Some(Standing::Member);
        }
        self.grants
            .iter()
            .filter(|g| g.user_id == user && g.expires_at > now)
            .max_by_key(|g| g.expires_at)
            .map(|g| Standing::Glass(*g))
    }

    fn decide(&self, command: CareCommand) -> Result<CareEvent, ChartError> {
        match command {
            CareCommand::Add {
                user_id,
                clinician,
                reason,
            } => {
                if !clinician {
                    return Err(ChartError::NotAClinician);
                }
                if self.members.contains_key(&user_id) {
                    return Err(ChartError::AlreadyMember);
                }
                Ok(CareEvent::MemberAdded {
                    user_id,
                    reason: text("reason", &reason, 500)?,
                })
            }
            CareCommand::Remove { user_id, reason } => {
                if !self.members.contains_key(&user_id) {
                    return Err(ChartError::NotMember);
                }
                Ok(CareEvent::MemberRemoved {
                    user_id,
                    reason: text("reason", &reason, 500)?,
                })
            }
            CareCommand::BreakGlass {
                grant_id,
                user_id,
                clinician,
                reason,
                now,
                lasts,
            } => {
                if !clinician {
                    return Err(ChartError::NotAClinician);
                }
                if lasts < Duration::seconds(1) || lasts > longest_grant() {
                    return Err(ChartError::InvalidDuration);
                }
                Ok(CareEvent::GlassBroken {
                    grant_id,
                    user_id,
                    reason: text("reason", &reason, 500)?,
                    at: now,
                    expires_at: now + lasts,
                })
            }
        }
    }
}

impl Aggregate for CareTeam {
    const TYPE: &'static str = "care_team";
    type Command = CareCommand;
    type Event = CareEvent;
    type Error = ChartError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CareEvent::MemberAdded { user_id, reason } => {
                self.members.insert(user_id, reason);
            }
            CareEvent::MemberRemoved { user_id, .. } => {
                self.members.remove(&user_id);
            }
            CareEvent::GlassBroken {
                grant_id,
                user_id,
                expires_at,
                ..
            } => self.grants.push(Grant {
                grant_id,
                user_id,
                expires_at,
            }),
        }
    }
}

impl UniqueKeys for CareTeam {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for CareTeam {
    /// The stream id is the patient's id.
    fn patient(&self, aggregate_id: &str) -> Option<Uuid> {
        Uuid::parse_str(aggregate_id).ok()
    }
}
