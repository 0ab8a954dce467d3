//! Tampering with the log as someone holding the database would (ADR 0009):
//! the append-only triggers switched off with the database's own superuser
//! (`session_replication_role = replica` on Postgres; on SQLite whoever
//! holds the file drops them), then rows edited, deleted, inserted, moved,
//! cut off, or forged with the chain recomputed. Each is caught by the real
//! `anamnesis replay verify`, naming the position; what the keyless chain
//! cannot see is caught by a signed checkpoint, and a server started over
//! such a log refuses to be ready.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use anamnesis_commands::log::chain::event_hash;
use anamnesis_commands::{Db, LogReader, StoredEvent};
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;

on_both_backends!(
    an_edited_payload_is_caught,
    an_edited_actor_is_caught,
    a_deleted_event_is_caught,
    an_inserted_event_is_caught,
    reordered_events_are_caught,
    a_truncated_log_with_a_new_tail_is_caught,
    truncation_with_the_head_rewound_is_caught_by_a_checkpoint,
    a_forged_admin_with_the_chain_recomputed_is_caught_by_an_automatic_checkpoint,
    a_respelled_patient_id_is_caught,
);

/// The chain hashes a patient id's 16 bytes; on SQLite the column is text,
/// so the same id spelled in upper case once verified clean while the
/// patient's history (which matches the text) lost those events. Any
/// spelling but the log's own is damage, caught by verify.
async fn a_respelled_patient_id_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    let doctor = s.login("dr.house", PASSWORD).await?;
    let registered = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let position = events(&s.db.db)
        .await?
        .iter()
        .find(|e| e.patient_id.is_some())
        .map(|e| e.global_position)
        .expect("an event about the patient");
    let respell = match backend {
        // Postgres keeps the column as a uuid: no other spelling exists.
        Backend::Postgres => return s.stop().await,
        Backend::Sqlite => format!(
            "UPDATE events SET patient_id = upper(patient_id) WHERE global_position = {position}"
        ),
    };
    tamper(&s.db.db, &[respell.as_str()]).await?;
    let (ok, text) = verify(&s, &[]).await?;
    assert!(!ok, "verify passed a respelled patient id: {text}");
    assert!(
        text.contains(&format!("position {position}")) && text.contains("patient_id"),
        "{text}"
    );
    s.stop().await
}

/// A server with a few events: an admin, two users, their logins.
async fn populated(backend: Backend, extra: &[&str]) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let s = TestServer::start_on(db, url, extra).await?;
    let admin = admin(&s).await?;
    user(&s, &admin, "dr.house", "doctor").await?;
    user(&s, &admin, "nurse.joy", "nurse").await?;
    Ok(s)
}

async fn events(db: &Db) -> anyhow::Result<Vec<StoredEvent>> {
    Ok(LogReader::detached(db.clone())
        .read_from(0, 1_000_000)
        .await?)
}

/// Runs `anamnesis replay verify [args]`; (success, stdout + stderr).
async fn verify(s: &TestServer, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut all = vec!["replay", "verify"];
    all.extend_from_slice(args);
    let out = s.cli(&all, "").await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// Asserts that verify fails, naming `position` as the first break.
async fn caught_at(s: &TestServer, args: &[&str], position: i64) -> anyhow::Result<String> {
    let (ok, text) = verify(s, args).await?;
    assert!(!ok, "verify passed a tampered log: {text}");
    assert!(
        text.contains(&format!("fails verification at position {position}:")),
        "verify should name position {position}: {text}"
    );
    Ok(text)
}

/// Runs `statements` in one transaction with the append-only triggers off.
async fn tamper(db: &Db, statements: &[&str]) -> anyhow::Result<()> {
    match db {
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("SET LOCAL session_replication_role = replica")
                .execute(&mut *tx)
                .await?;
            for sql in statements {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Db::Sqlite(p) => {
            for trigger in [
                "events_refuse_update",
                "events_refuse_delete",
                "log_head_follows_events",
            ] {
                sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                    .execute(p)
                    .await?;
            }
            let mut tx = p.begin().await?;
            for sql in statements {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Replaces every event from position `from` on with `rows` (as given:
/// positions and hashes are the caller's), and sets `log_head` when asked,
/// with the triggers off.
async fn rewrite(
    db: &Db,
    from: i64,
    rows: &[StoredEvent],
    head: Option<(i64, Vec<u8>)>,
) -> anyhow::Result<()> {
    tamper(
        db,
        &[&format!(
            "DELETE FROM events WHERE global_position >= {from}"
        )],
    )
    .await?;
    let insert = "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
         sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
         actor_role, reason, correlation_id, causation_id, prev_hash, hash, patient_id) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
    let set_head = "UPDATE log_head SET position = $1, hash = $2 WHERE id = 1";
    match db {
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("SET LOCAL session_replication_role = replica")
                .execute(&mut *tx)
                .await?;
            let insert = insert.replace("$8, $9", "$8::json, $9::json");
            for r in rows {
                sqlx::query(&insert)
                    .bind(r.global_position)
                    .bind(r.event_id)
                    .bind(&r.aggregate_type)
                    .bind(&r.aggregate_id)
                    .bind(r.sequence)
                    .bind(&r.event_type)
                    .bind(&r.event_version)
                    .bind(&r.payload)
                    .bind(&r.metadata)
                    .bind(r.recorded_at)
                    .bind(&r.actor_id)
                    .bind(&r.actor_role)
                    .bind(&r.reason)
                    .bind(r.correlation_id)
                    .bind(r.causation_id)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .bind(r.patient_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((position, hash)) = head {
                sqlx::query(set_head)
                    .bind(position)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Db::Sqlite(p) => {
            let mut tx = p.begin().await?;
            for r in rows {
                sqlx::query(insert)
                    .bind(r.global_position)
                    .bind(r.event_id.to_string())
                    .bind(&r.aggregate_type)
                    .bind(&r.aggregate_id)
                    .bind(r.sequence)
                    .bind(&r.event_type)
                    .bind(&r.event_version)
                    .bind(&r.payload)
                    .bind(&r.metadata)
                    .bind(r.recorded_at)
                    .bind(&r.actor_id)
                    .bind(&r.actor_role)
                    .bind(&r.reason)
                    .bind(r.correlation_id.map(|u| u.to_string()))
                    .bind(r.causation_id.map(|u| u.to_string()))
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .bind(r.patient_id.map(|u| u.to_string()))
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((position, hash)) = head {
                sqlx::query(set_head)
                    .bind(position)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// What an attacker without the signing key does to cover their tracks:
/// renumbers `rows` from `from` on and recomputes every hash after the
/// event at `from - 1`, so the keyless chain verifies again.
fn rechain(prev_hash: Vec<u8>, from: i64, rows: &mut [StoredEvent]) -> (i64, Vec<u8>) {
    let mut prev = prev_hash;
    for (i, row) in rows.iter_mut().enumerate() {
        row.global_position = from + i as i64;
        row.prev_hash = prev.clone();
        row.hash = event_hash(&row.prev_hash, row).to_vec();
        prev = row.hash.clone();
    }
    (from + rows.len() as i64 - 1, prev)
}

async fn an_edited_payload_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    assert!(verify(&s, &[]).await?.0, "an intact log verifies");
    tamper(
        &s.db.db,
        &["UPDATE events SET payload = '{\"tampered\":true}' WHERE global_position = 3"],
    )
    .await?;
    let text = caught_at(&s, &[], 3).await?;
    assert!(
        text.contains("altered") && text.contains("expected hash"),
        "{text}"
    );
    assert!(
        !text.contains("tampered"),
        "no content in the report: {text}"
    );
    s.stop().await
}

async fn an_edited_actor_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    tamper(
        &s.db.db,
        &["UPDATE events SET actor_id = 'someone-else' WHERE global_position = 2"],
    )
    .await?;
    caught_at(&s, &[], 2).await?;
    // A backup of it is refused, and leaves no file behind: not even the
    // partial one, which would hold every password hash.
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("b.backup");
    let backup = s
        .cli(&["backup", "--out", &out.display().to_string()], "")
        .await?;
    assert!(!backup.status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path())?.collect();
    assert!(left.is_empty(), "a failed backup left {left:?}");
    s.stop().await
}

async fn a_deleted_event_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    tamper(&s.db.db, &["DELETE FROM events WHERE global_position = 3"]).await?;
    let text = caught_at(&s, &[], 4).await?;
    assert!(text.contains("follows position 2"), "{text}");
    s.stop().await
}

async fn an_inserted_event_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    let all = events(&s.db.db).await?;
    // A well-formed event slipped in at 3, hashed onto event 2; the rest
    // moved up one, untouched.
    let mut forged = all[2].clone();
    forged.event_id = uuid::Uuid::now_v7();
    forged.aggregate_id = uuid::Uuid::now_v7().to_string();
    forged.global_position = 3;
    forged.prev_hash = all[1].hash.clone();
    forged.hash = event_hash(&forged.prev_hash, &forged).to_vec();
    let mut rows = vec![forged];
    rows.extend(all[2..].iter().cloned().map(|mut e| {
        e.global_position += 1;
        e
    }));
    rewrite(&s.db.db, 3, &rows, None).await?;
    let text = caught_at(&s, &[], 4).await?;
    assert!(text.contains("does not point at the hash"), "{text}");
    s.stop().await
}

async fn reordered_events_are_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    let all = events(&s.db.db).await?;
    let mut rows: Vec<StoredEvent> = all[2..].to_vec();
    rows.swap(0, 1);
    rows[0].global_position = 3;
    rows[1].global_position = 4;
    rewrite(&s.db.db, 3, &rows, None).await?;
    caught_at(&s, &[], 3).await?;
    s.stop().await
}

async fn a_truncated_log_with_a_new_tail_is_caught(backend: Backend) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    let all = events(&s.db.db).await?;
    let n = all.len() as i64;
    // The last two events go; one new event, well chained, takes their place.
    let mut tail = vec![all[all.len() - 1].clone()];
    tail[0].event_id = uuid::Uuid::now_v7();
    rechain(all[all.len() - 3].hash.clone(), n - 1, &mut tail);
    rewrite(&s.db.db, n - 1, &tail, None).await?;
    let text = caught_at(&s, &[], n).await?;
    assert!(text.contains("truncation"), "{text}");
    s.stop().await
}

async fn truncation_with_the_head_rewound_is_caught_by_a_checkpoint(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = populated(backend, &[]).await?;
    let file = s.settings.data_dir.join("handed-to-compliance.json");
    let out = s
        .cli(
            &["replay", "checkpoint", "--out", file.to_str().unwrap()],
            "",
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Evidence once handed out is never written over.
    let handed = std::fs::read(&file)?;
    let again = s
        .cli(
            &["replay", "checkpoint", "--out", file.to_str().unwrap()],
            "",
        )
        .await?;
    assert!(!again.status.success());
    assert_eq!(std::fs::read(&file)?, handed);
    let all = events(&s.db.db).await?;
    let n = all.len() as i64;
    // The last two events go, and log_head is rewound to match: the
    // keyless chain is whole again (ADR 0009: this is what it cannot see).
    let kept = &all[all.len() - 3];
    rewrite(&s.db.db, n - 1, &[], Some((n - 2, kept.hash.clone()))).await?;
    let (ok, text) = verify(&s, &[]).await?;
    assert!(
        ok,
        "the keyless chain cannot see a clean truncation: {text}"
    );
    let against = ["--against", file.to_str().unwrap()];
    let text = caught_at(&s, &against, n).await?;
    assert!(text.contains("truncated"), "{text}");
    // New events appended over the cut: the checkpoint's position now holds
    // another event.
    for name in ["dr.quinn", "dr.who"] {
        let out = s
            .cli(
                &[
                    "users",
                    "add",
                    "--username",
                    name,
                    "--role",
                    "doctor",
                    "--password-stdin",
                ],
                PASSWORD,
            )
            .await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(verify(&s, &[]).await?.0);
    let text = caught_at(&s, &against, n).await?;
    assert!(text.contains("rewritten"), "{text}");
    s.stop().await
}

/// The newest checkpoint file in `dir`, and its position.
fn newest_checkpoint(dir: &Path) -> Option<(i64, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let position = name
                .strip_prefix("checkpoint-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((position, e.path()))
        })
        .max()
}

async fn readyz(s: &TestServer) -> anyhow::Result<anamnesis_tests::server::Reply> {
    s.call("GET", "/readyz", None, None, &[]).await
}

async fn a_forged_admin_with_the_chain_recomputed_is_caught_by_an_automatic_checkpoint(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = populated(backend, &["--checkpoint-every-events", "1"]).await?;
    let dir = s.settings.data_dir.join("checkpoints");
    let head = s.event_count().await?;
    // The server signs the verified head by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (position, file) = loop {
        if let Some((p, f)) = newest_checkpoint(&dir).filter(|(p, _)| *p == head) {
            break (p, f);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic checkpoint of position {head} in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = readyz(&s).await?;
    assert_eq!(r.body["chain"]["checkpoint_position"], position, "{r:?}");
    assert_eq!(r.body["chain"]["state"], "verified", "{r:?}");
    let data_dir = s.settings.data_dir.clone();
    let (db, url, _) = s.shut_down().await?;

    // With write access to the database, and no key: a user.created for a
    // new admin slipped in at position 2, every later event renumbered and
    // the chain recomputed after it, log_head moved along.
    let all = events(&db.db).await?;
    let created = all
        .iter()
        .find(|e| e.event_type == "user.created")
        .expect("the admin's user.created");
    let mallory = uuid::Uuid::now_v7().to_string();
    let mut forged = created.clone();
    forged.event_id = uuid::Uuid::now_v7();
    forged.payload = created.payload.replace(&created.aggregate_id, &mallory);
    forged.aggregate_id = mallory;
    forged.actor_id = "cli:root".into();
    let mut rows = vec![forged];
    rows.extend(all[1..].iter().cloned());
    let new_head = rechain(all[0].hash.clone(), 2, &mut rows);
    rewrite(&db.db, 2, &rows, Some(new_head)).await?;

    let data = data_dir.to_str().unwrap();
    let s = TestServer::launch_on(db, url, &["--data-dir", data]).await?;
    let (ok, text) = verify(&s, &[]).await?;
    assert!(ok, "a recomputed chain passes the keyless check: {text}");
    let text = caught_at(&s, &["--against", file.to_str().unwrap()], position).await?;
    assert!(text.contains("rewritten"), "{text}");

    // The server restarted over it refuses to be ready, naming the position.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = readyz(&s).await;
        if let Ok(r) = r {
            if r.body["chain"]["state"] == "broken" {
                break r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never found broken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body["status"], "not_ready");
    assert_eq!(r.body["chain"]["ready"], false);
    assert_eq!(r.body["chain"]["break_position"], position, "{r:?}");
    let problem = r.body["chain"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains(&format!("position {position}")),
        "{problem}"
    );
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("anamnesis_chain_break 1"), "{metrics}");
    s.stop().await
}
