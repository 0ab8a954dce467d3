//! Every rule a scheduling command can break, one variant each.

use uuid::Uuid;

use crate::text::{self, Lines, TextError};

/// Why a scheduling command (provider, clinic calendar or appointment) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A text field holds control or formatting characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// A time is not on the five-minute grain.
    #[error("{0} must fall on a multiple of five minutes")]
    OffGrain(&'static str),
    /// The slot length is not 5 minutes to 8 hours in steps of 5.
    #[error("slot_minutes must be 5 to 480, a multiple of 5")]
    InvalidSlotLength,
    /// The default appointment length is not 5 minutes to 8 hours in steps of 5.
    #[error("default_minutes must be 5 to 480, a multiple of 5")]
    InvalidDefaultLength,
    /// effective_to is before effective_from.
    #[error("effective_to is before effective_from")]
    EffectiveDatesReversed,
    /// One weekday is given twice.
    #[error("hours names a day twice")]
    DayTwice,
    /// A working interval ends before it starts.
    #[error("a working interval must end after it starts")]
    InvalidInterval,
    /// Two working intervals of one day overlap.
    #[error("working intervals of one day overlap")]
    OverlappingHours,
    /// An appointment or closure ends before it starts, or is too long.
    #[error("the period must end after it starts and be at most 8 hours (appointments)")]
    InvalidPeriod,
    /// A closure longer than allowed.
    #[error("a closure is at most 62 days long")]
    ClosureTooLong,
    /// The time has passed.
    #[error("the time is in the past")]
    InThePast,
    /// The time is more than two years ahead.
    #[error("the time is more than two years ahead")]
    TooFarAhead,
    /// The user is not a doctor or a nurse.
    #[error("only a doctor or a nurse can be a provider")]
    NotAClinician,
    /// The user does not exist or is deactivated.
    #[error("no active user with that id")]
    UnknownUser,
    /// The provider is already enrolled.
    #[error("the provider is already enrolled")]
    AlreadyEnrolled,
    /// No such provider.
    #[error("no such provider")]
    UnknownProvider,
    /// No such closure.
    #[error("no such closure")]
    UnknownClosure,
    /// No such patient, or not bookable.
    #[error("no such patient")]
    UnknownPatient,
    /// The patient is recorded as deceased.
    #[error("the patient is recorded as deceased")]
    PatientDeceased,
    /// The provider's user account is deactivated: not bookable.
    #[error("the provider's account is deactivated")]
    ProviderInactive,
    /// The time is outside the provider's working hours.
    #[error("the time is outside the provider's working hours")]
    OutsideWorkingHours,
    /// The time falls in a closure (holiday or time off).
    #[error("the time falls in a closure")]
    Closed { closure_id: Uuid },
    /// The appointment does not exist.
    #[error("no such appointment")]
    UnknownAppointment,
    /// The appointment already exists.
    #[error("the appointment already exists")]
    AlreadyBooked,
    /// The appointment's state does not allow the transition.
    #[error("the appointment is {status} and cannot be {wanted}")]
    InvalidTransition {
        status: &'static str,
        wanted: &'static str,
    },
    /// A closure over active appointments, without leave to cancel them.
    #[error("the closure covers {} active appointment(s); cancel them or ask to", appointments.len())]
    OverBookings { appointments: Vec<Uuid> },
    /// A no-show before the appointment's start.
    #[error("a no-show can be recorded only after the start time")]
    NotStartedYet,
    /// A cancellation of a booked appointment whose time has begun.
    #[error("the appointment's time has begun: record a no-show, or check the patient in")]
    AlreadyBegun,
}

/// A free-text field, parsed with the one text rule.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, ScheduleError> {
    let lines = if max > 200 {
        Lines::Multi
    } else {
        Lines::Single
    };
    text::parse(value, lines, max).map_err(|e| match e {
        TextError::Empty => ScheduleError::EmptyField(field),
        TextError::TooLong => ScheduleError::TooLong(field),
        TextError::InvalidCharacters => ScheduleError::InvalidCharacters(field),
    })
}
