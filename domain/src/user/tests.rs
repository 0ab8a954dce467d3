use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::DomainEvent;
use uuid::Uuid;

use super::*;

const ID: Uuid = Uuid::from_u128(7);
const SESSION: Uuid = Uuid::from_u128(8);

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn create(role: Role, patient_id: Option<Uuid>) -> UserCommand {
    UserCommand::Create {
        user_id: ID,
        username: Username::parse("house").unwrap(),
        role,
        patient_id,
    }
}

fn created() -> UserEvent {
    UserEvent::UserCreated {
        user_id: ID,
        username: Username::parse("house").unwrap(),
        role: Role::Doctor,
        patient_id: None,
    }
}

fn failed(at: DateTime<Utc>) -> UserEvent {
    UserEvent::LoginFailed {
        at,
        locked_until: None,
    }
}

async fn given(events: Vec<UserEvent>, command: UserCommand) -> AggregateResultValidator<User> {
    TestFramework::<User>::with(())
        .given(events)
        .when_async(command)
        .await
}

#[tokio::test]
async fn an_account_is_created() {
    given(vec![], create(Role::Doctor, None))
        .await
        .then_expect_events(vec![created()]);
}

#[tokio::test]
async fn a_username_is_taken_once() {
    given(vec![created()], create(Role::Doctor, None))
        .await
        .then_expect_error(UserError::AlreadyExists);
}

#[tokio::test]
async fn a_patient_account_needs_its_record() {
    given(vec![], create(Role::Patient, None))
        .await
        .then_expect_error(UserError::PatientLink);
}

#[tokio::test]
async fn only_a_patient_account_links_a_record() {
    given(vec![], create(Role::Nurse, Some(Uuid::from_u128(1))))
        .await
        .then_expect_error(UserError::PatientLink);
}

#[tokio::test]
async fn a_missing_account_cannot_log_in() {
    given(
        vec![],
        UserCommand::RecordLogin {
            session_id: SESSION,
            at: noon(),
        },
    )
    .await
    .then_expect_error(UserError::NotFound);
}

#[tokio::test]
async fn a_login_opens_a_session() {
    given(
        vec![created()],
        UserCommand::RecordLogin {
            session_id: SESSION,
            at: noon(),
        },
    )
    .await
    .then_expect_events(vec![UserEvent::LoginSucceeded {
        session_id: SESSION,
        at: noon(),
    }]);
}

#[tokio::test]
async fn a_deactivated_account_cannot_log_in() {
    given(
        vec![created(), UserEvent::UserDeactivated],
        UserCommand::RecordLogin {
            session_id: SESSION,
            at: noon(),
        },
    )
    .await
    .then_expect_error(UserError::Deactivated);
}

#[tokio::test]
async fn the_fifth_failure_in_a_row_locks_the_account() {
    let earlier: Vec<UserEvent> = (0..4)
        .map(|m| failed(noon() + Duration::minutes(m)))
        .collect();
    let at = noon() + Duration::minutes(5);
    given(
        [vec![created()], earlier].concat(),
        UserCommand::RecordFailedLogin { at },
    )
    .await
    .then_expect_events(vec![UserEvent::LoginFailed {
        at,
        locked_until: Some(at + lockout()),
    }]);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let mut history = vec![created()];
    history.extend((0..4).map(|m| failed(noon() + Duration::minutes(m))));
    history.push(UserEvent::LoginSucceeded {
        session_id: SESSION,
        at: noon() + Duration::minutes(4),
    });
    let at = noon() + Duration::minutes(5);
    given(history, UserCommand::RecordFailedLogin { at })
        .await
        .then_expect_events(vec![failed(at)]);
}

#[tokio::test]
async fn a_locked_account_cannot_log_in_even_with_the_right_password() {
    let until = noon() + lockout();
    given(
        vec![
            created(),
            UserEvent::LoginFailed {
                at: noon(),
                locked_until: Some(until),
            },
        ],
        UserCommand::RecordLogin {
            session_id: SESSION,
            at: noon() + Duration::minutes(1),
        },
    )
    .await
    .then_expect_error(UserError::Locked { until });
}

#[tokio::test]
async fn a_lock_lifts_after_its_time() {
    let at = noon() + lockout() + Duration::seconds(1);
    given(
        vec![
            created(),
            UserEvent::LoginFailed {
                at: noon(),
                locked_until: Some(noon() + lockout()),
            },
        ],
        UserCommand::RecordLogin {
            session_id: SESSION,
            at,
        },
    )
    .await
    .then_expect_events(vec![UserEvent::LoginSucceeded {
        session_id: SESSION,
        at,
    }]);
}

#[tokio::test]
async fn logout_ends_an_open_session_only() {
    given(
        vec![created()],
        UserCommand::EndSession {
            session_id: SESSION,
        },
    )
    .await
    .then_expect_error(UserError::UnknownSession);
    given(
        vec![
            created(),
            UserEvent::LoginSucceeded {
                session_id: SESSION,
                at: noon(),
            },
        ],
        UserCommand::EndSession {
            session_id: SESSION,
        },
    )
    .await
    .then_expect_events(vec![UserEvent::SessionEnded {
        session_id: SESSION,
    }]);
}

#[tokio::test]
async fn deactivation_ends_every_session() {
    given(
        vec![
            created(),
            UserEvent::LoginSucceeded {
                session_id: SESSION,
                at: noon(),
            },
            UserEvent::UserDeactivated,
        ],
        UserCommand::EndSession {
            session_id: SESSION,
        },
    )
    .await
    .then_expect_error(UserError::UnknownSession);
}

#[tokio::test]
async fn an_active_account_cannot_be_reactivated() {
    given(vec![created()], UserCommand::Reactivate)
        .await
        .then_expect_error(UserError::AlreadyActive);
}

#[tokio::test]
async fn a_deactivated_account_is_reactivated() {
    given(
        vec![created(), UserEvent::UserDeactivated],
        UserCommand::Reactivate,
    )
    .await
    .then_expect_events(vec![UserEvent::UserReactivated]);
}

#[tokio::test]
async fn a_deactivated_account_cannot_be_deactivated_again() {
    given(
        vec![created(), UserEvent::UserDeactivated],
        UserCommand::Deactivate,
    )
    .await
    .then_expect_error(UserError::Deactivated);
}

#[tokio::test]
async fn an_account_is_deactivated() {
    given(vec![created()], UserCommand::Deactivate)
        .await
        .then_expect_events(vec![UserEvent::UserDeactivated]);
}

#[tokio::test]
async fn a_password_change_ends_every_session() {
    let opened = UserEvent::LoginSucceeded {
        session_id: SESSION,
        at: noon(),
    };
    given(
        vec![created(), opened, UserEvent::PasswordChanged],
        UserCommand::EndSession {
            session_id: SESSION,
        },
    )
    .await
    .then_expect_error(UserError::UnknownSession);
}

#[tokio::test]
async fn a_deactivated_account_cannot_change_its_password() {
    given(
        vec![created(), UserEvent::UserDeactivated],
        UserCommand::ChangePassword,
    )
    .await
    .then_expect_error(UserError::Deactivated);
}

#[test]
fn every_user_event_is_stored_under_its_stable_name_and_reads_back() {
    use crate::codec::StoredForm;
    let events = vec![
        created(),
        UserEvent::LoginSucceeded {
            session_id: SESSION,
            at: noon(),
        },
        failed(noon()),
        UserEvent::SessionEnded {
            session_id: SESSION,
        },
        UserEvent::PasswordChanged,
        UserEvent::PasswordReset,
        UserEvent::UserDeactivated,
        UserEvent::UserReactivated,
    ];
    for event in events {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(stored.event_version, event.event_version());
        let back = UserEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}

#[tokio::test]
async fn sessions_older_than_their_lifetime_drop_out_at_the_next_login() {
    let old = Uuid::from_u128(20);
    let opened = |session_id, at| UserEvent::LoginSucceeded { session_id, at };
    let later = noon() + session_lifetime() + Duration::minutes(1);
    let mut user = User::default();
    for e in [created(), opened(old, noon()), opened(SESSION, later)] {
        user.apply(e);
    }
    assert!(!user.has_session(old));
    assert!(user.has_session(SESSION));
    assert_eq!(user.sessions().count(), 1);
}

#[test]
fn a_password_reset_lifts_the_lock() {
    let mut user = User::default();
    user.apply(created());
    user.apply(UserEvent::LoginFailed {
        at: noon(),
        locked_until: Some(noon() + lockout()),
    });
    assert!(user.locked_at(noon()).is_some());
    user.apply(UserEvent::PasswordReset);
    assert_eq!(user.locked_at(noon()), None);
}

#[tokio::test]
async fn a_password_change_is_recorded_without_the_password() {
    given(vec![created()], UserCommand::ChangePassword)
        .await
        .then_expect_events(vec![UserEvent::PasswordChanged]);
}

#[tokio::test]
async fn a_password_reset_is_recorded_without_the_password() {
    given(vec![created()], UserCommand::ResetPassword)
        .await
        .then_expect_events(vec![UserEvent::PasswordReset]);
}

#[test]
fn no_stored_user_event_holds_a_password_hash() {
    use crate::codec::StoredForm;
    for event in [
        created(),
        UserEvent::PasswordChanged,
        UserEvent::PasswordReset,
    ] {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_version, "2");
        let payload = stored.payload.to_string();
        assert!(!payload.contains(LEGACY_HASH_FIELD), "{payload}");
        assert!(!payload.contains("$argon2"), "{payload}");
    }
}

#[test]
fn a_version_1_creation_is_read_without_its_hash() {
    use crate::codec::StoredForm;
    let legacy = serde_json::json!({
        "user_id": ID,
        "username": "house",
        "role": "doctor",
        "password_hash": "$argon2id$v=19$legacy",
        "patient_id": null,
    });
    let read = UserEvent::from_stored("user.created", "1", &legacy.to_string()).unwrap();
    assert_eq!(read, created());
}

#[test]
fn version_1_password_events_are_read_without_their_hash() {
    use crate::codec::StoredForm;
    let legacy = r#"{"password_hash":"$argon2id$v=19$legacy"}"#;
    assert_eq!(
        UserEvent::from_stored("user.password_changed", "1", legacy).unwrap(),
        UserEvent::PasswordChanged
    );
    assert_eq!(
        UserEvent::from_stored("user.password_reset", "1", legacy).unwrap(),
        UserEvent::PasswordReset
    );
}

#[test]
fn a_version_no_release_wrote_is_unknown() {
    use crate::codec::{DecodeError, StoredForm};
    let unknown = |t: &str, v: &str| {
        matches!(
            UserEvent::from_stored(t, v, "null"),
            Err(DecodeError::Unknown { .. })
        )
    };
    assert!(unknown("user.deactivated", "2"));
    assert!(unknown("user.password_changed", "3"));
}

#[test]
fn an_account_holds_its_username_from_creation() {
    use crate::unique::{UniqueKey, UniqueKeys};
    let mut user = User::default();
    assert!(user.unique_keys().is_empty());
    user.apply(created());
    let held = vec![UniqueKey {
        scope: USERNAME_SCOPE,
        key: "house".into(),
    }];
    assert_eq!(user.unique_keys(), held);
    user.apply(UserEvent::UserDeactivated);
    assert_eq!(
        user.unique_keys(),
        held,
        "a deactivated account keeps its name"
    );
}
