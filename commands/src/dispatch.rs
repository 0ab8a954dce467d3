//! Command dispatch: load an aggregate from its stream, let it decide, append
//! what it decided at the sequence it saw. A conflict (someone else appended
//! first) reloads and decides again, a bounded number of times.

use std::collections::HashMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::subject::Subject;
use anamnesis_domain::unique::UniqueKeys;

use crate::log::{
    AppendError, AppendRequest, EventLog, EventMetadata, KeyChanges, NewEvent, StoreError,
    StoredEvent,
};

/// How often a command is tried when its stream keeps moving under it.
pub const MAX_ATTEMPTS: u32 = 5;

/// What a successful command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// Global position of the command's last event (or of the stream's last
    /// event when the command decided nothing): what read-your-writes waits for.
    pub position: i64,
    /// How many events the command appended.
    pub events: usize,
}

/// What an aggregate decided.
#[derive(Debug)]
pub enum Decision {
    /// Events to append.
    Append(Box<AppendRequest>),
    /// Nothing to do; `position` is the stream's last event's.
    Nothing { position: i64 },
}

/// A conflict is worth another attempt; anything else ends the command.
pub struct Retry;

/// Turns an append failure into a retry (conflict) or the command's error.
pub fn retry_or_fail<E: std::error::Error>(e: AppendError) -> Result<Retry, CommandError<E>> {
    match e {
        AppendError::Conflict { .. } => Ok(Retry),
        other => Err(failure(other)),
    }
}

/// An append failure as the command's error.
fn failure<E: std::error::Error>(e: AppendError) -> CommandError<E> {
    match e {
        AppendError::Conflict { .. } => CommandError::Conflict,
        AppendError::Taken { scope } => CommandError::Taken { scope },
        AppendError::Repeated(outcome) => CommandError::Repeated(outcome),
        AppendError::Invalid(why) => CommandError::Invalid(why),
        AppendError::Erased => CommandError::Erased,
        AppendError::Store(e) => CommandError::Store(e),
    }
}

impl<E: std::error::Error> CommandError<E> {
    /// An append's failure as a command's (a conflict is final here).
    pub fn from_append(e: AppendError) -> Self {
        failure(e)
    }

    /// The same failure, with the rejection turned into another error type.
    pub fn map_rejected<F: std::error::Error>(self, f: impl FnOnce(E) -> F) -> CommandError<F> {
        match self {
            CommandError::Rejected(e) => CommandError::Rejected(f(e)),
            CommandError::Conflict => CommandError::Conflict,
            CommandError::Taken { scope } => CommandError::Taken { scope },
            CommandError::Busy => CommandError::Busy,
            CommandError::Repeated(o) => CommandError::Repeated(o),
            CommandError::Invalid(w) => CommandError::Invalid(w),
            CommandError::Unreadable { position, detail } => {
                CommandError::Unreadable { position, detail }
            }
            CommandError::Unserializable(d) => CommandError::Unserializable(d),
            CommandError::Erased => CommandError::Erased,
            CommandError::Store(e) => CommandError::Store(e),
        }
    }
}

/// Why a command did not take effect. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// The stream still moved under the command after every retry.
    #[error("the record kept changing; try again")]
    Conflict,
    /// A unique value the command needs (an identifier) belongs to another record.
    #[error("a unique {scope} belongs to another record")]
    Taken { scope: &'static str },
    /// A command with the same idempotency key already committed; this is
    /// what it answered, and nothing was appended.
    #[error("a command with this idempotency key already committed")]
    Repeated(crate::log::Outcome),
    /// A bounded resource (password hashing) is saturated; retry shortly.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// The append was malformed (no actor, ...).
    #[error("{0}")]
    Invalid(&'static str),
    /// A stored event could not be read back into the aggregate.
    #[error("stored event {position} of this record is unreadable: {detail}")]
    Unreadable { position: i64, detail: String },
    /// The record is about a patient who was erased: it can no longer be
    /// read or changed (docs/adr/0024-encryption.md).
    #[error("the patient was erased")]
    Erased,
    /// An event could not be turned into JSON (a bug in its type).
    #[error("an event could not be serialized: {0}")]
    Unserializable(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs commands against aggregates stored in the log.
#[derive(Clone)]
pub struct CommandBus {
    log: EventLog,
}

impl CommandBus {
    /// A bus over `log`.
    pub fn new(log: EventLog) -> Self {
        Self { log }
    }

    /// The log this bus appends to.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Loads `A` with id `aggregate_id`, handles `command`, appends the events.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<A::Error>>
    where
        A: Aggregate + UniqueKeys + Subject,
        A::Event: StoredForm,
        A::Command: Clone,
    {
        for _ in 0..MAX_ATTEMPTS {
            let decided = self
                .decide::<A>(aggregate_id, command.clone(), services, metadata)
                .await?;
            match self.commit(decided).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<A::Error>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// For a command that creates `aggregate_id` under a fresh id: decides on
    /// the empty aggregate without reading the stream, and appends at sequence
    /// 0. Exactly as safe as [`CommandBus::execute`]: if the stream exists
    /// after all, the append conflicts and the command runs the ordinary way,
    /// against the loaded aggregate. Saves one read per creation.
    pub async fn create<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: &EventMetadata,
    ) -> Result<Executed, CommandError<A::Error>>
    where
        A: Aggregate + UniqueKeys + Subject,
        A::Event: StoredForm,
        A::Command: Clone,
    {
        let decided = decide_on(
            A::default(),
            (0, 0),
            aggregate_id,
            command.clone(),
            services,
            metadata,
        )
        .await?;
        match self.commit(decided).await {
            Ok(done) => Ok(done),
            Err(AppendError::Conflict { .. }) => {
                self.execute::<A>(aggregate_id, command, services, metadata)
                    .await
            }
            Err(e) => Err(failure(e)),
        }
    }

    /// Appends what was decided (if anything).
    pub async fn commit(&self, decided: Decision) -> Result<Executed, AppendError> {
        match decided {
            Decision::Nothing { position } => Ok(Executed {
                position,
                events: 0,
            }),
            Decision::Append(request) => {
                let events = request.events.len();
                let appended = self.log.append(*request).await?;
                Ok(Executed {
                    position: appended.last_position,
                    events,
                })
            }
        }
    }

    /// Loads `A`, lets it handle `command` and returns what should be appended,
    /// without appending it: for commands that must commit together
    /// ([`EventLog::append_atomic`]).
    pub async fn decide<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: &EventMetadata,
    ) -> Result<Decision, CommandError<A::Error>>
    where
        A: Aggregate + UniqueKeys + Subject,
        A::Event: StoredForm,
    {
        let loaded = self.load::<A>(aggregate_id).await?;
        self.decide_from(loaded, aggregate_id, command, services, metadata)
            .await
    }

    /// Lets an aggregate the caller has already loaded (with [`CommandBus::load`])
    /// decide `command`, without reading its stream again. The append is as
    /// safe as ever: if the stream moved since the load, it conflicts.
    pub async fn decide_from<A>(
        &self,
        (aggregate, sequence, position): (A, i64, i64),
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: &EventMetadata,
    ) -> Result<Decision, CommandError<A::Error>>
    where
        A: Aggregate + UniqueKeys + Subject,
        A::Event: StoredForm,
    {
        decide_on(
            aggregate,
            (sequence, position),
            aggregate_id,
            command,
            services,
            metadata,
        )
        .await
    }

    /// The aggregate's current state, its stream's last sequence and the global
    /// position of its last event (0 for both when it has none).
    pub async fn load<A>(&self, aggregate_id: &str) -> Result<(A, i64, i64), CommandError<A::Error>>
    where
        A: Aggregate,
        A::Event: StoredForm,
    {
        let stored = self.log.read_stream(A::TYPE, aggregate_id, 0).await?;
        fold(stored)
    }

    /// [`CommandBus::load`] for each of `ids`, in one read of the log: by
    /// id, each aggregate as `load` would have loaded it, or the error it
    /// would have failed with. Only a failure of the read itself fails all.
    pub async fn load_many<A>(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Result<(A, i64, i64), CommandError<A::Error>>>, StoreError>
    where
        A: Aggregate,
        A::Event: StoredForm,
    {
        let mut streams: HashMap<String, Vec<StoredEvent>> =
            ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        for e in self.log.read_streams(A::TYPE, ids).await? {
            if let Some(stream) = streams.get_mut(&e.aggregate_id) {
                stream.push(e);
            }
        }
        Ok(streams
            .into_iter()
            .map(|(id, stored)| (id, fold(stored)))
            .collect())
    }
}

/// `A` as its stored events (in sequence order) make it, with the last
/// event's sequence and position (0 and 0 for none).
fn fold<A>(stored: Vec<StoredEvent>) -> Result<(A, i64, i64), CommandError<A::Error>>
where
    A: Aggregate,
    A::Event: StoredForm,
{
    let mut aggregate = A::default();
    let (mut sequence, mut position) = (0, 0);
    for e in stored {
        let event =
            A::Event::from_stored(&e.event_type, &e.event_version, &e.payload).map_err(|err| {
                match err {
                    DecodeError::Erased { .. } => CommandError::Erased,
                    err => CommandError::Unreadable {
                        position: e.global_position,
                        detail: err.to_string(),
                    },
                }
            })?;
        aggregate.apply(event);
        sequence = e.sequence;
        position = e.global_position;
    }
    Ok((aggregate, sequence, position))
}

/// Lets `aggregate` (at `sequence`, last event at `position`) decide `command`.
async fn decide_on<A>(
    mut aggregate: A,
    (sequence, position): (i64, i64),
    aggregate_id: &str,
    command: A::Command,
    services: &A::Services,
    metadata: &EventMetadata,
) -> Result<Decision, CommandError<A::Error>>
where
    A: Aggregate + UniqueKeys + Subject,
    A::Event: StoredForm,
{
    let sink = EventSink::default();
    let keys_before = aggregate.unique_keys();
    // The sink applies each event to the aggregate as it is written.
    aggregate
        .handle(command, services, &sink)
        .await
        .map_err(CommandError::Rejected)?;
    let events = sink.collect().await;
    if events.is_empty() {
        return Ok(Decision::Nothing { position });
    }
    let mut new_events = Vec::with_capacity(events.len());
    for e in &events {
        let stored = e
            .to_stored()
            .map_err(|err| CommandError::Unserializable(err.to_string()))?;
        new_events.push(NewEvent {
            event_type: stored.event_type,
            event_version: stored.event_version,
            payload: stored.payload,
        });
    }
    Ok(Decision::Append(Box::new(AppendRequest {
        aggregate_type: A::TYPE.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        expected_sequence: sequence,
        events: new_events,
        metadata: metadata.clone(),
        keys: KeyChanges::between(&keys_before, &aggregate.unique_keys()),
        credential: None,
        mfa: None,
        patient_id: aggregate.patient(aggregate_id),
        guards: Default::default(),
    })))
}
