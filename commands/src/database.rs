//! Connecting to the one database that holds the log and the read models, and
//! bringing its schema up to date.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The embedded database's file name inside the data directory.
pub const SQLITE_FILE: &str = "anamnesis.db";

/// How long a Postgres pool waits for a connection, a new one included,
/// before it gives up (then the request answers `503 database_unavailable`).
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// `options`, reaching a server on this machine's loopback without TLS when
/// TLS was only preferred (`sslmode=prefer`, the default), not required.
///
/// `prefer` asks for encryption where it costs nothing to ask; on the
/// loopback it protects nothing (whoever can read the loopback is root on
/// the host) and cost 5-16 % of the CPU in the load tests (ADR 0029).
/// `require` and `verify-*` are kept as given, on the loopback too.
pub fn plain_on_loopback(options: PgConnectOptions) -> PgConnectOptions {
    let host = options
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if loopback
        && options.get_socket().is_none()
        && matches!(options.get_ssl_mode(), PgSslMode::Prefer)
    {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    }
}

/// A pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Why the database could not be used. Messages name the place, never a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot reach the database at {place}: {cause}")]
    Unreachable { place: String, cause: String },
    #[error("the database schema is at version {version}, newer than this binary knows; run a newer anamnesis")]
    SchemaTooNew { version: i64 },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("the database schema is not current ({pending} migration(s) pending) and this role cannot apply them ({cause}); run `anamnesis migrate` as the schema owner, or with --owner-url")]
    NotMigrated { pending: usize, cause: String },
    #[error("cannot use data directory {path}: {cause}")]
    DataDir { path: PathBuf, cause: String },
}

/// Keeps the embedded database to its owner: the file (password hashes,
/// second-factor secrets, read models in the clear) is made, or tightened
/// if an older release made it with the default mode, to 0600, and so are
/// its `-wal` and `-shm` (SQLite gives them the database file's mode when
/// it makes them); the data directory to 0700 when this run `made` it (a
/// directory the operator named is theirs to set).
#[cfg(unix)]
fn private(data_dir: &Path, made: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if made {
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // Made only if missing: opening and closing a descriptor on a database
    // file this process has open drops every POSIX lock SQLite holds on it
    // (the tests' own connections, another pool), which SQLite answers
    // with I/O errors. A mode change opens nothing.
    let file = data_dir.join(SQLITE_FILE);
    if !file.exists() {
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file);
        match made {
            Ok(_) => {}
            // Made meanwhile by another process: its mode is set below.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("{SQLITE_FILE}{suffix}"));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn private(_: &Path, _: bool) -> std::io::Result<()> {
    Ok(())
}

/// Creates the database `options` names, connecting to the server's
/// `postgres` database with the same credentials.
async fn create_database(options: &PgConnectOptions, place: &str) -> Result<(), DbError> {
    let name = options.get_database().unwrap_or("").to_owned();
    let refused = |cause: String| DbError::Unreachable {
        place: place.to_owned(),
        cause: format!(
            "database {name} does not exist and could not be created ({cause}); \
             create it with `createdb {name}` as a role that may, then start again"
        ),
    };
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(|e| refused(e.to_string()))?;
    let quoted = name.replace('"', "\"\"");
    let created = sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        // Another process created it meanwhile.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(refused(e.to_string())),
    }
}

impl Db {
    /// Postgres when `database_url` is set, otherwise the embedded SQLite file
    /// under `data_dir`.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Self, DbError> {
        match database_url {
            Some(url) if url.starts_with("sqlite:") => Self::sqlite_url(url, true).await,
            Some(url) => Self::postgres(url, 32).await,
            None => Self::sqlite(data_dir).await,
        }
    }

    /// [`Self::connect`] to a database that must be there already: one that
    /// is missing is an error, never created. A command that reads the log
    /// (verify, backup, history, rebuild) pointed at a mistyped name or
    /// directory would otherwise report an empty log, and succeed.
    pub async fn connect_existing(
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, DbError> {
        match database_url {
            Some(url) if url.starts_with("sqlite:") => Self::sqlite_url(url, false).await,
            Some(url) => Self::postgres_opening(url, 32, false).await,
            None => {
                let file = data_dir.join(SQLITE_FILE);
                if !file.exists() {
                    return Err(DbError::Unreachable {
                        place: file.display().to_string(),
                        cause: "there is no database here (run `anamnesis serve` or \
                                `anamnesis restore` to make one)"
                            .into(),
                    });
                }
                let options = SqliteConnectOptions::new().filename(file);
                Self::sqlite_with(options, data_dir.display().to_string(), false).await
            }
        }
    }

    /// A Postgres pool of at most `max_connections`.
    ///
    /// Every session runs with `jit = off`: our statements are short, and
    /// the planner's cost estimates for a batch over small, unanalysed
    /// tables (the notifications projector's deliveries insert: 0.1-9.8
    /// million) crossed the JIT thresholds, so that statement was compiled
    /// with LLVM on every batch, 140-390 ms each, on the shared cores
    /// (ADR 0007).
    ///
    /// A loopback server with the default `sslmode=prefer` is reached
    /// without TLS ([`plain_on_loopback`], ADR 0029).
    pub async fn postgres(url: &str, max_connections: u32) -> Result<Self, DbError> {
        Self::postgres_opening(url, max_connections, true).await
    }

    /// [`Self::postgres`]; a database that does not exist is created only
    /// when `create`.
    async fn postgres_opening(
        url: &str,
        max_connections: u32,
        create: bool,
    ) -> Result<Self, DbError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| DbError::Unreachable {
                place: "DATABASE_URL".into(),
                cause: format!("not a valid postgres URL ({e})"),
            })?
            .options([("jit", "off")]);
        let options = plain_on_loopback(options);
        let place = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        // One connection first: its error says why (refused, no such
        // database, authentication), where a pool would only time out.
        let unreachable = |e: sqlx::Error| DbError::Unreachable {
            place: place.clone(),
            cause: e.to_string(),
        };
        let connect = || async {
            tokio::time::timeout(Duration::from_secs(10), options.connect())
                .await
                .map_err(|_| DbError::Unreachable {
                    place: place.clone(),
                    cause: "no answer within 10 s".into(),
                })
        };
        let probe = match connect().await? {
            Err(sqlx::Error::Database(e)) if create && e.code().as_deref() == Some("3D000") => {
                // No such database: create it when this role may, as a
                // first run on a fresh server expects; otherwise say how.
                create_database(&options, &place).await?;
                connect().await?.map_err(unreachable)?
            }
            other => other.map_err(unreachable)?,
        };
        probe.close().await.map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Ok(Db::Postgres(pool))
    }

    /// The embedded database in `data_dir`, created if missing.
    pub async fn sqlite(data_dir: &Path) -> Result<Self, DbError> {
        let fault = |e: std::io::Error| DbError::DataDir {
            path: data_dir.to_owned(),
            cause: e.to_string(),
        };
        let made = !data_dir.exists();
        std::fs::create_dir_all(data_dir).map_err(fault)?;
        private(data_dir, made).map_err(fault)?;
        let options = SqliteConnectOptions::new().filename(data_dir.join(SQLITE_FILE));
        Self::sqlite_with(options, data_dir.display().to_string(), true).await
    }

    /// A private, migrated, in-memory SQLite database, gone when dropped:
    /// where replay folds a record as of a moment with the live projectors.
    pub async fn scratch() -> Result<Self, DbError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| DbError::Migration(e.to_string()))?
            .foreign_keys(true);
        // One connection that never closes: an in-memory database lives
        // and dies with its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| DbError::Unreachable {
                place: "in-memory scratch database".into(),
                cause: e.to_string(),
            })?;
        let db = Db::Sqlite(pool);
        db.migrate().await?;
        Ok(db)
    }

    async fn sqlite_url(url: &str, create: bool) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| DbError::Unreachable {
            place: "DATABASE_URL".into(),
            cause: format!("not a valid sqlite URL ({e})"),
        })?;
        Self::sqlite_with(options, url.to_owned(), create).await
    }

    async fn sqlite_with(
        options: SqliteConnectOptions,
        place: String,
        create: bool,
    ) -> Result<Self, DbError> {
        // WAL lets readers run beside the writer; synchronous=FULL makes every
        // commit durable before it is acknowledged.
        let options = options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // What is deleted (an erased patient's rows, a destroyed key) is
            // overwritten in the file, not left in free pages.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| DbError::Unreachable {
                place,
                cause: e.to_string(),
            })?;
        Ok(Db::Sqlite(pool))
    }

    /// A second, separate pool of `connections` on the same database: the
    /// event writer's own, so it never waits behind readers for a connection.
    pub async fn dedicated(&self, connections: u32) -> Result<Self, DbError> {
        self.another_pool(connections, |o| o, |o| o).await
    }

    /// A separate pool of `connections` for writing read models, whose
    /// commits do not wait for the disk: `synchronous_commit = off` on
    /// Postgres, `synchronous = NORMAL` (WAL) on SQLite. A read model is
    /// derived and commits its checkpoint with its output, so a crash loses
    /// at most its last few batches, atomically, and they are projected
    /// again from the log, which stays fully durable. The disk's flushes
    /// are left to the event writer, whose commits clients wait for.
    pub async fn for_read_models(&self, connections: u32) -> Result<Self, DbError> {
        self.another_pool(
            connections,
            |o| o.options([("synchronous_commit", "off")]),
            |o| o.synchronous(SqliteSynchronous::Normal),
        )
        .await
    }

    /// One connection of its own that the pool never closes or replaces: a
    /// session whose temporary tables last as long as it is used (a
    /// rebuild's shadow tables). Read-model commits, as
    /// [`Db::for_read_models`].
    pub async fn single_session(&self) -> Result<Self, DbError> {
        let unreachable = |e: sqlx::Error| DbError::Unreachable {
            place: "the database".into(),
            cause: e.to_string(),
        };
        Ok(match self {
            Db::Postgres(p) => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(
                        (*p.connect_options())
                            .clone()
                            .options([("synchronous_commit", "off")]),
                    )
                    .await
                    .map_err(unreachable)?,
            ),
            Db::Sqlite(p) => Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(
                        (*p.connect_options())
                            .clone()
                            .synchronous(SqliteSynchronous::Normal),
                    )
                    .await
                    .map_err(unreachable)?,
            ),
        })
    }

    /// Another pool on this database, its connection options adjusted.
    async fn another_pool(
        &self,
        connections: u32,
        postgres: impl FnOnce(PgConnectOptions) -> PgConnectOptions,
        sqlite: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
    ) -> Result<Self, DbError> {
        let unreachable = |e: sqlx::Error| DbError::Unreachable {
            place: "the database".into(),
            cause: e.to_string(),
        };
        Ok(match self {
            Db::Postgres(p) => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                    .connect_with(postgres((*p.connect_options()).clone()))
                    .await
                    .map_err(unreachable)?,
            ),
            Db::Sqlite(p) => Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(sqlite((*p.connect_options()).clone()))
                    .await
                    .map_err(unreachable)?,
            ),
        })
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the migrations this binary carries. A database that has
    /// migrations this binary does not know is refused, untouched.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match self {
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
        };
        result.map_err(|e| match e {
            MigrateError::VersionMissing(version) => DbError::SchemaTooNew { version },
            other => DbError::Migration(other.to_string()),
        })
    }

    /// How many of this binary's migrations the database has not applied
    /// (all of them when it has no schema yet). Needs only read access.
    pub async fn pending_migrations(&self) -> Result<usize, DbError> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success";
        let applied: Result<Vec<i64>, sqlx::Error> = match self {
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        };
        let migrator = match self {
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
        };
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        let applied = match applied {
            Ok(applied) => applied,
            // No migrations table: nothing applied yet.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => Vec::new(),
            Err(e) => return Err(DbError::Migration(e.to_string())),
        };
        if let Some(version) = applied.iter().find(|v| !known.contains(v)) {
            return Err(DbError::SchemaTooNew { version: *version });
        }
        Ok(known.iter().filter(|v| !applied.contains(v)).count())
    }

    /// Makes sure the schema is current: nothing to do when it is, else
    /// migrates, and when this role lacks the rights (a least-privilege
    /// server role on Postgres) says exactly what to run instead.
    pub async fn ensure_current(&self) -> Result<(), DbError> {
        let pending = self.pending_migrations().await?;
        if pending == 0 {
            return Ok(());
        }
        self.migrate().await.map_err(|e| match e {
            DbError::Migration(cause) => DbError::NotMigrated { pending, cause },
            other => other,
        })
    }

    /// Closes every connection (used before exit and by tests).
    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }
}

impl Db {
    /// This process's turn to write, on SQLite: one gate per database file,
    /// shared by every writer in the process (the event writer, the
    /// projectors), held until the returned guard drops. SQLite lets one
    /// transaction write at a time, and a writer that finds the lock taken
    /// sleeps and polls (its busy handler backs off up to 100 ms a try), so
    /// two writers of one process meeting at the lock lose tens of
    /// milliseconds each time; queueing here first hands the lock over the
    /// moment it is free. Other processes (a CLI command beside a server)
    /// still meet at SQLite's own lock. `None` on Postgres, whose writers
    /// wait on row locks without sleeping.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Db::Sqlite(pool) => Some(sqlite_write_gate(pool).lock_owned().await),
            Db::Postgres(_) => None,
        }
    }
}

fn sqlite_write_gate(pool: &sqlx::SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    gates.entry(file).or_default().clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    fn mode(url: &str) -> PgSslMode {
        plain_on_loopback(PgConnectOptions::from_str(url).unwrap()).get_ssl_mode()
    }

    #[test]
    fn tls_is_dropped_only_where_it_was_merely_preferred_on_the_loopback() {
        for url in [
            "postgres://a@127.0.0.1/db?sslmode=prefer",
            "postgres://a@127.0.0.9:6000/db?sslmode=prefer",
            "postgres://a@localhost/db?sslmode=prefer",
            "postgres://a@[::1]/db?sslmode=prefer",
        ] {
            assert!(matches!(mode(url), PgSslMode::Disable), "{url}");
        }
        for (url, kept) in [
            (
                "postgres://a@127.0.0.1/db?sslmode=require",
                PgSslMode::Require,
            ),
            (
                "postgres://a@localhost/db?sslmode=verify-full",
                PgSslMode::VerifyFull,
            ),
            (
                "postgres://a@[::1]/db?sslmode=verify-ca",
                PgSslMode::VerifyCa,
            ),
            (
                "postgres://a@db.clinic.example/db?sslmode=prefer",
                PgSslMode::Prefer,
            ),
            ("postgres://a@10.0.0.5/db?sslmode=prefer", PgSslMode::Prefer),
        ] {
            assert_eq!(
                format!("{:?}", mode(url)),
                format!("{kept:?}"),
                "{url}: kept as given"
            );
        }
    }
}
