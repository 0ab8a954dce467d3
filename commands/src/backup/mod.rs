//! Backup and restore of the write side (ADR 0011): the log, and the tables
//! beside it that the log does not hold (`credentials`, `mfa_credentials`,
//! `unique_claims`, `idempotency_keys`). Read models are not backed up: they are rebuilt.
//!
//! A backup file is JSON Lines, one [`Line`] each: a header, the side
//! tables as of the header's head, every event up to that head in position
//! order, and a trailer.

mod restore;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use restore::{Restore, RestoreError};

use crate::log::hex_bytes;
use crate::{Db, StoreError, StoredEvent};

/// The `format` a backup file's header names.
pub const FORMAT: &str = "anamnesis.backup";
/// The version of that format this binary writes and reads.
pub const VERSION: u32 = 1;

/// One line of a backup file.
// Events are nearly every line and one line lives at a time: boxing the
// large variant would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Credential(CredentialRow),
    Mfa(MfaRow),
    PatientKey(PatientKeyRow),
    Claim(ClaimRow),
    Idempotency(IdempotencyRow),
    Event(StoredEvent),
    Trailer(Trailer),
}

/// What the file holds and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// `postgres` or `sqlite`: the backend it was taken from.
    pub backend: String,
    /// The last event in the file, and its hash.
    pub head_position: i64,
    #[serde(with = "hex_bytes")]
    pub head_hash: Vec<u8>,
    /// How many events, credentials, claims and idempotency keys follow.
    pub events: i64,
    pub credentials: usize,
    /// Second factors (ADR 0025); absent from backups of earlier releases.
    #[serde(default)]
    pub mfa: usize,
    /// Patients' wrapped data keys (ADR 0024), erased ones without a key;
    /// absent from backups of earlier releases.
    #[serde(default)]
    pub patient_keys: usize,
    pub claims: usize,
    pub idempotency_keys: usize,
    /// When the backup was taken.
    pub taken_at: DateTime<Utc>,
}

/// The last line: a file without it was cut short.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trailer {
    pub events: i64,
    #[serde(with = "hex_bytes")]
    pub head_hash: Vec<u8>,
}

/// A row of `credentials`. Its `Debug` shows no hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct CredentialRow {
    pub user_id: Uuid,
    pub password_hash: String,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRow")
            .field("user_id", &self.user_id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A row of `mfa_credentials` (ADR 0025). Its `Debug` shows no secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct MfaRow {
    pub user_id: Uuid,
    pub secret: String,
    pub confirmed: bool,
    /// Recovery code digests, comma-separated, as stored.
    pub recovery_codes: String,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for MfaRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRow")
            .field("user_id", &self.user_id)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// A row of `patient_keys` (ADR 0024): a data key wrapped under the master
/// key (which is never in a backup), or none once the patient was erased.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatientKeyRow {
    pub patient_id: Uuid,
    #[serde(with = "hex_bytes")]
    pub master_key_id: Vec<u8>,
    #[serde(default, with = "hex_option")]
    pub wrapped_key: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
}

/// Optional bytes as a hex string or null.
mod hex_option {
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| hex::decode(t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A row of `unique_claims` (keys are digests: no identifier in the clear).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRow {
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    pub scope: String,
    pub owner: String,
    pub claimed_at: DateTime<Utc>,
}

/// A row of `idempotency_keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRow {
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub request_hash: Vec<u8>,
    pub status: i64,
    pub result_id: String,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
}

/// The head and the side tables, read in one snapshot: each claim, key and
/// credential is exactly as it stood when the head was the last event.
/// Events up to the head never change, so they are read afterwards, in
/// windows, through the `LogReader`.
#[derive(Debug)]
pub struct Snapshot {
    pub head_position: i64,
    pub head_hash: Vec<u8>,
    pub credentials: Vec<CredentialRow>,
    pub mfa: Vec<MfaRow>,
    pub patient_keys: Vec<PatientKeyRow>,
    pub claims: Vec<ClaimRow>,
    pub idempotency: Vec<IdempotencyRow>,
}

const HEAD: &str = "SELECT position, hash FROM log_head WHERE id = 1";

/// Reads the snapshot (a repeatable-read transaction on Postgres, a read
/// transaction on SQLite, which sees one state of the file in WAL mode).
pub async fn snapshot(db: &Db) -> Result<Snapshot, StoreError> {
    match db {
        Db::Postgres(pool) => {
            let mut tx = pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let (head_position, head_hash): (i64, Vec<u8>) =
                sqlx::query_as(HEAD).fetch_one(&mut *tx).await?;
            let credentials = sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(
                "SELECT user_id, password_hash, updated_at FROM credentials ORDER BY user_id",
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(user_id, password_hash, updated_at)| CredentialRow {
                user_id,
                password_hash,
                updated_at,
            })
            .collect();
            let mfa = sqlx::query_as::<_, MfaTuple<Uuid>>(MFA)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(
                    |(user_id, secret, confirmed, recovery_codes, updated_at)| MfaRow {
                        user_id,
                        secret,
                        confirmed,
                        recovery_codes,
                        updated_at,
                    },
                )
                .collect();
            let patient_keys = sqlx::query_as::<_, KeyTuple<Uuid>>(PATIENT_KEYS)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(
                    |(patient_id, master_key_id, wrapped_key, created_at, erased_at)| {
                        PatientKeyRow {
                            patient_id,
                            master_key_id,
                            wrapped_key,
                            created_at,
                            erased_at,
                        }
                    },
                )
                .collect();
            let claims = sqlx::query_as(CLAIMS).fetch_all(&mut *tx).await?;
            let idempotency = sqlx::query_as(
                "SELECT key, request_hash, status::bigint, result_id, position, recorded_at \
                 FROM idempotency_keys ORDER BY position, key",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Snapshot {
                head_position,
                head_hash,
                credentials,
                mfa,
                patient_keys,
                claims: rows(claims, claim),
                idempotency: rows(idempotency, idempotency_row),
            })
        }
        Db::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let (head_position, head_hash): (i64, Vec<u8>) =
                sqlx::query_as(HEAD).fetch_one(&mut *tx).await?;
            let credentials = sqlx::query_as::<_, (String, String, DateTime<Utc>)>(
                "SELECT user_id, password_hash, updated_at FROM credentials ORDER BY user_id",
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(user_id, password_hash, updated_at)| {
                let user_id = Uuid::parse_str(&user_id).map_err(|e| StoreError::Corrupt {
                    position: head_position,
                    detail: format!("a credential's user_id is no uuid: {e}"),
                })?;
                Ok(CredentialRow {
                    user_id,
                    password_hash,
                    updated_at,
                })
            })
            .collect::<Result<_, StoreError>>()?;
            let mfa = sqlx::query_as::<_, MfaTuple<String>>(MFA)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(user_id, secret, confirmed, recovery_codes, updated_at)| {
                    let user_id = Uuid::parse_str(&user_id).map_err(|e| StoreError::Corrupt {
                        position: head_position,
                        detail: format!("a second factor's user_id is no uuid: {e}"),
                    })?;
                    Ok(MfaRow {
                        user_id,
                        secret,
                        confirmed,
                        recovery_codes,
                        updated_at,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            let patient_keys = sqlx::query_as::<_, KeyTuple<String>>(PATIENT_KEYS)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(
                    |(patient_id, master_key_id, wrapped_key, created_at, erased_at)| {
                        let patient_id =
                            Uuid::parse_str(&patient_id).map_err(|e| StoreError::Corrupt {
                                position: head_position,
                                detail: format!("a patient key's patient_id is no uuid: {e}"),
                            })?;
                        Ok(PatientKeyRow {
                            patient_id,
                            master_key_id,
                            wrapped_key,
                            created_at,
                            erased_at,
                        })
                    },
                )
                .collect::<Result<_, StoreError>>()?;
            let claims = sqlx::query_as(CLAIMS).fetch_all(&mut *tx).await?;
            let idempotency = sqlx::query_as(
                "SELECT key, request_hash, status, result_id, position, recorded_at \
                 FROM idempotency_keys ORDER BY position, key",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Snapshot {
                head_position,
                head_hash,
                credentials,
                mfa,
                patient_keys,
                claims: rows(claims, claim),
                idempotency: rows(idempotency, idempotency_row),
            })
        }
    }
}

const PATIENT_KEYS: &str = "SELECT patient_id, master_key_id, wrapped_key, created_at, erased_at \
                            FROM patient_keys ORDER BY patient_id";

type KeyTuple<Id> = (
    Id,
    Vec<u8>,
    Option<Vec<u8>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

const MFA: &str = "SELECT user_id, secret, confirmed, recovery_codes, updated_at \
                   FROM mfa_credentials ORDER BY user_id";

type MfaTuple<Id> = (Id, String, bool, String, DateTime<Utc>);

const CLAIMS: &str = "SELECT key, scope, owner, claimed_at FROM unique_claims ORDER BY key";

fn rows<R, T>(rows: Vec<R>, f: fn(R) -> T) -> Vec<T> {
    rows.into_iter().map(f).collect()
}

fn claim((key, scope, owner, claimed_at): (Vec<u8>, String, String, DateTime<Utc>)) -> ClaimRow {
    ClaimRow {
        key,
        scope,
        owner,
        claimed_at,
    }
}

type IdempotencyTuple = (Vec<u8>, Vec<u8>, i64, String, i64, DateTime<Utc>);

fn idempotency_row(
    (key, request_hash, status, result_id, position, recorded_at): IdempotencyTuple,
) -> IdempotencyRow {
    IdempotencyRow {
        key,
        request_hash,
        status,
        result_id,
        position,
        recorded_at,
    }
}
