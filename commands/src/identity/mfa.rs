//! The second factor on the write side (ADR 0025): TOTP codes (RFC 6238,
//! the `totp-rs` crate: SHA-1, 6 digits, 30 s steps, one step of skew
//! either way) and one-time recovery codes. The secret and the recovery
//! codes' digests are credentials: they ride on the append that records
//! the enrolment (`AppendRequest::mfa`), like a password hash, and never
//! enter the log.

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};
use uuid::Uuid;

use anamnesis_domain::user::{
    Account, MfaCommand, MfaProof, MfaPurpose, Role, UserCommand, UserError,
};

use super::{Identity, Loaded, LoginError, Session};
use crate::dispatch::{CommandError, Executed};
use crate::log::{EventMetadata, MfaCredential, MfaState, StoredMfa};

/// The issuer an authenticator app shows.
pub const ISSUER: &str = "Anamnesis";
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: u8 = 10;
/// Seconds per TOTP step.
const STEP: u64 = 30;
/// Characters of a recovery code (base32: 80 bits).
const RECOVERY_CHARS: usize = 16;

/// A started enrolment: what the user puts into their authenticator. Its
/// `Debug` shows no secret.
#[derive(Clone)]
pub struct Enrolment {
    /// The secret, base32.
    pub secret: String,
    /// `otpauth://totp/Anamnesis:<username>?secret=…&issuer=Anamnesis`, for a QR code.
    pub uri: String,
    pub position: i64,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// A confirmed enrolment: the recovery codes, shown once, and the session
/// it opened when it was made under an enrolment challenge.
#[derive(Clone)]
pub struct Confirmed {
    pub recovery_codes: Vec<String>,
    pub session: Option<Session>,
    pub position: i64,
}

/// What answers a challenge.
pub enum MfaAnswer {
    /// A code from the authenticator.
    Code(String),
    /// One of the recovery codes.
    RecoveryCode(String),
}

/// What a right password leads to.
#[derive(Debug, Clone)]
pub enum Login {
    /// A session (no second factor needed).
    Session(Session),
    /// A challenge to answer with a second factor, or to enrol under.
    Challenge {
        challenge_id: Uuid,
        purpose: MfaPurpose,
        account: Account,
        position: i64,
    },
}

/// The TOTP of `secret` (base32) for `username`.
fn totp(secret: &str, username: &str) -> Result<TOTP, LoginError> {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().map_err(|_| {
        LoginError::Command(CommandError::Invalid("a stored TOTP secret is not base32"))
    })?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        bytes,
        Some(ISSUER.to_owned()),
        username.to_owned(),
    )
    .map_err(|_| LoginError::Command(CommandError::Invalid("a TOTP secret is unusable")))
}

/// The time step whose code `code` is, within one step of `now`.
fn matching_step(totp: &TOTP, code: &str, now: DateTime<Utc>) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now.timestamp()).ok()?;
    [now, now.saturating_sub(STEP), now + STEP]
        .into_iter()
        .find(|t| {
            let expected = totp.generate(*t);
            // Compare every byte, whatever the first difference.
            expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        })
        .map(|t| t / STEP)
}

/// A recovery code as typed, made comparable: lowercase, no separators.
fn normalized(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The stored digest of a recovery code.
fn digest(code: &str) -> String {
    hex::encode(Sha256::digest(normalized(code).as_bytes()))
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx-xxxx` of base32 (80 bits each).
fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_CHARS)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

fn rejected(e: UserError) -> LoginError {
    LoginError::Command(CommandError::Rejected(e))
}

/// A login-flow refusal of the domain, as the login answers it.
fn as_login(e: CommandError<UserError>) -> LoginError {
    match e {
        CommandError::Rejected(UserError::Locked { until }) => LoginError::Locked { until },
        CommandError::Rejected(UserError::Deactivated) => LoginError::Deactivated,
        CommandError::Rejected(UserError::UnknownChallenge) => LoginError::ChallengeClosed,
        CommandError::Rejected(UserError::MfaCodeReplayed | UserError::RecoveryCodeUsed) => {
            LoginError::InvalidMfaCode
        }
        other => LoginError::Command(other),
    }
}

impl Identity {
    /// Whether `role` must use a second factor (`--mfa-roles`).
    pub fn mfa_required(&self, role: Role) -> bool {
        self.mfa_roles.contains(&role)
    }

    /// The stored second factor of `user_id`.
    async fn stored_mfa(&self, user_id: Uuid) -> Result<Option<StoredMfa>, LoginError> {
        Ok(self
            .bus
            .log()
            .mfa_credential(user_id)
            .await
            .map_err(CommandError::from)?)
    }

    /// After a right password: a session, or a challenge when the account
    /// has a second factor or its role must have one.
    pub(super) async fn after_password(
        &self,
        loaded: Loaded,
        account: Account,
        now: DateTime<Utc>,
        as_self: &EventMetadata,
    ) -> Result<Login, LoginError> {
        let enrolled = loaded.0.mfa().enrolled();
        if !enrolled && !self.mfa_required(account.role) {
            return self
                .open_session(loaded, account, now, as_self)
                .await
                .map(Login::Session);
        }
        let challenge_id = Uuid::now_v7();
        let challenge = UserCommand::Mfa(MfaCommand::Challenge {
            challenge_id,
            at: now,
        });
        let done = self
            .run(account.user_id, Some(loaded), challenge, None, as_self)
            .await
            .map_err(as_login)?;
        let purpose = if enrolled {
            MfaPurpose::Verify
        } else {
            MfaPurpose::Enrol
        };
        Ok(Login::Challenge {
            challenge_id,
            purpose,
            account,
            position: done.position,
        })
    }

    /// Answers a `Verify` challenge with a code or a recovery code and opens
    /// a session. A wrong, replayed or used code counts as a failed login.
    pub async fn complete_login(
        &self,
        user_id: Uuid,
        challenge_id: Uuid,
        answer: MfaAnswer,
    ) -> Result<Session, LoginError> {
        let now = Utc::now();
        let Some(loaded) = self.load(user_id).await? else {
            return Err(LoginError::ChallengeClosed);
        };
        let user = &loaded.0;
        let Some(account) = user.account().cloned() else {
            return Err(LoginError::ChallengeClosed);
        };
        if let Some(until) = user.locked_at(now) {
            return Err(LoginError::Locked { until });
        }
        match user.mfa().challenge(challenge_id, now) {
            None => return Err(LoginError::ChallengeClosed),
            Some(c) if c.purpose == MfaPurpose::Enrol => {
                return Err(LoginError::MfaEnrolmentRequired)
            }
            Some(_) => {}
        }
        let stored = self
            .stored_mfa(user_id)
            .await?
            .filter(|s| s.confirmed)
            .ok_or(LoginError::ChallengeClosed)?;
        let proof = match &answer {
            MfaAnswer::Code(code) => {
                let totp = totp(&stored.secret, account.username.as_str())?;
                matching_step(&totp, code, now)
                    .filter(|step| !user.mfa().is_replay(*step))
                    .map(|step| MfaProof::Totp { step })
            }
            MfaAnswer::RecoveryCode(code) => {
                let wanted = digest(code);
                stored
                    .recovery_codes
                    .iter()
                    .position(|d| *d == wanted)
                    .and_then(|i| u8::try_from(i).ok())
                    .filter(|i| !user.mfa().code_used(*i))
                    .map(|index| MfaProof::RecoveryCode { index })
            }
        };
        let as_self = super::as_self(&account);
        let Some(proof) = proof else {
            self.record_failure(loaded, account.user_id, now, &as_self)
                .await?;
            return Err(LoginError::InvalidMfaCode);
        };
        let session_id = Uuid::now_v7();
        let complete = UserCommand::Mfa(MfaCommand::Complete {
            challenge_id,
            session_id,
            proof,
            at: now,
        });
        let done = self
            .run(user_id, Some(loaded), complete, None, &as_self)
            .await
            .map_err(as_login)?;
        Ok(Session {
            session_id,
            account,
            position: done.position,
        })
    }

    /// Starts (or restarts) enrolment of an authenticator: a new secret,
    /// stored with the event. `challenge`: the `Enrol` challenge of a user
    /// who is not signed in yet.
    pub async fn start_enrolment(
        &self,
        user_id: Uuid,
        challenge: Option<Uuid>,
        metadata: &EventMetadata,
    ) -> Result<Enrolment, LoginError> {
        let Some(loaded) = self.load(user_id).await? else {
            return Err(rejected(UserError::NotFound));
        };
        let Some(account) = loaded.0.account().cloned() else {
            return Err(rejected(UserError::NotFound));
        };
        let raw: [u8; 20] = rand::random();
        let Secret::Encoded(secret) = Secret::Raw(raw.to_vec()).to_encoded() else {
            return Err(LoginError::Command(CommandError::Invalid(
                "a TOTP secret could not be encoded",
            )));
        };
        let uri = totp(&secret, account.username.as_str())?.get_url();
        let start = UserCommand::Mfa(MfaCommand::StartEnrolment {
            challenge_id: challenge,
            at: Utc::now(),
        });
        let mfa = MfaCredential {
            user_id,
            state: MfaState::Set {
                secret: secret.clone(),
                confirmed: false,
                recovery_codes: Vec::new(),
            },
        };
        let done = self
            .run_with(user_id, Some(loaded), start, (None, Some(mfa)), metadata)
            .await
            .map_err(as_login)?;
        Ok(Enrolment {
            secret,
            uri,
            position: done.position,
        })
    }

    /// Confirms an enrolment with a current code of its secret: the
    /// recovery codes are made (their digests stored with the event) and,
    /// under an enrolment challenge, a session opens. A wrong code under a
    /// challenge counts as a failed login.
    pub async fn confirm_enrolment(
        &self,
        user_id: Uuid,
        code: &str,
        challenge: Option<Uuid>,
        metadata: &EventMetadata,
    ) -> Result<Confirmed, LoginError> {
        let now = Utc::now();
        let Some(loaded) = self.load(user_id).await? else {
            return Err(rejected(UserError::NotFound));
        };
        let user = &loaded.0;
        let Some(account) = user.account().cloned() else {
            return Err(rejected(UserError::NotFound));
        };
        if user.mfa().enrolled() {
            return Err(rejected(UserError::MfaAlreadyEnrolled));
        }
        let stored = self
            .stored_mfa(user_id)
            .await?
            .filter(|s| !s.confirmed && user.mfa().pending())
            .ok_or(rejected(UserError::MfaNotStarted))?;
        if let Some(id) = challenge {
            if user.mfa().challenge(id, now).is_none() {
                return Err(LoginError::ChallengeClosed);
            }
        }
        let totp = totp(&stored.secret, account.username.as_str())?;
        let step = matching_step(&totp, code, now).filter(|s| !user.mfa().is_replay(*s));
        let Some(step) = step else {
            if challenge.is_some() {
                let as_self = super::as_self(&account);
                self.record_failure(loaded, user_id, now, &as_self).await?;
            }
            return Err(LoginError::InvalidMfaCode);
        };
        let codes = recovery_codes();
        let session_id = Uuid::now_v7();
        let confirm = UserCommand::Mfa(MfaCommand::ConfirmEnrolment {
            step,
            recovery_codes: RECOVERY_CODES,
            login: challenge.map(|c| (c, session_id)),
            at: now,
        });
        let mfa = MfaCredential {
            user_id,
            state: MfaState::Set {
                secret: stored.secret,
                confirmed: true,
                recovery_codes: codes.iter().map(|c| digest(c)).collect(),
            },
        };
        let done = self
            .run_with(user_id, Some(loaded), confirm, (None, Some(mfa)), metadata)
            .await
            .map_err(as_login)?;
        Ok(Confirmed {
            recovery_codes: codes,
            session: challenge.map(|_| Session {
                session_id,
                account,
                position: done.position,
            }),
            position: done.position,
        })
    }

    /// The user turns their second factor off with a current code; refused
    /// when their role must use one.
    pub async fn disable_mfa(
        &self,
        user_id: Uuid,
        code: &str,
        metadata: &EventMetadata,
    ) -> Result<Executed, LoginError> {
        let now = Utc::now();
        let Some(loaded) = self.load(user_id).await? else {
            return Err(rejected(UserError::NotFound));
        };
        let user = &loaded.0;
        let Some(account) = user.account().cloned() else {
            return Err(rejected(UserError::NotFound));
        };
        let required = self.mfa_required(account.role);
        if !user.mfa().enrolled() {
            return Err(rejected(UserError::MfaNotEnrolled));
        }
        if required {
            return Err(rejected(UserError::MfaRequired));
        }
        let stored = self
            .stored_mfa(user_id)
            .await?
            .ok_or(rejected(UserError::MfaNotEnrolled))?;
        let totp = totp(&stored.secret, account.username.as_str())?;
        let step = matching_step(&totp, code, now)
            .filter(|s| !user.mfa().is_replay(*s))
            .ok_or(LoginError::InvalidMfaCode)?;
        let disable = UserCommand::Mfa(MfaCommand::Disable { step, required });
        let removed = MfaCredential {
            user_id,
            state: MfaState::Removed,
        };
        self.run_with(
            user_id,
            Some(loaded),
            disable,
            (None, Some(removed)),
            metadata,
        )
        .await
        .map_err(as_login)
    }

    /// An operator removes the second factor of account `user_id` (a lost
    /// device); the user enrols again at their next login if their role
    /// requires it.
    pub async fn reset_mfa(
        &self,
        user_id: Uuid,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        let removed = MfaCredential {
            user_id,
            state: MfaState::Removed,
        };
        let reset = UserCommand::Mfa(MfaCommand::Reset);
        self.run_with(user_id, None, reset, (None, Some(removed)), metadata)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_of_the_previous_current_or_next_step_matches_and_no_other() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let t = totp(secret, "house").unwrap();
        let now = Utc::now();
        let at = |offset: i64| (now.timestamp() + offset) as u64;
        let step = at(0) / STEP;
        assert_eq!(matching_step(&t, &t.generate(at(0)), now), Some(step));
        assert_eq!(matching_step(&t, &t.generate(at(-30)), now), Some(step - 1));
        assert_eq!(matching_step(&t, &t.generate(at(30)), now), Some(step + 1));
        assert_eq!(matching_step(&t, &t.generate(at(-90)), now), None);
        assert_eq!(matching_step(&t, "12345", now), None);
        assert_eq!(matching_step(&t, "abcdef", now), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_however_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), usize::from(RECOVERY_CODES));
        assert_eq!(codes[0].len(), 19);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(
            digest(&codes[0]),
            digest(&codes[0].to_uppercase().replace('-', " "))
        );
    }
}
