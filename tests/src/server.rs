//! A real Anamnesis server on a free port, over a test's own database, and a
//! small HTTP client for it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anamnesis_api::config::Settings;
use anyhow::Context;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::db::{Backend, TestDb};

/// A running server; stopped (gracefully) by [`TestServer::stop`].
pub struct TestServer {
    pub base: String,
    pub db: TestDb,
    /// The database URL the server runs with (Postgres), which may name a
    /// role other than the test database's owner.
    pub url: Option<String>,
    pub settings: Settings,
    pub http: reqwest::Client,
    /// The extra arguments it was started with, kept for restarts.
    extra: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The token signing key every test server uses (so tests can sign tokens).
pub const TEST_TOKEN_KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

/// The master key every test server uses, so that several instances and the
/// command line of one test open the same patients' keys.
pub const TEST_MASTER_KEY: &str =
    "7e57a11c0ffee0ddba11ad5eed5b0a7d00d1eca5edfacade0b5e55edc0de7e57";

/// The keys a test server opens the log with ([`TEST_MASTER_KEY`]), for a
/// test that writes through the command layer beside it.
pub fn test_keyring() -> anyhow::Result<anamnesis_commands::Keyring> {
    let master =
        anamnesis_commands::MasterKey::from_hex(TEST_MASTER_KEY).map_err(anyhow::Error::msg)?;
    Ok(anamnesis_commands::Keyring::new(master, true))
}

/// A response: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// The problem `code`, for error responses.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    /// The problem `field`.
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// Starts a server on `backend` with a fresh database.
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        let db = TestDb::new(backend).await?;
        let url = db.url.clone();
        Self::start_on(db, url, &[]).await
    }

    /// A second server on this one's database (and token key): another
    /// instance of the same clinic.
    pub async fn another(&self) -> anyhow::Result<Self> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        Self::start_on(self.db.attach().await?, self.url.clone(), &extra).await
    }

    /// Starts a server over `db`, connecting with `url` (Postgres; `None`
    /// for the embedded database), with `extra` arguments before `serve`.
    pub async fn start_on(db: TestDb, url: Option<String>, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch_on(db, url, extra).await?.ready().await
    }

    /// Starts a server as [`TestServer::start_on`] does, without waiting
    /// for it to be ready: for tests of a server that must refuse to be.
    pub async fn launch_on(
        db: TestDb,
        url: Option<String>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let data_dir = db.data_dir().map(PathBuf::from).unwrap_or_else(|| {
            std::env::temp_dir().join(format!("anamnesis-test-{}", uuid::Uuid::now_v7()))
        });
        let mut args = vec![
            "anamnesis".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        if !extra.contains(&"--data-dir") {
            args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
        }
        if !extra.contains(&"--no-token-key") {
            args.extend(["--token-key".to_owned(), TEST_TOKEN_KEY.to_owned()]);
        }
        if let Some(url) = &url {
            args.extend(["--database-url".to_owned(), url.clone()]);
        }
        if !extra.contains(&"--master-key") {
            args.extend(["--master-key".to_owned(), TEST_MASTER_KEY.to_owned()]);
        }
        if !extra.iter().any(|a| a.contains("-rate-")) {
            // Tests sign in many users from one address in seconds: the
            // rate limits are off unless a test sets them (tests/tests/limits.rs).
            for limit in [
                "--auth-rate-per-minute",
                "--account-rate-per-minute",
                "--token-rate-per-second",
            ] {
                args.extend([limit.to_owned(), "0".to_owned()]);
            }
        }
        if !extra.contains(&"--mfa-roles") {
            // Admin and compliance sign in in one step in tests, unless a
            // test asks for a second factor (tests/tests/mfa.rs).
            args.extend(["--mfa-roles".to_owned(), String::new()]);
        }
        args.extend(
            extra
                .iter()
                .filter(|a| **a != "--no-token-key")
                .map(|a| a.to_string()),
        );
        args.push("serve".to_owned());
        let settings = <anamnesis_api::cli::Cli as clap::Parser>::try_parse_from(args)?.settings;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = {
            let settings = settings.clone();
            tokio::spawn(async move {
                anamnesis_api::server::launch(&settings, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        };
        Ok(Self {
            base,
            db,
            url,
            settings,
            http: reqwest::Client::new(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Waits until the server answers ready, or says why not.
    pub async fn ready(self) -> anyhow::Result<Self> {
        let server = self;
        // Bound already; wait until it answers ready, or say why not.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = String::from("no answer");
        loop {
            if let Ok(r) = server
                .http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
            {
                let status = r.status();
                if status.is_success() {
                    break;
                }
                last = format!("{status}: {}", r.text().await.unwrap_or_default());
            }
            if server.task.as_ref().is_some_and(|t| t.is_finished()) {
                let mut server = server;
                if let Some(task) = server.task.take() {
                    task.await??;
                }
                anyhow::bail!("the server stopped before it was ready");
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "server did not become ready within 60 s; /readyz said {last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    /// Stops the server gracefully and starts it again on the same
    /// database and key, with the same extra arguments: a restart.
    pub async fn restart(mut self) -> anyhow::Result<Self> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await???;
        }
        let Self { db, url, extra, .. } = self;
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Self::start_on(db, url, &extra).await
    }

    /// Stops the server gracefully and hands back its database, still there.
    pub async fn shut_down(mut self) -> anyhow::Result<(TestDb, Option<String>, Settings)> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await???;
        }
        let Self {
            db, url, settings, ..
        } = self;
        Ok((db, url, settings))
    }

    /// Stops the server gracefully and drops its database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await???;
        }
        self.db.cleanup().await
    }

    /// Sends a request; `token` as Bearer, `body` as JSON, extra headers.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        reply(req.send().await?).await
    }

    /// GETs `path` and returns its status, content type and raw bytes.
    pub async fn get_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok((status, content_type, r.bytes().await?.to_vec()))
    }

    /// Sends a raw body with a content type.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        reply(req.send().await?).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let r = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"username": username, "password": password})),
                &[],
            )
            .await?;
        anyhow::ensure!(r.status == 200, "login {username}: {r:?}");
        Ok(r.body["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned())
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> anyhow::Result<i64> {
        let sql = "SELECT count(*) FROM events";
        Ok(match &self.db.db {
            anamnesis_commands::Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            anamnesis_commands::Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        })
    }

    /// Runs the real `anamnesis` binary with this server's settings.
    pub async fn cli(&self, args: &[&str], stdin: &str) -> anyhow::Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(binary()?);
        cmd.arg("--data-dir").arg(&self.settings.data_dir);
        if let Some(key) = &self.settings.master_key {
            cmd.env("ANAMNESIS_MASTER_KEY", key.expose());
        }
        if let Some(url) = &self.url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting the anamnesis binary")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
        }
        Ok(child.wait_with_output().await?)
    }
}

async fn reply(r: reqwest::Response) -> anyhow::Result<Reply> {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = r.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        content_type,
        body,
    })
}

/// The `anamnesis` binary: `ANAMNESIS_BIN`, or the workspace's debug build
/// (`deploy/test.sh` builds it before the tests run).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ANAMNESIS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug/anamnesis");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build -p anamnesis-api` first (deploy/test.sh does)",
        path.display()
    );
    Ok(path)
}
