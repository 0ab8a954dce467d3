//! The same-run baseline of the benchmarks: plain INSERTs into a table of
//! the shape of `events`, with no head lock, hashing, stream checks or
//! command layer: what the database gives one commit.

use std::sync::Arc;

use anamnesis_commands::Db;

use crate::bench::{closed_loop, Figures};

/// Creates `bench_baseline`, the baselines' table.
pub async fn baseline_table(db: &Db) -> anyhow::Result<()> {
    // A table of the same shape as `events` (columns, constraints, indexes),
    // with positions from a plain sequence.
    match db {
        Db::Postgres(p) => {
            sqlx::query(
                "CREATE TABLE bench_baseline \
                 (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)",
            )
            .execute(p)
            .await?;
            sqlx::query("CREATE SEQUENCE bench_position")
                .execute(p)
                .await?;
            sqlx::query(
                "ALTER TABLE bench_baseline ALTER global_position SET DEFAULT nextval('bench_position')",
            )
            .execute(p)
            .await?;
        }
        Db::Sqlite(p) => {
            // INTEGER PRIMARY KEY: SQLite assigns the next rowid when omitted.
            let ddl: String = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            )
            .fetch_one(p)
            .await?;
            let ddl = ddl.replacen("CREATE TABLE events", "CREATE TABLE bench_baseline", 1);
            sqlx::query(&ddl).execute(p).await?;
        }
    }
    Ok(())
}

/// Single-row INSERTs into `bench_baseline`, one per transaction, from
/// `concurrency` tasks for `seconds` (after one second of warm-up).
pub async fn baseline(db: &Db, concurrency: usize, seconds: u64) -> anyhow::Result<Figures> {
    const INSERT: &str = "INSERT INTO bench_baseline (event_id, aggregate_type, aggregate_id, \
        sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, actor_role, \
        prev_hash, hash) VALUES ($1, 'patient', $2, 1, 'patient.registered', '1', $3, '{}', $4, \
        'bench', 'staff', $5, $5)";
    // Postgres wants the payload cast to its `json` column; SQLite knows no casts.
    let pg_insert: Arc<str> = INSERT.replace("$3,", "$3::json,").into();
    let db = db.clone();
    closed_loop(
        "baseline: 1 INSERT per transaction",
        concurrency,
        seconds,
        move |i| {
            let (db, pg_insert) = (db.clone(), pg_insert.clone());
            async move {
                let (id, now, hash) = (uuid::Uuid::now_v7(), chrono::Utc::now(), vec![7u8; 32]);
                match &db {
                    Db::Postgres(p) => {
                        let q = sqlx::query(&pg_insert).bind(id).bind(id.to_string());
                        q.bind(payload(i)).bind(now).bind(hash).execute(p).await?;
                    }
                    Db::Sqlite(p) => {
                        let q = sqlx::query(INSERT)
                            .bind(id.to_string())
                            .bind(id.to_string());
                        q.bind(payload(i)).bind(now).bind(hash).execute(p).await?;
                    }
                }
                Ok(())
            }
        },
    )
    .await
}

/// The payload of the `i`th baseline row: a registration's.
pub fn payload(i: u64) -> String {
    format!(
        r#"{{"demographics":{{"address":null,"birth_date":"1980-01-01","contact":{{"email":null,"phone":null}},"identifiers":[],"name":{{"family":"Bench","given":"N{i}"}},"sex":"unknown"}},"user_id":null}}"#
    )
}

/// The log's head: the highest global position in `events`.
pub async fn head(db: &Db) -> anyhow::Result<i64> {
    const SQL: &str = "SELECT CAST(COALESCE(MAX(global_position), 0) AS BIGINT) FROM events";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_scalar(SQL).fetch_one(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await?,
    })
}
