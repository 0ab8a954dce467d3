//! The embedded SQLite log backend.
//!
//! Appends run in `BEGIN IMMEDIATE` transactions: the database write lock is
//! taken up front, so the head is read and advanced by one writer at a time,
//! across processes too.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::seal::{BatchKeys, KeyRow, Keyring};
use super::writer::{
    check_head, idempotency_keys, key_digests, now_micros, owners_of, plan_batch, stream_keys,
    Committed, StreamKey,
};
use super::{AppendRequest, MfaState, Outcome, StoreError, StoredEvent};

const COLUMNS: &str = "global_position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at, actor_id, actor_role, reason, \
     correlation_id, causation_id, patient_id, prev_hash, hash";

pub(crate) async fn commit_batch(
    pool: &SqlitePool,
    keyring: &Keyring,
    units: &[&[AppendRequest]],
) -> Result<Committed, StoreError> {
    // In line behind this process's other writers (`Db::write_turn`).
    let _turn = crate::database::Db::Sqlite(pool.clone()).write_turn().await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM log_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    let (last, last_hash): (Option<i64>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT (SELECT max(global_position) FROM events), \
                (SELECT hash FROM events WHERE global_position = $1)",
    )
    .bind(position)
    .fetch_one(&mut *tx)
    .await?;
    check_head(position, &hash, last, last_hash.as_deref())?;

    // Every key the batch claims, releases or needs free.
    let digests = key_digests(units);
    let mut owners = Vec::with_capacity(digests.len());
    for digest in &digests {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner FROM unique_claims WHERE key = $1")
                .bind(digest)
                .fetch_optional(&mut *tx)
                .await?;
        owners.push(owner);
    }

    // Every stream the batch appends to or fences.
    let mut sequences: HashMap<StreamKey, i64> = HashMap::new();
    for (aggregate_type, aggregate_id) in stream_keys(units) {
        let current: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT sequence FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 \
             ORDER BY sequence DESC LIMIT 1), 0)",
        )
        .bind(&aggregate_type)
        .bind(&aggregate_id)
        .fetch_one(&mut *tx)
        .await?;
        sequences.insert((aggregate_type, aggregate_id), current);
    }

    let owners = owners_of(digests, owners);
    let mut answered = HashMap::new();
    for key in idempotency_keys(units) {
        let row: Option<(Vec<u8>, i64, String, i64)> = sqlx::query_as(
            "SELECT request_hash, status, result_id, position FROM idempotency_keys WHERE key = $1",
        )
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            answered.insert(key, Outcome::from_row(row)?);
        }
    }
    let stored = patient_keys(&mut tx, &BatchKeys::patients_of(units)).await?;
    let keys = BatchKeys::prepare(keyring, units, stored)?;
    let plan = plan_batch(
        (position, hash),
        sequences,
        owners,
        answered,
        units,
        now_micros(),
        &keys,
    );
    if plan.rows.is_empty() {
        tx.rollback().await?;
        return Ok(plan.refused(position));
    }
    insert_events(&mut tx, &plan.rows).await?;
    let recorded_at = plan.rows.first().map(|r| r.recorded_at);
    for k in &plan.keys {
        match &k.owner {
            None => {
                sqlx::query("DELETE FROM unique_claims WHERE key = $1")
                    .bind(&k.digest)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(owner) => {
                sqlx::query(
                    "INSERT INTO unique_claims (key, scope, owner, claimed_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET \
                     scope = excluded.scope, owner = excluded.owner, claimed_at = excluded.claimed_at",
                )
                .bind(&k.digest)
                .bind(k.scope)
                .bind(owner)
                .bind(recorded_at)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    for (key, outcome) in &plan.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, status, result_id, position, \
             recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key)
        .bind(&outcome.request_hash)
        .bind(i64::from(outcome.status))
        .bind(&outcome.result_id)
        .bind(outcome.position)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    for c in &plan.credentials {
        sqlx::query(
            "INSERT INTO credentials (user_id, password_hash, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, \
             updated_at = excluded.updated_at",
        )
        .bind(c.user_id.to_string())
        .bind(&c.password_hash)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    for (patient, wrapped) in &plan.new_keys {
        sqlx::query(
            "INSERT INTO patient_keys (patient_id, master_key_id, wrapped_key, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(patient.to_string())
        .bind(&plan.master_id)
        .bind(wrapped)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    for patient in &plan.erased {
        // The key is destroyed; the row stays, with no key, so that nothing
        // sealed is written about the patient again. The unique keys the
        // streams about them hold are released.
        sqlx::query(
            "INSERT INTO patient_keys (patient_id, master_key_id, wrapped_key, created_at, \
                 erased_at) VALUES ($1, $2, NULL, $3, $3) \
             ON CONFLICT (patient_id) DO UPDATE SET wrapped_key = NULL, erased_at = $3",
        )
        .bind(patient.to_string())
        .bind(&plan.master_id)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM unique_claims WHERE owner IN ( \
                 SELECT DISTINCT aggregate_type || '/' || aggregate_id FROM events \
                 WHERE patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $1))",
        )
        .bind(patient.to_string())
        .execute(&mut *tx)
        .await?;
    }
    for m in &plan.mfa {
        match &m.state {
            MfaState::Set {
                secret,
                confirmed,
                recovery_codes,
            } => {
                sqlx::query(
                    "INSERT INTO mfa_credentials (user_id, secret, confirmed, recovery_codes, \
                     updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
                     secret = excluded.secret, confirmed = excluded.confirmed, \
                     recovery_codes = excluded.recovery_codes, updated_at = excluded.updated_at",
                )
                .bind(m.user_id.to_string())
                .bind(secret)
                .bind(*confirmed)
                .bind(recovery_codes.join(","))
                .bind(recorded_at)
                .execute(&mut *tx)
                .await?;
            }
            MfaState::Removed => {
                sqlx::query("DELETE FROM mfa_credentials WHERE user_id = $1")
                    .bind(m.user_id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    sqlx::query("UPDATE log_head SET position = $1, hash = $2 WHERE id = 1")
        .bind(plan.head_position)
        .bind(&plan.head_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(plan.committed())
}

/// Inserts events exactly as given, every column (the writer's rows, a
/// restored backup's).
pub(crate) async fn insert_events(
    tx: &mut sqlx::SqliteConnection,
    rows: &[StoredEvent],
) -> Result<(), sqlx::Error> {
    for r in rows {
        sqlx::query(
            "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
                 sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
                 actor_role, reason, correlation_id, causation_id, prev_hash, hash, patient_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18)",
        )
        .bind(r.global_position)
        .bind(r.event_id.to_string())
        .bind(&r.aggregate_type)
        .bind(&r.aggregate_id)
        .bind(r.sequence)
        .bind(&r.event_type)
        .bind(&r.event_version)
        .bind(&r.payload)
        .bind(&r.metadata)
        .bind(r.recorded_at)
        .bind(&r.actor_id)
        .bind(&r.actor_role)
        .bind(&r.reason)
        .bind(r.correlation_id.map(|u| u.to_string()))
        .bind(r.causation_id.map(|u| u.to_string()))
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .bind(r.patient_id.map(|u| u.to_string()))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(crate) async fn read_from(
    pool: &SqlitePool,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn read_types(
    pool: &SqlitePool,
    types: &[&str],
    (after, until): (i64, i64),
    limit: i64,
    payload: bool,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = super::reader::types_query(COLUMNS, types, payload);
    let mut query = sqlx::query(&sql).bind(after).bind(until).bind(limit);
    for t in types {
        query = query.bind(*t);
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn read_stream(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND sequence > $3 ORDER BY sequence"
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after_sequence)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// Every event of the streams of `aggregate_type` named in `ids`, in
/// position order (so each stream's in sequence order), [`MAX_BINDS`]
/// streams a query.
pub(crate) async fn read_streams(
    pool: &SqlitePool,
    aggregate_type: &str,
    ids: &[String],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut events = Vec::new();
    for chunk in ids.chunks(MAX_BINDS - 1) {
        let list: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id IN ({}) \
             ORDER BY global_position",
            list.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(aggregate_type);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(pool).await? {
            events.push(decode(&row)?);
        }
    }
    // Chunks each come in position order; together they must too.
    events.sort_by_key(|e| e.global_position);
    Ok(events)
}

pub(crate) async fn read_patient(
    pool: &SqlitePool,
    patient: Uuid,
    (after, until): (i64, i64),
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    // Two indexed reads (events_by_patient; the patient's own stream by
    // the stream index) under one position range.
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position > $3 AND global_position <= $4 \
         AND (patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $2)) \
         ORDER BY global_position LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(patient.to_string())
        .bind(patient.to_string())
        .bind(after)
        .bind(until)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// The `patient_keys` rows of these patients, [`MAX_BINDS`] a query.
pub(crate) async fn patient_keys(
    conn: &mut sqlx::SqliteConnection,
    patients: &[Uuid],
) -> Result<Vec<KeyRow>, StoreError> {
    let mut rows = Vec::with_capacity(patients.len());
    for chunk in patients.chunks(MAX_BINDS) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT patient_id, master_key_id, wrapped_key FROM patient_keys \
             WHERE patient_id IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, Vec<u8>, Option<Vec<u8>>)>(&sql);
        for patient in chunk {
            query = query.bind(patient.to_string());
        }
        for (patient, master, wrapped) in query.fetch_all(&mut *conn).await? {
            let patient = Uuid::parse_str(&patient).map_err(|_| {
                StoreError::Damaged("patient_keys holds a patient id that is no UUID".into())
            })?;
            rows.push((patient, master, wrapped));
        }
    }
    Ok(rows)
}

pub(crate) async fn password_hash(
    pool: &SqlitePool,
    user_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_optional(pool)
            .await?,
    )
}

/// A user's second factor as stored: secret, confirmed, recovery code digests.
pub(crate) async fn mfa_credential(
    pool: &SqlitePool,
    user_id: Uuid,
) -> Result<Option<(String, bool, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT secret, confirmed, recovery_codes FROM mfa_credentials WHERE user_id = $1",
    )
    .bind(user_id.to_string())
    .fetch_optional(pool)
    .await?)
}

/// The most parameters one statement binds: well inside SQLite's limit
/// (32,766 since 3.32, 999 before).
const MAX_BINDS: usize = 500;

/// The owners of the claims with these digests (an owner once per key it
/// holds), [`MAX_BINDS`] keys a query.
pub(crate) async fn claim_owners(
    pool: &SqlitePool,
    digests: &[Vec<u8>],
) -> Result<Vec<String>, StoreError> {
    let mut owners = Vec::new();
    for chunk in digests.chunks(MAX_BINDS) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT owner FROM unique_claims WHERE key IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_scalar(&sql);
        for digest in chunk {
            query = query.bind(digest);
        }
        owners.extend(query.fetch_all(pool).await?);
    }
    Ok(owners)
}

pub(crate) async fn head(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT position FROM log_head WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// A UUID column as the log writes it: lower-case and hyphenated. The chain
/// hashes the UUID's 16 bytes, not its text, so another spelling of the
/// same UUID (upper case, no hyphens) would verify, while every read that
/// matches the text (a patient's history) would no longer find the row:
/// it is damage, refused at every read, verification's included.
fn uuid_column(row: &SqliteRow, name: &str, position: i64) -> Result<Option<Uuid>, StoreError> {
    let text: Option<String> = row.try_get(name)?;
    text.map(|t| {
        let uuid = Uuid::parse_str(&t).map_err(|e| StoreError::Corrupt {
            position,
            detail: format!("{name}: {e}"),
        })?;
        let mut written = Uuid::encode_buffer();
        if *uuid.hyphenated().encode_lower(&mut written) != *t {
            return Err(StoreError::Corrupt {
                position,
                detail: format!("{name} is not written as the log writes a UUID"),
            });
        }
        Ok(uuid)
    })
    .transpose()
}

fn decode(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let global_position: i64 = row.try_get("global_position")?;
    let event_id = uuid_column(row, "event_id", global_position)?.ok_or(StoreError::Corrupt {
        position: global_position,
        detail: "event_id is null".into(),
    })?;
    Ok(StoredEvent {
        global_position,
        event_id,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
        actor_id: row.try_get("actor_id")?,
        actor_role: row.try_get("actor_role")?,
        reason: row.try_get("reason")?,
        correlation_id: uuid_column(row, "correlation_id", global_position)?,
        causation_id: uuid_column(row, "causation_id", global_position)?,
        patient_id: uuid_column(row, "patient_id", global_position)?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
