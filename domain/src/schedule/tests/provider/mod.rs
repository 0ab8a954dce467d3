//! A provider: enrollment, weekly hours, time off.

mod enrollment;
mod hours;
mod overbookings;
mod time_off;

use cqrs_es::test::{AggregateResultValidator, TestFramework};

use super::*;
use crate::user::Role;

async fn given(
    events: Vec<ProviderEvent>,
    command: ProviderCommand,
) -> AggregateResultValidator<Provider> {
    TestFramework::<Provider>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn enroll(role: Option<Role>) -> ProviderCommand {
    ProviderCommand::Enroll {
        user_id: PROVIDER,
        user_role: role,
        display_name: " Dr. Ada Lovelace ".into(),
        specialty: "General practice".into(),
        default_minutes: 30,
    }
}

fn enroll_named(display_name: &str) -> ProviderCommand {
    ProviderCommand::Enroll {
        user_id: PROVIDER,
        user_role: Some(Role::Doctor),
        display_name: display_name.into(),
        specialty: "General practice".into(),
        default_minutes: 30,
    }
}

fn enroll_for(default_minutes: i64) -> ProviderCommand {
    ProviderCommand::Enroll {
        user_id: PROVIDER,
        user_role: Some(Role::Nurse),
        display_name: "Florence".into(),
        specialty: "Triage".into(),
        default_minutes,
    }
}

fn enrolled_as(kind: ProviderKind) -> ProviderEvent {
    ProviderEvent::Enrolled {
        profile: Profile {
            user_id: PROVIDER,
            kind,
            display_name: "Dr. Ada Lovelace".into(),
            specialty: "General practice".into(),
            default_minutes: 30,
        },
    }
}

fn enrolled() -> ProviderEvent {
    enrolled_as(ProviderKind::Doctor)
}

fn set_hours(hours: Vec<DayHours>, slot_minutes: i64) -> ProviderCommand {
    ProviderCommand::SetAvailability {
        input: AvailabilityInput {
            hours,
            slot_minutes,
            effective_from: None,
            effective_to: None,
        },
    }
}

fn monday(intervals: &[Interval]) -> Vec<DayHours> {
    vec![on(Day::Monday, intervals)]
}

fn nine_to_five() -> Vec<DayHours> {
    monday(&[interval((9, 0), (17, 0))])
}

/// Christmas Eve and Christmas Day 2026, whole days in Los Angeles.
fn christmas() -> ClosureSpan {
    ClosureSpan::Days {
        from: day(2026, 12, 24),
        to: day(2026, 12, 25),
    }
}

fn add_time_off(span: ClosureSpan, reason: &str) -> ProviderCommand {
    ProviderCommand::AddTimeOff {
        closure_id: TIME_OFF,
        span,
        reason: reason.into(),
        zone: la_zone(),
        now: now(),
    }
}

fn christmas_off() -> ProviderEvent {
    ProviderEvent::TimeOffAdded {
        closure: Closure {
            closure_id: TIME_OFF,
            // Local midnight in Los Angeles (PST, UTC-8) to local midnight.
            period: period(utc(2026, 12, 24, 8, 0), utc(2026, 12, 26, 8, 0)),
            whole_days: true,
            reason: "Holidays".into(),
        },
    }
}
