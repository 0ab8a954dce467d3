//! Several server processes on one Postgres: each serves read-your-writes,
//! each projector runs active in one of them, and when that process is
//! killed another takes over; a restarted process serves `X-Min-Position`
//! reads without any new write. Real processes of the real binary, killed
//! with SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Stdio;
use std::time::Duration;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::{patient, ADMIN_PASSWORD, PASSWORD};
use anamnesis_tests::server::{binary, TEST_TOKEN_KEY};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One `anamnesis serve` process.
struct Instance {
    child: tokio::process::Child,
    base: String,
}

fn common_args(t: &TestDb, data_dir: &std::path::Path) -> Vec<String> {
    vec![
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--token-key".into(),
        TEST_TOKEN_KEY.into(),
        "--master-key".into(),
        anamnesis_tests::server::TEST_MASTER_KEY.into(),
        "--database-url".into(),
        t.url.clone().expect("a Postgres test database"),
        // One client address and token at full speed: no rate limits.
        "--auth-rate-per-minute".into(),
        "0".into(),
        "--token-rate-per-second".into(),
        "0".into(),
    ]
}

impl Instance {
    async fn start(args: &[String]) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(binary()?)
            .args(args)
            // Admins sign in in one step here (no second factor).
            .args(["--mfa-roles", ""])
            .args(["--listen", "127.0.0.1:0", "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(at) = line.split("listening on ").nth(1) {
                    let url = at.split_whitespace().next().unwrap_or("").to_owned();
                    return Ok::<String, anyhow::Error>(url);
                }
            }
            anyhow::bail!("serve exited before listening")
        })
        .await??;
        // Keep draining its output so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let instance = Self { child, base };
        instance.ready().await?;
        Ok(instance)
    }

    async fn ready(&self) -> anyhow::Result<Value> {
        for _ in 0..300 {
            let r = self.call("GET", "/readyz", None, None, None).await?;
            if r.0 == 200 {
                return Ok(r.1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{} never became ready", self.base)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        min_position: Option<i64>,
    ) -> anyhow::Result<(u16, Value)> {
        let http = reqwest::Client::new();
        let mut req = http.request(
            reqwest::Method::from_bytes(method.as_bytes())?,
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(p) = min_position {
            req = req.header("X-Min-Position", p.to_string());
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
                None,
            )
            .await?;
        anyhow::ensure!(status == 200, "login: {status} {body}");
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Whether this process runs projector `name` (from `/readyz`).
    async fn runs(&self, name: &str) -> anyhow::Result<bool> {
        let (_, body) = self.call("GET", "/readyz", None, None, None).await?;
        let projections = body["projections"].as_array().cloned().unwrap_or_default();
        Ok(projections
            .iter()
            .any(|p| p["name"] == name && p["active"] == true))
    }

    /// Registers a patient; returns (id, position).
    async fn register(&self, token: &str, family: &str) -> anyhow::Result<(String, i64)> {
        let (status, body) = self
            .call(
                "POST",
                "/v1/patients",
                Some(token),
                Some(patient(family)),
                None,
            )
            .await?;
        anyhow::ensure!(status == 201, "register: {status} {body}");
        Ok((
            body["id"].as_str().unwrap_or_default().to_owned(),
            body["position"].as_i64().unwrap_or_default(),
        ))
    }

    /// Reads a patient, waiting for `position`: the answer must hold them.
    async fn read_after(&self, token: &str, id: &str, position: i64) -> anyhow::Result<Value> {
        let (status, body) = self
            .call(
                "GET",
                &format!("/v1/patients/{id}"),
                Some(token),
                None,
                Some(position),
            )
            .await?;
        anyhow::ensure!(
            status == 200,
            "{}: read after {position}: {status} {body}",
            self.base
        );
        Ok(body)
    }
}

/// Waits until exactly one of `instances` runs projector `name`; returns its index.
async fn active_one(instances: &[&Instance], name: &str) -> anyhow::Result<usize> {
    for _ in 0..200 {
        let mut running = Vec::new();
        for (i, instance) in instances.iter().enumerate() {
            if instance.runs(name).await? {
                running.push(i);
            }
        }
        if running.len() == 1 {
            return Ok(running[0]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no single active {name} projector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_read_your_writes_and_a_projector_fails_over() {
    let t = TestDb::new(Backend::Postgres).await.unwrap();
    let data_dir = std::env::temp_dir().join(format!("anamnesis-scale-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let args = common_args(&t, &data_dir);

    let mut add = tokio::process::Command::new(binary().unwrap())
        .args(&args)
        .args([
            "users",
            "add",
            "--username",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    stdin.write_all(ADMIN_PASSWORD.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(add.wait().await.unwrap().success());

    let one = Instance::start(&args).await.unwrap();
    let two = Instance::start(&args).await.unwrap();
    let admin = one.login("admin", ADMIN_PASSWORD).await.unwrap();
    let (status, body) = one
        .call(
            "POST",
            "/v1/users",
            Some(&admin),
            Some(json!({"username": "doctor", "password": PASSWORD, "role": "doctor"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let doctor = two.login("doctor", PASSWORD).await.unwrap();

    // Each projector runs in exactly one process.
    let active = active_one(&[&one, &two], "patients").await.unwrap();

    // Written on either, read right after on either: read-your-writes holds
    // on the instance whose projector stands by too.
    let (a, at_a) = one.register(&doctor, "Curie").await.unwrap();
    let (b, at_b) = two.register(&doctor, "Meitner").await.unwrap();
    for instance in [&one, &two] {
        assert_eq!(
            instance.read_after(&doctor, &a, at_a).await.unwrap()["family_name"],
            "Curie"
        );
        assert_eq!(
            instance.read_after(&doctor, &b, at_b).await.unwrap()["family_name"],
            "Meitner"
        );
    }

    // Kill the process running the projector (SIGKILL: no goodbye).
    let (mut killed, survivor) = if active == 0 { (one, two) } else { (two, one) };
    killed.child.kill().await.unwrap();
    let _ = killed.child.wait().await;

    // The survivor takes the projector over and keeps its promise.
    let (c, at_c) = survivor.register(&doctor, "Franklin").await.unwrap();
    assert_eq!(
        survivor.read_after(&doctor, &c, at_c).await.unwrap()["family_name"],
        "Franklin"
    );
    // Every projector the killed process ran moves over (each within a
    // standby interval or so; bounded here only against a hang).
    for name in ["patients", "activity"] {
        assert_eq!(active_one(&[&survivor], name).await.unwrap(), 0, "{name}");
    }

    // A restarted process answers an X-Min-Position read at once, without
    // any new write to wake it: its position comes from the checkpoint.
    // (The doctor's token from before: a login would be a write.)
    let restarted = Instance::start(&args).await.unwrap();
    assert_eq!(
        restarted.read_after(&doctor, &c, at_c).await.unwrap()["family_name"],
        "Franklin"
    );
    assert!(
        !restarted.runs("patients").await.unwrap(),
        "the survivor keeps it"
    );

    drop((survivor, restarted));
    let _ = std::fs::remove_dir_all(&data_dir);
    t.cleanup().await.unwrap();
}
