//! Given/when/then tests of the scheduling domain. Time is always given:
//! "now" is a Tuesday morning in Los Angeles, and instants are written as
//! local wall-clock times through chrono-tz itself, or as plain UTC where
//! the point is the conversion.

mod appointment_booking;
mod appointment_keys;
mod appointment_transitions;
mod clinic;
mod provider;
mod stored;
mod zones;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use cqrs_es::Aggregate;
use uuid::Uuid;

use super::*;

/// The zone most tests' clinic is in.
const LA: Tz = chrono_tz::America::Los_Angeles;
const AUCKLAND: Tz = chrono_tz::Pacific::Auckland;

const PROVIDER: Uuid = Uuid::from_u128(0xD0C);
const PATIENT: Uuid = Uuid::from_u128(0xCA7);
const OTHER_PATIENT: Uuid = Uuid::from_u128(0xCA8);
const TIME_OFF: Uuid = Uuid::from_u128(0x0FF);
const HOLIDAY: Uuid = Uuid::from_u128(0x401);
const APPOINTMENT: Uuid = Uuid::from_u128(0xA99);

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

/// A UTC instant.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A wall-clock time in `tz` that names exactly one instant.
fn wall(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// A wall-clock time in Los Angeles.
fn la(mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    wall(LA, 2026, mo, d, h, mi)
}

fn zone(name: &str) -> ClinicZone {
    ClinicZone::parse(name).unwrap()
}

fn la_zone() -> ClinicZone {
    zone("America/Los_Angeles")
}

/// Tuesday 1 December 2026, 08:00 in Los Angeles.
fn now() -> DateTime<Utc> {
    la(12, 1, 8, 0)
}

fn interval(from: (u32, u32), to: (u32, u32)) -> Interval {
    Interval {
        start: hm(from.0, from.1),
        end: hm(to.0, to.1),
    }
}

fn on(day: Day, intervals: &[Interval]) -> DayHours {
    DayHours {
        day,
        intervals: intervals.to_vec(),
    }
}

const WEEKDAYS: [Day; 5] = [
    Day::Monday,
    Day::Tuesday,
    Day::Wednesday,
    Day::Thursday,
    Day::Friday,
];

const EVERY_DAY: [Day; 7] = [
    Day::Monday,
    Day::Tuesday,
    Day::Wednesday,
    Day::Thursday,
    Day::Friday,
    Day::Saturday,
    Day::Sunday,
];

/// The same intervals on each of `days`, in 30-minute slots, open-ended.
fn hours_on(days: &[Day], intervals: &[Interval]) -> Availability {
    Availability::parse(AvailabilityInput {
        hours: days.iter().map(|d| on(*d, intervals)).collect(),
        slot_minutes: 30,
        effective_from: None,
        effective_to: None,
    })
    .unwrap()
}

/// Monday to Friday, 09:00–12:00 and 13:00–17:00, in 30-minute slots.
fn office_hours() -> Availability {
    hours_on(
        &WEEKDAYS,
        &[interval((9, 0), (12, 0)), interval((13, 0), (17, 0))],
    )
}

/// The provider's calendar in Los Angeles with office hours, nothing closed.
fn calendar() -> Calendar {
    Calendar {
        zone: la_zone(),
        availability: Some(office_hours()),
        closures: Vec::new(),
    }
}

/// A closure over `[start, end)`.
fn closure(closure_id: Uuid, start: DateTime<Utc>, end: DateTime<Utc>) -> Closure {
    Closure {
        closure_id,
        period: Period { start, end },
        whole_days: false,
        reason: "training".into(),
    }
}

fn period(start: DateTime<Utc>, end: DateTime<Utc>) -> Period {
    Period { start, end }
}

/// Monday 7 December 2026, 10:00–10:30 in Los Angeles.
fn monday_ten() -> Period {
    period(la(12, 7, 10, 0), la(12, 7, 10, 30))
}

/// A booking with the provider on `calendar`, for `PATIENT`, made at `now()`.
fn book_on(calendar: Calendar, start: DateTime<Utc>, end: DateTime<Utc>) -> AppointmentCommand {
    AppointmentCommand::Book {
        provider_id: PROVIDER,
        calendar: Some(calendar),
        provider_active: true,
        patient_id: PATIENT,
        patient: PatientStanding::Registered,
        starts_at: start,
        ends_at: end,
        reason_for_visit: "Follow-up of blood pressure".into(),
        overbook_reason: None,
        now: now(),
    }
}

fn book(start: DateTime<Utc>, end: DateTime<Utc>) -> AppointmentCommand {
    book_on(calendar(), start, end)
}

fn booked_at(period: Period) -> AppointmentEvent {
    AppointmentEvent::Booked {
        booking: Booking {
            provider_id: PROVIDER,
            patient_id: PATIENT,
            period,
            reason_for_visit: "Follow-up of blood pressure".into(),
            overbook_reason: None,
        },
    }
}

/// Booked for Monday 7 December, 10:00–10:30 Los Angeles time.
fn booked() -> AppointmentEvent {
    booked_at(monday_ten())
}

fn overbooked() -> AppointmentEvent {
    AppointmentEvent::Booked {
        booking: Booking {
            provider_id: PROVIDER,
            patient_id: PATIENT,
            period: monday_ten(),
            reason_for_visit: "Follow-up of blood pressure".into(),
            overbook_reason: Some("urgent: chest pain".into()),
        },
    }
}

fn checked_in() -> AppointmentEvent {
    AppointmentEvent::CheckedIn {
        at: la(12, 7, 9, 50),
    }
}

fn started() -> AppointmentEvent {
    AppointmentEvent::Started {
        at: la(12, 7, 10, 2),
    }
}

fn completed() -> AppointmentEvent {
    AppointmentEvent::Completed {
        at: la(12, 7, 10, 25),
    }
}

fn cancelled() -> AppointmentEvent {
    AppointmentEvent::Cancelled {
        reason: "patient asked".into(),
        late: false,
        by_clinic: false,
    }
}

fn no_show() -> AppointmentEvent {
    AppointmentEvent::NoShow {
        at: la(12, 7, 10, 20),
    }
}
