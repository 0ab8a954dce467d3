//! Every rule a user command can break.

use chrono::{DateTime, Utc};

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The username is taken.
    #[error("the username is taken")]
    AlreadyExists,
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// Usernames are 3 to 64 characters of a-z 0-9 . _ - @.
    #[error("username must be 3 to 64 characters of a-z 0-9 . _ - @")]
    InvalidUsername,
    /// Unknown role name.
    #[error("role is not one of patient, doctor, nurse, staff, admin, compliance, analyst")]
    UnknownRole,
    /// Passwords have at least 10 characters.
    #[error("password must have at least 10 characters")]
    PasswordTooShort,
    /// Passwords have at most 256 characters.
    #[error("password must have at most 256 characters")]
    PasswordTooLong,
    /// The account is deactivated.
    #[error("the account is deactivated")]
    Deactivated,
    /// The account is already active.
    #[error("the account is already active")]
    AlreadyActive,
    /// Too many failed logins: locked until the given time.
    #[error("too many failed logins; locked for now")]
    Locked {
        /// When logins are accepted again.
        until: DateTime<Utc>,
    },
    /// The session is not open (logged out, or never existed).
    #[error("the session is not open")]
    UnknownSession,
    /// A patient account must name its patient record; others must not.
    #[error("a patient account must be linked to a patient record, and only a patient account")]
    PatientLink,
    /// No such login challenge is open (never issued, answered, or expired).
    #[error("the login challenge is not open; log in again")]
    UnknownChallenge,
    /// The account must enrol an authenticator before it can log in.
    #[error("enrol an authenticator first")]
    MfaEnrolmentRequired,
    /// An authenticator is already enrolled.
    #[error("an authenticator is already enrolled")]
    MfaAlreadyEnrolled,
    /// No authenticator is enrolled.
    #[error("no authenticator is enrolled")]
    MfaNotEnrolled,
    /// No enrolment was started.
    #[error("no enrolment was started")]
    MfaNotStarted,
    /// A code of this time step (or an earlier one) was already used.
    #[error("this code was already used; wait for the next one")]
    MfaCodeReplayed,
    /// This recovery code was already used.
    #[error("this recovery code was already used")]
    RecoveryCodeUsed,
    /// The account's role must use a second factor.
    #[error("this account's role must use a second factor")]
    MfaRequired,
}
