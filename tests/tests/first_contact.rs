//! What a new user meets first: the real binary, started as the README says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Stdio;
use std::time::Duration;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::server::binary;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Starts `serve`, returns what it printed up to "listening" and the
/// admin hint (if any), then stops it.
async fn first_lines(args: &[String]) -> anyhow::Result<(Vec<String>, String)> {
    let mut child = tokio::process::Command::new(binary()?)
        .args(args)
        .args(["--listen", "127.0.0.1:0", "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    // Up to "listening", then whatever follows at once (the hint, if any).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listening = seen.iter().any(|l| l.contains("listening"));
        let wait = if listening {
            Duration::from_millis(500)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, lines.next_line()).await {
            Ok(Ok(Some(line))) => seen.push(line),
            _ => break,
        }
    }
    child.start_kill()?;
    let out = child.wait_with_output().await?;
    Ok((seen, String::from_utf8_lossy(&out.stderr).into_owned()))
}

async fn add_admin(args: &[String]) -> anyhow::Result<std::process::Output> {
    let mut child = tokio::process::Command::new(binary()?)
        .args(args)
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long passphrase")
        .await?;
    Ok(child.wait_with_output().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_announces_itself_once_ready_and_hints_at_the_first_admin_only_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let args = vec!["--data-dir".to_owned(), dir.path().display().to_string()];
    let (lines, stderr) = first_lines(&args).await.unwrap();
    let text = lines.join("\n");
    assert!(
        text.contains("anamnesis listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("users add --username admin"), "{text}");
    // The hint names the program as it was started, with its data directory.
    assert!(
        text.contains(&binary().unwrap().display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&format!("--data-dir {}", dir.path().display())),
        "{text}"
    );
    // Logs written to a pipe or a file carry no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    let added = add_admin(&args).await.unwrap();
    assert!(added.status.success(), "{added:?}");
    let (lines, _) = first_lines(&args).await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("listening"), "{text}");
    assert!(
        !text.contains("users add"),
        "hint shown with an admin present: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_missing_database_is_created_and_the_cli_logs_no_warning() {
    let t = TestDb::new(Backend::Postgres).await.unwrap();
    let mut missing: sqlx::postgres::PgConnectOptions = t.url.clone().unwrap().parse().unwrap();
    let name = format!("{}_fresh", missing.get_database().unwrap());
    missing = missing.database(&name);
    let url = sqlx::ConnectOptions::to_url_lossy(&missing).to_string();
    let args = vec!["--database-url".to_owned(), url];
    let added = add_admin(&args).await.unwrap();
    let stderr = String::from_utf8_lossy(&added.stderr).into_owned();
    let server: sqlx::postgres::PgConnectOptions =
        anamnesis_tests::db::postgres_server_url().parse().unwrap();
    let mut admin = sqlx::ConnectOptions::connect(&server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    t.cleanup().await.unwrap();
    assert!(added.status.success(), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

anamnesis_tests::on_both_backends!(a_locked_out_admin_is_let_back_in_from_the_command_line);

async fn a_locked_out_admin_is_let_back_in_from_the_command_line(
    backend: Backend,
) -> anyhow::Result<()> {
    use anamnesis_tests::fixtures::{admin, ADMIN_PASSWORD};
    let s = anamnesis_tests::server::TestServer::start(backend).await?;
    let token = admin(&s).await?;
    for _ in 0..5 {
        let r = s
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"username": "admin", "password": "not the password"})),
                &[],
            )
            .await?;
        assert_eq!(r.status, 401);
    }
    anyhow::ensure!(
        s.login("admin", ADMIN_PASSWORD).await.is_err(),
        "not locked"
    );
    let out = s
        .cli(
            &[
                "users",
                "reset-password",
                "--username",
                "admin",
                "--password-stdin",
            ],
            "a brand new passphrase",
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.login("admin", "a brand new passphrase").await?;
    // Every session ended with the reset: the old token is refused.
    let r = s
        .call(
            "POST",
            "/v1/users/nobody/deactivate",
            Some(&token),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 401, "{r:?}");
    s.stop().await
}
