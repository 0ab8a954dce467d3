//! Accounts and logins on the write side: password hashing (argon2id, off the
//! async threads), account creation and the login flow with its lockout.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use anamnesis_domain::patient::{
    parse_demographics, DemographicsInput, Patient, PatientCommand, PatientError,
};
use anamnesis_domain::user::{
    check_password, Account, Role, User, UserCommand, UserError, Username,
};

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{Actor, EventMetadata};

/// The hash of a random password nobody knows, verified when the username is
/// unknown (or the account locked) so that a miss costs as much time as a
/// wrong password. Made on the blocking pool at first use.
static DECOY_HASH: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(salt.as_str().as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .ok()
});

/// Argon2 is CPU- and memory-bound by design: run at most one hash per core
/// and queue a few more, rather than let a login storm start hundreds of
/// blocking threads (each with 19 MiB) that thrash the machine, or queue
/// without bound so that every login waits longer than any client will.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Hashes waiting for a core beyond those running. About two seconds of
/// work on two cores; more would only make every waiter late.
const MAX_WAITING_HASHES: usize = 64;
/// The longest a hash waits for a core before the request is turned away.
const MAX_HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

static WAITING_HASHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Too many password hashes are queued: the caller should retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry shortly")]
pub struct Busy;

/// Counts a waiter while it waits, however the wait ends.
struct Waiting;

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING_HASHES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A core to hash on, or [`Busy`] at once when the queue is full and after
/// [`MAX_HASH_WAIT`] otherwise.
async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, Busy> {
    use std::sync::atomic::Ordering;
    let slots = hashing_slots();
    if let Ok(permit) = slots.try_acquire() {
        return Ok(permit);
    }
    if WAITING_HASHES.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_HASHES {
        WAITING_HASHES.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("anamnesis_password_hashing_refused_total").increment(1);
        return Err(Busy);
    }
    let _waiting = Waiting;
    match tokio::time::timeout(MAX_HASH_WAIT, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            metrics::counter!("anamnesis_password_hashing_refused_total").increment(1);
            Err(Busy)
        }
    }
}

/// Hashes a password with argon2id and a fresh salt.
pub async fn hash_password(password: String) -> Result<String, CommandError<UserError>> {
    check_password(&password).map_err(CommandError::Rejected)?;
    let _slot = hashing_slot().await.map_err(|_| CommandError::Busy)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| CommandError::Unserializable(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| CommandError::Unserializable(format!("password hashing task failed: {e}")))?
}

/// Checks a password against a stored PHC hash, or against the decoy when
/// `stored` is `None`; either way it costs one argon2 verification.
async fn verify_password(password: String, stored: Option<String>) -> Result<bool, Busy> {
    let _slot = hashing_slot().await?;
    let checked = tokio::task::spawn_blocking(move || {
        let Some(hash) = stored.as_deref().or(DECOY_HASH.as_deref()) else {
            // No decoy could be made: spend a hash's time all the same.
            let salt = SaltString::generate(&mut OsRng);
            let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
            return false;
        };
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => {
                // Refused, and said: a damaged credential is not a wrong password.
                tracing::error!("a stored password hash is malformed; login refused");
                false
            }
        }
    })
    .await;
    Ok(checked.unwrap_or_else(|error| {
        tracing::error!(%error, "password verification task failed; login refused");
        false
    }))
}

/// A new account's details, as requested.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The account's id, chosen by the caller (it answers with it).
    pub user_id: Uuid,
    pub username: String,
    pub password: String,
    pub role: Role,
    pub patient_id: Option<Uuid>,
}

/// What a login yields.
#[derive(Debug, Clone)]
pub struct Session {
    pub session_id: Uuid,
    pub account: Account,
    pub position: i64,
}

/// Why a login failed. Deliberately coarse: an unknown user and a wrong
/// password look the same.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed logins; try again later")]
    Locked { until: DateTime<Utc> },
    #[error("the account is deactivated")]
    Deactivated,
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Command(#[from] CommandError<UserError>),
}

/// Why a self-registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Patient(#[from] PatientError),
}

/// A patient who registered themselves.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub position: i64,
}

/// Accounts over the command bus.
#[derive(Clone)]
pub struct Identity {
    bus: CommandBus,
}

impl Identity {
    /// Identity over `bus`.
    pub fn new(bus: CommandBus) -> Self {
        Self { bus }
    }

    /// Creates an account; the username is its stream id.
    pub async fn create(
        &self,
        account: NewAccount,
        metadata: &EventMetadata,
    ) -> Result<(Uuid, Executed), CommandError<UserError>> {
        let username = Username::parse(&account.username).map_err(CommandError::Rejected)?;
        let password_hash = hash_password(account.password).await?;
        let user_id = account.user_id;
        let command = UserCommand::Create {
            user_id,
            username: username.clone(),
            role: account.role,
            password_hash,
            patient_id: account.patient_id,
        };
        // Usernames are mostly new: skip the read (`create` falls back to a
        // load, and `AlreadyExists`, when the name is taken).
        let done = self
            .bus
            .create::<User>(username.as_str(), command, &(), metadata)
            .await?;
        Ok((user_id, done))
    }

    /// A patient signs up: their account and their patient record are
    /// created together, or neither is.
    pub async fn register_patient(
        &self,
        username: &str,
        password: String,
        demographics: DemographicsInput,
        today: chrono::NaiveDate,
        (user_id, patient_id): (Uuid, Uuid),
        idempotency: Option<crate::log::Idempotency>,
    ) -> Result<Registered, CommandError<RegistrationError>> {
        let rejected = |e: RegistrationError| CommandError::Rejected(e);
        // Every check that needs no database, before the slow hash.
        let username = Username::parse(username).map_err(|e| rejected(e.into()))?;
        check_password(&password).map_err(|e| rejected(e.into()))?;
        parse_demographics(&demographics, today).map_err(|e| rejected(e.into()))?;
        let password_hash = hash_password(password)
            .await
            .map_err(|e| e.map_rejected(RegistrationError::User))?;
        let mut metadata =
            EventMetadata::by(Actor::new(user_id.to_string(), Role::Patient.as_str()));
        metadata.idempotency = idempotency;
        let create = UserCommand::Create {
            user_id,
            username: username.clone(),
            role: Role::Patient,
            password_hash,
            patient_id: Some(patient_id),
        };
        let register = PatientCommand::Register {
            demographics,
            user_id: Some(user_id),
            today,
        };
        for _ in 0..MAX_ATTEMPTS {
            let user = self
                .bus
                .decide::<User>(username.as_str(), create.clone(), &(), &metadata)
                .await
                .map_err(|e| e.map_rejected(RegistrationError::User))?;
            let patient = self
                .bus
                .decide::<Patient>(&patient_id.to_string(), register.clone(), &(), &metadata)
                .await
                .map_err(|e| e.map_rejected(RegistrationError::Patient))?;
            let (Decision::Append(user), Decision::Append(patient)) = (user, patient) else {
                return Err(CommandError::Invalid("registration decided nothing"));
            };
            match self.bus.log().append_atomic(vec![*user, *patient]).await {
                Ok(landed) => {
                    return Ok(Registered {
                        user_id,
                        patient_id,
                        position: landed.last().map_or(0, |a| a.last_position),
                    })
                }
                Err(e) => {
                    retry_or_fail::<RegistrationError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// The account's state, if it exists.
    pub async fn find(&self, username: &str) -> Result<Option<User>, CommandError<UserError>> {
        let Ok(username) = Username::parse(username) else {
            return Ok(None);
        };
        let (user, _, _) = self.bus.load::<User>(username.as_str()).await?;
        Ok(user.account().is_some().then_some(user))
    }

    /// Checks the password and opens a session; records failures.
    pub async fn login(&self, username: &str, password: String) -> Result<Session, LoginError> {
        let now = Utc::now();
        let Some(user) = self.find(username).await? else {
            verify_password(password, None).await?;
            return Err(LoginError::BadCredentials);
        };
        let Some(account) = user.account().cloned() else {
            return Err(LoginError::BadCredentials);
        };
        if let Some(until) = user.locked_at(now) {
            // As slow as a wrong password, so the answer tells nothing.
            verify_password(password, None).await?;
            metrics::counter!("anamnesis_login_refused_locked_total").increment(1);
            return Err(LoginError::Locked { until });
        }
        let as_self = EventMetadata::by(Actor::new(
            account.user_id.to_string(),
            account.role.as_str(),
        ));
        let stream = account.username.as_str().to_owned();
        if !verify_password(password, Some(account.password_hash.clone())).await? {
            self.bus
                .execute::<User>(
                    &stream,
                    UserCommand::RecordFailedLogin { at: now },
                    &(),
                    &as_self,
                )
                .await?;
            metrics::counter!("anamnesis_login_failures_total").increment(1);
            return Err(LoginError::BadCredentials);
        }
        if !user.is_active() {
            return Err(LoginError::Deactivated);
        }
        let session_id = Uuid::now_v7();
        let done = self
            .bus
            .execute::<User>(
                &stream,
                UserCommand::RecordLogin {
                    session_id,
                    at: now,
                },
                &(),
                &as_self,
            )
            .await
            .map_err(|e| match e {
                CommandError::Rejected(UserError::Locked { until }) => LoginError::Locked { until },
                CommandError::Rejected(UserError::Deactivated) => LoginError::Deactivated,
                other => LoginError::Command(other),
            })?;
        Ok(Session {
            session_id,
            account,
            position: done.position,
        })
    }

    /// Replaces a password after checking the current one; every open
    /// session of the account ends.
    pub async fn change_password(
        &self,
        username: &str,
        current: String,
        new: String,
        metadata: &EventMetadata,
    ) -> Result<Executed, LoginError> {
        check_password(&new).map_err(|e| LoginError::Command(CommandError::Rejected(e)))?;
        let Some(user) = self.find(username).await? else {
            return Err(LoginError::BadCredentials);
        };
        let Some(account) = user.account().cloned() else {
            return Err(LoginError::BadCredentials);
        };
        if !verify_password(current, Some(account.password_hash.clone())).await? {
            return Err(LoginError::BadCredentials);
        }
        let password_hash = hash_password(new).await?;
        Ok(self
            .bus
            .execute::<User>(
                account.username.as_str(),
                UserCommand::ChangePassword { password_hash },
                &(),
                metadata,
            )
            .await?)
    }

    /// An operator's reset: a new password, the lock lifted, every session
    /// ended.
    pub async fn reset_password(
        &self,
        username: &str,
        new: String,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        let password_hash = hash_password(new).await?;
        self.execute(
            username,
            UserCommand::ResetPassword { password_hash },
            metadata,
        )
        .await
    }

    /// Runs any other user command (logout, deactivation) on `username`.
    pub async fn execute(
        &self,
        username: &str,
        command: UserCommand,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        let username =
            Username::parse(username).map_err(|_| CommandError::Rejected(UserError::NotFound))?;
        self.bus
            .execute::<User>(username.as_str(), command, &(), metadata)
            .await
    }
}
