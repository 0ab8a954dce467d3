//! A bookable provider: a doctor or nurse user, their working hours and
//! their time off. Its stream is the provider's calendar: a booking fences it
//! (commits only if it has not moved), so that hours or time off changed
//! while a booking was being decided send the booking round again.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};
use crate::user::Role;

use super::calendar::{
    Availability, AvailabilityInput, ClinicZone, Closure, ClosureSpan, Period, GRANULE_MINUTES,
    MAX_APPOINTMENT_MINUTES,
};
use super::error::{text, ScheduleError};

/// Unique-key scope: one provider per user.
pub const USER_SCOPE: &str = "provider.user";

/// What kind of clinician a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Doctor,
    Nurse,
}

impl ProviderKind {
    /// The stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Doctor => "doctor",
            ProviderKind::Nurse => "nurse",
        }
    }
}

/// What is shown of a provider to anyone signed in (no PHI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: Uuid,
    pub kind: ProviderKind,
    pub display_name: String,
    pub specialty: String,
    pub default_minutes: i64,
}

/// A fact about a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProviderEvent {
    /// A doctor or nurse user became bookable.
    #[serde(rename = "provider.enrolled")]
    Enrolled { profile: Profile },
    /// Weekly working hours were set (replacing earlier ones).
    #[serde(rename = "provider.availability_set")]
    AvailabilitySet { availability: Availability },
    /// Time off was added.
    #[serde(rename = "provider.time_off_added")]
    TimeOffAdded { closure: Closure },
    /// Time off was withdrawn.
    #[serde(rename = "provider.time_off_removed")]
    TimeOffRemoved { closure_id: Uuid },
    /// Appointment `appointment_id` was booked over the provider's other
    /// appointments: it holds none of the provider's calendar keys, so this
    /// is how a closure finds it.
    #[serde(rename = "provider.overbooked")]
    Overbooked {
        appointment_id: Uuid,
        period: Period,
    },
}

impl DomainEvent for ProviderEvent {
    fn event_type(&self) -> String {
        match self {
            ProviderEvent::Enrolled { .. } => "provider.enrolled",
            ProviderEvent::AvailabilitySet { .. } => "provider.availability_set",
            ProviderEvent::TimeOffAdded { .. } => "provider.time_off_added",
            ProviderEvent::TimeOffRemoved { .. } => "provider.time_off_removed",
            ProviderEvent::Overbooked { .. } => "provider.overbooked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for ProviderEvent {}

/// What may be asked of a provider.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderCommand {
    /// Make user `user_id` bookable. `user_role` is the user's role as
    /// loaded (`None` when there is no active user with that id).
    Enroll {
        user_id: Uuid,
        user_role: Option<Role>,
        display_name: String,
        specialty: String,
        default_minutes: i64,
    },
    /// Replace the weekly working hours.
    SetAvailability { input: AvailabilityInput },
    /// Add time off.
    AddTimeOff {
        closure_id: Uuid,
        span: ClosureSpan,
        reason: String,
        zone: ClinicZone,
        now: DateTime<Utc>,
    },
    /// Withdraw time off.
    RemoveTimeOff { closure_id: Uuid },
    /// Note an overbooking of the provider (appended with the booking).
    RecordOverbooking {
        appointment_id: Uuid,
        period: Period,
    },
}

/// An appointment booked over the provider's others, as the provider's
/// stream noted it. It may since have been cancelled or moved: the
/// appointment's own stream says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overbooking {
    pub appointment_id: Uuid,
    pub period: Period,
}

/// A provider's state: what booking and its own rules need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    profile: Option<Profile>,
    availability: Option<Availability>,
    time_off: Vec<Closure>,
    #[serde(default)]
    overbookings: Vec<Overbooking>,
}

impl Provider {
    /// The profile, once enrolled.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// The weekly hours, once set.
    pub fn availability(&self) -> Option<&Availability> {
        self.availability.as_ref()
    }

    /// The provider's time off.
    pub fn time_off(&self) -> &[Closure] {
        &self.time_off
    }

    /// The appointments ever booked over this provider's others at a time
    /// overlapping `period` (some may since be cancelled or moved).
    pub fn overbookings_over(&self, period: &Period) -> impl Iterator<Item = Uuid> + '_ {
        let period = *period;
        self.overbookings
            .iter()
            .filter(move |o| o.period.overlaps(&period))
            .map(|o| o.appointment_id)
    }

    fn decide(&self, command: ProviderCommand) -> Result<ProviderEvent, ScheduleError> {
        use ProviderCommand as C;
        if !matches!(command, C::Enroll { .. }) && self.profile.is_none() {
            return Err(ScheduleError::UnknownProvider);
        }
        match command {
            C::Enroll {
                user_id,
                user_role,
                display_name,
                specialty,
                default_minutes,
            } => {
                if self.profile.is_some() {
                    return Err(ScheduleError::AlreadyEnrolled);
                }
                let kind = match user_role {
                    None => return Err(ScheduleError::UnknownUser),
                    Some(Role::Doctor) => ProviderKind::Doctor,
                    Some(Role::Nurse) => ProviderKind::Nurse,
                    Some(_) => return Err(ScheduleError::NotAClinician),
                };
                if !(GRANULE_MINUTES..=MAX_APPOINTMENT_MINUTES).contains(&default_minutes)
                    || default_minutes % GRANULE_MINUTES != 0
                {
                    return Err(ScheduleError::InvalidDefaultLength);
                }
                Ok(ProviderEvent::Enrolled {
                    profile: Profile {
                        user_id,
                        kind,
                        display_name: text("display_name", &display_name, 200)?,
                        specialty: text("specialty", &specialty, 100)?,
                        default_minutes,
                    },
                })
            }
            C::SetAvailability { input } => Ok(ProviderEvent::AvailabilitySet {
                availability: Availability::parse(input)?,
            }),
            C::AddTimeOff {
                closure_id,
                span,
                reason,
                zone,
                now,
            } => Ok(ProviderEvent::TimeOffAdded {
                closure: Closure::parse(closure_id, span, &reason, zone, now)?,
            }),
            C::RemoveTimeOff { closure_id } => {
                if !self.time_off.iter().any(|c| c.closure_id == closure_id) {
                    return Err(ScheduleError::UnknownClosure);
                }
                Ok(ProviderEvent::TimeOffRemoved { closure_id })
            }
            C::RecordOverbooking {
                appointment_id,
                period,
            } => Ok(ProviderEvent::Overbooked {
                appointment_id,
                period,
            }),
        }
    }
}

impl Aggregate for Provider {
    const TYPE: &'static str = "provider";
    type Command = ProviderCommand;
    type Event = ProviderEvent;
    type Error = ScheduleError;
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
            ProviderEvent::Enrolled { profile } => self.profile = Some(profile),
            ProviderEvent::AvailabilitySet { availability } => {
                self.availability = Some(availability)
            }
            ProviderEvent::TimeOffAdded { closure } => self.time_off.push(closure),
            ProviderEvent::TimeOffRemoved { closure_id } => {
                self.time_off.retain(|c| c.closure_id != closure_id)
            }
            ProviderEvent::Overbooked {
                appointment_id,
                period,
            } => self.overbookings.push(Overbooking {
                appointment_id,
                period,
            }),
        }
    }
}

impl UniqueKeys for Provider {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        self.profile
            .iter()
            .map(|p| UniqueKey {
                scope: USER_SCOPE,
                key: p.user_id.to_string(),
            })
            .collect()
    }
}

impl Subject for Provider {
    /// About no patient: a calendar holds no one's data.
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        None
    }
}
