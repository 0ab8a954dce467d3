//! The clinic's calendar: holidays added and withdrawn.

use cqrs_es::test::{AggregateResultValidator, TestFramework};

use super::*;
use crate::unique::UniqueKeys;

async fn given(
    events: Vec<ClinicEvent>,
    command: ClinicCommand,
) -> AggregateResultValidator<ClinicCalendar> {
    TestFramework::<ClinicCalendar>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn add_holiday(span: ClosureSpan, reason: &str) -> ClinicCommand {
    ClinicCommand::AddHoliday {
        closure_id: HOLIDAY,
        span,
        reason: reason.into(),
        zone: la_zone(),
        now: now(),
    }
}

fn new_year() -> ClosureSpan {
    ClosureSpan::Days {
        from: day(2027, 1, 1),
        to: day(2027, 1, 1),
    }
}

fn new_year_added() -> ClinicEvent {
    ClinicEvent::HolidayAdded {
        closure: Closure {
            closure_id: HOLIDAY,
            period: period(utc(2027, 1, 1, 8, 0), utc(2027, 1, 2, 8, 0)),
            whole_days: true,
            reason: "New Year's Day".into(),
        },
    }
}

#[tokio::test]
async fn a_holiday_is_a_whole_local_day() {
    given(vec![], add_holiday(new_year(), "New Year's Day"))
        .await
        .then_expect_events(vec![new_year_added()]);
}

#[tokio::test]
async fn a_holiday_is_removed() {
    given(
        vec![new_year_added()],
        ClinicCommand::RemoveHoliday {
            closure_id: HOLIDAY,
        },
    )
    .await
    .then_expect_events(vec![ClinicEvent::HolidayRemoved {
        closure_id: HOLIDAY,
    }]);
}

#[tokio::test]
async fn an_unknown_holiday_cannot_be_removed() {
    given(
        vec![new_year_added()],
        ClinicCommand::RemoveHoliday {
            closure_id: Uuid::from_u128(0xBAD),
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownClosure);
    given(
        vec![],
        ClinicCommand::RemoveHoliday {
            closure_id: HOLIDAY,
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownClosure);
}

#[tokio::test]
async fn a_withdrawn_holiday_cannot_be_removed_again() {
    let removed = ClinicEvent::HolidayRemoved {
        closure_id: HOLIDAY,
    };
    given(
        vec![new_year_added(), removed],
        ClinicCommand::RemoveHoliday {
            closure_id: HOLIDAY,
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownClosure);
}

#[tokio::test]
async fn a_holiday_in_the_past_is_refused() {
    let last_year = ClosureSpan::Days {
        from: day(2025, 12, 25),
        to: day(2025, 12, 25),
    };
    given(vec![], add_holiday(last_year, "Christmas"))
        .await
        .then_expect_error(ScheduleError::InThePast);
}

#[tokio::test]
async fn a_holiday_without_a_reason_is_refused() {
    given(vec![], add_holiday(new_year(), "  "))
        .await
        .then_expect_error(ScheduleError::EmptyField("reason"));
}

#[tokio::test]
async fn a_holiday_reason_with_an_escape_sequence_is_refused() {
    given(vec![], add_holiday(new_year(), "New\u{1b}[2J Year"))
        .await
        .then_expect_error(ScheduleError::InvalidCharacters("reason"));
}

#[test]
fn the_calendar_keeps_only_holidays_not_withdrawn_and_holds_no_keys() {
    let mut clinic = ClinicCalendar::default();
    clinic.apply(new_year_added());
    assert_eq!(clinic.holidays().len(), 1);
    assert!(clinic.unique_keys().is_empty());
    clinic.apply(ClinicEvent::HolidayRemoved {
        closure_id: HOLIDAY,
    });
    assert!(clinic.holidays().is_empty());
}
