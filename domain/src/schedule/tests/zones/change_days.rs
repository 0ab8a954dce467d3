//! The days the clocks change: local hours stay local, intervals across
//! the change have their real length, whole days are 23 or 25 hours.

use super::*;

// Change days: the working day is still 09:00–17:00 local.

#[test]
fn nine_to_five_on_the_day_los_angeles_springs_forward_is_in_daylight_time() {
    assert_nine_to_five(
        LA,
        la_zone(),
        date(LA_SPRING_FORWARD),
        utc(2026, 3, 8, 16, 0),
        utc(2026, 3, 9, 0, 0),
    );
}

#[test]
fn nine_to_five_on_the_day_los_angeles_falls_back_is_in_standard_time() {
    assert_nine_to_five(
        LA,
        la_zone(),
        date(LA_FALL_BACK),
        utc(2026, 11, 1, 17, 0),
        utc(2026, 11, 2, 1, 0),
    );
}

#[test]
fn nine_to_five_on_the_day_auckland_clocks_go_back_is_in_standard_time() {
    assert_nine_to_five(
        AUCKLAND,
        auckland_zone(),
        date(AUCKLAND_CLOCKS_BACK),
        utc(2026, 4, 4, 21, 0),
        utc(2026, 4, 5, 5, 0),
    );
}

#[test]
fn nine_to_five_on_the_day_auckland_clocks_go_forward_is_in_daylight_time() {
    assert_nine_to_five(
        AUCKLAND,
        auckland_zone(),
        date(AUCKLAND_CLOCKS_FORWARD),
        utc(2026, 9, 26, 20, 0),
        utc(2026, 9, 27, 4, 0),
    );
}

#[test]
fn a_booking_at_nine_local_on_each_change_day_is_inside_the_hours() {
    for (tz, zone, ymd) in [
        (LA, la_zone(), LA_SPRING_FORWARD),
        (LA, la_zone(), LA_FALL_BACK),
        (AUCKLAND, auckland_zone(), AUCKLAND_CLOCKS_BACK),
        (AUCKLAND, auckland_zone(), AUCKLAND_CLOCKS_FORWARD),
    ] {
        let calendar = calendar_in(zone, nine_to_five_daily());
        let nine = wall(tz, ymd.0, ymd.1, ymd.2, 9, 0);
        assert_eq!(calendar.check(&period(nine, nine + HALF_HOUR)), Ok(()));
        assert_eq!(
            calendar.check(&period(nine - HALF_HOUR, nine)),
            Err(ScheduleError::OutsideWorkingHours),
            "{ymd:?}"
        );
        let five = wall(tz, ymd.0, ymd.1, ymd.2, 17, 0);
        assert_eq!(calendar.check(&period(five - HALF_HOUR, five)), Ok(()));
        assert_eq!(
            calendar.check(&period(five, five + HALF_HOUR)),
            Err(ScheduleError::OutsideWorkingHours),
            "{ymd:?}"
        );
    }
}

// Change days: an interval across the change has its real length.

#[test]
fn one_to_four_on_the_night_los_angeles_springs_forward_lasts_two_hours() {
    let hours = small_hours_daily();
    let working = hours.working(la_zone(), date(LA_SPRING_FORWARD));
    // 01:00 PST to 04:00 PDT.
    assert_eq!(
        working,
        vec![period(utc(2026, 3, 8, 9, 0), utc(2026, 3, 8, 11, 0))]
    );
    let slots = calendar_in(la_zone(), hours).free_slots(
        date(LA_SPRING_FORWARD),
        date(LA_SPRING_FORWARD),
        long_ago(),
        &[],
    );
    assert_back_to_back_half_hours(&slots);
    assert_eq!(
        local_starts(LA, &slots),
        vec![hm(1, 0), hm(1, 30), hm(3, 0), hm(3, 30)]
    );
}

#[test]
fn one_to_four_on_the_night_los_angeles_falls_back_lasts_four_hours() {
    let hours = small_hours_daily();
    let working = hours.working(la_zone(), date(LA_FALL_BACK));
    // 01:00 PDT to 04:00 PST.
    assert_eq!(
        working,
        vec![period(utc(2026, 11, 1, 8, 0), utc(2026, 11, 1, 12, 0))]
    );
    let slots = calendar_in(la_zone(), hours).free_slots(
        date(LA_FALL_BACK),
        date(LA_FALL_BACK),
        long_ago(),
        &[],
    );
    assert_back_to_back_half_hours(&slots);
    assert_eq!(slots.len(), 8);
    assert_eq!(
        local_starts(LA, &slots),
        vec![
            hm(1, 0),
            hm(1, 30),
            hm(1, 0),
            hm(1, 30),
            hm(2, 0),
            hm(2, 30),
            hm(3, 0),
            hm(3, 30)
        ]
    );
}

#[test]
fn one_to_four_on_the_night_auckland_clocks_go_back_lasts_four_hours() {
    let hours = small_hours_daily();
    let working = hours.working(auckland_zone(), date(AUCKLAND_CLOCKS_BACK));
    // 01:00 NZDT to 04:00 NZST.
    assert_eq!(
        working,
        vec![period(utc(2026, 4, 4, 12, 0), utc(2026, 4, 4, 16, 0))]
    );
    let slots = calendar_in(auckland_zone(), hours).free_slots(
        date(AUCKLAND_CLOCKS_BACK),
        date(AUCKLAND_CLOCKS_BACK),
        long_ago(),
        &[],
    );
    assert_back_to_back_half_hours(&slots);
    assert_eq!(
        local_starts(AUCKLAND, &slots),
        vec![
            hm(1, 0),
            hm(1, 30),
            hm(2, 0),
            hm(2, 30),
            hm(2, 0),
            hm(2, 30),
            hm(3, 0),
            hm(3, 30)
        ]
    );
}

#[test]
fn one_to_four_on_the_night_auckland_clocks_go_forward_lasts_two_hours() {
    let hours = small_hours_daily();
    let working = hours.working(auckland_zone(), date(AUCKLAND_CLOCKS_FORWARD));
    // 01:00 NZST to 04:00 NZDT.
    assert_eq!(
        working,
        vec![period(utc(2026, 9, 26, 13, 0), utc(2026, 9, 26, 15, 0))]
    );
    let slots = calendar_in(auckland_zone(), hours).free_slots(
        date(AUCKLAND_CLOCKS_FORWARD),
        date(AUCKLAND_CLOCKS_FORWARD),
        long_ago(),
        &[],
    );
    assert_back_to_back_half_hours(&slots);
    assert_eq!(
        local_starts(AUCKLAND, &slots),
        vec![hm(1, 0), hm(1, 30), hm(3, 0), hm(3, 30)]
    );
}

#[test]
fn hours_wholly_inside_the_skipped_hour_give_no_working_time() {
    let hours = hours_on(&[Day::Sunday], &[interval((2, 0), (2, 55))]);
    assert!(hours.working(la_zone(), date(LA_SPRING_FORWARD)).is_empty());
    // The Sunday before, they are there.
    assert_eq!(hours.working(la_zone(), day(2026, 3, 1)).len(), 1);
}

#[test]
fn a_booking_in_the_repeated_hour_is_inside_hours_across_the_change() {
    let calendar = calendar_in(la_zone(), small_hours_daily());
    // The second 01:30 (PST) to 02:00 PST.
    assert_eq!(
        calendar.check(&period(utc(2026, 11, 1, 9, 30), utc(2026, 11, 1, 10, 0))),
        Ok(())
    );
    // 01:00 PDT to 03:00 PST: three real hours, all inside.
    assert_eq!(
        calendar.check(&period(utc(2026, 11, 1, 8, 0), utc(2026, 11, 1, 11, 0))),
        Ok(())
    );
    // 04:00 PST onwards is outside.
    assert_eq!(
        calendar.check(&period(utc(2026, 11, 1, 11, 30), utc(2026, 11, 1, 12, 30))),
        Err(ScheduleError::OutsideWorkingHours)
    );
}

// Change days: whole-day closures are 23 or 25 hours long.

#[test]
fn a_whole_day_closure_on_a_spring_forward_day_lasts_23_hours() {
    let la = whole_day(la_zone(), date(LA_SPRING_FORWARD));
    assert_eq!(
        la.period,
        period(utc(2026, 3, 8, 8, 0), utc(2026, 3, 9, 7, 0))
    );
    assert!(la.whole_days);
    let auckland = whole_day(auckland_zone(), date(AUCKLAND_CLOCKS_FORWARD));
    assert_eq!(
        auckland.period,
        period(utc(2026, 9, 26, 12, 0), utc(2026, 9, 27, 11, 0))
    );
    assert_eq!(la.period.minutes(), 23 * 60);
    assert_eq!(auckland.period.minutes(), 23 * 60);
}

#[test]
fn a_whole_day_closure_on_a_fall_back_day_lasts_25_hours() {
    let la = whole_day(la_zone(), date(LA_FALL_BACK));
    assert_eq!(
        la.period,
        period(utc(2026, 11, 1, 7, 0), utc(2026, 11, 2, 8, 0))
    );
    let auckland = whole_day(auckland_zone(), date(AUCKLAND_CLOCKS_BACK));
    assert_eq!(
        auckland.period,
        period(utc(2026, 4, 4, 11, 0), utc(2026, 4, 5, 12, 0))
    );
    assert_eq!(la.period.minutes(), 25 * 60);
    assert_eq!(auckland.period.minutes(), 25 * 60);
}

#[test]
fn a_whole_day_closure_on_a_change_day_closes_every_slot_of_that_day_and_no_other() {
    for (zone, ymd) in [
        (la_zone(), LA_SPRING_FORWARD),
        (la_zone(), LA_FALL_BACK),
        (auckland_zone(), AUCKLAND_CLOCKS_BACK),
        (auckland_zone(), AUCKLAND_CLOCKS_FORWARD),
    ] {
        let on = date(ymd);
        let hours = hours_on(&EVERY_DAY, &[interval((0, 0), (23, 55))]);
        let mut calendar = calendar_in(zone, hours);
        calendar.closures.push(whole_day(zone, on));
        let before = on.pred_opt().unwrap();
        let after = on.succ_opt().unwrap();
        let slots = calendar.free_slots(before, after, long_ago(), &[]);
        assert!(slots.iter().all(|s| zone.date_of(s.start) != on), "{ymd:?}");
        // 00:00–23:30 on the day before and after: 47 half hours each.
        assert_eq!(slots.len(), 2 * 47, "{ymd:?}");
    }
}
