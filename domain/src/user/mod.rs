//! User accounts: who may log in, with which role, and their sessions.

mod error;
mod events;
mod mfa;
mod values;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use error::UserError;
pub use events::{UserEvent, LEGACY_HASH_FIELD};
pub use mfa::{challenge_lifetime, Challenge, Mfa, MfaCommand, MfaProof, MfaPurpose};
pub use values::{check_password, Role, Username};

/// The unique-claim scope of usernames: one account per name, claimed with
/// the account's creation (ADR 0006).
pub const USERNAME_SCOPE: &str = "user.username";

/// Consecutive failed logins that lock an account.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// How long a session lasts at most (its refresh token's lifetime).
pub fn session_lifetime() -> Duration {
    Duration::hours(12)
}

/// How long a locked account stays locked after the last failure.
pub fn lockout() -> Duration {
    Duration::minutes(15)
}

/// A request to change a user account. No command carries a password or its
/// hash: the credential is checked and stored by the write side, beside the
/// event that records it was set (ADR 0006).
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Create the account.
    Create {
        /// The account's stable id (its stream id, and the actor id of its
        /// events).
        user_id: Uuid,
        /// Login name, unique among accounts.
        username: Username,
        /// Role.
        role: Role,
        /// For patients: their patient record.
        patient_id: Option<Uuid>,
    },
    /// A correct password was presented: open a session.
    RecordLogin {
        /// The new session.
        session_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// A wrong password was presented.
    RecordFailedLogin {
        /// Now.
        at: DateTime<Utc>,
    },
    /// Close a session (logout).
    EndSession {
        /// Which one.
        session_id: Uuid,
    },
    /// Replace the password; every open session ends.
    ChangePassword,
    /// An operator sets a new password for a locked-out or forgetful user:
    /// the lock lifts and every open session ends.
    ResetPassword,
    /// Stop the account from logging in.
    Deactivate,
    /// Let it log in again.
    Reactivate,
    /// About the account's second factor (ADR 0025).
    Mfa(MfaCommand),
}

/// A user account's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    account: Option<Account>,
    active: bool,
    failed_logins: u32,
    locked_until: Option<DateTime<Utc>>,
    /// Open sessions and when each was opened. Sessions older than
    /// [`session_lifetime`] drop out at the next login, so the set stays as
    /// small as the logins of one lifetime.
    sessions: BTreeMap<Uuid, DateTime<Utc>>,
    /// The second factor (ADR 0025).
    #[serde(default)]
    mfa: Mfa,
}

/// What was fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Stable id.
    pub user_id: Uuid,
    /// Login name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Linked patient record.
    pub patient_id: Option<Uuid>,
}

impl User {
    /// The account, once created.
    pub fn account(&self) -> Option<&Account> {
        self.account.as_ref()
    }

    /// Whether the account may log in at all.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// When the lock lifts, if the account is locked at `now`.
    pub fn locked_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|until| *until > now)
    }

    /// The open sessions.
    pub fn sessions(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.sessions.keys().copied()
    }

    /// Whether `session_id` is open.
    pub fn has_session(&self, session_id: Uuid) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// When `session_id` ends ([`session_lifetime`] after it was opened,
    /// whatever was refreshed since), if it is open.
    pub fn session_ends(&self, session_id: Uuid) -> Option<DateTime<Utc>> {
        self.sessions
            .get(&session_id)
            .map(|opened| *opened + session_lifetime())
    }

    /// The account's second factor.
    pub fn mfa(&self) -> &Mfa {
        &self.mfa
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::Create {
            user_id,
            username,
            role,
            patient_id,
        } = command
        {
            if self.account.is_some() {
                return Err(UserError::AlreadyExists);
            }
            if (role == Role::Patient) != patient_id.is_some() {
                return Err(UserError::PatientLink);
            }
            return Ok(vec![UserEvent::UserCreated {
                user_id,
                username,
                role,
                patient_id,
            }]);
        }
        if self.account.is_none() {
            return Err(UserError::NotFound);
        }
        let event = match command {
            UserCommand::Mfa(command) => return self.decide_mfa(command),
            UserCommand::Create { .. } => Err(UserError::AlreadyExists),
            UserCommand::RecordLogin { session_id, at } => {
                if !self.active {
                    return Err(UserError::Deactivated);
                }
                if let Some(until) = self.locked_at(at) {
                    return Err(UserError::Locked { until });
                }
                Ok(UserEvent::LoginSucceeded { session_id, at })
            }
            UserCommand::RecordFailedLogin { at } => {
                let failures = self.failed_logins + 1;
                let locked_until = (failures >= MAX_FAILED_LOGINS).then(|| at + lockout());
                Ok(UserEvent::LoginFailed { at, locked_until })
            }
            UserCommand::EndSession { session_id } => {
                if !self.sessions.contains_key(&session_id) {
                    return Err(UserError::UnknownSession);
                }
                Ok(UserEvent::SessionEnded { session_id })
            }
            UserCommand::ChangePassword => {
                if !self.active {
                    return Err(UserError::Deactivated);
                }
                Ok(UserEvent::PasswordChanged)
            }
            UserCommand::ResetPassword => Ok(UserEvent::PasswordReset),
            UserCommand::Deactivate => {
                if !self.active {
                    return Err(UserError::Deactivated);
                }
                Ok(UserEvent::UserDeactivated)
            }
            UserCommand::Reactivate => {
                if self.active {
                    return Err(UserError::AlreadyActive);
                }
                Ok(UserEvent::UserReactivated)
            }
        };
        event.map(|e| vec![e])
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if self.mfa.apply(&event) {
            return;
        }
        match event {
            UserEvent::UserCreated {
                user_id,
                username,
                role,
                patient_id,
            } => {
                self.account = Some(Account {
                    user_id,
                    username,
                    role,
                    patient_id,
                });
                self.active = true;
            }
            UserEvent::LoginSucceeded { session_id, at } => {
                self.failed_logins = 0;
                self.locked_until = None;
                self.sessions.insert(session_id, at);
                let expired = at - session_lifetime();
                self.sessions.retain(|_, opened| *opened > expired);
            }
            UserEvent::LoginFailed { locked_until, .. } => match locked_until {
                // A lock starts the count afresh for when it lifts.
                Some(_) => {
                    self.locked_until = locked_until;
                    self.failed_logins = 0;
                }
                None => self.failed_logins += 1,
            },
            UserEvent::SessionEnded { session_id } => {
                self.sessions.remove(&session_id);
            }
            UserEvent::PasswordChanged => {
                self.sessions.clear();
                self.mfa.close_challenges();
            }
            UserEvent::PasswordReset => {
                self.failed_logins = 0;
                self.locked_until = None;
                self.sessions.clear();
                self.mfa.close_challenges();
            }
            UserEvent::UserDeactivated => {
                self.active = false;
                self.sessions.clear();
                self.mfa.close_challenges();
            }
            UserEvent::UserReactivated => self.active = true,
            // Applied by `Mfa::apply` above.
            UserEvent::MfaChallenged { .. }
            | UserEvent::MfaEnrolmentStarted { .. }
            | UserEvent::MfaEnrolled { .. }
            | UserEvent::MfaVerified { .. }
            | UserEvent::RecoveryCodeUsed { .. }
            | UserEvent::MfaDisabled { .. }
            | UserEvent::MfaReset => {}
        }
    }
}

impl crate::unique::UniqueKeys for User {
    /// The username, from creation on: a name is never given up, so that
    /// the log never names two accounts by it.
    fn unique_keys(&self) -> Vec<crate::unique::UniqueKey> {
        self.account
            .iter()
            .map(|a| crate::unique::UniqueKey {
                scope: USERNAME_SCOPE,
                key: a.username.as_str().to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

impl crate::subject::Subject for User {
    /// A patient's own account is about them (its sign-up, logins and
    /// password changes belong to their history); staff accounts are not.
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.account.as_ref().and_then(|a| a.patient_id)
    }
}
