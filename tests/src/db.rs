//! A fresh database per test: a new Postgres database, or a new SQLite file
//! in a temporary directory. A missing Postgres fails the test with a message
//! saying so; nothing is skipped.

use std::str::FromStr;

use anamnesis_commands::Db;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The server used for Postgres tests; override with `TEST_DATABASE_URL`
/// (any database on the server: tests create their own next to it).
pub fn postgres_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

/// Prefix of every database a test creates; `deploy/test.sh` drops leftovers.
pub const TEST_DB_PREFIX: &str = "anamnesis_test_";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A migrated, empty database that belongs to one test.
pub struct TestDb {
    pub db: Db,
    /// For Postgres: the database's URL.
    pub url: Option<String>,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
    dir_path: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A new database on `backend`, migrated.
    pub async fn new(backend: Backend) -> anyhow::Result<Self> {
        Self::with_pool(backend, 40).await
    }

    /// The same, with a Postgres pool of `max_connections`.
    pub async fn with_pool(backend: Backend, max_connections: u32) -> anyhow::Result<Self> {
        let t = match backend {
            Backend::Postgres => Self::postgres(max_connections).await?,
            Backend::Sqlite => Self::sqlite().await?,
        };
        t.db.migrate().await?;
        Ok(t)
    }

    /// A migrated database at `url` on a Postgres server of the test's own
    /// (created when missing); cleaning it up closes the pool and leaves the
    /// database to that server.
    pub async fn at_url(url: &str) -> anyhow::Result<Self> {
        let db = Db::postgres(url, 40).await?;
        db.migrate().await?;
        Ok(Self {
            db,
            url: Some(url.to_owned()),
            name: None,
            _dir: None,
            dir_path: None,
        })
    }

    /// A new, empty Postgres database that nobody has migrated.
    pub async fn new_unmigrated() -> anyhow::Result<Self> {
        Self::postgres(5).await
    }

    async fn postgres(max_connections: u32) -> anyhow::Result<Self> {
        let server = postgres_server_url();
        let name = format!("{TEST_DB_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let options = PgConnectOptions::from_str(&server)?;
        let mut admin = options.clone().connect().await.map_err(|e| {
            anyhow::anyhow!(
                "Postgres is required for this test and is not reachable at {server}: {e}. \
                 Run deploy/test.sh, which starts it, or set TEST_DATABASE_URL."
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = options.database(&name).to_url_lossy().to_string();
        let db = Db::postgres(&url, max_connections).await?;
        Ok(Self {
            db,
            url: Some(url),
            name: Some(name),
            _dir: None,
            dir_path: None,
        })
    }

    async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = Db::sqlite(dir.path()).await?;
        Ok(Self {
            db,
            url: None,
            name: None,
            dir_path: Some(dir.path().to_owned()),
            _dir: Some(dir),
        })
    }

    /// Another handle on the same database, with its own pool; dropping or
    /// cleaning it up leaves the database to its owner.
    pub async fn attach(&self) -> anyhow::Result<Self> {
        let db = match (&self.url, &self.dir_path) {
            (Some(url), _) => Db::postgres(url, 10).await?,
            (None, Some(dir)) => Db::sqlite(dir).await?,
            (None, None) => anyhow::bail!("a test database has a URL or a directory"),
        };
        Ok(Self {
            db,
            url: self.url.clone(),
            name: None,
            _dir: None,
            dir_path: self.dir_path.clone(),
        })
    }

    /// For SQLite: the data directory holding the database file.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.dir_path.as_deref()
    }

    /// Closes the pool and drops the test's Postgres database.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some(name) = &self.name {
            let mut admin = PgConnectOptions::from_str(&postgres_server_url())?
                .connect()
                .await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
        }
        Ok(())
    }
}
