//! Weekly working hours: their shape, their slots, their dates.

use super::*;

#[tokio::test]
async fn weekly_hours_are_stored_sorted_without_empty_days() {
    let command = set_hours(
        vec![
            on(Day::Friday, &[interval((9, 0), (12, 0))]),
            on(Day::Sunday, &[]),
            on(
                Day::Monday,
                &[interval((13, 0), (17, 0)), interval((8, 0), (12, 0))],
            ),
        ],
        20,
    );
    let expected = Availability {
        hours: vec![
            on(
                Day::Monday,
                &[interval((8, 0), (12, 0)), interval((13, 0), (17, 0))],
            ),
            on(Day::Friday, &[interval((9, 0), (12, 0))]),
        ],
        slot_minutes: 20,
        effective_from: None,
        effective_to: None,
    };
    given(vec![enrolled()], command)
        .await
        .then_expect_events(vec![ProviderEvent::AvailabilitySet {
            availability: expected,
        }]);
}

#[tokio::test]
async fn a_day_named_twice_is_refused() {
    let hours = vec![
        on(Day::Monday, &[interval((9, 0), (12, 0))]),
        on(Day::Tuesday, &[interval((9, 0), (12, 0))]),
        on(Day::Monday, &[interval((13, 0), (17, 0))]),
    ];
    given(vec![enrolled()], set_hours(hours, 30))
        .await
        .then_expect_error(ScheduleError::DayTwice);
}

#[tokio::test]
async fn overlapping_intervals_of_one_day_are_refused() {
    for intervals in [
        [interval((9, 0), (12, 0)), interval((11, 55), (17, 0))],
        [interval((13, 0), (17, 0)), interval((9, 0), (13, 5))],
        [interval((9, 0), (17, 0)), interval((10, 0), (11, 0))],
        [interval((9, 0), (12, 0)), interval((9, 0), (12, 0))],
    ] {
        given(vec![enrolled()], set_hours(monday(&intervals), 30))
            .await
            .then_expect_error(ScheduleError::OverlappingHours);
    }
}

#[tokio::test]
async fn one_nested_interval_among_three_is_an_overlap() {
    let intervals = [
        interval((9, 0), (17, 0)),
        interval((12, 0), (13, 0)),
        interval((14, 0), (15, 0)),
    ];
    given(vec![enrolled()], set_hours(monday(&intervals), 30))
        .await
        .then_expect_error(ScheduleError::OverlappingHours);
}

#[test]
fn intervals_that_only_touch_do_not_overlap() {
    let input = AvailabilityInput {
        hours: monday(&[interval((9, 0), (12, 0)), interval((12, 0), (17, 0))]),
        slot_minutes: 30,
        effective_from: None,
        effective_to: None,
    };
    assert!(Availability::parse(input).is_ok());
}

#[tokio::test]
async fn working_hours_off_the_five_minute_grain_are_refused() {
    let seconds = NaiveTime::from_hms_opt(9, 0, 30).unwrap();
    for i in [
        interval((9, 3), (12, 0)),
        interval((9, 0), (16, 58)),
        Interval {
            start: seconds,
            end: hm(12, 0),
        },
    ] {
        given(vec![enrolled()], set_hours(monday(&[i]), 30))
            .await
            .then_expect_error(ScheduleError::OffGrain("hours"));
    }
}

#[tokio::test]
async fn an_interval_must_end_after_it_starts() {
    for i in [interval((9, 0), (9, 0)), interval((17, 0), (9, 0))] {
        given(vec![enrolled()], set_hours(monday(&[i]), 30))
            .await
            .then_expect_error(ScheduleError::InvalidInterval);
    }
}

#[tokio::test]
async fn a_slot_length_outside_five_minutes_to_eight_hours_or_off_grain_is_refused() {
    for minutes in [-30, 0, 3, 12, 485, 490, 1440] {
        given(vec![enrolled()], set_hours(nine_to_five(), minutes))
            .await
            .then_expect_error(ScheduleError::InvalidSlotLength);
    }
}

#[tokio::test]
async fn a_slot_of_five_minutes_or_of_eight_hours_is_accepted() {
    for minutes in [5, 480] {
        let events = given(vec![enrolled()], set_hours(nine_to_five(), minutes))
            .await
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[..], [ProviderEvent::AvailabilitySet { availability }] if availability.slot_minutes == minutes),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn effective_dates_in_reverse_are_refused() {
    let command = ProviderCommand::SetAvailability {
        input: AvailabilityInput {
            hours: nine_to_five(),
            slot_minutes: 30,
            effective_from: Some(day(2027, 1, 2)),
            effective_to: Some(day(2027, 1, 1)),
        },
    };
    given(vec![enrolled()], command)
        .await
        .then_expect_error(ScheduleError::EffectiveDatesReversed);
}

#[test]
fn hours_effective_for_a_single_day_are_accepted() {
    let input = AvailabilityInput {
        hours: nine_to_five(),
        slot_minutes: 30,
        effective_from: Some(day(2027, 1, 4)),
        effective_to: Some(day(2027, 1, 4)),
    };
    let hours = Availability::parse(input).unwrap();
    assert_eq!(hours.working(la_zone(), day(2027, 1, 4)).len(), 1);
    assert!(hours.working(la_zone(), day(2027, 1, 11)).is_empty());
}

#[tokio::test]
async fn new_hours_replace_the_old_ones() {
    let old = ProviderEvent::AvailabilitySet {
        availability: office_hours(),
    };
    let mut provider = Provider::default();
    provider.apply(enrolled());
    provider.apply(old.clone());
    let new = ProviderEvent::AvailabilitySet {
        availability: hours_on(&[Day::Saturday], &[interval((9, 0), (12, 0))]),
    };
    provider.apply(new);
    assert_eq!(
        provider.availability().map(|a| a.hours.clone()),
        Some(vec![on(Day::Saturday, &[interval((9, 0), (12, 0))])])
    );
    given(vec![enrolled(), old], set_hours(nine_to_five(), 30))
        .await
        .then_expect_events(vec![ProviderEvent::AvailabilitySet {
            availability: Availability::parse(AvailabilityInput {
                hours: nine_to_five(),
                slot_minutes: 30,
                effective_from: None,
                effective_to: None,
            })
            .unwrap(),
        }]);
}

#[tokio::test]
async fn touching_intervals_are_stored_as_one_span() {
    let command = set_hours(
        monday(&[interval((12, 0), (17, 0)), interval((9, 0), (12, 0))]),
        30,
    );
    let expected = Availability {
        hours: vec![on(Day::Monday, &[interval((9, 0), (17, 0))])],
        slot_minutes: 30,
        effective_from: None,
        effective_to: None,
    };
    given(vec![enrolled()], command)
        .await
        .then_expect_events(vec![ProviderEvent::AvailabilitySet {
            availability: expected,
        }]);
}
