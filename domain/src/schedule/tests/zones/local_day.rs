//! A booking is checked against the hours of its local day, not of its UTC
//! date.

use super::*;

// The local day decides, not the UTC one.

#[test]
fn an_evening_booking_in_los_angeles_is_checked_against_that_days_hours() {
    // Monday 12 January, 17:00–17:30 PST is Tuesday 01:00–01:30 UTC.
    let evening = period(utc(2026, 1, 13, 1, 0), utc(2026, 1, 13, 1, 30));
    assert_eq!(evening.start, wall(LA, 2026, 1, 12, 17, 0));
    let mondays = calendar_in(
        la_zone(),
        hours_on(&[Day::Monday], &[interval((9, 0), (18, 0))]),
    );
    assert_eq!(mondays.check(&evening), Ok(()));
    let slots = mondays.free_slots(day(2026, 1, 12), day(2026, 1, 12), long_ago(), &[]);
    assert_eq!(
        slots.last(),
        Some(&period(evening.start + HALF_HOUR, evening.end + HALF_HOUR))
    );
    assert!(slots.contains(&evening));
    // Tuesday (local) has no hours: none of Monday's evening is offered as Tuesday's.
    assert!(mondays
        .free_slots(day(2026, 1, 13), day(2026, 1, 13), long_ago(), &[])
        .is_empty());
}

#[test]
fn an_evening_booking_in_los_angeles_is_not_checked_against_the_next_days_hours() {
    // Monday ends at 17:00; Tuesday's 00:00–02:00 would hold 01:00 UTC if
    // Tuesday's hours were read as UTC.
    let hours = Availability::parse(AvailabilityInput {
        hours: vec![
            on(Day::Monday, &[interval((9, 0), (17, 0))]),
            on(Day::Tuesday, &[interval((0, 0), (2, 0))]),
        ],
        slot_minutes: 30,
        effective_from: None,
        effective_to: None,
    })
    .unwrap();
    let calendar = calendar_in(la_zone(), hours);
    let evening = period(utc(2026, 1, 13, 1, 0), utc(2026, 1, 13, 1, 30));
    assert_eq!(
        calendar.check(&evening),
        Err(ScheduleError::OutsideWorkingHours)
    );
}

#[test]
fn a_morning_booking_in_auckland_is_checked_against_that_days_hours() {
    // Tuesday 14 July, 08:00–08:30 NZST is Monday 20:00–20:30 UTC.
    let morning = period(utc(2026, 7, 13, 20, 0), utc(2026, 7, 13, 20, 30));
    assert_eq!(morning.start, wall(AUCKLAND, 2026, 7, 14, 8, 0));
    let tuesdays = calendar_in(
        auckland_zone(),
        hours_on(&[Day::Tuesday], &[interval((8, 0), (12, 0))]),
    );
    assert_eq!(tuesdays.check(&morning), Ok(()));
    let slots = tuesdays.free_slots(day(2026, 7, 14), day(2026, 7, 14), long_ago(), &[]);
    assert_eq!(slots.first(), Some(&morning));
    assert!(tuesdays
        .free_slots(day(2026, 7, 13), day(2026, 7, 13), long_ago(), &[])
        .is_empty());
}

#[test]
fn a_morning_booking_in_auckland_is_not_checked_against_the_previous_days_hours() {
    // Monday 20:00–21:00 would hold 20:00 UTC if read as UTC.
    let mondays = calendar_in(
        auckland_zone(),
        hours_on(&[Day::Monday], &[interval((20, 0), (21, 0))]),
    );
    let morning = period(utc(2026, 7, 13, 20, 0), utc(2026, 7, 13, 20, 30));
    assert_eq!(
        mondays.check(&morning),
        Err(ScheduleError::OutsideWorkingHours)
    );
}

#[tokio::test]
async fn an_auckland_morning_is_booked_through_the_command() {
    use cqrs_es::test::TestFramework;
    let calendar = calendar_in(
        auckland_zone(),
        hours_on(&[Day::Tuesday], &[interval((8, 0), (12, 0))]),
    );
    let morning = period(utc(2026, 7, 13, 20, 0), utc(2026, 7, 13, 20, 30));
    let mut command = book_on(calendar, morning.start, morning.end);
    if let AppointmentCommand::Book { now, .. } = &mut command {
        *now = utc(2026, 7, 1, 0, 0);
    }
    TestFramework::<Appointment>::with(())
        .given_no_previous_events()
        .when_async(command)
        .await
        .then_expect_events(vec![booked_at(morning)]);
}
