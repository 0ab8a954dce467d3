//! The clinic's calendar: clinic-wide holidays. One stream
//! ([`CLINIC_CALENDAR_ID`]); every booking fences it, as it fences its
//! provider's.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::calendar::{ClinicZone, Closure, ClosureSpan};
use super::error::ScheduleError;

/// The id of the clinic calendar's one stream.
pub const CLINIC_CALENDAR_ID: &str = "clinic";

/// A fact about the clinic's calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClinicEvent {
    /// A clinic-wide holiday was added.
    #[serde(rename = "clinic_calendar.holiday_added")]
    HolidayAdded { closure: Closure },
    /// A holiday was withdrawn.
    #[serde(rename = "clinic_calendar.holiday_removed")]
    HolidayRemoved { closure_id: Uuid },
}

impl DomainEvent for ClinicEvent {
    fn event_type(&self) -> String {
        match self {
            ClinicEvent::HolidayAdded { .. } => "clinic_calendar.holiday_added",
            ClinicEvent::HolidayRemoved { .. } => "clinic_calendar.holiday_removed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for ClinicEvent {}

/// What may be asked of the clinic's calendar.
#[derive(Debug, Clone, PartialEq)]
pub enum ClinicCommand {
    /// Add a clinic-wide holiday.
    AddHoliday {
        closure_id: Uuid,
        span: ClosureSpan,
        reason: String,
        zone: ClinicZone,
        now: DateTime<Utc>,
    },
    /// Withdraw a holiday.
    RemoveHoliday { closure_id: Uuid },
}

/// The clinic's holidays.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicCalendar {
    holidays: Vec<Closure>,
}

impl ClinicCalendar {
    /// Every holiday on record.
    pub fn holidays(&self) -> &[Closure] {
        &self.holidays
    }
}

impl Aggregate for ClinicCalendar {
    const TYPE: &'static str = "clinic_calendar";
    type Command = ClinicCommand;
    type Event = ClinicEvent;
    type Error = ScheduleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ClinicCommand::AddHoliday {
                closure_id,
                span,
                reason,
                zone,
                now,
            } => ClinicEvent::HolidayAdded {
                closure: Closure::parse(closure_id, span, &reason, zone, now)?,
            },
            ClinicCommand::RemoveHoliday { closure_id } => {
                if !self.holidays.iter().any(|c| c.closure_id == closure_id) {
                    return Err(ScheduleError::UnknownClosure);
                }
                ClinicEvent::HolidayRemoved { closure_id }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ClinicEvent::HolidayAdded { closure } => self.holidays.push(closure),
            ClinicEvent::HolidayRemoved { closure_id } => {
                self.holidays.retain(|c| c.closure_id != closure_id)
            }
        }
    }
}

impl UniqueKeys for ClinicCalendar {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for ClinicCalendar {
    /// About no patient: a calendar holds no one's data.
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        None
    }
}
