//! Who can be a provider, and what their profile holds.

use super::*;
use crate::unique::{UniqueKey, UniqueKeys};

#[tokio::test]
async fn a_doctor_is_enrolled_with_a_trimmed_display_name() {
    given(vec![], enroll(Some(Role::Doctor)))
        .await
        .then_expect_events(vec![enrolled()]);
}

#[tokio::test]
async fn a_nurse_is_enrolled_as_a_nurse() {
    given(vec![], enroll(Some(Role::Nurse)))
        .await
        .then_expect_events(vec![enrolled_as(ProviderKind::Nurse)]);
}

#[tokio::test]
async fn staff_admins_compliance_officers_and_patients_are_not_clinicians() {
    for role in [Role::Staff, Role::Admin, Role::Compliance, Role::Patient] {
        given(vec![], enroll(Some(role)))
            .await
            .then_expect_error(ScheduleError::NotAClinician);
    }
}

#[tokio::test]
async fn a_user_that_does_not_exist_or_is_deactivated_cannot_be_enrolled() {
    given(vec![], enroll(None))
        .await
        .then_expect_error(ScheduleError::UnknownUser);
}

#[tokio::test]
async fn a_provider_cannot_be_enrolled_twice() {
    given(vec![enrolled()], enroll(Some(Role::Doctor)))
        .await
        .then_expect_error(ScheduleError::AlreadyEnrolled);
}

#[tokio::test]
async fn a_default_length_off_the_five_minute_grain_is_refused() {
    for minutes in [7, 31, 44] {
        given(vec![], enroll_for(minutes))
            .await
            .then_expect_error(ScheduleError::InvalidDefaultLength);
    }
}

#[tokio::test]
async fn a_default_length_outside_five_minutes_to_eight_hours_is_refused() {
    for minutes in [-5, 0, 485, 600] {
        given(vec![], enroll_for(minutes))
            .await
            .then_expect_error(ScheduleError::InvalidDefaultLength);
    }
}

#[tokio::test]
async fn a_default_length_of_five_minutes_or_of_eight_hours_is_accepted() {
    for minutes in [5, 480] {
        let events = given(vec![], enroll_for(minutes))
            .await
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[..], [ProviderEvent::Enrolled { profile }] if profile.default_minutes == minutes),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn a_display_name_with_a_nul_character_is_refused() {
    given(vec![], enroll_named("Ada\u{0}Lovelace"))
        .await
        .then_expect_error(ScheduleError::InvalidCharacters("display_name"));
}

#[tokio::test]
async fn a_display_name_with_control_characters_is_refused() {
    for name in [
        "Ada\u{1b}[31mLovelace",
        "Ada\nLovelace",
        "Ada\tLovelace",
        "Ada\u{7f}",
        "Ada\u{85}",
        "\u{202e}ecalevoL",
    ] {
        given(vec![], enroll_named(name))
            .await
            .then_expect_error(ScheduleError::InvalidCharacters("display_name"));
    }
}

#[tokio::test]
async fn an_empty_display_name_is_refused() {
    given(vec![], enroll_named(" \u{200b} "))
        .await
        .then_expect_error(ScheduleError::EmptyField("display_name"));
}

#[tokio::test]
async fn a_specialty_with_control_characters_is_refused() {
    let mut command = enroll(Some(Role::Doctor));
    if let ProviderCommand::Enroll { specialty, .. } = &mut command {
        *specialty = "Cardio\u{0}logy".into();
    }
    given(vec![], command)
        .await
        .then_expect_error(ScheduleError::InvalidCharacters("specialty"));
}

#[tokio::test]
async fn nothing_but_enrollment_is_accepted_before_enrollment() {
    for command in [
        set_hours(nine_to_five(), 30),
        add_time_off(christmas(), "Holidays"),
        ProviderCommand::RemoveTimeOff {
            closure_id: TIME_OFF,
        },
    ] {
        given(vec![], command)
            .await
            .then_expect_error(ScheduleError::UnknownProvider);
    }
}

#[test]
fn an_enrolled_provider_holds_its_users_key_and_only_that() {
    let mut provider = Provider::default();
    assert!(provider.unique_keys().is_empty());
    provider.apply(enrolled());
    assert_eq!(
        provider.unique_keys(),
        vec![UniqueKey {
            scope: USER_SCOPE,
            key: PROVIDER.to_string(),
        }]
    );
}
