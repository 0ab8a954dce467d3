//! The Postgres log backend.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::seal::{BatchKeys, KeyRow, Keyring, SEALED_PREFIX};
use super::writer::{
    check_head, idempotency_keys, key_digests, now_micros, owners_of, plan_batch, stream_keys,
    Committed, KeyWrite, Plan, StreamKey,
};
use super::{AppendRequest, MfaCredential, MfaState, Outcome, StoreError, StoredEvent};

pub(crate) const NOTIFY_CHANNEL: &str = "anamnesis_events";

const COLUMNS: &str = "global_position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload::text AS payload, metadata::text AS metadata, \
     recorded_at, actor_id, actor_role, reason, correlation_id, causation_id, patient_id, \
     prev_hash, hash";

/// Lookups are written as one index probe per key (a correlated subquery),
/// not a join: Postgres estimates an `UNNEST` at 100 rows and, before
/// `unique_claims` is first analyzed, chose a hash join over a sequential
/// scan of the whole table on every append (bench-http registrations fell by
/// a third).
///
/// Four round trips, the lock held for the last three:
/// 1. `BEGIN` and lock the head row, in one simple query (waiting at most
///    5 s for the lock: a stuck holder fails appends, it does not hang them);
/// 2. read the head, the current sequence of every stream the batch appends
///    to or fences, and the holder of every key it claims, releases or needs
///    free (a snapshot taken after the lock, so it sees every earlier append);
/// 3. insert the events, advance the head and NOTIFY, in one statement;
/// 4. `COMMIT`.
pub(crate) async fn commit_batch(
    pool: &PgPool,
    keyring: &Keyring,
    units: &[&[AppendRequest]],
) -> Result<Committed, StoreError> {
    let mut tx = pool
        .begin_with(
            "BEGIN; SET LOCAL lock_timeout = '5s'; SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE",
        )
        .await?;

    let streams = stream_keys(units);
    let (types, ids): (Vec<&str>, Vec<&str>) = streams
        .iter()
        .map(|(t, id)| (t.as_str(), id.as_str()))
        .unzip();
    let digests = key_digests(units);
    let patients = BatchKeys::patients_of(units);
    type Head = (
        i64,
        Vec<u8>,
        Vec<i64>,
        Option<i64>,
        Option<Vec<u8>>,
        Vec<Option<String>>,
        (Vec<Uuid>, Vec<Vec<u8>>, Vec<Option<Vec<u8>>>),
    );
    let row: sqlx::postgres::PgRow = sqlx::query(
        "SELECT h.position, h.hash, ARRAY( \
             SELECT COALESCE((SELECT e.sequence FROM events e \
                              WHERE e.aggregate_type = t.aggregate_type \
                                AND e.aggregate_id = t.aggregate_id \
                              ORDER BY e.sequence DESC LIMIT 1), 0) \
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY \
                  AS t(aggregate_type, aggregate_id, n) \
             ORDER BY t.n), \
             (SELECT max(global_position) FROM events), \
             (SELECT e.hash FROM events e WHERE e.global_position = h.position), \
             ARRAY(SELECT (SELECT c.owner FROM unique_claims c WHERE c.key = k.key) \
                   FROM UNNEST($3::bytea[]) WITH ORDINALITY AS k(key, n) ORDER BY k.n), \
             ARRAY(SELECT p.patient_id FROM patient_keys p \
                   WHERE p.patient_id = ANY($4::uuid[]) ORDER BY p.patient_id), \
             ARRAY(SELECT p.master_key_id FROM patient_keys p \
                   WHERE p.patient_id = ANY($4::uuid[]) ORDER BY p.patient_id), \
             ARRAY(SELECT p.wrapped_key FROM patient_keys p \
                   WHERE p.patient_id = ANY($4::uuid[]) ORDER BY p.patient_id) \
         FROM log_head h WHERE h.id = 1",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&digests)
    .bind(&patients)
    .fetch_one(&mut *tx)
    .await?;
    // The batch's patients' keys come in the same round trip, under the
    // head lock (ADR 0024): no extra round trip while the lock is held.
    let (position, hash, current, last, last_hash, owners, keys): Head = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        (row.try_get(6)?, row.try_get(7)?, row.try_get(8)?),
    );
    check_head(position, &hash, last, last_hash.as_deref())?;
    let sequences: HashMap<StreamKey, i64> = streams.into_iter().zip(current).collect();

    let owners = owners_of(digests, owners);
    let answered = answered(&mut tx, idempotency_keys(units)).await?;
    let (key_ids, masters, wrapped) = keys;
    let stored: Vec<KeyRow> = key_ids
        .into_iter()
        .zip(masters)
        .zip(wrapped)
        .map(|((p, m), w)| (p, m, w))
        .collect();
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
    write_rows(&mut tx, &plan).await?;
    for patient in &plan.erased {
        erase(&mut tx, *patient, &plan.master_id).await?;
    }
    tx.commit().await?;
    Ok(plan.committed())
}

/// What the commands with these idempotency keys answered (none is looked
/// up when the batch carries no key).
async fn answered(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: Vec<Vec<u8>>,
) -> Result<HashMap<Vec<u8>, Outcome>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    type Row = (Vec<u8>, Vec<u8>, i64, String, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT key, request_hash, status::bigint, result_id, position FROM idempotency_keys \
         WHERE key = ANY($1::bytea[])",
    )
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(key, hash, status, id, position)| {
            Ok((key, Outcome::from_row((hash, status, id, position))?))
        })
        .collect()
}

async fn write_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    plan: &Plan,
) -> Result<(), sqlx::Error> {
    let rows = &plan.rows;
    let (mfa_set, mfa_removed) = mfa_writes(&plan.mfa);
    let (released, claimed): (Vec<&KeyWrite>, Vec<&KeyWrite>) =
        plan.keys.iter().partition(|k| k.owner.is_none());
    // One statement for the whole batch: column arrays, unnested server-side.
    let col = |f: fn(&StoredEvent) -> String| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "WITH appended AS ( \
             INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
                 sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
                 actor_role, reason, correlation_id, causation_id, prev_hash, hash, patient_id) \
             SELECT p, e, at, ai, s, et, ev, pl::json, md::json, ra, ac, ar, r, c, ca, ph, h, pa \
             FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], \
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], \
                         $11::text[], $12::text[], $13::text[], $14::uuid[], $15::uuid[], \
                         $16::bytea[], $17::bytea[], $32::uuid[]) \
                  AS t(p, e, at, ai, s, et, ev, pl, md, ra, ac, ar, r, c, ca, ph, h, pa)), \
         released AS (DELETE FROM unique_claims WHERE key = ANY($21::bytea[])), \
         claimed AS ( \
             INSERT INTO unique_claims (key, scope, owner, claimed_at) \
             SELECT k, s, o, ($10::timestamptz[])[1] FROM UNNEST($22::bytea[], $23::text[], $24::text[]) \
                  AS c(k, s, o) \
             ON CONFLICT (key) DO UPDATE SET scope = excluded.scope, owner = excluded.owner, \
                  claimed_at = excluded.claimed_at), \
         idempotent AS ( \
             INSERT INTO idempotency_keys (key, request_hash, status, result_id, position, \
                 recorded_at) \
             SELECT k, rh, st, ri, p, ($10::timestamptz[])[1] \
             FROM UNNEST($25::bytea[], $26::bytea[], $27::int[], $28::text[], $29::bigint[]) \
                  AS i(k, rh, st, ri, p)), \
         credential AS ( \
             INSERT INTO credentials (user_id, password_hash, updated_at) \
             SELECT u, ph, ($10::timestamptz[])[1] FROM UNNEST($30::uuid[], $31::text[]) AS cr(u, ph) \
             ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, \
                  updated_at = excluded.updated_at), \
         mfa_set AS ( \
             INSERT INTO mfa_credentials (user_id, secret, confirmed, recovery_codes, updated_at) \
             SELECT u, se, co, rc, ($10::timestamptz[])[1] \
             FROM UNNEST($33::uuid[], $34::text[], $35::bool[], $36::text[]) AS m(u, se, co, rc) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
                  confirmed = excluded.confirmed, recovery_codes = excluded.recovery_codes, \
                  updated_at = excluded.updated_at), \
         mfa_removed AS (DELETE FROM mfa_credentials WHERE user_id = ANY($37::uuid[])), \
         patient_key AS ( \
             INSERT INTO patient_keys (patient_id, master_key_id, wrapped_key, created_at) \
             SELECT pk, $40::bytea, wk, ($10::timestamptz[])[1] FROM UNNEST($38::uuid[], $39::bytea[]) \
                  AS k(pk, wk)), \
         head AS ( \
             UPDATE log_head SET position = $18, hash = $19 WHERE id = 1 RETURNING position) \
         SELECT pg_notify($20, position::text) FROM head",
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
    .bind(plan.head_position)
    .bind(&plan.head_hash)
    .bind(NOTIFY_CHANNEL)
    .bind(released.iter().map(|k| k.digest.clone()).collect::<Vec<_>>())
    .bind(claimed.iter().map(|k| k.digest.clone()).collect::<Vec<_>>())
    .bind(claimed.iter().map(|k| k.scope).collect::<Vec<_>>())
    .bind(claimed.iter().map(|k| k.owner.clone()).collect::<Vec<_>>())
    .bind(plan.idempotency.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
    .bind(plan.idempotency.iter().map(|(_, o)| o.request_hash.clone()).collect::<Vec<_>>())
    .bind(plan.idempotency.iter().map(|(_, o)| i32::from(o.status)).collect::<Vec<_>>())
    .bind(plan.idempotency.iter().map(|(_, o)| o.result_id.clone()).collect::<Vec<_>>())
    .bind(plan.idempotency.iter().map(|(_, o)| o.position).collect::<Vec<_>>())
    .bind(plan.credentials.iter().map(|c| c.user_id).collect::<Vec<_>>())
    .bind(plan.credentials.iter().map(|c| c.password_hash.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.patient_id).collect::<Vec<_>>())
    .bind(mfa_set.iter().map(|m| m.0).collect::<Vec<_>>())
    .bind(mfa_set.iter().map(|m| m.1.clone()).collect::<Vec<_>>())
    .bind(mfa_set.iter().map(|m| m.2).collect::<Vec<_>>())
    .bind(mfa_set.iter().map(|m| m.3.clone()).collect::<Vec<_>>())
    .bind(mfa_removed)
    .bind(plan.new_keys.iter().map(|(p, _)| *p).collect::<Vec<_>>())
    .bind(plan.new_keys.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>())
    .bind(&plan.master_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(())
}

/// Destroys a patient's data key (keeping the row, with no key, so that
/// nothing sealed is written about them again) and releases every unique key
/// the streams about them hold.
async fn erase(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    patient: Uuid,
    master_id: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO patient_keys (patient_id, master_key_id, wrapped_key, created_at, erased_at) \
         VALUES ($1, $2, NULL, now(), now()) \
         ON CONFLICT (patient_id) DO UPDATE SET wrapped_key = NULL, erased_at = now()",
    )
    .bind(patient)
    .bind(master_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM unique_claims WHERE owner IN ( \
             SELECT DISTINCT aggregate_type || '/' || aggregate_id FROM events \
             WHERE patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $2))",
    )
    .bind(patient)
    .bind(patient.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `patient_keys` rows of these patients.
pub(crate) async fn patient_keys<'e>(
    db: impl sqlx::PgExecutor<'e>,
    patients: &[Uuid],
) -> Result<Vec<KeyRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT patient_id, master_key_id, wrapped_key FROM patient_keys \
         WHERE patient_id = ANY($1::uuid[])",
    )
    .bind(patients)
    .fetch_all(db)
    .await?)
}

/// The second factors a batch sets (user, secret, confirmed, recovery code
/// digests joined by commas) and the users whose second factor it removes.
type MfaRow = (Uuid, String, bool, String);

fn mfa_writes(mfa: &[MfaCredential]) -> (Vec<MfaRow>, Vec<Uuid>) {
    let mut set = Vec::new();
    let mut removed = Vec::new();
    for m in mfa {
        match &m.state {
            MfaState::Set {
                secret,
                confirmed,
                recovery_codes,
            } => set.push((
                m.user_id,
                secret.clone(),
                *confirmed,
                recovery_codes.join(","),
            )),
            MfaState::Removed => removed.push(m.user_id),
        }
    }
    (set, removed)
}

/// A user's second factor as stored: secret, confirmed, recovery code digests.
pub(crate) async fn mfa_credential(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<(String, bool, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT secret, confirmed, recovery_codes FROM mfa_credentials WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

pub(crate) async fn read_from(
    pool: &PgPool,
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

/// The positions one query of [`read_types`] spans at most.
const READ_WINDOW: i64 = 10_000;

pub(crate) async fn read_types(
    pool: &PgPool,
    types: &[&str],
    (after, until): (i64, i64),
    limit: i64,
    payload: bool,
) -> Result<Keyed, StoreError> {
    let sql = super::reader::types_query(COLUMNS, types, payload);
    // Without payloads there is nothing to open, so no key to bring.
    let sql = if payload {
        with_keys(&sql, "global_position")
    } else {
        sql
    };
    // Postgres estimates a two-sided range of positions on an `events`
    // without statistics (autovacuum off, a fresh restore) at a few thousand
    // rows, so it plans a bitmap scan of the whole range, sorts every match
    // and keeps the first `limit`: a rebuild's page read the rest of the log
    // each time (1.3 s a page at a million events, ADR 0014). Asked a window
    // of positions at a time, a read costs what it scans, whatever the plan.
    let mut rows = Vec::new();
    let mut at = after;
    while at < until && (rows.len() as i64) < limit {
        let to = until.min(at.saturating_add(READ_WINDOW));
        let mut query = sqlx::query(&sql)
            .bind(at)
            .bind(to)
            .bind(limit - rows.len() as i64);
        for t in types {
            query = query.bind(*t);
        }
        rows.extend(query.fetch_all(pool).await?);
        at = to;
    }
    if payload {
        keyed(&rows)
    } else {
        Ok((
            rows.iter().map(decode).collect::<Result<_, _>>()?,
            Vec::new(),
        ))
    }
}

pub(crate) async fn read_stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
) -> Result<Keyed, StoreError> {
    let sql = with_keys(
        &format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
             AND sequence > $3"
        ),
        "sequence",
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after_sequence)
        .fetch_all(pool)
        .await?;
    keyed(&rows)
}

/// Every event of the streams of `aggregate_type` named in `ids`, in
/// position order (so each stream's in sequence order). One statement, one
/// index probe per stream.
pub(crate) async fn read_streams(
    pool: &PgPool,
    aggregate_type: &str,
    ids: &[String],
) -> Result<Keyed, StoreError> {
    let sql = with_keys(
        &format!(
            "SELECT {COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = ANY($2::text[])"
        ),
        "global_position",
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    keyed(&rows)
}

pub(crate) async fn read_patient(
    pool: &PgPool,
    patient: Uuid,
    (after, until): (i64, i64),
    limit: i64,
) -> Result<Keyed, StoreError> {
    // Two indexed reads (events_by_patient; the patient's own stream by
    // the stream index) under one position range.
    let sql = with_keys(
        &format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $3 AND global_position <= $4 \
             AND (patient_id = $1 OR (aggregate_type = 'patient' AND aggregate_id = $2)) \
             ORDER BY global_position LIMIT $5"
        ),
        "global_position",
    );
    let rows = sqlx::query(&sql)
        .bind(patient)
        .bind(patient.to_string())
        .bind(after)
        .bind(until)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    keyed(&rows)
}

pub(crate) async fn password_hash(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// The owners of the claims with these digests (an owner once per key it
/// holds), in one query: an index probe per key.
pub(crate) async fn claim_owners(
    pool: &PgPool,
    digests: &[Vec<u8>],
) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT owner FROM unique_claims WHERE key = ANY($1::bytea[])")
            .bind(digests)
            .fetch_all(pool)
            .await?,
    )
}

pub(crate) async fn head(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT position FROM log_head WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// Events read with the `patient_keys` rows of the patients whose sealed
/// payloads they hold (each patient once).
pub(crate) type Keyed = (Vec<StoredEvent>, Vec<KeyRow>);

/// Wraps an events query (selecting [`COLUMNS`]) so that each row with a
/// sealed payload brings its patient's key row, in the same round trip:
/// every read that decodes events used to be two statements, the events
/// and then their keys (a sixteenth of the database's statements under
/// bench-load, ADR 0024 and 0028). The lookup is a subquery with `LIMIT`,
/// which Postgres never turns into a join of the whole key table: one
/// primary-key probe per sealed row, whatever the statistics say.
fn with_keys(events: &str, order: &str) -> String {
    let sealed = SEALED_PREFIX.replace('\'', "''");
    format!(
        "SELECT ev.*, k.master_key_id AS key_master, k.wrapped_key AS key_wrapped \
         FROM ({events}) ev \
         LEFT JOIN LATERAL (SELECT p.master_key_id, p.wrapped_key FROM patient_keys p \
                            WHERE p.patient_id = ev.patient_id \
                              AND starts_with(ev.payload, '{sealed}') LIMIT 1) k ON true \
         ORDER BY ev.{order}"
    )
}

/// The rows of a [`with_keys`] query.
fn keyed(rows: &[PgRow]) -> Result<Keyed, StoreError> {
    let mut keys: HashMap<Uuid, KeyRow> = HashMap::new();
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let event = decode(row)?;
        let master: Option<Vec<u8>> = row.try_get("key_master")?;
        if let (Some(patient), Some(master)) = (event.patient_id, master) {
            if let std::collections::hash_map::Entry::Vacant(v) = keys.entry(patient) {
                v.insert((patient, master, row.try_get("key_wrapped")?));
            }
        }
        events.push(event);
    }
    Ok((events, keys.into_values().collect()))
}

fn decode(row: &PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        global_position: row.try_get("global_position")?,
        event_id: row.try_get::<Uuid, _>("event_id")?,
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
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        patient_id: row.try_get("patient_id")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
