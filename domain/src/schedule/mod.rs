//! Scheduling: bookable providers with weekly working hours and time off,
//! clinic-wide holidays, and appointments that never double-book a provider
//! or a patient (ADR 0008).

mod appointment;
mod calendar;
mod clinic;
mod error;
mod provider;
#[cfg(test)]
mod tests;

pub use appointment::{
    late_cancellation, Appointment, AppointmentCommand, AppointmentEvent, Booking, PatientStanding,
    Status,
};
pub use calendar::{
    appointment_period, Availability, AvailabilityInput, Calendar, ClinicZone, Closure,
    ClosureSpan, Day, DayHours, Interval, Period, GRANULE_MINUTES, MAX_APPOINTMENT_MINUTES,
    MAX_CLOSURE_DAYS, PATIENT_SCOPE, PROVIDER_SCOPE,
};
pub use clinic::{ClinicCalendar, ClinicCommand, ClinicEvent, CLINIC_CALENDAR_ID};
pub use error::ScheduleError;
pub use provider::{
    Overbooking, Profile, Provider, ProviderCommand, ProviderEvent, ProviderKind, USER_SCOPE,
};
