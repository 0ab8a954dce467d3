//! Time off: added as whole local days or a period, and withdrawn.

use super::*;

#[tokio::test]
async fn time_off_in_whole_days_runs_from_local_midnight_to_local_midnight() {
    given(vec![enrolled()], add_time_off(christmas(), " Holidays "))
        .await
        .then_expect_events(vec![christmas_off()]);
}

#[tokio::test]
async fn time_off_as_a_period_is_kept_as_given() {
    let span = ClosureSpan::Period {
        start: la(12, 7, 13, 0),
        end: la(12, 7, 15, 30),
    };
    given(vec![enrolled()], add_time_off(span, "Dentist"))
        .await
        .then_expect_events(vec![ProviderEvent::TimeOffAdded {
            closure: Closure {
                closure_id: TIME_OFF,
                period: period(la(12, 7, 13, 0), la(12, 7, 15, 30)),
                whole_days: false,
                reason: "Dentist".into(),
            },
        }]);
}

#[tokio::test]
async fn time_off_is_removed() {
    given(
        vec![enrolled(), christmas_off()],
        ProviderCommand::RemoveTimeOff {
            closure_id: TIME_OFF,
        },
    )
    .await
    .then_expect_events(vec![ProviderEvent::TimeOffRemoved {
        closure_id: TIME_OFF,
    }]);
}

#[tokio::test]
async fn unknown_time_off_cannot_be_removed() {
    given(
        vec![enrolled(), christmas_off()],
        ProviderCommand::RemoveTimeOff {
            closure_id: Uuid::from_u128(0xBAD),
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownClosure);
}

#[tokio::test]
async fn time_off_cannot_be_removed_twice() {
    let removed = ProviderEvent::TimeOffRemoved {
        closure_id: TIME_OFF,
    };
    given(
        vec![enrolled(), christmas_off(), removed],
        ProviderCommand::RemoveTimeOff {
            closure_id: TIME_OFF,
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownClosure);
}

#[test]
fn the_provider_keeps_only_time_off_not_withdrawn() {
    let mut provider = Provider::default();
    provider.apply(enrolled());
    provider.apply(christmas_off());
    assert_eq!(provider.time_off().len(), 1);
    provider.apply(ProviderEvent::TimeOffRemoved {
        closure_id: TIME_OFF,
    });
    assert!(provider.time_off().is_empty());
}

#[tokio::test]
async fn time_off_that_has_already_ended_is_refused() {
    let ended_now = ClosureSpan::Period {
        start: la(11, 30, 8, 0),
        end: now(),
    };
    given(vec![enrolled()], add_time_off(ended_now, "Flu"))
        .await
        .then_expect_error(ScheduleError::InThePast);
    let yesterday = ClosureSpan::Days {
        from: day(2026, 11, 30),
        to: day(2026, 11, 30),
    };
    given(vec![enrolled()], add_time_off(yesterday, "Flu"))
        .await
        .then_expect_error(ScheduleError::InThePast);
}

#[tokio::test]
async fn time_off_already_begun_but_not_ended_is_accepted() {
    let today = ClosureSpan::Days {
        from: day(2026, 12, 1),
        to: day(2026, 12, 1),
    };
    let events = given(vec![enrolled()], add_time_off(today, "Flu"))
        .await
        .inspect_result()
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn time_off_off_the_five_minute_grain_is_refused() {
    let span = ClosureSpan::Period {
        start: la(12, 7, 13, 2),
        end: la(12, 7, 15, 0),
    };
    given(vec![enrolled()], add_time_off(span, "Dentist"))
        .await
        .then_expect_error(ScheduleError::OffGrain("starts_at"));
    let span = ClosureSpan::Period {
        start: la(12, 7, 13, 0),
        end: la(12, 7, 14, 59),
    };
    given(vec![enrolled()], add_time_off(span, "Dentist"))
        .await
        .then_expect_error(ScheduleError::OffGrain("ends_at"));
}

#[tokio::test]
async fn time_off_ending_before_it_starts_is_refused() {
    let days = ClosureSpan::Days {
        from: day(2026, 12, 25),
        to: day(2026, 12, 24),
    };
    given(vec![enrolled()], add_time_off(days, "Holidays"))
        .await
        .then_expect_error(ScheduleError::InvalidPeriod);
    let instant = ClosureSpan::Period {
        start: la(12, 7, 13, 0),
        end: la(12, 7, 13, 0),
    };
    given(vec![enrolled()], add_time_off(instant, "Dentist"))
        .await
        .then_expect_error(ScheduleError::InvalidPeriod);
}

#[tokio::test]
async fn time_off_longer_than_62_days_is_refused() {
    // 7 December 2026 to 6 February 2027 is 62 days, all in standard time.
    let sixty_two = ClosureSpan::Days {
        from: day(2026, 12, 7),
        to: day(2027, 2, 6),
    };
    assert!(given(vec![enrolled()], add_time_off(sixty_two, "Leave"))
        .await
        .inspect_result()
        .is_ok());
    let sixty_three = ClosureSpan::Days {
        from: day(2026, 12, 7),
        to: day(2027, 2, 7),
    };
    given(vec![enrolled()], add_time_off(sixty_three, "Leave"))
        .await
        .then_expect_error(ScheduleError::ClosureTooLong);
}

#[tokio::test]
async fn time_off_as_a_period_longer_than_62_days_is_refused() {
    let start = la(12, 7, 9, 0);
    let exactly = ClosureSpan::Period {
        start,
        end: start + chrono::Duration::days(62),
    };
    assert!(given(vec![enrolled()], add_time_off(exactly, "Leave"))
        .await
        .inspect_result()
        .is_ok());
    let longer = ClosureSpan::Period {
        start,
        end: start + chrono::Duration::days(62) + chrono::Duration::minutes(5),
    };
    given(vec![enrolled()], add_time_off(longer, "Leave"))
        .await
        .then_expect_error(ScheduleError::ClosureTooLong);
}

#[tokio::test]
async fn sixty_two_whole_days_across_the_autumn_change_are_not_too_long() {
    // 1 October to 1 December 2026 in Los Angeles: 62 local days, one of
    // them (1 November) 25 hours long.
    let autumn = ClosureSpan::Days {
        from: day(2026, 10, 1),
        to: day(2026, 12, 1),
    };
    let command = ProviderCommand::AddTimeOff {
        closure_id: TIME_OFF,
        span: autumn,
        reason: "Leave".into(),
        zone: la_zone(),
        now: utc(2026, 9, 1, 0, 0),
    };
    let events = given(vec![enrolled()], command)
        .await
        .inspect_result()
        .unwrap();
    assert!(
        matches!(&events[..], [ProviderEvent::TimeOffAdded { closure }] if closure.period.minutes() == (62 * 24 + 1) * 60),
        "{events:?}"
    );
}

#[tokio::test]
async fn time_off_more_than_two_years_ahead_is_refused() {
    let span = ClosureSpan::Days {
        from: day(2029, 1, 1),
        to: day(2029, 1, 1),
    };
    given(vec![enrolled()], add_time_off(span, "Sabbatical"))
        .await
        .then_expect_error(ScheduleError::TooFarAhead);
}

#[tokio::test]
async fn time_off_with_a_control_character_in_its_reason_is_refused() {
    given(vec![enrolled()], add_time_off(christmas(), "Holi\u{0}days"))
        .await
        .then_expect_error(ScheduleError::InvalidCharacters("reason"));
}
