//! Booking an appointment: the period's own rules, the provider's hours and
//! closures, the patient and the text.

use chrono::Duration;
use cqrs_es::test::{AggregateResultValidator, TestFramework};

use super::*;

async fn given(
    events: Vec<AppointmentEvent>,
    command: AppointmentCommand,
) -> AggregateResultValidator<Appointment> {
    TestFramework::<Appointment>::with(())
        .given(events)
        .when_async(command)
        .await
}

async fn booking(command: AppointmentCommand) -> AggregateResultValidator<Appointment> {
    given(vec![], command).await
}

/// Every day 07:00–19:00 in Los Angeles.
fn long_days() -> Calendar {
    Calendar {
        availability: Some(hours_on(&EVERY_DAY, &[interval((7, 0), (19, 0))])),
        ..calendar()
    }
}

/// Office hours in effect from Monday 7 to Friday 11 December 2026 only.
fn one_week_of_hours() -> Calendar {
    let mut hours = office_hours();
    hours.effective_from = Some(day(2026, 12, 7));
    hours.effective_to = Some(day(2026, 12, 11));
    Calendar {
        availability: Some(hours),
        ..calendar()
    }
}

fn with_closure(c: Closure) -> Calendar {
    Calendar {
        closures: vec![c],
        ..calendar()
    }
}

fn with_reason(mut command: AppointmentCommand, reason: &str) -> AppointmentCommand {
    if let AppointmentCommand::Book {
        reason_for_visit, ..
    } = &mut command
    {
        *reason_for_visit = reason.into();
    }
    command
}

fn for_patient(mut command: AppointmentCommand, standing: PatientStanding) -> AppointmentCommand {
    if let AppointmentCommand::Book { patient, .. } = &mut command {
        *patient = standing;
    }
    command
}

fn overbooking_at(start: DateTime<Utc>, end: DateTime<Utc>, reason: &str) -> AppointmentCommand {
    let mut command = book(start, end);
    if let AppointmentCommand::Book {
        overbook_reason, ..
    } = &mut command
    {
        *overbook_reason = Some(reason.into());
    }
    command
}

fn overbooking(reason: &str) -> AppointmentCommand {
    overbooking_at(la(12, 7, 10, 0), la(12, 7, 10, 30), reason)
}

// Working hours.

#[tokio::test]
async fn a_booking_inside_working_hours_is_accepted() {
    booking(book(la(12, 7, 10, 0), la(12, 7, 10, 30)))
        .await
        .then_expect_events(vec![booked()]);
}

#[tokio::test]
async fn a_booking_filling_a_whole_working_interval_is_accepted() {
    let whole_morning = period(la(12, 7, 9, 0), la(12, 7, 12, 0));
    booking(book(whole_morning.start, whole_morning.end))
        .await
        .then_expect_events(vec![booked_at(whole_morning)]);
}

#[tokio::test]
async fn a_booking_before_opening_is_outside_working_hours() {
    booking(book(la(12, 7, 8, 30), la(12, 7, 9, 0)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
    booking(book(la(12, 7, 8, 55), la(12, 7, 9, 25)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn a_booking_running_past_closing_is_outside_working_hours() {
    booking(book(la(12, 7, 16, 45), la(12, 7, 17, 15)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn a_booking_in_the_lunch_break_is_outside_working_hours() {
    booking(book(la(12, 7, 12, 0), la(12, 7, 12, 30)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn a_booking_spanning_two_working_intervals_is_refused() {
    // 11:30–13:30 across the 12:00–13:00 lunch break.
    booking(book(la(12, 7, 11, 30), la(12, 7, 13, 30)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
    // The whole working day, lunch included.
    booking(book(la(12, 7, 9, 0), la(12, 7, 17, 0)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn a_booking_on_a_day_without_hours_is_refused() {
    // Saturday 5 and Sunday 6 December.
    booking(book(la(12, 5, 10, 0), la(12, 5, 10, 30)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
    booking(book(la(12, 6, 10, 0), la(12, 6, 10, 30)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn a_provider_without_hours_cannot_be_booked() {
    let no_hours = Calendar {
        availability: None,
        ..calendar()
    };
    booking(book_on(no_hours, la(12, 7, 10, 0), la(12, 7, 10, 30)))
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn hours_do_not_apply_before_their_effective_from_date() {
    // Friday 4 December, the working day before.
    booking(book_on(
        one_week_of_hours(),
        la(12, 4, 10, 0),
        la(12, 4, 10, 30),
    ))
    .await
    .then_expect_error(ScheduleError::OutsideWorkingHours);
}

#[tokio::test]
async fn hours_apply_on_their_effective_from_date() {
    booking(book_on(
        one_week_of_hours(),
        la(12, 7, 10, 0),
        la(12, 7, 10, 30),
    ))
    .await
    .then_expect_events(vec![booked()]);
}

#[tokio::test]
async fn hours_apply_on_their_effective_to_date() {
    let friday = period(la(12, 11, 16, 30), la(12, 11, 17, 0));
    booking(book_on(one_week_of_hours(), friday.start, friday.end))
        .await
        .then_expect_events(vec![booked_at(friday)]);
}

#[tokio::test]
async fn hours_do_not_apply_after_their_effective_to_date() {
    // Monday 14 December, the working day after.
    booking(book_on(
        one_week_of_hours(),
        la(12, 14, 10, 0),
        la(12, 14, 10, 30),
    ))
    .await
    .then_expect_error(ScheduleError::OutsideWorkingHours);
}

// Closures.

#[tokio::test]
async fn a_booking_during_the_providers_time_off_is_closed_with_its_id() {
    let dentist = closure(TIME_OFF, la(12, 7, 10, 15), la(12, 7, 11, 0));
    booking(book_on(
        with_closure(dentist),
        la(12, 7, 10, 0),
        la(12, 7, 10, 30),
    ))
    .await
    .then_expect_error(ScheduleError::Closed {
        closure_id: TIME_OFF,
    });
}

#[tokio::test]
async fn a_booking_on_a_clinic_holiday_is_closed_with_its_id() {
    // The clinic's holidays, as the write side loads them into the calendar.
    let mut clinic = ClinicCalendar::default();
    clinic.apply(ClinicEvent::HolidayAdded {
        closure: Closure::parse(
            HOLIDAY,
            ClosureSpan::Days {
                from: day(2026, 12, 7),
                to: day(2026, 12, 7),
            },
            "Staff training day",
            la_zone(),
            now(),
        )
        .unwrap(),
    });
    let mut calendar = calendar();
    calendar
        .closures
        .push(closure(TIME_OFF, la(12, 8, 9, 0), la(12, 8, 12, 0)));
    calendar.closures.extend(clinic.holidays().iter().cloned());
    booking(book_on(calendar, la(12, 7, 16, 30), la(12, 7, 17, 0)))
        .await
        .then_expect_error(ScheduleError::Closed {
            closure_id: HOLIDAY,
        });
}

#[tokio::test]
async fn a_booking_ending_as_a_closure_begins_is_accepted() {
    let afternoon_off = closure(TIME_OFF, la(12, 7, 10, 30), la(12, 7, 17, 0));
    booking(book_on(
        with_closure(afternoon_off),
        la(12, 7, 10, 0),
        la(12, 7, 10, 30),
    ))
    .await
    .then_expect_events(vec![booked()]);
}

#[tokio::test]
async fn a_booking_starting_as_a_closure_ends_is_accepted() {
    let early_off = closure(TIME_OFF, la(12, 7, 9, 0), la(12, 7, 10, 0));
    booking(book_on(
        with_closure(early_off),
        la(12, 7, 10, 0),
        la(12, 7, 10, 30),
    ))
    .await
    .then_expect_events(vec![booked()]);
}

// The period itself.

#[tokio::test]
async fn a_booking_in_the_past_is_refused() {
    // Monday 30 November, the day before "now".
    booking(book(la(11, 30, 10, 0), la(11, 30, 10, 30)))
        .await
        .then_expect_error(ScheduleError::InThePast);
}

#[tokio::test]
async fn a_booking_starting_exactly_now_is_refused() {
    booking(book_on(long_days(), now(), now() + Duration::minutes(30)))
        .await
        .then_expect_error(ScheduleError::InThePast);
}

#[tokio::test]
async fn a_booking_starting_five_minutes_from_now_is_accepted() {
    let soon = period(now() + Duration::minutes(5), now() + Duration::minutes(35));
    booking(book_on(long_days(), soon.start, soon.end))
        .await
        .then_expect_events(vec![booked_at(soon)]);
}

#[tokio::test]
async fn a_booking_more_than_two_years_ahead_is_refused() {
    // 2 × 366 days from Tuesday 1 December 2026 is Saturday 2 December 2028.
    let start = la(12, 1, 8, 0) + Duration::days(2 * 366) + Duration::minutes(5);
    booking(book_on(long_days(), start, start + Duration::minutes(30)))
        .await
        .then_expect_error(ScheduleError::TooFarAhead);
}

#[test]
fn a_booking_exactly_two_years_of_366_days_ahead_is_accepted() {
    let start = now() + Duration::days(2 * 366);
    let end = start + Duration::minutes(30);
    assert_eq!(
        appointment_period(start, end, now()),
        Ok(period(start, end))
    );
}

#[tokio::test]
async fn a_booking_starting_off_the_five_minute_grain_is_refused() {
    booking(book(la(12, 7, 10, 3), la(12, 7, 10, 30)))
        .await
        .then_expect_error(ScheduleError::OffGrain("starts_at"));
    let half_a_minute = la(12, 7, 10, 0) + Duration::seconds(30);
    booking(book(half_a_minute, la(12, 7, 10, 30)))
        .await
        .then_expect_error(ScheduleError::OffGrain("starts_at"));
}

#[tokio::test]
async fn a_booking_ending_off_the_five_minute_grain_is_refused() {
    booking(book(la(12, 7, 10, 0), la(12, 7, 10, 28)))
        .await
        .then_expect_error(ScheduleError::OffGrain("ends_at"));
}

#[tokio::test]
async fn a_booking_ending_at_or_before_its_start_is_refused() {
    booking(book(la(12, 7, 10, 0), la(12, 7, 10, 0)))
        .await
        .then_expect_error(ScheduleError::InvalidPeriod);
    booking(book(la(12, 7, 10, 30), la(12, 7, 10, 0)))
        .await
        .then_expect_error(ScheduleError::InvalidPeriod);
}

#[tokio::test]
async fn a_booking_longer_than_eight_hours_is_refused() {
    booking(book_on(long_days(), la(12, 7, 8, 0), la(12, 7, 16, 5)))
        .await
        .then_expect_error(ScheduleError::InvalidPeriod);
}

#[tokio::test]
async fn a_booking_of_exactly_eight_hours_is_accepted() {
    let day_long = period(la(12, 7, 8, 0), la(12, 7, 16, 0));
    booking(book_on(long_days(), day_long.start, day_long.end))
        .await
        .then_expect_events(vec![booked_at(day_long)]);
}

// Who is booked.

#[tokio::test]
async fn a_booking_with_an_unknown_provider_is_refused() {
    let mut command = book(la(12, 7, 10, 0), la(12, 7, 10, 30));
    if let AppointmentCommand::Book { calendar, .. } = &mut command {
        *calendar = None;
    }
    booking(command)
        .await
        .then_expect_error(ScheduleError::UnknownProvider);
}

#[tokio::test]
async fn a_booking_for_an_unknown_patient_is_refused() {
    let command = for_patient(
        book(la(12, 7, 10, 0), la(12, 7, 10, 30)),
        PatientStanding::Unknown,
    );
    booking(command)
        .await
        .then_expect_error(ScheduleError::UnknownPatient);
}

#[tokio::test]
async fn a_booking_for_a_deceased_patient_is_refused() {
    let command = for_patient(
        book(la(12, 7, 10, 0), la(12, 7, 10, 30)),
        PatientStanding::Deceased,
    );
    booking(command)
        .await
        .then_expect_error(ScheduleError::PatientDeceased);
}

#[tokio::test]
async fn a_provider_whose_account_is_deactivated_is_not_booked() {
    let mut command = book(la(12, 8, 10, 0), la(12, 8, 10, 30));
    if let AppointmentCommand::Book {
        provider_active, ..
    } = &mut command
    {
        *provider_active = false;
    }
    booking(command)
        .await
        .then_expect_error(ScheduleError::ProviderInactive);
}

#[tokio::test]
async fn an_appointment_cannot_be_booked_twice() {
    given(vec![booked()], book(la(12, 8, 10, 0), la(12, 8, 10, 30)))
        .await
        .then_expect_error(ScheduleError::AlreadyBooked);
}

// Text.

#[tokio::test]
async fn a_reason_for_visit_with_control_characters_is_refused() {
    for reason in [
        "Chest\u{0} pain",
        "Chest\u{1b}[31m pain",
        "a\rb",
        "\u{202e}",
    ] {
        let command = with_reason(book(la(12, 7, 10, 0), la(12, 7, 10, 30)), reason);
        booking(command)
            .await
            .then_expect_error(ScheduleError::InvalidCharacters("reason_for_visit"));
    }
}

#[tokio::test]
async fn a_reason_for_visit_may_run_over_several_lines() {
    let command = with_reason(
        book(la(12, 7, 10, 0), la(12, 7, 10, 30)),
        "Chest pain,\n\tsince Sunday",
    );
    let events = booking(command).await.inspect_result().unwrap();
    assert!(
        matches!(&events[..], [AppointmentEvent::Booked { booking }] if booking.reason_for_visit == "Chest pain,\n\tsince Sunday"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_empty_reason_for_visit_is_refused() {
    let command = with_reason(book(la(12, 7, 10, 0), la(12, 7, 10, 30)), " ");
    booking(command)
        .await
        .then_expect_error(ScheduleError::EmptyField("reason_for_visit"));
}

#[tokio::test]
async fn an_overbooking_keeps_its_reason() {
    booking(overbooking(" urgent: chest pain "))
        .await
        .then_expect_events(vec![overbooked()]);
}

#[tokio::test]
async fn an_overbooking_reason_with_control_characters_is_refused() {
    booking(overbooking("urgent\u{0}"))
        .await
        .then_expect_error(ScheduleError::InvalidCharacters("overbook_reason"));
}

#[tokio::test]
async fn an_overbooking_is_still_held_to_working_hours() {
    // In the lunch break.
    let command = overbooking_at(la(12, 7, 12, 0), la(12, 7, 12, 30), "urgent");
    booking(command)
        .await
        .then_expect_error(ScheduleError::OutsideWorkingHours);
}
