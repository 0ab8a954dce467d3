//! Whether an access token's session is still open, checked on every request.
//!
//! Access tokens are signed, but a signature cannot be taken back: logout,
//! deactivation and a password change must end access at once, on every
//! instance. Each request therefore checks the token's session against the
//! user's account as the log has it. The answer is cached per user and the
//! cache is invalidated from the log itself: a follower reads which user
//! streams gained events (in this process, or on Postgres in any process,
//! woken by NOTIFY) and drops their entries. A command of this process that
//! ends sessions also drops its entry before it answers.
//!
//! Fail closed: while the follower cannot read the log, nothing is cached and
//! every request loads the account.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::LogReader;
use anamnesis_domain::user::User;

use crate::auth::Principal;
use crate::error::ApiError;

/// Entries kept before the cache starts over (a few MB at most).
const MAX_ENTRIES: usize = 100_000;

/// The answer for a session that is open, or not.
fn decide(open: bool) -> Result<(), ApiError> {
    if open {
        return Ok(());
    }
    Err(ApiError::Unauthorized {
        code: "session_closed",
        detail: "the session has ended; log in again",
    })
}

/// What a request needs to know of an account.
#[derive(Debug)]
struct Open {
    active: bool,
    sessions: BTreeSet<Uuid>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Uuid, Open>,
    /// Bumped on every invalidation of a user, so that a load that raced
    /// with an invalidation does not put a stale answer back.
    epochs: HashMap<Uuid, u64>,
}

/// The session check, shared by every request of this process.
pub struct Sessions {
    bus: CommandBus,
    cache: Mutex<Cache>,
    following: AtomicBool,
    /// One load at a time per account: a burst of requests naming an account
    /// not cached (a provider's, at a clinic's opening) loads it once.
    loading: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl Sessions {
    /// A check over `bus`'s log; nothing is cached until [`follow`] runs.
    pub fn new(bus: CommandBus) -> Self {
        Self {
            bus,
            cache: Mutex::new(Cache::default()),
            following: AtomicBool::new(false),
            loading: Mutex::default(),
        }
    }

    /// Refuses a principal whose session has ended or whose account is
    /// deactivated.
    pub async fn check(&self, who: &Principal) -> Result<(), ApiError> {
        let open = self
            .holds(who.user_id, |o| {
                o.active && o.sessions.contains(&who.session_id)
            })
            .await?;
        decide(open)
    }

    /// Whether `user_id`'s account exists and is active, as the log has it
    /// (a provider who is no longer bookable, for one).
    pub async fn account_active(&self, user_id: Uuid) -> Result<bool, ApiError> {
        self.holds(user_id, |o| o.active).await
    }

    /// Whether `test` holds of `user_id`'s account. A cached "yes" is
    /// trusted; a cached "no" is not: the session, or the reactivation, may
    /// be newer than the entry (made here or on another instance, not yet
    /// seen by the follower), so a "no" is always decided on the account as
    /// loaded.
    async fn holds(&self, user_id: Uuid, test: impl Fn(&Open) -> bool) -> Result<bool, ApiError> {
        let cached = |following: bool| {
            let cache = self.lock();
            if following && cache.entries.get(&user_id).is_some_and(&test) {
                return Err(());
            }
            Ok(cache.epochs.get(&user_id).copied().unwrap_or(0))
        };
        if cached(self.following.load(Ordering::Acquire)).is_err() {
            return Ok(true);
        }
        // Wait for a load of this account under way, then look again.
        let gate = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            loading.entry(user_id).or_default().clone()
        };
        let _turn = gate.lock().await;
        let answer = self.load_into_cache(user_id, &test, &cached).await;
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and this caller's: no one else waits on it.
        if Arc::strong_count(&gate) <= 2 {
            loading.remove(&user_id);
        }
        answer
    }

    /// The account's answer to `test`, from the cache if a load just put a
    /// "yes" there, else loaded and cached.
    async fn load_into_cache(
        &self,
        user_id: Uuid,
        test: &impl Fn(&Open) -> bool,
        cached: &impl Fn(bool) -> Result<u64, ()>,
    ) -> Result<bool, ApiError> {
        let following = self.following.load(Ordering::Acquire);
        let Ok(epoch) = cached(following) else {
            return Ok(true);
        };
        metrics::counter!("anamnesis_session_cache_misses_total").increment(1);
        let (user, _, _) = self.bus.load::<User>(&user_id.to_string()).await?;
        let loaded = Open {
            active: user.account().is_some() && user.is_active(),
            sessions: user.sessions().collect(),
        };
        let answer = test(&loaded);
        if following {
            let mut cache = self.lock();
            if cache.epochs.get(&user_id).copied().unwrap_or(0) == epoch {
                if cache.entries.len() >= MAX_ENTRIES {
                    cache.entries.clear();
                }
                cache.entries.insert(user_id, loaded);
            }
        }
        Ok(answer)
    }

    /// Forgets what is cached of `user_id`: their stream has changed.
    pub fn invalidate(&self, user_id: Uuid) {
        let mut cache = self.lock();
        cache.entries.remove(&user_id);
        *cache.epochs.entry(user_id).or_insert(0) += 1;
    }

    fn forget_all(&self) {
        let mut cache = self.lock();
        cache.entries.clear();
        // Epochs stay: a load in flight must not repopulate either.
        for epoch in cache.epochs.values_mut() {
            *epoch += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding this lock leaves a cache that is merely
        // incomplete; keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows the log's user streams and invalidates their entries, until
    /// `shutdown` turns true. Caching is on only while this keeps up.
    pub async fn follow(&self, log: LogReader, mut shutdown: watch::Receiver<bool>) {
        let mut wake = log.subscribe();
        // Nothing is cached before this succeeds, so starting at the head
        // misses nothing.
        let mut seen = loop {
            match log.head().await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::warn!(%error, "session cache follower cannot read the log head; not caching yet");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        self.following.store(true, Ordering::Release);
        let mut head_read = Some(Instant::now());
        loop {
            if *shutdown.borrow() {
                break;
            }
            let step = async {
                let head = log.head_after(seen, &mut head_read).await?;
                // A stretch this process appended with no user event in it:
                // nothing to invalidate, and no read (ADR 0028).
                if log.holds_none_of(&["user"], (seen, head)) {
                    seen = seen.max(head);
                    return Ok(());
                }
                loop {
                    let touched = log.streams_touched("user", seen, head, 1000).await?;
                    // A stream id that is no user id is a pre-ADR 0006
                    // username stream: no session is checked against it.
                    for (_, stream) in &touched {
                        if let Ok(user_id) = Uuid::parse_str(stream) {
                            self.invalidate(user_id);
                        }
                    }
                    match touched.last() {
                        Some((position, _)) if touched.len() == 1000 => seen = *position,
                        _ => {
                            seen = seen.max(head);
                            return Ok::<(), anamnesis_commands::StoreError>(());
                        }
                    }
                }
            };
            match step.await {
                Ok(()) => {
                    if !self.following.swap(true, Ordering::AcqRel) {
                        tracing::info!("session cache follower caught up; caching again");
                    }
                    tokio::select! {
                        _ = wake.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    if self.following.swap(false, Ordering::AcqRel) {
                        tracing::warn!(%error, "session cache follower cannot read the log; every request loads its account until it can");
                    }
                    self.forget_all();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        self.following.store(false, Ordering::Release);
    }
}
