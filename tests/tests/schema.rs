//! The two migration folders describe one schema: the same tables, the same
//! columns and the same explicitly created indexes on Postgres and SQLite, so
//! that the folders cannot drift apart unnoticed. And every Postgres session
//! the server opens runs as `Db::postgres` sets it up (no JIT; no TLS on the
//! loopback unless required).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;

use std::str::FromStr;

use anamnesis_commands::database::plain_on_loopback;
use anamnesis_commands::Db;
use anamnesis_tests::db::{Backend, TestDb};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// (table, column) pairs and index names.
type Shape = (BTreeSet<(String, String)>, BTreeSet<String>);

async fn shape(db: &Db) -> anyhow::Result<Shape> {
    Ok(match db {
        Db::Postgres(p) => {
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
            )
            .fetch_all(p)
            .await?;
            // Indexes created by CREATE INDEX, not those backing a constraint.
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' \
                 AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            )
            .fetch_all(p)
            .await?;
            (columns.into_iter().collect(), indexes.into_iter().collect())
        }
        Db::Sqlite(p) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
            )
            .fetch_all(p)
            .await?;
            let mut columns = BTreeSet::new();
            for table in tables {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(p)
                        .await?;
                columns.extend(names.into_iter().map(|c| (table.clone(), c)));
            }
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
            )
            .fetch_all(p)
            .await?;
            (columns, indexes.into_iter().collect())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_sqlite_migrate_to_the_same_tables_columns_and_indexes() {
    let postgres = TestDb::new(Backend::Postgres).await.unwrap();
    let sqlite = TestDb::new(Backend::Sqlite).await.unwrap();
    let (pg_columns, pg_indexes) = shape(&postgres.db).await.unwrap();
    let (lite_columns, lite_indexes) = shape(&sqlite.db).await.unwrap();
    postgres.cleanup().await.unwrap();
    sqlite.cleanup().await.unwrap();
    assert!(pg_columns.len() > 20, "{pg_columns:?}");
    assert_eq!(
        pg_columns
            .symmetric_difference(&lite_columns)
            .collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "columns on one backend only"
    );
    assert!(!pg_indexes.is_empty());
    assert_eq!(
        pg_indexes
            .symmetric_difference(&lite_indexes)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "indexes on one backend only"
    );
}

/// Each pool the server opens on Postgres (commands, reads, read models, a
/// rebuild's single session) runs with JIT off: LLVM compiles of the
/// projectors' batch statements took 140-390 ms each (ADR 0007); and,
/// where the server is on the loopback and TLS only preferred, without TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_postgres_session_runs_without_jit() {
    let postgres = TestDb::new(Backend::Postgres).await.unwrap();
    let url = postgres.url.clone().unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap();
    let plain = matches!(
        plain_on_loopback(options).get_ssl_mode(),
        PgSslMode::Disable
    );
    let pools = [
        postgres.db.clone(),
        postgres.db.dedicated(2).await.unwrap(),
        postgres.db.for_read_models(2).await.unwrap(),
        postgres.db.single_session().await.unwrap(),
    ];
    for (n, db) in pools.iter().enumerate() {
        let Db::Postgres(pool) = db else {
            panic!("pool {n} is not on Postgres")
        };
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(jit, "off", "pool {n}");
        // A server on the loopback is reached without TLS (ADR 0029).
        let tls: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(pool)
                .await
                .unwrap();
        if plain {
            assert_eq!(tls, Some(false), "pool {n}: TLS on a loopback session");
        }
    }
    postgres.cleanup().await.unwrap();
}
