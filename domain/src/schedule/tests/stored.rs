//! Every scheduling event in its stored form: a stable type name, the
//! current version, the fields only; and back.

use super::*;
use crate::codec::StoredForm;

/// Asserts each event is stored under `name`, at the current version, with
/// no Rust variant name in its payload, and reads back equal.
fn round_trip<E>(events: Vec<(E, &str)>)
where
    E: StoredForm,
{
    for (event, name) in events {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, name);
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(stored.event_version, crate::codec::CURRENT_VERSION);
        assert_eq!(stored.event_version, event.event_version());
        let variant = format!("{event:?}");
        let variant = variant
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !stored.payload.to_string().contains(&variant),
            "{variant} in {stored:?}"
        );
        let back = E::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}

fn time_off() -> Closure {
    Closure::parse(
        TIME_OFF,
        ClosureSpan::Days {
            from: day(2026, 12, 24),
            to: day(2026, 12, 25),
        },
        "Holidays",
        la_zone(),
        now(),
    )
    .unwrap()
}

#[test]
fn every_provider_event_is_stored_under_its_stable_name_and_reads_back() {
    let mut availability = office_hours();
    availability.effective_from = Some(day(2026, 12, 7));
    availability.effective_to = Some(day(2027, 6, 30));
    round_trip(vec![
        (
            ProviderEvent::Enrolled {
                profile: Profile {
                    user_id: PROVIDER,
                    kind: ProviderKind::Nurse,
                    display_name: "Florence".into(),
                    specialty: "Triage".into(),
                    default_minutes: 15,
                },
            },
            "provider.enrolled",
        ),
        (
            ProviderEvent::AvailabilitySet { availability },
            "provider.availability_set",
        ),
        (
            ProviderEvent::TimeOffAdded {
                closure: time_off(),
            },
            "provider.time_off_added",
        ),
        (
            ProviderEvent::TimeOffRemoved {
                closure_id: TIME_OFF,
            },
            "provider.time_off_removed",
        ),
        (
            ProviderEvent::Overbooked {
                appointment_id: APPOINTMENT,
                period: monday_ten(),
            },
            "provider.overbooked",
        ),
    ]);
}

#[test]
fn every_clinic_calendar_event_is_stored_under_its_stable_name_and_reads_back() {
    let mut holiday = time_off();
    holiday.closure_id = HOLIDAY;
    round_trip(vec![
        (
            ClinicEvent::HolidayAdded { closure: holiday },
            "clinic_calendar.holiday_added",
        ),
        (
            ClinicEvent::HolidayRemoved {
                closure_id: HOLIDAY,
            },
            "clinic_calendar.holiday_removed",
        ),
    ]);
}

#[test]
fn every_appointment_event_is_stored_under_its_stable_name_and_reads_back() {
    round_trip(vec![
        (booked(), "appointment.booked"),
        (overbooked(), "appointment.booked"),
        (
            AppointmentEvent::Rescheduled {
                from: monday_ten(),
                to: period(la(12, 8, 14, 0), la(12, 8, 14, 30)),
            },
            "appointment.rescheduled",
        ),
        (
            AppointmentEvent::Cancelled {
                reason: "clinic closed".into(),
                late: true,
                by_clinic: true,
            },
            "appointment.cancelled",
        ),
        (checked_in(), "appointment.checked_in"),
        (started(), "appointment.started"),
        (completed(), "appointment.completed"),
        (no_show(), "appointment.no_show"),
    ]);
}

#[test]
fn an_unknown_scheduling_event_or_version_is_refused_by_name() {
    use crate::codec::DecodeError;
    let stored = booked().to_stored().unwrap();
    assert_eq!(
        AppointmentEvent::from_stored("appointment.booked", "2", &stored.payload.to_string()),
        Err(DecodeError::Unknown {
            event_type: "appointment.booked".into(),
            version: "2".into(),
        })
    );
    assert!(matches!(
        ProviderEvent::from_stored("provider.retired", "1", "{}"),
        Err(DecodeError::Unknown { .. })
    ));
}
