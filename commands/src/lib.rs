//! The write side of Anamnesis: the event log and command dispatch.
#![forbid(unsafe_code)]

pub mod backup;
pub mod billing;
pub mod database;
pub mod dispatch;
pub mod erasure;
pub mod identity;
pub mod log;
pub mod medication;
pub mod schedule;

pub use database::{Db, DbError};
pub use log::{
    Actor, AppendError, AppendRequest, Appended, Credential, EventLog, EventMetadata, Guards,
    Idempotency, KeyChanges, Keyring, LogReader, MasterKey, MfaCredential, MfaState, NewEvent,
    Outcome, StoreError, StoredEvent, StreamAt,
};
