//! Password hashing (argon2id) off the async threads, with bounded waits: a
//! login flood is turned away with `503 busy` instead of queueing without
//! bound (ADR 0003).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use anamnesis_domain::user::{check_password, UserError};

use crate::dispatch::CommandError;

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
pub(crate) async fn verify_password(
    password: String,
    stored: Option<String>,
) -> Result<bool, Busy> {
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
