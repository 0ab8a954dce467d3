//! The calendar keys an appointment holds: one per five minutes on the
//! provider's and the patient's calendars while it is active.

use std::collections::BTreeSet;

use super::*;
use crate::unique::{UniqueKey, UniqueKeys};

fn after(events: Vec<AppointmentEvent>) -> Appointment {
    let mut appointment = Appointment::default();
    for event in events {
        appointment.apply(event);
    }
    appointment
}

fn keys_in(appointment: &Appointment, scope: &str) -> Vec<UniqueKey> {
    appointment
        .unique_keys()
        .into_iter()
        .filter(|k| k.scope == scope)
        .collect()
}

/// The keys `owner`'s calendar in `scope` holds for the five-minute
/// granules beginning at `start`.
fn granules(scope: &'static str, owner: Uuid, start: DateTime<Utc>, count: i64) -> Vec<UniqueKey> {
    let first = start.timestamp() / 300;
    (first..first + count)
        .map(|g| UniqueKey {
            scope,
            key: format!("{owner}@{g}"),
        })
        .collect()
}

fn shared(a: &Period, b: &Period) -> BTreeSet<UniqueKey> {
    let a: BTreeSet<_> = a
        .calendar_keys(PROVIDER_SCOPE, PROVIDER)
        .into_iter()
        .collect();
    let b: BTreeSet<_> = b
        .calendar_keys(PROVIDER_SCOPE, PROVIDER)
        .into_iter()
        .collect();
    a.intersection(&b).cloned().collect()
}

#[test]
fn an_appointment_never_booked_holds_no_keys() {
    assert!(Appointment::default().unique_keys().is_empty());
}

#[test]
fn a_booked_half_hour_holds_six_provider_and_six_patient_keys() {
    let appointment = after(vec![booked()]);
    let start = monday_ten().start;
    assert_eq!(
        keys_in(&appointment, PROVIDER_SCOPE),
        granules(PROVIDER_SCOPE, PROVIDER, start, 6)
    );
    assert_eq!(
        keys_in(&appointment, PATIENT_SCOPE),
        granules(PATIENT_SCOPE, PATIENT, start, 6)
    );
    assert_eq!(appointment.unique_keys().len(), 12);
}

#[test]
fn the_keys_cover_exactly_the_granules_of_the_period() {
    // 10:05–10:20 is three granules: 10:05, 10:10, 10:15; not 10:00 or 10:20.
    let short = period(la(12, 7, 10, 5), la(12, 7, 10, 20));
    let appointment = after(vec![booked_at(short)]);
    assert_eq!(
        keys_in(&appointment, PROVIDER_SCOPE),
        granules(PROVIDER_SCOPE, PROVIDER, short.start, 3)
    );
    let five_minutes = period(la(12, 7, 10, 5), la(12, 7, 10, 10));
    assert_eq!(
        five_minutes.calendar_keys(PATIENT_SCOPE, PATIENT),
        granules(PATIENT_SCOPE, PATIENT, five_minutes.start, 1)
    );
}

#[test]
fn an_eight_hour_appointment_holds_96_keys_on_each_calendar() {
    let day_long = period(la(12, 7, 8, 0), la(12, 7, 16, 0));
    let appointment = after(vec![booked_at(day_long)]);
    assert_eq!(keys_in(&appointment, PROVIDER_SCOPE).len(), 96);
    assert_eq!(keys_in(&appointment, PATIENT_SCOPE).len(), 96);
}

#[test]
fn a_checked_in_or_started_visit_still_holds_its_keys() {
    let expected = after(vec![booked()]).unique_keys();
    assert_eq!(after(vec![booked(), checked_in()]).unique_keys(), expected);
    assert_eq!(
        after(vec![booked(), checked_in(), started()]).unique_keys(),
        expected
    );
}

#[test]
fn an_overbooking_holds_only_the_patients_keys() {
    let appointment = after(vec![overbooked()]);
    assert!(keys_in(&appointment, PROVIDER_SCOPE).is_empty());
    assert_eq!(
        appointment.unique_keys(),
        granules(PATIENT_SCOPE, PATIENT, monday_ten().start, 6)
    );
}

#[test]
fn a_cancelled_completed_or_missed_appointment_holds_no_keys() {
    for history in [
        vec![booked(), cancelled()],
        vec![booked(), checked_in(), cancelled()],
        vec![booked(), checked_in(), started(), completed()],
        vec![booked(), no_show()],
        vec![overbooked(), cancelled()],
    ] {
        assert!(
            after(history.clone()).unique_keys().is_empty(),
            "{history:?}"
        );
    }
}

#[test]
fn a_rescheduled_appointment_holds_the_keys_of_its_new_period() {
    let tuesday = period(la(12, 8, 14, 0), la(12, 8, 14, 45));
    let appointment = after(vec![
        booked(),
        AppointmentEvent::Rescheduled {
            from: monday_ten(),
            to: tuesday,
        },
    ]);
    let mut expected = granules(PATIENT_SCOPE, PATIENT, tuesday.start, 9);
    expected.extend(granules(PROVIDER_SCOPE, PROVIDER, tuesday.start, 9));
    assert_eq!(appointment.unique_keys(), expected);
}

#[test]
fn a_rescheduled_overbooking_holds_the_providers_keys_again() {
    let tuesday = period(la(12, 8, 14, 0), la(12, 8, 14, 30));
    let appointment = after(vec![
        overbooked(),
        AppointmentEvent::Rescheduled {
            from: monday_ten(),
            to: tuesday,
        },
    ]);
    assert_eq!(
        keys_in(&appointment, PROVIDER_SCOPE),
        granules(PROVIDER_SCOPE, PROVIDER, tuesday.start, 6)
    );
    assert_eq!(
        appointment
            .booking()
            .and_then(|b| b.overbook_reason.clone()),
        None
    );
}

#[test]
fn overlapping_periods_share_a_key() {
    let first = period(la(12, 7, 9, 0), la(12, 7, 9, 30));
    let second = period(la(12, 7, 9, 25), la(12, 7, 9, 55));
    assert_eq!(
        shared(&first, &second),
        granules(PROVIDER_SCOPE, PROVIDER, la(12, 7, 9, 25), 1)
            .into_iter()
            .collect()
    );
    let inside = period(la(12, 7, 9, 10), la(12, 7, 9, 15));
    assert_eq!(shared(&first, &inside).len(), 1);
}

#[test]
fn adjacent_periods_share_no_key() {
    let first = period(la(12, 7, 9, 0), la(12, 7, 9, 30));
    let second = period(la(12, 7, 9, 30), la(12, 7, 10, 0));
    assert!(!first.overlaps(&second));
    assert!(shared(&first, &second).is_empty());
    assert!(shared(&second, &first).is_empty());
}

#[test]
fn two_patients_at_one_time_hold_different_keys() {
    let p = monday_ten();
    let mine: BTreeSet<_> = p
        .calendar_keys(PATIENT_SCOPE, PATIENT)
        .into_iter()
        .collect();
    let theirs: BTreeSet<_> = p
        .calendar_keys(PATIENT_SCOPE, OTHER_PATIENT)
        .into_iter()
        .collect();
    assert!(mine.is_disjoint(&theirs));
}
