//! Accounts written by releases before ADR 0006: their stream id is their
//! username and their password hash is in their events. Each is moved once,
//! at start, to a stream under its user id: a `user.created` event (and
//! `user.deactivated` when it was), its username claimed and its last hash
//! stored as its credential, in one transaction. The old stream stays in the
//! log, untouched, as the account's history before the move.

use cqrs_es::Aggregate;
use serde_json::Value;

use anamnesis_domain::codec::{describe_json_error, StoredForm};
use anamnesis_domain::unique::UniqueKeys;
use anamnesis_domain::user::{User, UserError, UserEvent, LEGACY_HASH_FIELD};

use super::Identity;
use crate::dispatch::{retry_or_fail, CommandError};
use crate::log::{
    Actor, AppendError, AppendRequest, Credential, EventMetadata, KeyChanges, NewEvent, StoredEvent,
};

/// Who moves the accounts, in the moved events' metadata.
const MOVER: &str = "system:identity";

impl Identity {
    /// Moves every account still under a username stream to its user id;
    /// returns how many moved now. Safe to run on several instances at
    /// once and again at every start: a moved account is left alone.
    pub async fn adopt_legacy_accounts(&self) -> Result<usize, CommandError<UserError>> {
        let mut moved = 0;
        for stream in self.bus.log().legacy_user_streams().await? {
            if self.adopt(&stream).await? {
                moved += 1;
            }
        }
        if moved > 0 {
            tracing::info!(
                moved,
                "accounts moved to streams under their user id (ADR 0006)"
            );
        }
        Ok(moved)
    }

    /// Moves one legacy account; false when there was nothing to do.
    async fn adopt(&self, legacy: &str) -> Result<bool, CommandError<UserError>> {
        let log = self.bus.log();
        let stored = log.read_stream("user", legacy, 0).await?;
        let mut user = User::default();
        let mut hash = None;
        for e in &stored {
            let event = UserEvent::from_stored(&e.event_type, &e.event_version, &e.payload)
                .map_err(|err| CommandError::Unreadable {
                    position: e.global_position,
                    detail: err.to_string(),
                })?;
            user.apply(event);
            hash = legacy_hash(e)?.or(hash);
        }
        let Some(account) = user.account().cloned() else {
            return Ok(false);
        };
        let user_id = account.user_id;
        let stream = user_id.to_string();
        if !log.read_stream("user", &stream, 0).await?.is_empty() {
            return Ok(false);
        }
        if hash.is_none() {
            tracing::warn!(%user_id, "a legacy account has no password hash in the log; reset its password");
        }
        let mut events = vec![UserEvent::UserCreated {
            user_id,
            username: account.username,
            role: account.role,
            patient_id: account.patient_id,
        }];
        if !user.is_active() {
            events.push(UserEvent::UserDeactivated);
        }
        let events = events
            .iter()
            .map(|e| {
                e.to_stored()
                    .map(|s| NewEvent {
                        event_type: s.event_type,
                        event_version: s.event_version,
                        payload: s.payload,
                    })
                    .map_err(|err| CommandError::Unserializable(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut metadata = EventMetadata::by(Actor::new(MOVER, "system"));
        metadata.reason =
            Some("account moved from its username stream to its user id (ADR 0006)".into());
        let patient_id = anamnesis_domain::subject::Subject::patient(&user, &stream);
        let request = AppendRequest {
            aggregate_type: "user".into(),
            aggregate_id: stream,
            expected_sequence: 0,
            events,
            metadata,
            keys: KeyChanges {
                claim: user.unique_keys(),
                release: Vec::new(),
            },
            credential: hash.map(|password_hash| Credential {
                user_id,
                password_hash,
            }),
            mfa: None,
            guards: Default::default(),
            patient_id,
        };
        match log.append(request).await {
            Ok(_) => Ok(true),
            Err(AppendError::Taken { .. }) => {
                tracing::error!(%user_id, "a legacy account's username is held by another account; it was not moved");
                Ok(false)
            }
            // Another instance moved it first.
            Err(e) => retry_or_fail::<UserError>(e).map(|_| false),
        }
    }
}

/// The password hash a version 1 event of a legacy account carried. Such
/// an event without a readable hash is damage, said as such: the account is
/// not moved without its credential (it could never log in again).
fn legacy_hash(e: &StoredEvent) -> Result<Option<String>, CommandError<UserError>> {
    let hash_bearing = matches!(
        e.event_type.as_str(),
        "user.created" | "user.password_changed" | "user.password_reset"
    );
    if e.event_version != "1" || !hash_bearing {
        return Ok(None);
    }
    let unreadable = |detail: &str| CommandError::Unreadable {
        position: e.global_position,
        detail: detail.to_owned(),
    };
    let payload: Value =
        serde_json::from_str(&e.payload).map_err(|err| unreadable(&describe_json_error(&err)))?;
    match payload.get(LEGACY_HASH_FIELD).and_then(Value::as_str) {
        Some(hash) => Ok(Some(hash.to_owned())),
        None => Err(unreadable("a version 1 password event without its hash")),
    }
}
