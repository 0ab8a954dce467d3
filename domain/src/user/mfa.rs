//! Multi-factor authentication of an account (ADR 0025): enrolment of a
//! TOTP authenticator, login challenges, recovery codes, and replay.
//!
//! The secret and the recovery codes' hashes are credentials: they live in
//! the write side's MFA table, never here. What the log records is that an
//! enrolment started, was confirmed, disabled or reset, that a challenge
//! was opened and answered, and which time step or recovery code (by its
//! number) answered it, so that neither answers twice.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{User, UserError, UserEvent};

/// How long a login challenge stays open.
pub fn challenge_lifetime() -> Duration {
    Duration::minutes(5)
}

/// What a login challenge lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaPurpose {
    /// Answer with a code from the enrolled authenticator, or a recovery code.
    Verify,
    /// Enrol an authenticator (the account must use one and has none); the
    /// confirmed enrolment opens the session.
    Enrol,
}

/// What answered a challenge, as the write side found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaProof {
    /// A TOTP code of this time step (Unix time / 30 s).
    Totp {
        /// The step the code belongs to.
        step: u64,
    },
    /// The recovery code with this number (its place in the list shown at
    /// enrolment).
    RecoveryCode {
        /// Its number.
        index: u8,
    },
}

/// A request about an account's second factor.
#[derive(Debug, Clone, PartialEq)]
pub enum MfaCommand {
    /// The password was right and a second factor is needed: open a challenge.
    Challenge {
        /// The challenge's id (its token names it).
        challenge_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// A second factor answered a `Verify` challenge: open a session.
    Complete {
        /// The challenge answered.
        challenge_id: Uuid,
        /// The new session.
        session_id: Uuid,
        /// What answered it.
        proof: MfaProof,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Start (or restart) enrolment: a new secret is stored beside the event.
    StartEnrolment {
        /// The `Enrol` challenge it is made under, when not signed in.
        challenge_id: Option<Uuid>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Confirm enrolment with a code of the new secret; recovery codes are
    /// stored beside the event.
    ConfirmEnrolment {
        /// The step of the code that confirmed it.
        step: u64,
        /// How many recovery codes were issued.
        recovery_codes: u8,
        /// Under an `Enrol` challenge: the challenge and the session the
        /// enrolment opens.
        login: Option<(Uuid, Uuid)>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// The user turns their second factor off, with a current code.
    Disable {
        /// The step of the code that proved it.
        step: u64,
        /// Whether their role must use a second factor (then they may not).
        required: bool,
    },
    /// An operator removes the account's second factor (a lost device).
    Reset,
}

/// An open challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// When it opened.
    pub at: DateTime<Utc>,
    /// What it allows.
    pub purpose: MfaPurpose,
}

/// An account's second factor as the log has it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mfa {
    /// A confirmed authenticator.
    enrolled: bool,
    /// An enrolment started and not yet confirmed.
    pending: bool,
    /// The last time step whose code was accepted: a code of that step or
    /// an earlier one is a replay.
    last_step: Option<u64>,
    /// The recovery codes of the current enrolment that were used.
    used_codes: BTreeSet<u8>,
    /// Open challenges; expired ones drop out at the next challenge.
    challenges: BTreeMap<Uuid, Challenge>,
}

impl Mfa {
    /// Whether a confirmed authenticator is enrolled.
    pub fn enrolled(&self) -> bool {
        self.enrolled
    }

    /// Whether an enrolment awaits its confirming code.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Whether a code of `step` would be a replay.
    pub fn is_replay(&self, step: u64) -> bool {
        self.last_step.is_some_and(|last| step <= last)
    }

    /// Whether recovery code `index` was used.
    pub fn code_used(&self, index: u8) -> bool {
        self.used_codes.contains(&index)
    }

    /// The challenge `id`, if it is open at `now`.
    pub fn challenge(&self, id: Uuid, now: DateTime<Utc>) -> Option<Challenge> {
        self.challenges
            .get(&id)
            .copied()
            .filter(|c| now < c.at + challenge_lifetime())
    }

    /// Forgets every open challenge (a password change, a deactivation).
    pub(super) fn close_challenges(&mut self) {
        self.challenges.clear();
    }

    /// The challenge `id` open at `now` with `purpose`, or why not.
    fn open(&self, id: Uuid, now: DateTime<Utc>, purpose: MfaPurpose) -> Result<(), UserError> {
        match self.challenge(id, now) {
            None => Err(UserError::UnknownChallenge),
            Some(c) if c.purpose != purpose => Err(match c.purpose {
                MfaPurpose::Enrol => UserError::MfaEnrolmentRequired,
                MfaPurpose::Verify => UserError::MfaAlreadyEnrolled,
            }),
            Some(_) => Ok(()),
        }
    }

    fn fresh(&self, step: u64) -> Result<(), UserError> {
        if self.is_replay(step) {
            return Err(UserError::MfaCodeReplayed);
        }
        Ok(())
    }

    /// Applies an MFA event; `false` for any other event.
    pub(super) fn apply(&mut self, event: &UserEvent) -> bool {
        match event {
            UserEvent::MfaChallenged {
                challenge_id,
                at,
                purpose,
            } => {
                let expired = *at - challenge_lifetime();
                self.challenges.retain(|_, c| c.at > expired);
                self.challenges.insert(
                    *challenge_id,
                    Challenge {
                        at: *at,
                        purpose: *purpose,
                    },
                );
            }
            UserEvent::MfaEnrolmentStarted { .. } => self.pending = true,
            UserEvent::MfaEnrolled { step, .. } => {
                self.enrolled = true;
                self.pending = false;
                self.last_step = Some(*step);
                self.used_codes.clear();
                // Enrolment challenges have done their work.
                self.challenges.clear();
            }
            UserEvent::MfaVerified { challenge_id, step } => {
                self.challenges.remove(challenge_id);
                self.last_step = Some(*step);
            }
            UserEvent::RecoveryCodeUsed {
                challenge_id,
                index,
            } => {
                self.challenges.remove(challenge_id);
                self.used_codes.insert(*index);
            }
            UserEvent::MfaDisabled { step } => {
                *self = Mfa {
                    last_step: Some(*step),
                    ..Mfa::default()
                };
            }
            UserEvent::MfaReset => {
                *self = Mfa {
                    last_step: self.last_step,
                    ..Mfa::default()
                };
            }
            _ => return false,
        }
        true
    }
}

impl User {
    /// Decides an MFA command on an existing account.
    pub(super) fn decide_mfa(&self, command: MfaCommand) -> Result<Vec<UserEvent>, UserError> {
        let mfa = &self.mfa;
        let usable = |at: DateTime<Utc>| {
            if !self.active {
                return Err(UserError::Deactivated);
            }
            if let Some(until) = self.locked_at(at) {
                return Err(UserError::Locked { until });
            }
            Ok(())
        };
        match command {
            MfaCommand::Challenge { challenge_id, at } => {
                usable(at)?;
                let purpose = if mfa.enrolled {
                    MfaPurpose::Verify
                } else {
                    MfaPurpose::Enrol
                };
                Ok(vec![UserEvent::MfaChallenged {
                    challenge_id,
                    at,
                    purpose,
                }])
            }
            MfaCommand::Complete {
                challenge_id,
                session_id,
                proof,
                at,
            } => {
                usable(at)?;
                mfa.open(challenge_id, at, MfaPurpose::Verify)?;
                if !mfa.enrolled {
                    return Err(UserError::MfaNotEnrolled);
                }
                let answered = match proof {
                    MfaProof::Totp { step } => {
                        mfa.fresh(step)?;
                        UserEvent::MfaVerified { challenge_id, step }
                    }
                    MfaProof::RecoveryCode { index } => {
                        if mfa.code_used(index) {
                            return Err(UserError::RecoveryCodeUsed);
                        }
                        UserEvent::RecoveryCodeUsed {
                            challenge_id,
                            index,
                        }
                    }
                };
                Ok(vec![answered, UserEvent::LoginSucceeded { session_id, at }])
            }
            MfaCommand::StartEnrolment { challenge_id, at } => {
                if !self.active {
                    return Err(UserError::Deactivated);
                }
                if mfa.enrolled {
                    return Err(UserError::MfaAlreadyEnrolled);
                }
                if let Some(id) = challenge_id {
                    usable(at)?;
                    mfa.open(id, at, MfaPurpose::Enrol)?;
                }
                Ok(vec![UserEvent::MfaEnrolmentStarted { at }])
            }
            MfaCommand::ConfirmEnrolment {
                step,
                recovery_codes,
                login,
                at,
            } => {
                if !self.active {
                    return Err(UserError::Deactivated);
                }
                if mfa.enrolled {
                    return Err(UserError::MfaAlreadyEnrolled);
                }
                if !mfa.pending {
                    return Err(UserError::MfaNotStarted);
                }
                mfa.fresh(step)?;
                let enrolled = UserEvent::MfaEnrolled {
                    step,
                    recovery_codes,
                };
                match login {
                    None => Ok(vec![enrolled]),
                    Some((challenge_id, session_id)) => {
                        usable(at)?;
                        mfa.open(challenge_id, at, MfaPurpose::Enrol)?;
                        Ok(vec![enrolled, UserEvent::LoginSucceeded { session_id, at }])
                    }
                }
            }
            MfaCommand::Disable { step, required } => {
                if !mfa.enrolled {
                    return Err(UserError::MfaNotEnrolled);
                }
                if required {
                    return Err(UserError::MfaRequired);
                }
                mfa.fresh(step)?;
                Ok(vec![UserEvent::MfaDisabled { step }])
            }
            MfaCommand::Reset => {
                if !mfa.enrolled && !mfa.pending {
                    return Err(UserError::MfaNotEnrolled);
                }
                Ok(vec![UserEvent::MfaReset])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::{Role, UserCommand, Username};
    use super::*;

    const ID: Uuid = Uuid::from_u128(7);
    const CHALLENGE: Uuid = Uuid::from_u128(9);
    const SESSION: Uuid = Uuid::from_u128(8);

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    fn created() -> UserEvent {
        UserEvent::UserCreated {
            user_id: ID,
            username: Username::parse("house").unwrap(),
            role: Role::Admin,
            patient_id: None,
        }
    }

    fn enrolled(step: u64) -> Vec<UserEvent> {
        vec![
            created(),
            UserEvent::MfaEnrolmentStarted { at: noon() },
            UserEvent::MfaEnrolled {
                step,
                recovery_codes: 10,
            },
            UserEvent::MfaChallenged {
                challenge_id: CHALLENGE,
                at: noon(),
                purpose: MfaPurpose::Verify,
            },
        ]
    }

    fn complete(proof: MfaProof, at: DateTime<Utc>) -> UserCommand {
        UserCommand::Mfa(MfaCommand::Complete {
            challenge_id: CHALLENGE,
            session_id: SESSION,
            proof,
            at,
        })
    }

    fn given(events: Vec<UserEvent>, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let mut user = User::default();
        for e in events {
            cqrs_es::Aggregate::apply(&mut user, e);
        }
        user.decide(command)
    }

    #[test]
    fn a_fresh_code_answers_a_challenge_and_opens_a_session() {
        let events = given(
            enrolled(100),
            complete(MfaProof::Totp { step: 101 }, noon()),
        );
        assert_eq!(
            events,
            Ok(vec![
                UserEvent::MfaVerified {
                    challenge_id: CHALLENGE,
                    step: 101
                },
                UserEvent::LoginSucceeded {
                    session_id: SESSION,
                    at: noon()
                },
            ])
        );
    }

    #[test]
    fn a_code_of_a_used_step_is_a_replay() {
        let events = given(
            enrolled(100),
            complete(MfaProof::Totp { step: 100 }, noon()),
        );
        assert_eq!(events, Err(UserError::MfaCodeReplayed));
    }

    #[test]
    fn a_recovery_code_answers_once() {
        let mut history = enrolled(100);
        history.push(UserEvent::RecoveryCodeUsed {
            challenge_id: Uuid::from_u128(1),
            index: 3,
        });
        let used = given(
            history.clone(),
            complete(MfaProof::RecoveryCode { index: 3 }, noon()),
        );
        assert_eq!(used, Err(UserError::RecoveryCodeUsed));
        let other = given(
            history,
            complete(MfaProof::RecoveryCode { index: 4 }, noon()),
        );
        assert!(other.is_ok());
    }

    #[test]
    fn an_answered_or_expired_challenge_is_closed() {
        let mut history = enrolled(100);
        history.push(UserEvent::MfaVerified {
            challenge_id: CHALLENGE,
            step: 101,
        });
        let answered = given(history, complete(MfaProof::Totp { step: 102 }, noon()));
        assert_eq!(answered, Err(UserError::UnknownChallenge));
        let late = noon() + challenge_lifetime();
        let expired = given(enrolled(100), complete(MfaProof::Totp { step: 102 }, late));
        assert_eq!(expired, Err(UserError::UnknownChallenge));
    }

    #[test]
    fn an_enrolment_challenge_opens_no_session_without_enrolling() {
        let history = vec![
            created(),
            UserEvent::MfaChallenged {
                challenge_id: CHALLENGE,
                at: noon(),
                purpose: MfaPurpose::Enrol,
            },
        ];
        let answered = given(history, complete(MfaProof::Totp { step: 5 }, noon()));
        assert_eq!(answered, Err(UserError::MfaEnrolmentRequired));
    }

    #[test]
    fn a_required_role_cannot_disable_its_second_factor() {
        let disable = |required| {
            UserCommand::Mfa(MfaCommand::Disable {
                step: 101,
                required,
            })
        };
        assert_eq!(
            given(enrolled(100), disable(true)),
            Err(UserError::MfaRequired)
        );
        assert_eq!(
            given(enrolled(100), disable(false)),
            Ok(vec![UserEvent::MfaDisabled { step: 101 }])
        );
    }
}
