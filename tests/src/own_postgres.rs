//! A Postgres server that belongs to one test: its own cluster (`initdb`) in a
//! temporary directory, on a free loopback port, started and stopped with
//! `pg_ctl`. For tests that stop the database under a running server; the
//! shared server on 5432 is never touched.
//!
//! The binaries are looked up under `/usr/lib/postgresql/*/bin` (the newest
//! version first), or in `PG_BIN_DIR`. Missing binaries fail the test with a
//! message saying what to install; nothing is skipped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// The owner of the cluster when the tests run as root (`initdb` refuses root).
const SERVICE_USER: &str = "postgres";

/// A running (or stopped) cluster; stopped at once when dropped.
pub struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// `initdb` and `pg_ctl` run as this user when we are root.
    run_as: Option<&'static str>,
    running: bool,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Creates a cluster on a free port and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new().prefix("anamnesis-pg-").tempdir()?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let run_as = root.then_some(SERVICE_USER);
        if let Some(user) = run_as {
            // The cluster's files and socket belong to the service user.
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .context("chown of the cluster directory")?;
            anyhow::ensure!(
                status.success(),
                "cannot hand {} to the `{user}` user: the tests run as root, and \
                 initdb refuses to run as root",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        let port = free_port()?;
        let mut own = Self {
            bin,
            data,
            port,
            run_as,
            running: false,
            _dir: dir,
        };
        let data = own.data.display().to_string();
        own.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .await?;
        own.start_again().await?;
        Ok(own)
    }

    /// The URL of database `name` on this cluster (the server creates it).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts the (stopped) cluster again, on the same port; returns once it
    /// accepts connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let socket_dir = self
            .data
            .parent()
            .context("the data directory has a parent")?
            .display()
            .to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {socket_dir} -c fsync=off \
             -c max_connections=60",
            self.port
        );
        let data = self.data.display().to_string();
        let log = format!("{socket_dir}/server.log");
        // -w: pg_ctl returns once the server accepts connections.
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await
        .with_context(|| format!("starting the test's Postgres; its log: {}", self.log()))?;
        self.running = true;
        Ok(())
    }

    /// Stops the cluster the hard way (`pg_ctl stop -m immediate`): every
    /// connection drops, as when the database host dies.
    pub async fn stop_immediately(&mut self) -> anyhow::Result<()> {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await?;
        self.running = false;
        Ok(())
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        self.data
            .parent()
            .map(|d| std::fs::read_to_string(d.join("server.log")).unwrap_or_default())
            .unwrap_or_default()
    }

    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = self.command(program, args);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .with_context(|| format!("{program} did not finish within 120 s"))?
            .with_context(|| format!("running {program}"))?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => tokio::process::Command::new(path),
        };
        cmd.args(args).kill_on_drop(true);
        cmd
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            // Synchronous: a panicking test must not leave a server behind.
            let data = self.data.display().to_string();
            let path = self.bin.join("pg_ctl");
            let mut cmd = match self.run_as {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(path);
                    c
                }
                None => Command::new(path),
            };
            let _ = cmd
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn binaries() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return check_binaries(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => anyhow::bail!(
            "this test starts a Postgres of its own and needs `initdb` and `pg_ctl`, found \
             neither under /usr/lib/postgresql/*/bin: install the Debian package `postgresql` \
             (deploy/test.sh does), or set PG_BIN_DIR to the directory holding them"
        ),
    }
}

fn check_binaries(dir: PathBuf) -> anyhow::Result<PathBuf> {
    for program in ["initdb", "pg_ctl"] {
        anyhow::ensure!(
            Path::new(&dir).join(program).exists(),
            "this test starts a Postgres of its own and needs `initdb` and `pg_ctl`, but \
             PG_BIN_DIR={} holds no `{program}`",
            dir.display()
        );
    }
    Ok(dir)
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
