//! Loading a backup into an empty database, in one transaction: a file that
//! fails half way (an altered event, a cut-off end) leaves the database as
//! empty as it was.
//!
//! Plain `INSERT`s with the stored positions and hashes: the append-only
//! triggers refuse only `UPDATE`, `DELETE` and `TRUNCATE`, and `log_head` is
//! moved once, at the end, to the last event and its hash, which is what its
//! trigger (deferred to commit on Postgres) requires. Nothing is disabled.

use super::{ClaimRow, CredentialRow, IdempotencyRow, MfaRow, PatientKeyRow};
use crate::{Db, StoreError, StoredEvent};

/// A restore under way: the open transaction.
pub enum Restore {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Why a restore cannot start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The database already has a log: restore never merges.
    #[error(
        "the database is not empty (its log holds events up to position {head}): \
         restore only into a fresh, empty database"
    )]
    NotEmpty { head: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RestoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

const EMPTY: &str = "SELECT (SELECT position FROM log_head WHERE id = 1), \
                     COALESCE((SELECT max(global_position) FROM events), 0)";

impl Restore {
    /// Opens the transaction (taking the write lock: the head row on
    /// Postgres, the database on SQLite) and checks that the log is empty.
    pub async fn begin(db: &Db) -> Result<Self, RestoreError> {
        let (restore, (head, last)): (Self, (i64, i64)) = match db {
            Db::Postgres(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN; SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE")
                    .await?;
                let state = sqlx::query_as(EMPTY).fetch_one(&mut *tx).await?;
                (Self::Postgres(tx), state)
            }
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let state = sqlx::query_as(EMPTY).fetch_one(&mut *tx).await?;
                (Self::Sqlite(tx), state)
            }
        };
        if head != 0 || last != 0 {
            return Err(RestoreError::NotEmpty {
                head: head.max(last),
            });
        }
        Ok(restore)
    }

    /// Inserts events exactly as they were stored (the caller has verified
    /// their chain).
    pub async fn events(&mut self, rows: &[StoredEvent]) -> Result<(), StoreError> {
        match self {
            Self::Postgres(tx) => {
                let col = |f: fn(&StoredEvent) -> String| rows.iter().map(f).collect::<Vec<_>>();
                sqlx::query(
                    "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
                         sequence, event_type, event_version, payload, metadata, recorded_at, \
                         actor_id, actor_role, reason, correlation_id, causation_id, prev_hash, \
                         hash, patient_id) \
                     SELECT p, e, at, ai, s, et, ev, pl::json, md::json, ra, ac, ar, r, c, ca, ph, \
                         h, pa \
                     FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], \
                                 $6::text[], $7::text[], $8::text[], $9::text[], \
                                 $10::timestamptz[], $11::text[], $12::text[], $13::text[], \
                                 $14::uuid[], $15::uuid[], $16::bytea[], $17::bytea[], \
                                 $18::uuid[]) \
                          AS t(p, e, at, ai, s, et, ev, pl, md, ra, ac, ar, r, c, ca, ph, h, pa)",
                )
                .bind(rows.iter().map(|r| r.global_position).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
                .bind(col(|r| r.aggregate_type.clone()))
                .bind(col(|r| r.aggregate_id.clone()))
                .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
                .bind(col(|r| r.event_type.clone()))
                .bind(col(|r| r.event_version.clone()))
                .bind(col(|r| r.payload.clone()))
                .bind(col(|r| r.metadata.clone()))
                .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
                .bind(col(|r| r.actor_id.clone()))
                .bind(col(|r| r.actor_role.clone()))
                .bind(rows.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.correlation_id).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.causation_id).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.prev_hash.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.hash.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.patient_id).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await?;
            }
            Self::Sqlite(tx) => crate::log::sqlite_insert_events(tx, rows).await?,
        }
        Ok(())
    }

    /// Inserts a password credential.
    pub async fn credential(&mut self, row: &CredentialRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO credentials (user_id, password_hash, updated_at) \
                   VALUES ($1, $2, $3)";
        match self {
            Self::Postgres(tx) => {
                sqlx::query(sql)
                    .bind(row.user_id)
                    .bind(&row.password_hash)
                    .bind(row.updated_at)
                    .execute(&mut **tx)
                    .await?;
            }
            Self::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(row.user_id.to_string())
                    .bind(&row.password_hash)
                    .bind(row.updated_at)
                    .execute(&mut **tx)
                    .await?;
            }
        };
        Ok(())
    }

    /// Inserts a patient's key row (ADR 0024).
    pub async fn patient_key(&mut self, row: &PatientKeyRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO patient_keys (patient_id, master_key_id, wrapped_key, created_at, \
                   erased_at) VALUES ($1, $2, $3, $4, $5)";
        match self {
            Self::Postgres(tx) => {
                sqlx::query(sql)
                    .bind(row.patient_id)
                    .bind(&row.master_key_id)
                    .bind(&row.wrapped_key)
                    .bind(row.created_at)
                    .bind(row.erased_at)
                    .execute(&mut **tx)
                    .await?;
            }
            Self::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(row.patient_id.to_string())
                    .bind(&row.master_key_id)
                    .bind(&row.wrapped_key)
                    .bind(row.created_at)
                    .bind(row.erased_at)
                    .execute(&mut **tx)
                    .await?;
            }
        };
        Ok(())
    }

    /// Inserts a second factor (ADR 0025).
    pub async fn mfa(&mut self, row: &MfaRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO mfa_credentials (user_id, secret, confirmed, recovery_codes, \
                   updated_at) VALUES ($1, $2, $3, $4, $5)";
        match self {
            Self::Postgres(tx) => {
                sqlx::query(sql)
                    .bind(row.user_id)
                    .bind(&row.secret)
                    .bind(row.confirmed)
                    .bind(&row.recovery_codes)
                    .bind(row.updated_at)
                    .execute(&mut **tx)
                    .await?;
            }
            Self::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(row.user_id.to_string())
                    .bind(&row.secret)
                    .bind(row.confirmed)
                    .bind(&row.recovery_codes)
                    .bind(row.updated_at)
                    .execute(&mut **tx)
                    .await?;
            }
        };
        Ok(())
    }

    /// Inserts a unique claim.
    pub async fn claim(&mut self, row: &ClaimRow) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO unique_claims (key, scope, owner, claimed_at) VALUES ($1, $2, $3, $4)";
        match self {
            Self::Postgres(tx) => {
                sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.scope)
                    .bind(&row.owner)
                    .bind(row.claimed_at)
                    .execute(&mut **tx)
                    .await?;
            }
            Self::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.scope)
                    .bind(&row.owner)
                    .bind(row.claimed_at)
                    .execute(&mut **tx)
                    .await?;
            }
        };
        Ok(())
    }

    /// Inserts an idempotency key.
    pub async fn idempotency(&mut self, row: &IdempotencyRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO idempotency_keys (key, request_hash, status, result_id, position, \
                   recorded_at) VALUES ($1, $2, $3, $4, $5, $6)";
        match self {
            Self::Postgres(tx) => {
                let status = i32::try_from(row.status).map_err(|_| StoreError::Corrupt {
                    position: row.position,
                    detail: "an idempotency key records no valid HTTP status".into(),
                })?;
                sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.request_hash)
                    .bind(status)
                    .bind(&row.result_id)
                    .bind(row.position)
                    .bind(row.recorded_at)
                    .execute(&mut **tx)
                    .await?;
            }
            Self::Sqlite(tx) => {
                sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.request_hash)
                    .bind(row.status)
                    .bind(&row.result_id)
                    .bind(row.position)
                    .bind(row.recorded_at)
                    .execute(&mut **tx)
                    .await?;
            }
        };
        Ok(())
    }

    /// Moves `log_head` to the last event, lists accounts of earlier
    /// releases as migration 0006 would have (the server moves them at
    /// start, ADR 0006), and commits.
    pub async fn commit(self, head_position: i64, head_hash: &[u8]) -> Result<(), StoreError> {
        let head = "UPDATE log_head SET position = $1, hash = $2 WHERE id = 1";
        let legacy = "INSERT INTO legacy_user_streams (aggregate_id) \
                      SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = 'user' \
                      AND event_type = 'user.created' AND event_version = '1'";
        match self {
            Self::Postgres(mut tx) => {
                sqlx::query(head)
                    .bind(head_position)
                    .bind(head_hash)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(legacy).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Self::Sqlite(mut tx) => {
                sqlx::query(head)
                    .bind(head_position)
                    .bind(head_hash)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(legacy).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
