//! Free slots: past ones, closures and busy periods left out, effective
//! dates respected.

use std::collections::BTreeSet;

use super::*;

// Free slots.

/// Monday 7 December 2026 in Los Angeles, office hours.
fn mondays_slots(now: DateTime<Utc>, calendar: &Calendar, busy: &[Period]) -> Vec<NaiveTime> {
    local_starts(
        LA,
        &calendar.free_slots(day(2026, 12, 7), day(2026, 12, 7), now, busy),
    )
}

fn office_slots() -> Vec<NaiveTime> {
    let mut slots: Vec<_> = (0..6).map(|i| hm(9 + i / 2, 30 * (i % 2))).collect();
    slots.extend((0..8).map(|i| hm(13 + i / 2, 30 * (i % 2))));
    slots
}

fn without(times: &[(u32, u32)]) -> Vec<NaiveTime> {
    let gone: Vec<_> = times.iter().map(|(h, m)| hm(*h, *m)).collect();
    office_slots()
        .into_iter()
        .filter(|t| !gone.contains(t))
        .collect()
}

#[test]
fn free_slots_step_through_each_working_interval() {
    let slots = calendar().free_slots(day(2026, 12, 7), day(2026, 12, 7), now(), &[]);
    assert_eq!(local_starts(LA, &slots), office_slots());
    assert!(slots.iter().all(|s| s.minutes() == 30));
}

#[test]
fn free_slots_do_not_include_past_ones_or_one_starting_now() {
    assert_eq!(
        mondays_slots(la(12, 7, 10, 10), &calendar(), &[]),
        without(&[(9, 0), (9, 30), (10, 0)])
    );
    assert_eq!(
        mondays_slots(la(12, 7, 10, 30), &calendar(), &[]),
        without(&[(9, 0), (9, 30), (10, 0), (10, 30)])
    );
}

#[test]
fn free_slots_leave_out_closures() {
    let mut calendar = calendar();
    calendar
        .closures
        .push(closure(TIME_OFF, la(12, 7, 13, 0), la(12, 7, 14, 15)));
    assert_eq!(
        mondays_slots(now(), &calendar, &[]),
        without(&[(13, 0), (13, 30), (14, 0)])
    );
    calendar
        .closures
        .push(whole_day(la_zone(), day(2026, 12, 7)));
    assert!(mondays_slots(now(), &calendar, &[]).is_empty());
}

#[test]
fn free_slots_leave_out_busy_periods_given_in_any_order() {
    let busy = [
        period(la(12, 7, 11, 0), la(12, 7, 11, 30)),
        period(la(12, 7, 9, 0), la(12, 7, 9, 45)),
        period(la(12, 7, 16, 55), la(12, 7, 17, 0)),
    ];
    assert_eq!(
        mondays_slots(now(), &calendar(), &busy),
        without(&[(9, 0), (9, 30), (11, 0), (16, 30)])
    );
}

#[test]
fn free_slots_leave_out_slots_under_a_long_busy_period_behind_later_short_ones() {
    let busy = [
        period(la(12, 7, 8, 30), la(12, 7, 8, 45)),
        period(la(12, 7, 7, 0), la(12, 7, 12, 0)),
        period(la(12, 7, 8, 0), la(12, 7, 8, 30)),
    ];
    assert_eq!(
        mondays_slots(now(), &calendar(), &busy),
        without(&[(9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (11, 30)])
    );
}

#[test]
fn free_slots_respect_the_effective_dates() {
    let mut hours = office_hours();
    hours.effective_from = Some(day(2026, 12, 8));
    hours.effective_to = Some(day(2026, 12, 9));
    let calendar = Calendar {
        availability: Some(hours),
        ..calendar()
    };
    let slots = calendar.free_slots(day(2026, 12, 7), day(2026, 12, 10), now(), &[]);
    let days: BTreeSet<NaiveDate> = slots.iter().map(|s| la_zone().date_of(s.start)).collect();
    assert_eq!(
        days.into_iter().collect::<Vec<_>>(),
        vec![day(2026, 12, 8), day(2026, 12, 9)]
    );
    assert_eq!(slots.len(), 2 * 14);
}

#[test]
fn free_slots_cover_each_date_of_the_range_and_skip_days_without_hours() {
    // Friday 4 to Monday 7 December: Friday and Monday.
    let slots = calendar().free_slots(day(2026, 12, 4), day(2026, 12, 7), now(), &[]);
    assert_eq!(slots.len(), 2 * 14);
    assert!(slots.windows(2).all(|p| p[0].end <= p[1].start));
}

#[test]
fn a_provider_without_hours_has_no_free_slots() {
    let calendar = Calendar {
        availability: None,
        ..calendar()
    };
    assert!(calendar
        .free_slots(day(2026, 12, 7), day(2026, 12, 11), now(), &[])
        .is_empty());
}
