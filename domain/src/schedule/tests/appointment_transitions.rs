//! An appointment's life after booking: check-in, start, completion,
//! cancellation (late or not), rescheduling and no-shows.

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

fn cancel_at(now: DateTime<Utc>) -> AppointmentCommand {
    AppointmentCommand::Cancel {
        reason: "patient asked".into(),
        by_clinic: false,
        now,
    }
}

fn cancel() -> AppointmentCommand {
    cancel_at(now())
}

fn cancelled_late(late: bool) -> AppointmentEvent {
    AppointmentEvent::Cancelled {
        reason: "patient asked".into(),
        late,
        by_clinic: false,
    }
}

fn reschedule(start: DateTime<Utc>, end: DateTime<Utc>) -> AppointmentCommand {
    AppointmentCommand::Reschedule {
        calendar: calendar(),
        starts_at: start,
        ends_at: end,
        now: now(),
    }
}

fn wrong(status: &'static str, wanted: &'static str) -> ScheduleError {
    ScheduleError::InvalidTransition { status, wanted }
}

/// The start of the booked appointment (Monday 7 December, 10:00).
fn start() -> DateTime<Utc> {
    monday_ten().start
}

// In order.

#[tokio::test]
async fn a_booked_patient_is_checked_in() {
    given(
        vec![booked()],
        AppointmentCommand::CheckIn {
            now: la(12, 7, 9, 50),
        },
    )
    .await
    .then_expect_events(vec![checked_in()]);
}

#[tokio::test]
async fn a_checked_in_visit_is_started() {
    given(
        vec![booked(), checked_in()],
        AppointmentCommand::Start {
            now: la(12, 7, 10, 2),
        },
    )
    .await
    .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn a_visit_in_progress_is_completed() {
    given(
        vec![booked(), checked_in(), started()],
        AppointmentCommand::Complete {
            now: la(12, 7, 10, 25),
        },
    )
    .await
    .then_expect_events(vec![completed()]);
}

#[test]
fn the_status_follows_the_events() {
    let mut appointment = Appointment::default();
    assert!(appointment.booking().is_none());
    for (event, status) in [
        (booked(), Status::Booked),
        (checked_in(), Status::CheckedIn),
        (started(), Status::InProgress),
        (completed(), Status::Completed),
    ] {
        appointment.apply(event);
        assert_eq!(appointment.status(), status);
    }
    assert_eq!(appointment.booking().map(|b| b.period), Some(monday_ten()));
}

#[test]
fn a_status_reads_back_from_its_stored_spelling() {
    for status in [
        Status::Booked,
        Status::CheckedIn,
        Status::InProgress,
        Status::Completed,
        Status::Cancelled,
        Status::NoShow,
    ] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("Booked"), None);
}

#[tokio::test]
async fn a_visit_cannot_start_before_check_in() {
    given(vec![booked()], AppointmentCommand::Start { now: start() })
        .await
        .then_expect_error(wrong("booked", "started"));
}

#[tokio::test]
async fn a_visit_cannot_be_completed_before_it_starts() {
    for (history, status) in [
        (vec![booked()], "booked"),
        (vec![booked(), checked_in()], "checked_in"),
    ] {
        given(history, AppointmentCommand::Complete { now: start() })
            .await
            .then_expect_error(wrong(status, "completed"));
    }
}

#[tokio::test]
async fn a_patient_is_checked_in_once() {
    given(
        vec![booked(), checked_in()],
        AppointmentCommand::CheckIn { now: start() },
    )
    .await
    .then_expect_error(wrong("checked_in", "checked in"));
}

#[tokio::test]
async fn a_cancelled_or_missed_appointment_cannot_be_checked_in() {
    given(
        vec![booked(), cancelled()],
        AppointmentCommand::CheckIn { now: start() },
    )
    .await
    .then_expect_error(wrong("cancelled", "checked in"));
    given(
        vec![booked(), no_show()],
        AppointmentCommand::CheckIn { now: start() },
    )
    .await
    .then_expect_error(wrong("no_show", "checked in"));
}

#[tokio::test]
async fn a_completed_visit_is_not_started_or_completed_again() {
    let history = vec![booked(), checked_in(), started(), completed()];
    given(history.clone(), AppointmentCommand::Start { now: start() })
        .await
        .then_expect_error(wrong("completed", "started"));
    given(history, AppointmentCommand::Complete { now: start() })
        .await
        .then_expect_error(wrong("completed", "completed"));
}

#[tokio::test]
async fn nothing_happens_to_an_appointment_never_booked() {
    for command in [
        cancel(),
        AppointmentCommand::CheckIn { now: now() },
        AppointmentCommand::Start { now: now() },
        AppointmentCommand::Complete { now: now() },
        AppointmentCommand::NoShow { now: now() },
        reschedule(la(12, 8, 10, 0), la(12, 8, 10, 30)),
    ] {
        given(vec![], command)
            .await
            .then_expect_error(ScheduleError::UnknownAppointment);
    }
}

// Cancellation.

#[tokio::test]
async fn a_booked_appointment_is_cancelled() {
    given(vec![booked()], cancel())
        .await
        .then_expect_events(vec![cancelled_late(false)]);
}

#[tokio::test]
async fn a_checked_in_appointment_is_cancelled() {
    given(vec![booked(), checked_in()], cancel_at(la(12, 7, 9, 55)))
        .await
        .then_expect_events(vec![cancelled_late(true)]);
}

#[tokio::test]
async fn a_visit_in_progress_completed_missed_or_cancelled_cannot_be_cancelled() {
    for (history, status) in [
        (vec![booked(), checked_in(), started()], "in_progress"),
        (
            vec![booked(), checked_in(), started(), completed()],
            "completed",
        ),
        (vec![booked(), no_show()], "no_show"),
        (vec![booked(), cancelled()], "cancelled"),
    ] {
        given(history, cancel())
            .await
            .then_expect_error(wrong(status, "cancelled"));
    }
}

#[tokio::test]
async fn a_cancellation_less_than_24_hours_ahead_is_late() {
    let just_inside = start() - late_cancellation() + Duration::minutes(1);
    given(vec![booked()], cancel_at(just_inside))
        .await
        .then_expect_events(vec![cancelled_late(true)]);
    let one_second_inside = start() - late_cancellation() + Duration::seconds(1);
    given(vec![booked()], cancel_at(one_second_inside))
        .await
        .then_expect_events(vec![cancelled_late(true)]);
}

#[tokio::test]
async fn a_cancellation_exactly_24_hours_ahead_is_not_late() {
    assert_eq!(late_cancellation(), Duration::hours(24));
    given(vec![booked()], cancel_at(start() - Duration::hours(24)))
        .await
        .then_expect_events(vec![cancelled_late(false)]);
}

#[tokio::test]
async fn a_cancellation_more_than_24_hours_ahead_is_not_late() {
    given(
        vec![booked()],
        cancel_at(start() - Duration::hours(24) - Duration::minutes(1)),
    )
    .await
    .then_expect_events(vec![cancelled_late(false)]);
}

#[tokio::test]
async fn a_cancellation_after_the_start_is_late() {
    given(
        vec![booked(), checked_in()],
        cancel_at(start() + Duration::minutes(5)),
    )
    .await
    .then_expect_events(vec![cancelled_late(true)]);
}

#[tokio::test]
async fn a_cancellation_by_the_clinic_says_so() {
    given(
        vec![booked()],
        AppointmentCommand::Cancel {
            reason: "clinic closed: flood".into(),
            by_clinic: true,
            now: now(),
        },
    )
    .await
    .then_expect_events(vec![AppointmentEvent::Cancelled {
        reason: "clinic closed: flood".into(),
        late: false,
        by_clinic: true,
    }]);
}

#[tokio::test]
async fn a_cancellation_reason_with_control_characters_is_refused() {
    given(
        vec![booked()],
        AppointmentCommand::Cancel {
            reason: "moved\u{0}away".into(),
            by_clinic: false,
            now: now(),
        },
    )
    .await
    .then_expect_error(ScheduleError::InvalidCharacters("reason"));
}

// Rescheduling.

#[tokio::test]
async fn a_booked_appointment_is_rescheduled() {
    let tuesday = period(la(12, 8, 14, 0), la(12, 8, 14, 45));
    given(vec![booked()], reschedule(tuesday.start, tuesday.end))
        .await
        .then_expect_events(vec![AppointmentEvent::Rescheduled {
            from: monday_ten(),
            to: tuesday,
        }]);
}

#[tokio::test]
async fn a_rescheduled_appointment_is_rescheduled_from_its_new_time() {
    let tuesday = period(la(12, 8, 14, 0), la(12, 8, 14, 30));
    let moved = AppointmentEvent::Rescheduled {
        from: monday_ten(),
        to: tuesday,
    };
    let wednesday = period(la(12, 9, 9, 0), la(12, 9, 9, 30));
    given(
        vec![booked(), moved],
        reschedule(wednesday.start, wednesday.end),
    )
    .await
    .then_expect_events(vec![AppointmentEvent::Rescheduled {
        from: tuesday,
        to: wednesday,
    }]);
}

#[tokio::test]
async fn only_a_booked_appointment_is_rescheduled() {
    for (history, status) in [
        (vec![booked(), checked_in()], "checked_in"),
        (vec![booked(), checked_in(), started()], "in_progress"),
        (
            vec![booked(), checked_in(), started(), completed()],
            "completed",
        ),
        (vec![booked(), no_show()], "no_show"),
        (vec![booked(), cancelled()], "cancelled"),
    ] {
        given(history, reschedule(la(12, 8, 10, 0), la(12, 8, 10, 30)))
            .await
            .then_expect_error(wrong(status, "rescheduled"));
    }
}

#[tokio::test]
async fn a_reschedule_is_held_to_the_same_rules_as_a_booking() {
    // Saturday: no hours.
    given(
        vec![booked()],
        reschedule(la(12, 5, 10, 0), la(12, 5, 10, 30)),
    )
    .await
    .then_expect_error(ScheduleError::OutsideWorkingHours);
    // Yesterday.
    given(
        vec![booked()],
        reschedule(la(11, 30, 10, 0), la(11, 30, 10, 30)),
    )
    .await
    .then_expect_error(ScheduleError::InThePast);
    // Across lunch.
    given(
        vec![booked()],
        reschedule(la(12, 8, 11, 30), la(12, 8, 13, 30)),
    )
    .await
    .then_expect_error(ScheduleError::OutsideWorkingHours);
    // Into time off.
    let off = AppointmentCommand::Reschedule {
        calendar: Calendar {
            closures: vec![closure(TIME_OFF, la(12, 8, 9, 0), la(12, 8, 12, 0))],
            ..calendar()
        },
        starts_at: la(12, 8, 10, 0),
        ends_at: la(12, 8, 10, 30),
        now: now(),
    };
    given(vec![booked()], off)
        .await
        .then_expect_error(ScheduleError::Closed {
            closure_id: TIME_OFF,
        });
}

// No-shows.

#[tokio::test]
async fn a_no_show_is_recorded_after_the_start_time() {
    given(
        vec![booked()],
        AppointmentCommand::NoShow {
            now: la(12, 7, 10, 20),
        },
    )
    .await
    .then_expect_events(vec![no_show()]);
}

/// From its start on, a booked appointment is kept or missed: the patient
/// cannot turn a no-show into a cancellation (it once could, even after
/// the end). Checked in, it may still be cancelled; the clinic's own
/// cancellation (a closure) may come at any time.
#[tokio::test]
async fn a_booked_appointment_is_not_cancelled_once_its_time_has_begun() {
    for now in [start(), start() + Duration::minutes(45)] {
        given(vec![booked()], cancel_at(now))
            .await
            .then_expect_error(ScheduleError::AlreadyBegun);
    }
    given(vec![booked()], cancel_at(start() - Duration::seconds(1)))
        .await
        .then_expect_events(vec![cancelled_late(true)]);
    given(
        vec![booked(), checked_in()],
        cancel_at(start() + Duration::minutes(5)),
    )
    .await
    .then_expect_events(vec![cancelled_late(true)]);
    let by_clinic = AppointmentCommand::Cancel {
        reason: "patient asked".into(),
        by_clinic: true,
        now: start() + Duration::minutes(5),
    };
    given(vec![booked()], by_clinic)
        .await
        .then_expect_events(vec![AppointmentEvent::Cancelled {
            reason: "patient asked".into(),
            late: true,
            by_clinic: true,
        }]);
}

#[tokio::test]
async fn a_no_show_is_not_recorded_before_the_start_time() {
    given(
        vec![booked()],
        AppointmentCommand::NoShow {
            now: start() - Duration::seconds(1),
        },
    )
    .await
    .then_expect_error(ScheduleError::NotStartedYet);
}

#[tokio::test]
async fn a_no_show_may_be_recorded_from_the_start_time_itself() {
    given(vec![booked()], AppointmentCommand::NoShow { now: start() })
        .await
        .then_expect_events(vec![AppointmentEvent::NoShow { at: start() }]);
}

#[tokio::test]
async fn only_a_booked_appointment_can_be_a_no_show() {
    let later = la(12, 7, 11, 0);
    for (history, status) in [
        (vec![booked(), checked_in()], "checked_in"),
        (vec![booked(), checked_in(), started()], "in_progress"),
        (
            vec![booked(), checked_in(), started(), completed()],
            "completed",
        ),
        (vec![booked(), cancelled()], "cancelled"),
        (vec![booked(), no_show()], "no_show"),
    ] {
        given(history, AppointmentCommand::NoShow { now: later })
            .await
            .then_expect_error(wrong(status, "marked no-show"));
    }
}
