//! An appointment: one patient with one provider for one period, from booking
//! to completion, cancellation or no-show.
//!
//! While active (booked, checked in, in progress) it holds its period as
//! unique keys on the provider's and the patient's calendars, one per five
//! minutes ([`Period::calendar_keys`]): the write side claims them in the
//! append's transaction, so two active appointments of one provider, or of
//! one patient, can never overlap, whatever the interleaving (ADR 0008). An
//! overbooking (staff, with a reason) holds only the patient's keys.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::calendar::{appointment_period, Calendar, Period, PATIENT_SCOPE, PROVIDER_SCOPE};
use super::error::{text, ScheduleError};

/// A cancellation less than this ahead of the start is late.
pub fn late_cancellation() -> Duration {
    Duration::hours(24)
}

/// Where an appointment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Booked,
    CheckedIn,
    InProgress,
    Completed,
    Cancelled,
    NoShow,
}

impl Status {
    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Booked => "booked",
            Status::CheckedIn => "checked_in",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::NoShow => "no_show",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Booked,
            Status::CheckedIn,
            Status::InProgress,
            Status::Completed,
            Status::Cancelled,
            Status::NoShow,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether it takes time on the calendars.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Status::Booked | Status::CheckedIn | Status::InProgress
        )
    }
}

/// Whether the patient can be booked, as the write side found their record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientStanding {
    Registered,
    Deceased,
    Unknown,
}

/// Who is booked with whom, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub provider_id: Uuid,
    pub patient_id: Uuid,
    pub period: Period,
    pub reason_for_visit: String,
    /// Set when staff booked over the provider's other appointments.
    pub overbook_reason: Option<String>,
}

/// A fact about an appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AppointmentEvent {
    /// Booked.
    #[serde(rename = "appointment.booked")]
    Booked { booking: Booking },
    /// Moved to another time (the old one released in the same commit).
    #[serde(rename = "appointment.rescheduled")]
    Rescheduled { from: Period, to: Period },
    /// Cancelled; `late` when less than 24 h ahead; `by_clinic` when a
    /// closure cancelled it.
    #[serde(rename = "appointment.cancelled")]
    Cancelled {
        reason: String,
        late: bool,
        by_clinic: bool,
    },
    /// The patient arrived.
    #[serde(rename = "appointment.checked_in")]
    CheckedIn { at: DateTime<Utc> },
    /// The visit began.
    #[serde(rename = "appointment.started")]
    Started { at: DateTime<Utc> },
    /// The visit ended.
    #[serde(rename = "appointment.completed")]
    Completed { at: DateTime<Utc> },
    /// The patient did not come.
    #[serde(rename = "appointment.no_show")]
    NoShow { at: DateTime<Utc> },
}

impl DomainEvent for AppointmentEvent {
    fn event_type(&self) -> String {
        match self {
            AppointmentEvent::Booked { .. } => "appointment.booked",
            AppointmentEvent::Rescheduled { .. } => "appointment.rescheduled",
            AppointmentEvent::Cancelled { .. } => "appointment.cancelled",
            AppointmentEvent::CheckedIn { .. } => "appointment.checked_in",
            AppointmentEvent::Started { .. } => "appointment.started",
            AppointmentEvent::Completed { .. } => "appointment.completed",
            AppointmentEvent::NoShow { .. } => "appointment.no_show",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for AppointmentEvent {}

/// What may be asked of an appointment. Booking and rescheduling carry the
/// provider's [`Calendar`] as the write side loaded it.
#[derive(Debug, Clone, PartialEq)]
pub enum AppointmentCommand {
    /// Book; with `overbook_reason`, over the provider's other appointments.
    Book {
        provider_id: Uuid,
        /// The provider's calendar; `None` when there is no such provider.
        calendar: Option<Calendar>,
        /// Whether the provider's user account is active (a deactivated
        /// one is not booked).
        provider_active: bool,
        patient_id: Uuid,
        patient: PatientStanding,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        reason_for_visit: String,
        overbook_reason: Option<String>,
        now: DateTime<Utc>,
    },
    /// Move to another time with the same provider.
    Reschedule {
        calendar: Calendar,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Cancel with a reason; `by_clinic` for a closure's cancellation.
    Cancel {
        reason: String,
        by_clinic: bool,
        now: DateTime<Utc>,
    },
    CheckIn {
        now: DateTime<Utc>,
    },
    Start {
        now: DateTime<Utc>,
    },
    Complete {
        now: DateTime<Utc>,
    },
    NoShow {
        now: DateTime<Utc>,
    },
}

/// An appointment's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    booking: Option<Booking>,
    status: Status,
}

impl Appointment {
    /// The booking, once booked.
    pub fn booking(&self) -> Option<&Booking> {
        self.booking.as_ref()
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    fn transition(&self, from: &[Status], wanted: &'static str) -> Result<&Booking, ScheduleError> {
        let booking = self
            .booking
            .as_ref()
            .ok_or(ScheduleError::UnknownAppointment)?;
        if !from.contains(&self.status) {
            return Err(ScheduleError::InvalidTransition {
                status: self.status.as_str(),
                wanted,
            });
        }
        Ok(booking)
    }

    fn decide(&self, command: AppointmentCommand) -> Result<AppointmentEvent, ScheduleError> {
        use AppointmentCommand as C;
        use Status as S;
        match command {
            C::Book {
                provider_id,
                calendar,
                provider_active,
                patient_id,
                patient,
                starts_at,
                ends_at,
                reason_for_visit,
                overbook_reason,
                now,
            } => {
                if self.booking.is_some() {
                    return Err(ScheduleError::AlreadyBooked);
                }
                let calendar = calendar.ok_or(ScheduleError::UnknownProvider)?;
                if !provider_active {
                    return Err(ScheduleError::ProviderInactive);
                }
                match patient {
                    PatientStanding::Registered => {}
                    PatientStanding::Deceased => return Err(ScheduleError::PatientDeceased),
                    PatientStanding::Unknown => return Err(ScheduleError::UnknownPatient),
                }
                let period = appointment_period(starts_at, ends_at, now)?;
                calendar.check(&period)?;
                let reason_for_visit = text("reason_for_visit", &reason_for_visit, 1000)?;
                let overbook_reason = overbook_reason
                    .map(|r| text("overbook_reason", &r, 500))
                    .transpose()?;
                Ok(AppointmentEvent::Booked {
                    booking: Booking {
                        provider_id,
                        patient_id,
                        period,
                        reason_for_visit,
                        overbook_reason,
                    },
                })
            }
            C::Reschedule {
                calendar,
                starts_at,
                ends_at,
                now,
            } => {
                let booking = self.transition(&[S::Booked], "rescheduled")?;
                let period = appointment_period(starts_at, ends_at, now)?;
                calendar.check(&period)?;
                Ok(AppointmentEvent::Rescheduled {
                    from: booking.period,
                    to: period,
                })
            }
            C::Cancel {
                reason,
                by_clinic,
                now,
            } => {
                let booking = self.transition(&[S::Booked, S::CheckedIn], "cancelled")?;
                // From its start on, a booked appointment is kept or missed:
                // a cancellation then would turn a no-show into a late
                // cancellation. The clinic's own (a closure) still may.
                if !by_clinic && self.status == S::Booked && now >= booking.period.start {
                    return Err(ScheduleError::AlreadyBegun);
                }
                Ok(AppointmentEvent::Cancelled {
                    reason: text("reason", &reason, 500)?,
                    late: booking.period.start - now < late_cancellation(),
                    by_clinic,
                })
            }
            C::CheckIn { now } => {
                self.transition(&[S::Booked], "checked in")?;
                Ok(AppointmentEvent::CheckedIn { at: now })
            }
            C::Start { now } => {
                self.transition(&[S::CheckedIn], "started")?;
                Ok(AppointmentEvent::Started { at: now })
            }
            C::Complete { now } => {
                self.transition(&[S::InProgress], "completed")?;
                Ok(AppointmentEvent::Completed { at: now })
            }
            C::NoShow { now } => {
                let booking = self.transition(&[S::Booked], "marked no-show")?;
                if now < booking.period.start {
                    return Err(ScheduleError::NotStartedYet);
                }
                Ok(AppointmentEvent::NoShow { at: now })
            }
        }
    }
}

impl Aggregate for Appointment {
    const TYPE: &'static str = "appointment";
    type Command = AppointmentCommand;
    type Event = AppointmentEvent;
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
        use AppointmentEvent as E;
        match event {
            E::Booked { booking } => {
                self.booking = Some(booking);
                self.status = Status::Booked;
            }
            E::Rescheduled { to, .. } => {
                if let Some(b) = &mut self.booking {
                    b.period = to;
                    // A reschedule goes through the full check.
                    b.overbook_reason = None;
                }
            }
            E::Cancelled { .. } => self.status = Status::Cancelled,
            E::CheckedIn { .. } => self.status = Status::CheckedIn,
            E::Started { .. } => self.status = Status::InProgress,
            E::Completed { .. } => self.status = Status::Completed,
            E::NoShow { .. } => self.status = Status::NoShow,
        }
    }
}

impl UniqueKeys for Appointment {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        let Some(b) = &self.booking else {
            return Vec::new();
        };
        if !self.status.is_active() {
            return Vec::new();
        }
        let mut keys = b.period.calendar_keys(PATIENT_SCOPE, b.patient_id);
        if b.overbook_reason.is_none() {
            keys.extend(b.period.calendar_keys(PROVIDER_SCOPE, b.provider_id));
        }
        keys
    }
}

impl Subject for Appointment {
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.booking.as_ref().map(|b| b.patient_id)
    }
}
