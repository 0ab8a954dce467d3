//! Working hours are local time in the clinic's zone; everything compared is
//! an instant. Los Angeles (UTC−8/−7) and Auckland (UTC+12/+13, southern
//! summer) on ordinary days and on the days their clocks change.

mod change_days;
mod free_slots;
mod local_day;

use chrono::{Duration, Offset};

use super::*;

const HALF_HOUR: Duration = Duration::minutes(30);

fn auckland_zone() -> ClinicZone {
    zone("Pacific/Auckland")
}

/// Long before any of the days tested: no slot is in the past.
fn long_ago() -> DateTime<Utc> {
    utc(2025, 6, 1, 0, 0)
}

/// The hours between local midnight at the start of `date` and the next,
/// straight from chrono-tz.
fn hours_in(tz: Tz, date: NaiveDate) -> i64 {
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .unwrap()
    };
    (midnight(date.succ_opt().unwrap()) - midnight(date)).num_hours()
}

/// The UTC offset in hours at local noon of `date`, straight from chrono-tz.
fn offset_at_noon(tz: Tz, date: NaiveDate) -> i32 {
    tz.from_local_datetime(&date.and_time(hm(12, 0)))
        .single()
        .unwrap()
        .offset()
        .fix()
        .local_minus_utc()
        / 3600
}

/// Asserts chrono-tz moves `tz`'s clocks on `date`, and only on it, from
/// `before` to `after` hours ahead of UTC.
fn assert_clocks_change(tz: Tz, date: NaiveDate, before: i32, after: i32) {
    let yesterday = date.pred_opt().unwrap();
    let tomorrow = date.succ_opt().unwrap();
    assert_eq!(offset_at_noon(tz, yesterday), before, "{tz} {date}");
    assert_eq!(offset_at_noon(tz, date), after, "{tz} {date}");
    assert_eq!(hours_in(tz, yesterday), 24, "{tz} {yesterday}");
    assert_eq!(
        hours_in(tz, date),
        24 + i64::from(before - after),
        "{tz} {date}"
    );
    assert_eq!(hours_in(tz, tomorrow), 24, "{tz} {tomorrow}");
}

const LA_SPRING_FORWARD: (i32, u32, u32) = (2026, 3, 8);
const LA_FALL_BACK: (i32, u32, u32) = (2026, 11, 1);
const AUCKLAND_CLOCKS_BACK: (i32, u32, u32) = (2026, 4, 5);
const AUCKLAND_CLOCKS_FORWARD: (i32, u32, u32) = (2026, 9, 27);

fn date(ymd: (i32, u32, u32)) -> NaiveDate {
    day(ymd.0, ymd.1, ymd.2)
}

#[test]
fn the_change_days_are_the_ones_chrono_tz_knows() {
    assert_clocks_change(LA, date(LA_SPRING_FORWARD), -8, -7);
    assert_clocks_change(LA, date(LA_FALL_BACK), -7, -8);
    assert_clocks_change(AUCKLAND, date(AUCKLAND_CLOCKS_BACK), 13, 12);
    assert_clocks_change(AUCKLAND, date(AUCKLAND_CLOCKS_FORWARD), 12, 13);
}

/// 09:00–17:00 on every day of the week, in 30-minute slots.
fn nine_to_five_daily() -> Availability {
    hours_on(&EVERY_DAY, &[interval((9, 0), (17, 0))])
}

/// 01:00–04:00 on every day: across the change on change days.
fn small_hours_daily() -> Availability {
    hours_on(&EVERY_DAY, &[interval((1, 0), (4, 0))])
}

fn calendar_in(zone: ClinicZone, hours: Availability) -> Calendar {
    Calendar {
        zone,
        availability: Some(hours),
        closures: Vec::new(),
    }
}

/// The local start times of `slots`.
fn local_starts(tz: Tz, slots: &[Period]) -> Vec<NaiveTime> {
    slots
        .iter()
        .map(|s| s.start.with_timezone(&tz).time())
        .collect()
}

/// 09:00, 09:30, …, 16:30.
fn half_hours_nine_to_five() -> Vec<NaiveTime> {
    (0..16).map(|i| hm(9 + i / 2, 30 * (i % 2))).collect()
}

/// Asserts the slots follow each other without a gap, each 30 minutes of
/// real time long.
fn assert_back_to_back_half_hours(slots: &[Period]) {
    for s in slots {
        assert_eq!(s.end - s.start, HALF_HOUR, "{s:?}");
    }
    for pair in slots.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "{pair:?}");
    }
}

/// Asserts 09:00–17:00 local on `date` is `[start, end)` in UTC and is
/// offered as sixteen half-hour slots from 09:00 to 16:30 local.
fn assert_nine_to_five(
    tz: Tz,
    zone: ClinicZone,
    date: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    let hours = nine_to_five_daily();
    assert_eq!(
        hours.working(zone, date),
        vec![period(start, end)],
        "{date}"
    );
    let slots = calendar_in(zone, hours).free_slots(date, date, long_ago(), &[]);
    assert_eq!(
        local_starts(tz, &slots),
        half_hours_nine_to_five(),
        "{date}"
    );
    assert_back_to_back_half_hours(&slots);
    assert_eq!(slots.first().map(|s| s.start), Some(start));
    assert_eq!(slots.last().map(|s| s.end), Some(end));
}

// The zone itself.

#[test]
fn a_zone_is_parsed_from_its_iana_name() {
    assert_eq!(la_zone().name(), "America/Los_Angeles");
    assert_eq!(auckland_zone().name(), "Pacific/Auckland");
    assert_eq!(ClinicZone::default().name(), "UTC");
}

#[test]
fn an_unknown_zone_name_is_none() {
    for name in ["", "Mars/Olympus_Mons", "America/Los Angeles", "+02:00"] {
        assert_eq!(ClinicZone::parse(name), None, "{name:?}");
    }
}

#[test]
fn a_wall_clock_time_skipped_by_spring_forward_is_the_first_instant_after_the_gap() {
    // 02:30 does not exist in Los Angeles on 8 March: 03:00 PDT.
    assert_eq!(
        la_zone().instant(date(LA_SPRING_FORWARD), hm(2, 30)),
        utc(2026, 3, 8, 10, 0)
    );
    // Nor in Auckland on 27 September: 03:00 NZDT.
    assert_eq!(
        auckland_zone().instant(date(AUCKLAND_CLOCKS_FORWARD), hm(2, 30)),
        utc(2026, 9, 26, 14, 0)
    );
}

#[test]
fn a_wall_clock_time_repeated_by_fall_back_is_its_first_occurrence() {
    // 01:30 happens twice in Los Angeles on 1 November: first in PDT.
    assert_eq!(
        la_zone().instant(date(LA_FALL_BACK), hm(1, 30)),
        utc(2026, 11, 1, 8, 30)
    );
    // 02:30 twice in Auckland on 5 April: first in NZDT.
    assert_eq!(
        auckland_zone().instant(date(AUCKLAND_CLOCKS_BACK), hm(2, 30)),
        utc(2026, 4, 4, 13, 30)
    );
}

#[test]
fn the_local_date_of_an_instant_is_the_clinics() {
    // 01:00 UTC on Tuesday 13 January is Monday evening in Los Angeles and
    // Tuesday afternoon in Auckland.
    let t = utc(2026, 1, 13, 1, 0);
    assert_eq!(la_zone().date_of(t), day(2026, 1, 12));
    assert_eq!(auckland_zone().date_of(t), day(2026, 1, 13));
    assert_eq!(la_zone().local(t).to_rfc3339(), "2026-01-12T17:00:00-08:00");
}

// Ordinary days.

#[test]
fn nine_to_five_in_los_angeles_in_winter_is_17_to_01_utc() {
    assert_nine_to_five(
        LA,
        la_zone(),
        day(2026, 1, 12),
        utc(2026, 1, 12, 17, 0),
        utc(2026, 1, 13, 1, 0),
    );
}

#[test]
fn nine_to_five_in_los_angeles_in_summer_is_16_to_00_utc() {
    assert_nine_to_five(
        LA,
        la_zone(),
        day(2026, 7, 13),
        utc(2026, 7, 13, 16, 0),
        utc(2026, 7, 14, 0, 0),
    );
}

#[test]
fn nine_to_five_in_auckland_in_summer_begins_at_20_utc_the_day_before() {
    // January is summer in Auckland: NZDT, UTC+13.
    assert_nine_to_five(
        AUCKLAND,
        auckland_zone(),
        day(2026, 1, 12),
        utc(2026, 1, 11, 20, 0),
        utc(2026, 1, 12, 4, 0),
    );
}

#[test]
fn nine_to_five_in_auckland_in_winter_begins_at_21_utc_the_day_before() {
    // July is winter in Auckland: NZST, UTC+12.
    assert_nine_to_five(
        AUCKLAND,
        auckland_zone(),
        day(2026, 7, 13),
        utc(2026, 7, 12, 21, 0),
        utc(2026, 7, 13, 5, 0),
    );
}

// Whole local days as one closure, in `zone`.
fn whole_day(zone: ClinicZone, on: NaiveDate) -> Closure {
    Closure::parse(
        HOLIDAY,
        ClosureSpan::Days { from: on, to: on },
        "Holiday",
        zone,
        long_ago(),
    )
    .unwrap()
}
