//! Accounts and logins on the write side: account creation, the login flow
//! with its lockout, and passwords. An account's stream id is its user id;
//! its username is a unique claim (`user.username`), looked up by digest at
//! login. Password hashes live in the credential table, committed with the
//! event that records they were set (ADR 0006).

mod hashing;
mod legacy;
mod mfa;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use anamnesis_domain::patient::{
    parse_demographics, DemographicsInput, Patient, PatientCommand, PatientError,
};
use anamnesis_domain::unique::UniqueKey;
use anamnesis_domain::user::{
    check_password, Account, Role, User, UserCommand, UserError, Username, USERNAME_SCOPE,
};

use hashing::verify_password;
pub use hashing::{hash_password, Busy};
pub use mfa::{Confirmed, Enrolment, Login, MfaAnswer, ISSUER, RECOVERY_CODES};

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{Actor, Credential, EventMetadata, MfaCredential};

/// An account as loaded: its state, its stream's last sequence and the
/// position of its last event (what [`CommandBus::decide_from`] takes).
type Loaded = (User, i64, i64);

/// A new account's details, as requested. Its `Debug` shows no password.
#[derive(Clone)]
pub struct NewAccount {
    /// The account's id, chosen by the caller (it answers with it).
    pub user_id: Uuid,
    pub username: String,
    pub password: String,
    pub role: Role,
    pub patient_id: Option<Uuid>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
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
    /// A second-factor code that is wrong, was used already, or is a used
    /// recovery code.
    #[error("wrong or used code")]
    InvalidMfaCode,
    /// The login challenge is not open (answered, expired, never issued).
    #[error("the login challenge is not open; log in again")]
    ChallengeClosed,
    /// The challenge only allows enrolment.
    #[error("enrol an authenticator first")]
    MfaEnrolmentRequired,
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
    /// The roles that must use a second factor (ADR 0025).
    mfa_roles: std::sync::Arc<[Role]>,
}

/// The metadata of an account's own login events.
fn as_self(account: &Account) -> EventMetadata {
    EventMetadata::by(Actor::new(
        account.user_id.to_string(),
        account.role.as_str(),
    ))
}

impl Identity {
    /// Identity over `bus`; no role must use a second factor.
    pub fn new(bus: CommandBus) -> Self {
        Self {
            bus,
            mfa_roles: std::sync::Arc::from(Vec::new()),
        }
    }

    /// The roles that must use a second factor to log in.
    pub fn with_mfa_roles(mut self, roles: Vec<Role>) -> Self {
        self.mfa_roles = std::sync::Arc::from(roles);
        self
    }

    /// Creates an account under the stream of its user id; its username is
    /// claimed in the same transaction (`CommandError::Taken` with scope
    /// [`USERNAME_SCOPE`] when another account holds it), and its password
    /// stored beside the event.
    pub async fn create(
        &self,
        account: NewAccount,
        metadata: &EventMetadata,
    ) -> Result<(Uuid, Executed), CommandError<UserError>> {
        let username = Username::parse(&account.username).map_err(CommandError::Rejected)?;
        let password_hash = hash_password(account.password.clone()).await?;
        self.create_hashed(account, username, password_hash, metadata)
            .await
    }

    /// [`Identity::create`] with the password hashed already
    /// ([`hash_password`]; `account.password` is not read): for many
    /// accounts with one password (`anamnesis seed`).
    pub async fn create_hashed(
        &self,
        account: NewAccount,
        username: Username,
        password_hash: String,
        metadata: &EventMetadata,
    ) -> Result<(Uuid, Executed), CommandError<UserError>> {
        let user_id = account.user_id;
        let command = UserCommand::Create {
            user_id,
            username,
            role: account.role,
            patient_id: account.patient_id,
        };
        let credential = Credential {
            user_id,
            password_hash,
        };
        // A fresh id: decide on the empty account without reading the stream.
        let fresh = (User::default(), 0, 0);
        let done = self
            .run(user_id, Some(fresh), command, Some(credential), metadata)
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
        self.register_patient_hashed(
            username,
            password_hash,
            demographics,
            today,
            (user_id, patient_id),
            idempotency,
        )
        .await
    }

    /// [`Identity::register_patient`] with the password hashed already
    /// ([`hash_password`]): for many accounts with one password (the
    /// synthetic clinic of `anamnesis seed`), where a hash each would cost
    /// more than everything else together.
    pub async fn register_patient_hashed(
        &self,
        username: Username,
        password_hash: String,
        demographics: DemographicsInput,
        today: chrono::NaiveDate,
        (user_id, patient_id): (Uuid, Uuid),
        idempotency: Option<crate::log::Idempotency>,
    ) -> Result<Registered, CommandError<RegistrationError>> {
        let credential = Credential {
            user_id,
            password_hash,
        };
        let mut metadata =
            EventMetadata::by(Actor::new(user_id.to_string(), Role::Patient.as_str()));
        metadata.idempotency = idempotency;
        let create = UserCommand::Create {
            user_id,
            username,
            role: Role::Patient,
            patient_id: Some(patient_id),
        };
        let register = PatientCommand::Register {
            demographics,
            user_id: Some(user_id),
            today,
        };
        let stream = user_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let user = self
                .bus
                .decide::<User>(&stream, create.clone(), &(), &metadata)
                .await
                .map_err(|e| e.map_rejected(RegistrationError::User))?;
            let patient = self
                .bus
                .decide::<Patient>(&patient_id.to_string(), register.clone(), &(), &metadata)
                .await
                .map_err(|e| e.map_rejected(RegistrationError::Patient))?;
            let (Decision::Append(mut user), Decision::Append(patient)) = (user, patient) else {
                return Err(CommandError::Invalid("registration decided nothing"));
            };
            user.credential = Some(credential.clone());
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

    /// The id of the account named `username`, if there is one: one probe
    /// of the claim table by the name's digest, no stream read.
    pub async fn user_id_of(
        &self,
        username: &str,
    ) -> Result<Option<Uuid>, CommandError<UserError>> {
        let Ok(username) = Username::parse(username) else {
            return Ok(None);
        };
        let key = UniqueKey {
            scope: USERNAME_SCOPE,
            key: username.as_str().to_owned(),
        };
        let holder = self.bus.log().claim_holder(&key).await?;
        match holder {
            Some((aggregate_type, id)) if aggregate_type == "user" => {
                // User streams are named by their UUID (ADR 0006): any other
                // holder is damage, not "no such user".
                Uuid::parse_str(&id).map(Some).map_err(|_| {
                    CommandError::Invalid("a username claim is held by a stream that is no user id")
                })
            }
            _ => Ok(None),
        }
    }

    /// The id of the account named `username`, or `NotFound`.
    pub async fn resolve(&self, username: &str) -> Result<Uuid, CommandError<UserError>> {
        self.user_id_of(username)
            .await?
            .ok_or(CommandError::Rejected(UserError::NotFound))
    }

    /// The account `user_id`, loaded once, if it exists.
    async fn load(&self, user_id: Uuid) -> Result<Option<Loaded>, CommandError<UserError>> {
        // A patient's own account is erased with them (its events name
        // them): it is no account any more.
        let loaded = match self.bus.load::<User>(&user_id.to_string()).await {
            Err(CommandError::Erased) => return Ok(None),
            loaded => loaded?,
        };
        Ok(loaded.0.account().is_some().then_some(loaded))
    }

    /// The account's state, if it exists.
    pub async fn account(&self, user_id: Uuid) -> Result<Option<User>, CommandError<UserError>> {
        Ok(self.load(user_id).await?.map(|(user, _, _)| user))
    }

    /// The stored password hash of `user_id`; an account without one is
    /// refused (and said in the log), never let in.
    async fn password_hash(
        &self,
        user_id: Uuid,
    ) -> Result<Option<String>, CommandError<UserError>> {
        let hash = self.bus.log().password_hash(user_id).await?;
        if hash.is_none() {
            tracing::error!(%user_id, "an account has no stored credential; login refused until its password is reset");
        }
        Ok(hash)
    }

    /// Checks the password and opens a session, or a second-factor
    /// challenge (ADR 0025); records failures. The account's stream is read
    /// once: the login decides on what was loaded.
    pub async fn login(&self, username: &str, password: String) -> Result<Login, LoginError> {
        let now = Utc::now();
        let loaded = match self.user_id_of(username).await? {
            Some(user_id) => self.load(user_id).await?,
            None => None,
        };
        let Some(loaded) = loaded else {
            verify_password(password, None).await?;
            return Err(LoginError::BadCredentials);
        };
        let user = &loaded.0;
        let Some(account) = user.account().cloned() else {
            return Err(LoginError::BadCredentials);
        };
        if let Some(until) = user.locked_at(now) {
            // As slow as a wrong password, so the answer tells nothing.
            verify_password(password, None).await?;
            metrics::counter!("anamnesis_login_refused_locked_total").increment(1);
            return Err(LoginError::Locked { until });
        }
        let active = user.is_active();
        let as_self = as_self(&account);
        let stored = self.password_hash(account.user_id).await?;
        let Some(stored) = stored else {
            verify_password(password, None).await?;
            return Err(LoginError::BadCredentials);
        };
        if !verify_password(password, Some(stored)).await? {
            self.record_failure(loaded, account.user_id, now, &as_self)
                .await?;
            return Err(LoginError::BadCredentials);
        }
        if !active {
            return Err(LoginError::Deactivated);
        }
        self.after_password(loaded, account, now, &as_self).await
    }

    /// Records a failed login (a wrong password or second factor): it
    /// counts towards the lockout.
    async fn record_failure(
        &self,
        loaded: Loaded,
        user_id: Uuid,
        now: DateTime<Utc>,
        as_self: &EventMetadata,
    ) -> Result<(), LoginError> {
        let failed = UserCommand::RecordFailedLogin { at: now };
        self.run(user_id, Some(loaded), failed, None, as_self)
            .await?;
        metrics::counter!("anamnesis_login_failures_total").increment(1);
        Ok(())
    }

    /// Opens a session after a right password (and second factor, if any).
    async fn open_session(
        &self,
        loaded: Loaded,
        account: Account,
        now: DateTime<Utc>,
        as_self: &EventMetadata,
    ) -> Result<Session, LoginError> {
        let session_id = Uuid::now_v7();
        let opened = UserCommand::RecordLogin {
            session_id,
            at: now,
        };
        let done = self
            .run(account.user_id, Some(loaded), opened, None, as_self)
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
        user_id: Uuid,
        current: String,
        new: String,
        metadata: &EventMetadata,
    ) -> Result<Executed, LoginError> {
        check_password(&new).map_err(|e| LoginError::Command(CommandError::Rejected(e)))?;
        let Some(loaded) = self.load(user_id).await? else {
            return Err(LoginError::BadCredentials);
        };
        // The current password is a guess like a login's: a locked account
        // takes none, and a wrong one counts towards the lockout (it once
        // did not, so a stolen access token could guess without limit).
        let now = Utc::now();
        if loaded.0.locked_at(now).is_some() {
            verify_password(current, None).await?;
            return Err(LoginError::BadCredentials);
        }
        let Some(stored) = self.password_hash(user_id).await? else {
            return Err(LoginError::BadCredentials);
        };
        if !verify_password(current, Some(stored)).await? {
            self.record_failure(loaded, user_id, now, metadata).await?;
            return Err(LoginError::BadCredentials);
        }
        let credential = Credential {
            user_id,
            password_hash: hash_password(new).await?,
        };
        let change = UserCommand::ChangePassword;
        Ok(self
            .run(user_id, Some(loaded), change, Some(credential), metadata)
            .await?)
    }

    /// An operator's reset of the account named `username`: a new password,
    /// the lock lifted, every session ended.
    pub async fn reset_password(
        &self,
        username: &str,
        new: String,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        let user_id = self.resolve(username).await?;
        let credential = Credential {
            user_id,
            password_hash: hash_password(new).await?,
        };
        let reset = UserCommand::ResetPassword;
        self.run(user_id, None, reset, Some(credential), metadata)
            .await
    }

    /// Runs any other user command (logout, deactivation) on `user_id`.
    pub async fn execute(
        &self,
        user_id: Uuid,
        command: UserCommand,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        if matches!(
            command,
            UserCommand::Create { .. }
                | UserCommand::ChangePassword
                | UserCommand::ResetPassword
                | UserCommand::Mfa(_)
        ) {
            // These need a credential: `create`, `change_password`, `reset_password`.
            return Err(CommandError::Invalid(
                "a password command needs its credential",
            ));
        }
        self.run(user_id, None, command, None, metadata).await
    }

    /// Runs `command` on the account `user_id`, deciding on `loaded` when
    /// the caller has just loaded it (a conflict reloads), and commits
    /// `credential` in the transaction of the command's event.
    async fn run(
        &self,
        user_id: Uuid,
        loaded: Option<Loaded>,
        command: UserCommand,
        credential: Option<Credential>,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        self.run_with(user_id, loaded, command, (credential, None), metadata)
            .await
    }

    /// [`Identity::run`], with a second factor to store or remove as well.
    async fn run_with(
        &self,
        user_id: Uuid,
        mut loaded: Option<Loaded>,
        command: UserCommand,
        (credential, mfa): (Option<Credential>, Option<MfaCredential>),
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<UserError>> {
        let stream = user_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let current = match loaded.take() {
                Some(current) => current,
                None => self.bus.load::<User>(&stream).await?,
            };
            let mut decided = self
                .bus
                .decide_from(current, &stream, command.clone(), &(), metadata)
                .await?;
            if let Decision::Append(request) = &mut decided {
                request.credential.clone_from(&credential);
                request.mfa.clone_from(&mfa);
            }
            match self.bus.commit(decided).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<UserError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }
}
