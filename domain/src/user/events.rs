//! Facts about a user account, and how older versions of them are read.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{MfaPurpose, Role, Username};
use crate::codec::{DecodeError, StoredForm};

/// A fact about a user account, stored under the stable names below. No
/// event holds a password or its hash: credentials live in the write side's
/// mutable credential table (ADR 0006); the log records that a password was
/// set, changed or reset, and by whom (the event's actor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    /// The account was created, with its first password.
    #[serde(rename = "user.created")]
    UserCreated {
        /// Its id (also its stream id).
        user_id: Uuid,
        /// Login name.
        username: Username,
        /// Role.
        role: Role,
        /// Linked patient record.
        patient_id: Option<Uuid>,
    },
    /// A login succeeded and a session opened.
    #[serde(rename = "user.login_succeeded")]
    LoginSucceeded {
        /// The session.
        session_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// A login failed; `locked_until` is set when this failure locked the account.
    #[serde(rename = "user.login_failed")]
    LoginFailed {
        /// When.
        at: DateTime<Utc>,
        /// Locked until then, if this failure locked it.
        locked_until: Option<DateTime<Utc>>,
    },
    /// A session closed.
    #[serde(rename = "user.session_ended")]
    SessionEnded {
        /// The session.
        session_id: Uuid,
    },
    /// The user replaced their password; every open session ended.
    #[serde(rename = "user.password_changed")]
    PasswordChanged,
    /// An operator set a new password; the lock lifted, every session ended.
    #[serde(rename = "user.password_reset")]
    PasswordReset,
    /// The account was deactivated.
    #[serde(rename = "user.deactivated")]
    UserDeactivated,
    /// The account was reactivated.
    #[serde(rename = "user.reactivated")]
    UserReactivated,
    /// The password was right; a second factor was asked for (ADR 0025).
    #[serde(rename = "user.mfa_challenged")]
    MfaChallenged {
        /// The challenge (its token names it).
        challenge_id: Uuid,
        /// When it opened.
        at: DateTime<Utc>,
        /// Verify a code, or enrol first.
        purpose: MfaPurpose,
    },
    /// An authenticator's enrolment started; its secret is in the MFA table.
    #[serde(rename = "user.mfa_enrolment_started")]
    MfaEnrolmentStarted {
        /// When.
        at: DateTime<Utc>,
    },
    /// A code of the new secret confirmed the enrolment; recovery codes were
    /// issued (their hashes are in the MFA table).
    #[serde(rename = "user.mfa_enrolled")]
    MfaEnrolled {
        /// The time step of the confirming code.
        step: u64,
        /// How many recovery codes were issued.
        recovery_codes: u8,
    },
    /// A TOTP code answered a challenge.
    #[serde(rename = "user.mfa_verified")]
    MfaVerified {
        /// The challenge.
        challenge_id: Uuid,
        /// The code's time step: no code of it or an earlier one answers again.
        step: u64,
    },
    /// A recovery code answered a challenge; it never answers again.
    #[serde(rename = "user.recovery_code_used")]
    RecoveryCodeUsed {
        /// The challenge.
        challenge_id: Uuid,
        /// Which code (its number in the list shown at enrolment).
        index: u8,
    },
    /// The user turned their second factor off, with a current code.
    #[serde(rename = "user.mfa_disabled")]
    MfaDisabled {
        /// The time step of that code.
        step: u64,
    },
    /// An operator removed the account's second factor (the reason is in
    /// the event's metadata).
    #[serde(rename = "user.mfa_reset")]
    MfaReset,
}

/// Event types whose version 1 carried a `password_hash`; version 2 does not.
const HASH_BEARING: [&str; 3] = [
    "user.created",
    "user.password_changed",
    "user.password_reset",
];

/// The field version 1 of [`HASH_BEARING`] events held.
pub const LEGACY_HASH_FIELD: &str = "password_hash";

impl StoredForm for UserEvent {
    /// Version 1 of `user.created`, `user.password_changed` and
    /// `user.password_reset` held the password hash: it is dropped on read
    /// (the credential table holds the password now). Every other type is at
    /// version 1.
    fn upcast(event_type: &str, version: &str, payload: Value) -> Result<Value, DecodeError> {
        let hash_bearing = HASH_BEARING.contains(&event_type);
        match (hash_bearing, version) {
            (true, "2") | (false, "1") => Ok(payload),
            (true, "1") => Ok(without_hash(payload)),
            _ => Err(DecodeError::Unknown {
                event_type: event_type.to_owned(),
                version: version.to_owned(),
            }),
        }
    }
}

/// A version 1 payload without its hash; an object left empty is no payload
/// (the password events carry no fields now).
fn without_hash(payload: Value) -> Value {
    match payload {
        Value::Object(mut fields) => {
            fields.remove(LEGACY_HASH_FIELD);
            if fields.is_empty() {
                Value::Null
            } else {
                Value::Object(fields)
            }
        }
        other => other,
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserCreated { .. } => "user.created",
            UserEvent::LoginSucceeded { .. } => "user.login_succeeded",
            UserEvent::LoginFailed { .. } => "user.login_failed",
            UserEvent::SessionEnded { .. } => "user.session_ended",
            UserEvent::PasswordChanged => "user.password_changed",
            UserEvent::PasswordReset => "user.password_reset",
            UserEvent::UserDeactivated => "user.deactivated",
            UserEvent::UserReactivated => "user.reactivated",
            UserEvent::MfaChallenged { .. } => "user.mfa_challenged",
            UserEvent::MfaEnrolmentStarted { .. } => "user.mfa_enrolment_started",
            UserEvent::MfaEnrolled { .. } => "user.mfa_enrolled",
            UserEvent::MfaVerified { .. } => "user.mfa_verified",
            UserEvent::RecoveryCodeUsed { .. } => "user.recovery_code_used",
            UserEvent::MfaDisabled { .. } => "user.mfa_disabled",
            UserEvent::MfaReset => "user.mfa_reset",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            UserEvent::UserCreated { .. }
            | UserEvent::PasswordChanged
            | UserEvent::PasswordReset => "2",
            _ => "1",
        }
        .to_owned()
    }
}
