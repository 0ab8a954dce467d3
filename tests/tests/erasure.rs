//! Erasure by crypto-shredding (issue 13, items 1 and 2; ADR 0024), on each
//! backend: distinctive strings are planted in every domain a patient
//! touches (their account, record, allergies, history, chart, appointment,
//! prescription, insurance, messages); after the erasure no table, no fresh backup and
//! no rebuilt read model holds any of them, the log still verifies, history
//! shows the erased events with their metadata, and another patient is
//! untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_commands::Db;
use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::{self as sched, Clinic};
use anamnesis_tests::server::TestServer;
use serde_json::{json, Value};
use sqlx::{Column, Row, TypeInfo};

on_both_backends!(
    an_erased_patient_leaves_nothing_readable_behind,
    a_patient_in_the_clear_is_not_erased
);

/// What is planted about the erased patient, one per domain.
const PLANTED: [&str; 10] = [
    "zyxwquartzname",  // username
    "Zyxwquartz",      // family name
    "MRN-QX7741",      // identifier
    "Xylofenamine",    // allergy
    "Quorvatic",       // medical history
    "Glimmerfax",      // chart note
    "Vexillarycough",  // reason for visit
    "Snorkelwick",     // message
    "Plumbeousdosing", // prescription instructions
    "MEMB-QZ4410",     // insurance member id
];

/// Every text value of every table, as one string per table.
async fn every_table(db: &Db) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    match db {
        Db::Postgres(p) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            )
            .fetch_all(p)
            .await?;
            for t in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT CAST(x AS text) FROM \"{t}\" x"))
                        .fetch_all(p)
                        .await?;
                out.push((t, rows.join("\n")));
            }
        }
        Db::Sqlite(p) => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(p)
                    .await?;
            for t in tables {
                let rows = sqlx::query(&format!("SELECT * FROM \"{t}\""))
                    .fetch_all(p)
                    .await?;
                let mut text = String::new();
                for row in &rows {
                    for (i, c) in row.columns().iter().enumerate() {
                        let value =
                            match c.type_info().name() {
                                "BLOB" => row
                                    .try_get::<Option<Vec<u8>>, _>(i)
                                    .ok()
                                    .flatten()
                                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
                                _ => row.try_get::<Option<String>, _>(i).ok().flatten().or_else(
                                    || {
                                        row.try_get::<Option<Vec<u8>>, _>(i)
                                            .ok()
                                            .flatten()
                                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                                    },
                                ),
                            };
                        text.push_str(&value.unwrap_or_default());
                        text.push('\t');
                    }
                    text.push('\n');
                }
                out.push((t, text));
            }
        }
    }
    Ok(out)
}

/// The planted strings found anywhere in the database, with their tables.
async fn found(db: &Db) -> anyhow::Result<Vec<String>> {
    let mut hits = Vec::new();
    for (table, text) in every_table(db).await? {
        let lower = text.to_lowercase();
        for p in PLANTED {
            if lower.contains(&p.to_lowercase()) {
                hits.push(format!("{p} in {table}"));
            }
        }
    }
    Ok(hits)
}

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<anamnesis_tests::server::Reply> {
    s.call(method, path, Some(token), Some(body), &[]).await
}

/// A clinic with the erased patient's data in every domain, and another
/// patient's beside it.
struct Planted {
    doctor: String,
    officer: String,
    victim: String,
    other: String,
}

async fn plant(s: &TestServer) -> anyhow::Result<Planted> {
    let admin = admin(s).await?;
    let doctor = user(s, &admin, "dr.erase", "doctor").await?;
    let staff = user(s, &admin, "desk.erase", "staff").await?;
    let officer = user(s, &admin, "dpo.erase", "compliance").await?;
    let mut input = patient("Zyxwquartz");
    input["identifiers"] = json!([{"system": "mrn", "value": "MRN-QX7741"}]);
    let r = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "zyxwquartzname", "password": PASSWORD, "patient": input})),
            &[],
        )
        .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let victim = r.body["id"].as_str().unwrap().to_owned();
    let victim_token = s.login("zyxwquartzname", PASSWORD).await?;
    let (_, other) = patient_account(s, "untouched", "Keepsake").await?;
    join_care(s, &admin, &victim, &doctor).await?;

    let r = record_allergy(
        s,
        &doctor,
        &victim,
        json!({"substance": "Xylofenamine", "reaction": "hives", "severity": "severe"}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(
        s,
        "POST",
        &format!("/v1/patients/{victim}/conditions"),
        &doctor,
        json!({"description": "Quorvatic syndrome"}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(
        s,
        "POST",
        &format!("/v1/patients/{victim}/chart"),
        &doctor,
        json!({"kind": "note", "assessment": "Glimmerfax findings"}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(
        s,
        "POST",
        &format!("/v1/patients/{victim}/medications"),
        &doctor,
        json!({"order": {
            "medication": {"name": "Amoxicillin 500 mg capsule", "rxnorm": "308191"},
            "dose": {"amount": 500, "unit": "mg"},
            "route": "oral",
            "frequency": {"kind": "every_hours", "hours": 8},
            "starts_at": chrono::Utc::now().to_rfc3339(),
            "duration_days": 7,
            "refills": 1,
            "instructions": "Plumbeousdosing with food"
        }}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(
        s,
        "POST",
        "/v1/threads",
        &victim_token,
        json!({"patient_id": victim, "subject": "A question",
               "body": "Snorkelwick again", "participants": [user_id_of(&doctor)?]}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");

    // Her insurance, with a planted member id.
    let from = (chrono::Utc::now().date_naive() - chrono::Duration::days(30)).to_string();
    let r = call(
        s,
        "POST",
        &format!("/v1/patients/{victim}/coverage"),
        &staff,
        json!({"payer": "Acme Health", "member_id": "MEMB-QZ4410", "plan": "Gold PPO",
               "valid_from": from, "rank": "primary"}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");

    // An appointment with a planted reason for visit.
    let clinic = Clinic::new("UTC")?;
    let dr_id = user_id_of(&doctor)?;
    let provider = sched::enroll(s, &admin, &dr_id, "Dr Erase", "general").await?;
    sched::set_hours(
        s,
        &admin,
        &provider,
        sched::hours(&sched::EVERY_DAY, &[("09:00", "17:00")]),
        30,
    )
    .await?;
    let day = clinic.today() + chrono::Duration::days(2);
    let r = s
        .call(
            "POST",
            "/v1/appointments",
            Some(&staff),
            Some(json!({"provider_id": provider, "patient_id": victim,
                        "starts_at": clinic.at(day, "10:00"),
                        "reason_for_visit": "Vexillarycough since May"})),
            &[],
        )
        .await?;
    assert_eq!(r.status, 201, "{r:?}");
    Ok(Planted {
        doctor,
        officer,
        victim,
        other,
    })
}

async fn an_erased_patient_leaves_nothing_readable_behind(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let c = plant(&s).await?;

    // Before: the log holds none of it in the clear; the read models do.
    let events_before = every_table(&s.db.db)
        .await?
        .into_iter()
        .find(|(t, _)| t == "events")
        .unwrap()
        .1;
    for p in PLANTED {
        assert!(!events_before.contains(p), "{p} is in the log in the clear");
    }
    // Every planted string is somewhere in the read models before (so that
    // finding none after means something); the username is in no read
    // model, only in the (sealed) log and as a digest.
    let before = found(&s.db.db).await?;
    for p in PLANTED.iter().filter(|p| **p != "zyxwquartzname") {
        assert!(
            before
                .iter()
                .any(|hit| hit.starts_with(&format!("{p} in "))),
            "{p} is in no table before the erasure: {before:?}"
        );
    }

    // Only compliance erases, and only with a reason.
    let path = format!("/v1/patients/{}/erasure", c.victim);
    let r = call(&s, "POST", &path, &c.doctor, json!({"reason": "asked"})).await?;
    assert_eq!(r.status, 403, "{r:?}");
    let r = call(&s, "POST", &path, &c.officer, json!({"reason": " "})).await?;
    assert_eq!(r.status, 422, "{r:?}");
    let r = call(
        &s,
        "POST",
        &path,
        &c.officer,
        json!({"reason": "GDPR art. 17 request of 2026-11-30"}),
    )
    .await?;
    assert_eq!(r.status, 200, "{r:?}");
    let position = r.body["position"].as_i64().unwrap();
    // Once every read model has reached the erasure.
    let min = [("X-Min-Position", position.to_string())];
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{}", c.victim),
            Some(&c.officer),
            None,
            &min,
        )
        .await?;
    assert_eq!(r.status, 404, "{r:?}");
    wait_caught_up(&s, position).await?;

    let hits = found(&s.db.db).await?;
    assert!(hits.is_empty(), "after the erasure: {hits:?}");

    // Nothing more can be written about them, and it is said so.
    let r = call(&s, "POST", &path, &c.officer, json!({"reason": "again"})).await?;
    assert_eq!(r.status, 410, "{r:?}");
    assert_eq!(r.body["code"], "patient_erased");
    let r = record_allergy(
        &s,
        &c.doctor,
        &c.victim,
        json!({"substance": "Latex", "reaction": "rash", "severity": "mild"}),
    )
    .await?;
    assert_eq!(r.status, 410, "{r:?}");
    // Their account is gone with them.
    let r = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "zyxwquartzname", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(r.status, 401, "{r:?}");

    // History keeps who did what, when and why, and nothing of what.
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{}/history", c.victim),
            Some(&c.officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    let entries = r.body["items"].as_array().expect("history items").clone();
    let erased: Vec<&Value> = entries.iter().filter(|e| e["erased"] == true).collect();
    assert!(erased.len() >= 6, "{}", r.body);
    for e in &erased {
        assert_eq!(e["changes"], json!([]), "{e}");
        assert!(e["actor_id"].as_str().is_some_and(|a| !a.is_empty()), "{e}");
        assert!(e["event_type"].as_str().is_some(), "{e}");
    }
    let last = entries
        .iter()
        .find(|e| e["event_type"] == "patient.erased")
        .expect("the erasure in history");
    assert_eq!(last["reason"], "GDPR art. 17 request of 2026-11-30");
    assert!(!r.body.to_string().contains("Zyxwquartz"));

    // The other patient is intact.
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{}", c.other),
            Some(&c.officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["family_name"], "Keepsake");

    // The chain verifies end to end, with no key.
    let out = s.cli(&["replay", "verify"], "").await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A backup made now holds none of it.
    let file = std::env::temp_dir().join(format!("erased-{}.jsonl", uuid::Uuid::now_v7()));
    let out = s
        .cli(&["backup", "--out", file.to_str().unwrap()], "")
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = std::fs::read_to_string(&file)?.to_lowercase();
    std::fs::remove_file(&file)?;
    for p in PLANTED {
        assert!(!backup.contains(&p.to_lowercase()), "{p} in the backup");
    }
    // It is a real backup: the other patient's events are in it, sealed.
    assert!(
        backup.contains(&c.other.to_lowercase()),
        "the other patient is backed up"
    );
    assert!(backup.contains("$sealed"), "payloads are backed up sealed");
    // Rebuilding every read model from the log brings none of it back.
    let out = s.cli(&["rebuild", "--all"], "").await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = found(&s.db.db).await?;
    assert!(hits.is_empty(), "after a rebuild: {hits:?}");
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{}", c.other),
            Some(&c.officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.body["family_name"], "Keepsake", "{r:?}");
    s.stop().await
}

/// Waits until no projector is behind `position` (the readiness report).
async fn wait_caught_up(s: &TestServer, position: i64) -> anyhow::Result<()> {
    for _ in 0..200 {
        let r = s.call("GET", "/readyz", None, None, &[]).await?;
        let behind = r.body["projections"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .any(|p| p["position"].as_i64().is_some_and(|at| at < position))
            })
            .unwrap_or(true);
        if !behind {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the projectors did not reach position {position}")
}

async fn a_patient_in_the_clear_is_not_erased(backend: Backend) -> anyhow::Result<()> {
    let db = anamnesis_tests::db::TestDb::new(backend).await?;
    let url = db.url.clone();
    let s = TestServer::start_on(db, url, &["--encrypt-payloads", "false"]).await?;
    let admin = admin(&s).await?;
    let officer = user(&s, &admin, "dpo.clear", "compliance").await?;
    let (_, id) = patient_account(&s, "clearly", "Plainview").await?;
    let r = call(
        &s,
        "POST",
        &format!("/v1/patients/{id}/erasure"),
        &officer,
        json!({"reason": "asked"}),
    )
    .await?;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["code"], "erasure_impossible");
    // Nothing was written: the record reads as before.
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{id}"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["family_name"], "Plainview");
    s.stop().await
}
