//! Backup and restore through the real binary (ADR 0011): a server with
//! users, a patient and an allergy is backed up while it runs, restored into
//! a fresh database of the same or the other backend, and the restored log
//! verifies to the same head, answers the same patient read once its
//! projectors have caught up, and lets the same users log in. A restore into
//! a database that has a log, of an altered file, and of a file cut short
//! are refused, and leave the database empty.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::schedule::{account, book, enroll, hours, set_hours, EVERY_DAY};
use anamnesis_tests::server::{binary, TestServer};
use serde_json::{json, Value};

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn to_postgres() {
        round_trip(Backend::Postgres, Backend::Postgres)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn to_sqlite() {
        round_trip(Backend::Postgres, Backend::Sqlite)
            .await
            .unwrap()
    }
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn to_sqlite() {
        round_trip(Backend::Sqlite, Backend::Sqlite).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn to_postgres() {
        round_trip(Backend::Sqlite, Backend::Postgres)
            .await
            .unwrap()
    }
}

/// Commands that work on a clinic's log, pointed at a database that is not
/// there (a mistyped directory or name), fail saying so and make nothing:
/// they once made an empty database and reported "chain verified: 0
/// events", or wrote an empty backup, and exited 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_missing_database_fail_and_make_none() {
    missing_database().await.unwrap()
}

async fn missing_database() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let nowhere = work.path().join("no-such-dir");
    let missing = format!(
        "{}_missing_{}",
        anamnesis_tests::db::TEST_DB_PREFIX,
        uuid::Uuid::now_v7().simple()
    );
    let server = anamnesis_tests::db::postgres_server_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{missing}");
    let out = work.path().join("b.backup");
    let out_arg = out.display().to_string();
    let commands: [&[&str]; 4] = [
        &["replay", "verify"],
        &["backup", "--out", &out_arg],
        &["rebuild", "--all"],
        &[
            "replay",
            "history",
            "--patient",
            "01a23599-0000-7000-8000-000000000000",
        ],
    ];
    for args in commands {
        for postgres in [false, true] {
            let mut cmd = tokio::process::Command::new(binary()?);
            cmd.env(
                "ANAMNESIS_MASTER_KEY",
                anamnesis_tests::server::TEST_MASTER_KEY,
            )
            .arg("--data-dir")
            .arg(&nowhere);
            if postgres {
                cmd.arg("--database-url").arg(&url);
            }
            let (ok, said) = text(cmd.args(args).stdin(Stdio::null()).output().await?);
            assert!(!ok, "{args:?} (postgres: {postgres}) succeeded: {said}");
            assert!(
                said.contains("cannot reach the database"),
                "{args:?}: {said}"
            );
        }
        assert!(!out.exists(), "{args:?} wrote a backup");
    }
    assert!(
        !nowhere.join("anamnesis.db").exists(),
        "a database was made"
    );
    let admin = sqlx::postgres::PgPool::connect(&server).await?;
    let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&missing)
        .fetch_one(&admin)
        .await?;
    assert_eq!(made, 0, "a Postgres database was made");
    Ok(())
}

/// Runs the binary against `db` (its data directory, or `dir` for
/// Postgres, and its URL).
async fn cli(db: &TestDb, dir: &Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut cmd = tokio::process::Command::new(binary()?);
    cmd.env(
        "ANAMNESIS_MASTER_KEY",
        anamnesis_tests::server::TEST_MASTER_KEY,
    );
    cmd.arg("--data-dir").arg(db.data_dir().unwrap_or(dir));
    if let Some(url) = &db.url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(text(cmd.output().await?))
}

fn text(out: Output) -> (bool, String) {
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The word after `label` in `text` (a head hash, a count).
fn after<'a>(text: &'a str, label: &str) -> &'a str {
    let rest = text.split(label).nth(1).unwrap_or("");
    rest.split([' ', ',', ';', '\n']).next().unwrap_or("")
}

/// The TOTP step of now; in the last two seconds of a step, waits for the
/// next, so that a code of the step before still counts when it lands.
async fn totp_step() -> u64 {
    loop {
        let now = chrono::Utc::now().timestamp();
        if now % 30 < 28 {
            return now as u64 / 30;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn round_trip(from: Backend, to: Backend) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let s = TestServer::start(from).await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_id) = account(&s, &admin, "dr.house", "doctor").await?;
    let desk = user(&s, &admin, "desk", "staff").await?;
    let (_, marie) = patient_account(&s, "marie", "Curie").await?;
    join_care(&s, &admin, &marie, &doctor).await?;
    let allergy_path = format!("/v1/patients/{marie}/allergies");
    let latex = json!({"substance": "Latex", "reaction": "rash", "severity": "mild"});
    let keyed = [("Idempotency-Key", "allergy-1".to_owned())];
    let allergy = s
        .call(
            "POST",
            &allergy_path,
            Some(&doctor),
            Some(latex.clone()),
            &keyed,
        )
        .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    let provider = enroll(&s, &admin, &doctor_id, "Dr House", "Diagnostics").await?;
    set_hours(
        &s,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("00:00", "23:55")]),
        30,
    )
    .await?;
    // 10:00 UTC three days ahead: "now + 3 days" runs past the 23:55 end
    // of the working day when the test runs late in the (UTC) evening.
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
    let slot = format!("{day}T10:00:00Z");
    let booked = book(&s, &desk, &provider, &marie, &slot).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment_path = format!("/v1/appointments/{}", booked.body["id"].as_str().unwrap());
    let appointment = s
        .call("GET", &appointment_path, Some(&desk), None, &at(&booked))
        .await?;
    assert_eq!(appointment.status, 200, "{appointment:?}");
    let before = read_patient(&s, &doctor, &marie, Some(&booked)).await?;
    assert_eq!(before.status, 200, "{before:?}");

    // The desk enrols a second factor: its secret is a credential beside
    // the log, backed up and restored with it (ADR 0025).
    let started = s
        .call("POST", "/v1/me/mfa/totp", Some(&desk), None, &[])
        .await?;
    assert_eq!(started.status, 200, "{started:?}");
    let totp = totp_rs::TOTP::from_url(started.body["otpauth_uri"].as_str().unwrap()).unwrap();
    let enrolled_step = totp_step().await - 1;
    let code = json!({"code": totp.generate(enrolled_step * 30)});
    let confirmed = s
        .call(
            "POST",
            "/v1/me/mfa/totp/confirm",
            Some(&desk),
            Some(code),
            &[],
        )
        .await?;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");

    // Backed up while the server runs.
    let file = work.path().join("clinic.backup");
    let file_arg = file.display().to_string();
    let out = s.cli(&["backup", "--out", &file_arg], "").await?;
    let (ok, backed_up) = text(out);
    assert!(ok, "backup failed: {backed_up}");
    let head_hash = after(&backed_up, "head hash ").to_owned();
    let head: i64 = after(&backed_up, "up to position ").parse()?;
    assert_eq!(head_hash.len(), 64, "{backed_up}");
    eprintln!("{backed_up}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "a backup must be readable by its owner only"
        );
    }
    s.stop().await?;

    // Restored into a fresh database of the other backend.
    let target = TestDb::new(to).await?;
    let (ok, restored) = cli(&target, work.path(), &["restore", "--from", &file_arg]).await?;
    assert!(ok, "restore failed: {restored}");
    eprintln!("{restored}");
    assert_eq!(after(&restored, "head hash "), head_hash, "{restored}");
    let (ok, verified) = cli(&target, work.path(), &["replay", "verify"]).await?;
    assert!(ok, "verify failed: {verified}");
    assert_eq!(after(&verified, "head hash "), head_hash, "{verified}");

    // A second restore into it is refused, and changes nothing.
    let (ok, again) = cli(&target, work.path(), &["restore", "--from", &file_arg]).await?;
    assert!(!ok, "a restore into a database with a log passed: {again}");
    assert!(again.contains("is not empty"), "{again}");

    // A server on the restored database rebuilds its read models from 0,
    // answers the same read, and knows the same passwords.
    let url = target.url.clone();
    let r = TestServer::start_on(target, url, &[]).await?;
    let doctor = r.login("dr.house", PASSWORD).await?;
    r.login("admin", ADMIN_PASSWORD).await?;
    r.login("marie", PASSWORD).await?;
    let read = r
        .call(
            "GET",
            &format!("/v1/patients/{marie}"),
            Some(&doctor),
            None,
            &[("X-Min-Position", head.to_string())],
        )
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body, before.body);
    let head_header = [("X-Min-Position", head.to_string())];
    // The desk's second factor came back with the log.
    let body = json!({"username": "desk", "password": PASSWORD});
    let challenge = r
        .call("POST", "/v1/auth/login", None, Some(body), &[])
        .await?;
    assert_eq!(challenge.body["mfa_required"], true, "{challenge:?}");
    let step = (enrolled_step + 1).max(totp_step().await - 1);
    let body = json!({"challenge": challenge.body["challenge"], "code": totp.generate(step * 30)});
    let answered = r
        .call("POST", "/v1/auth/login/mfa", None, Some(body), &[])
        .await?;
    assert_eq!(answered.status, 200, "{answered:?}");
    let desk = answered.body["access_token"].as_str().unwrap().to_owned();
    let read = r
        .call("GET", &appointment_path, Some(&desk), None, &head_header)
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body, appointment.body);

    // The restored idempotency key answers a retry as before, writing
    // nothing; the booked slot is still taken.
    let events = r.event_count().await?;
    let retry = r
        .call("POST", &allergy_path, Some(&doctor), Some(latex), &keyed)
        .await?;
    assert_eq!(retry.status, 201, "{retry:?}");
    assert_eq!(
        retry.body, allergy.body,
        "the retry answers as the first did"
    );
    assert_eq!(r.event_count().await?, events, "the retry wrote events");
    let (_, pierre) = patient_account(&r, "pierre", "Curie-2").await?;
    let taken = book(&r, &desk, &provider, &pierre, &slot).await?;
    assert_eq!(
        (taken.status, taken.code()),
        (409, "slot_taken"),
        "{taken:?}"
    );
    r.stop().await?;

    // An altered file is refused, naming the position, and leaves the
    // database empty.
    let altered = work.path().join("altered.backup");
    let position = alter_payload(&file, &altered)?;
    let fresh = TestDb::new(to).await?;
    let altered_arg = altered.display().to_string();
    let (ok, refused) = cli(&fresh, work.path(), &["restore", "--from", &altered_arg]).await?;
    assert!(!ok, "an altered backup was restored: {refused}");
    assert!(
        refused.contains(&format!("fails verification at position {position}:")),
        "{refused}"
    );
    assert!(!refused.contains("Curie"), "{refused}");

    // So is a file cut short (here, of its trailer).
    let cut = work.path().join("cut.backup");
    let whole = std::fs::read_to_string(&file)?;
    let lines: Vec<&str> = whole.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n")?;
    let cut_arg = cut.display().to_string();
    let (ok, refused) = cli(&fresh, work.path(), &["restore", "--from", &cut_arg]).await?;
    assert!(!ok, "a backup without its trailer was restored: {refused}");
    assert!(refused.contains("cut short"), "{refused}");

    let (ok, empty) = cli(&fresh, work.path(), &["replay", "verify"]).await?;
    assert!(ok, "{empty}");
    assert!(empty.contains("chain verified: 0 events"), "{empty}");
    fresh.cleanup().await?;
    Ok(())
}

/// Copies the backup at `from` to `to` with the payload of the patient's
/// first event changed (one character of its ciphertext); returns its
/// position.
fn alter_payload(from: &Path, to: &PathBuf) -> anyhow::Result<i64> {
    let mut position = 0;
    let mut lines = Vec::new();
    for line in std::fs::read_to_string(from)?.lines() {
        let mut value: Value = serde_json::from_str(line)?;
        if let Some(event) = value.get_mut("event") {
            let payload = event["payload"].as_str().unwrap_or("").to_owned();
            if position == 0 && event["event_type"] == "patient.registered" {
                position = event["global_position"].as_i64().unwrap_or(0);
                event["payload"] = Value::String(payload.replacen("\"}", "A\"}", 1));
            }
        }
        lines.push(serde_json::to_string(&value)?);
    }
    anyhow::ensure!(position > 0, "no event names the patient");
    std::fs::write(to, lines.join("\n") + "\n")?;
    Ok(position)
}
