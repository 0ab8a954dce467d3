//! Identity hygiene (issue 7, item 7; ADR 0006), from outside on both
//! backends: no password hash in the log, user streams under opaque ids, one
//! account per username however the registrations race, only the newest
//! password logs in, and accounts written by an earlier release keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_commands::{
    Actor, AppendError, AppendRequest, Credential, Db, EventLog, EventMetadata, NewEvent,
};
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer, TEST_TOKEN_KEY};
use serde_json::{json, Value};
use uuid::Uuid;

on_both_backends!(
    no_password_hash_reaches_the_log,
    user_streams_are_user_ids_and_tokens_name_them,
    one_username_registers_once_however_the_requests_race,
    only_the_newest_password_logs_in,
    an_account_of_an_earlier_release_is_moved_once_and_logs_in,
    a_credential_commits_with_its_event_or_not_at_all,
);

/// One row of `events`, as text.
struct Row {
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

async fn events(db: &Db) -> anyhow::Result<Vec<Row>> {
    type Raw = (String, String, String, String, String, String);
    let sql = "SELECT aggregate_type, aggregate_id, event_type, event_version, \
               CAST(payload AS TEXT), CAST(metadata AS TEXT) FROM events ORDER BY global_position";
    let rows: Vec<Raw> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
    };
    Ok(rows
        .into_iter()
        .map(|(t, id, et, ev, payload, metadata)| Row {
            aggregate_type: t,
            aggregate_id: id,
            event_type: et,
            event_version: ev,
            payload,
            metadata,
        })
        .collect())
}

/// (user id, password hash) of every stored credential.
async fn credentials(db: &Db) -> anyhow::Result<Vec<(String, String)>> {
    let sql = "SELECT CAST(user_id AS TEXT), password_hash FROM credentials ORDER BY 1";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
    })
}

/// The claims of a token the test servers signed.
fn claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["anamnesis-api"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_TOKEN_KEY.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

async fn login(s: &TestServer, username: &str, password: &str) -> anyhow::Result<Reply> {
    s.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
        &[],
    )
    .await
}

async fn change_password(
    s: &TestServer,
    token: &str,
    current: &str,
    new: &str,
) -> anyhow::Result<Reply> {
    s.call(
        "POST",
        "/v1/auth/password",
        Some(token),
        Some(json!({"current_password": current, "new_password": new})),
        &[],
    )
    .await
}

async fn reset_password(s: &TestServer, username: &str, new: &str) -> anyhow::Result<()> {
    let out = s
        .cli(
            &[
                "users",
                "reset-password",
                "--username",
                username,
                "--password-stdin",
            ],
            new,
        )
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "reset-password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn no_password_hash_reaches_the_log(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    patient_account(&s, "marie", "Curie").await?;
    assert_eq!(login(&s, "dr.house", "not the password").await?.status, 401);
    let changed = change_password(&s, &doctor, PASSWORD, "a newer long password").await?;
    assert_eq!(changed.status, 204, "{changed:?}");
    reset_password(&s, "marie", "a reset long password").await?;
    s.login("marie", "a reset long password").await?;

    let log = events(&s.db.db).await?;
    let user_events: Vec<&Row> = log.iter().filter(|r| r.aggregate_type == "user").collect();
    for kind in [
        "user.created",
        "user.password_changed",
        "user.password_reset",
    ] {
        assert!(
            user_events.iter().any(|r| r.event_type == kind),
            "{kind} is recorded"
        );
    }
    for row in &log {
        for text in [&row.payload, &row.metadata, &row.aggregate_id] {
            assert!(!text.contains("$argon2"), "a hash in the log: {text}");
            assert!(
                !text.contains("password_hash"),
                "a hash field in the log: {text}"
            );
        }
    }
    // The hashes are in the credential table, one per account.
    let stored = credentials(&s.db.db).await?;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored
        .iter()
        .all(|(_, hash)| hash.starts_with("$argon2id$")));
    s.stop().await
}

async fn user_streams_are_user_ids_and_tokens_name_them(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let created = s
        .call(
            "POST",
            "/v1/users",
            Some(&admin),
            Some(json!({"username": "nurse.joy", "password": PASSWORD, "role": "nurse"})),
            &[],
        )
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let nurse_id = created.body["id"].as_str().unwrap().to_owned();
    let nurse = s.login("nurse.joy", PASSWORD).await?;
    assert_eq!(claims(&nurse)["sub"], json!(nurse_id));
    assert!(claims(&nurse).get("usr").is_none(), "no username in tokens");
    patient_account(&s, "marie", "Curie").await?;

    let log = events(&s.db.db).await?;
    let user_streams: Vec<&str> = log
        .iter()
        .filter(|r| r.aggregate_type == "user")
        .map(|r| r.aggregate_id.as_str())
        .collect();
    assert!(user_streams.contains(&nurse_id.as_str()));
    for id in &user_streams {
        let parsed = Uuid::parse_str(id).unwrap();
        assert_eq!(parsed.get_version_num(), 7, "{id}");
    }
    for username in ["admin", "nurse.joy", "marie"] {
        assert!(
            log.iter().all(|r| r.aggregate_id != username),
            "{username} is a stream id"
        );
    }

    // Deactivation by name answers with the account's id.
    let off = s
        .call(
            "POST",
            "/v1/users/nurse.joy/deactivate",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(off.status, 200, "{off:?}");
    assert_eq!(off.body["id"], json!(nurse_id));
    let gone = s
        .call(
            "POST",
            "/v1/users/nobody/deactivate",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(gone.status, 404, "{gone:?}");
    s.stop().await
}

async fn one_username_registers_once_however_the_requests_race(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let races = (0..8).map(|i| {
        let s = &s;
        let body = json!({
            "username": "twin",
            "password": PASSWORD,
            "patient": patient(&format!("Twin{i}")),
        });
        async move {
            s.call("POST", "/v1/auth/register", None, Some(body), &[])
                .await
        }
    });
    let results: Vec<Reply> = futures::future::join_all(races)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    for lost in results.iter().filter(|r| r.status != 201) {
        assert_eq!(lost.status, 409, "{lost:?}");
        assert_eq!(lost.code(), "username_taken", "{lost:?}");
    }
    // Exactly one account and one patient record were written.
    let log = events(&s.db.db).await?;
    let created = |kind: &str| log.iter().filter(|r| r.event_type == kind).count();
    assert_eq!(created("user.created"), 1);
    assert_eq!(created("patient.registered"), 1);

    // An admin cannot take the name either, in any case.
    let admin = admin(&s).await?;
    let taken = s
        .call(
            "POST",
            "/v1/users",
            Some(&admin),
            Some(json!({"username": "TWIN", "password": PASSWORD, "role": "staff"})),
            &[],
        )
        .await?;
    assert_eq!(taken.status, 409, "{taken:?}");
    assert_eq!(taken.code(), "username_taken");
    s.login("twin", PASSWORD).await?;
    s.stop().await
}

async fn only_the_newest_password_logs_in(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let token = user(&s, &admin, "dr.grey", "doctor").await?;

    let second = "the second long password";
    let wrong = change_password(&s, &token, "not my password", second).await?;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(
        change_password(&s, &token, PASSWORD, second).await?.status,
        204
    );
    let old = login(&s, "dr.grey", PASSWORD).await?;
    assert_eq!(old.status, 401, "{old:?}");
    assert_eq!(old.code(), "invalid_credentials");
    let token = s.login("dr.grey", second).await?;

    let third = "the third long password";
    reset_password(&s, "dr.grey", third).await?;
    for stale in [PASSWORD, second] {
        assert_eq!(login(&s, "dr.grey", stale).await?.status, 401);
    }
    s.login("dr.grey", third).await?;
    // The reset ended the session the second password opened.
    let r = change_password(&s, &token, third, "a fourth long password").await?;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.code(), "session_closed");
    // An unknown account is refused as a wrong password is.
    let nobody = login(&s, "nobody", third).await?;
    assert_eq!(nobody.status, 401);
    assert_eq!(nobody.code(), "invalid_credentials");
    s.stop().await
}

/// Appends events as a release before ADR 0006 wrote them: version 1, the
/// hash in the payload, the username as the stream id.
async fn append_legacy(
    log: &EventLog,
    stream: &str,
    events: Vec<(&str, Value)>,
) -> anyhow::Result<()> {
    log.append(AppendRequest {
        aggregate_type: "user".into(),
        aggregate_id: stream.into(),
        expected_sequence: 0,
        events: events
            .into_iter()
            .map(|(event_type, payload)| NewEvent {
                event_type: event_type.into(),
                event_version: "1".into(),
                payload,
            })
            .collect(),
        metadata: EventMetadata::by(Actor::new("cli:root", "operator")),
        keys: Default::default(),
        credential: None,
        mfa: None,
        guards: Default::default(),
        patient_id: None,
    })
    .await?;
    Ok(())
}

async fn hash(password: &str) -> anyhow::Result<String> {
    anamnesis_commands::identity::hash_password(password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs migration 0006 again, as an upgrade from the release before it
/// would: over a log that already holds legacy accounts.
async fn migrate_0006_again(db: &Db) -> anyhow::Result<()> {
    let undo = [
        "DROP TABLE credentials",
        "DROP TABLE legacy_user_streams",
        "DELETE FROM _sqlx_migrations WHERE version = 6",
    ];
    for sql in undo {
        match db {
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop)?,
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop)?,
        }
    }
    db.migrate().await?;
    Ok(())
}

async fn an_account_of_an_earlier_release_is_moved_once_and_logs_in(
    backend: Backend,
) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let (doctor_id, nurse_id) = (Uuid::now_v7(), Uuid::now_v7());
    let (first, latest) = ("the first long password", "the latest long password");
    {
        let log = EventLog::open(t.db.clone()).await?;
        append_legacy(
            &log,
            "legacy.doctor",
            vec![
                (
                    "user.created",
                    json!({"user_id": doctor_id, "username": "legacy.doctor", "role": "doctor",
                           "password_hash": hash(first).await?, "patient_id": null}),
                ),
                (
                    "user.password_changed",
                    json!({"password_hash": hash(latest).await?}),
                ),
            ],
        )
        .await?;
        append_legacy(
            &log,
            "legacy.nurse",
            vec![
                (
                    "user.created",
                    json!({"user_id": nurse_id, "username": "legacy.nurse", "role": "nurse",
                           "password_hash": hash(first).await?, "patient_id": null}),
                ),
                ("user.deactivated", Value::Null),
            ],
        )
        .await?;
    }
    migrate_0006_again(&t.db).await?;
    let url = t.url.clone();
    let s = TestServer::start_on(t, url, &[]).await?;

    let token = s.login("legacy.doctor", latest).await?;
    assert_eq!(claims(&token)["sub"], json!(doctor_id.to_string()));
    assert_eq!(login(&s, "legacy.doctor", first).await?.status, 401);
    let off = login(&s, "legacy.nurse", first).await?;
    assert_eq!(off.status, 401, "{off:?}");
    assert_eq!(
        off.code(),
        "account_deactivated",
        "a deactivated account stays so"
    );
    // The name stays the moved account's.
    let taken = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "legacy.doctor", "password": PASSWORD,
                        "patient": patient("Imposter")})),
            &[],
        )
        .await?;
    assert_eq!(taken.status, 409, "{taken:?}");

    // A second instance starting finds nothing left to move.
    let other = s.another().await?;
    other.login("legacy.doctor", latest).await?;
    other.stop().await?;

    let log = events(&s.db.db).await?;
    let stream = |id: &str| -> Vec<&Row> { log.iter().filter(|r| r.aggregate_id == id).collect() };
    let legacy = stream("legacy.doctor");
    assert_eq!(legacy.len(), 2, "the old stream is left as it was");
    assert!(legacy.iter().all(|r| r.event_version == "1"));
    let moved = stream(&doctor_id.to_string());
    let created: Vec<&&Row> = moved
        .iter()
        .filter(|r| r.event_type == "user.created")
        .collect();
    assert_eq!(created.len(), 1, "moved once");
    assert_eq!(created[0].event_version, "2");
    assert!(!created[0].payload.contains("$argon2"));
    let nurse: Vec<&str> = stream(&nurse_id.to_string())
        .iter()
        .map(|r| r.event_type.as_str())
        .collect();
    assert_eq!(nurse, ["user.created", "user.deactivated"]);
    let stored = credentials(&s.db.db).await?;
    assert_eq!(stored.len(), 2, "{stored:?}");
    s.stop().await
}

/// A password event for `user_id`'s stream at `expected`, with its credential.
fn password_set(user_id: Uuid, expected: i64, hash: &str) -> AppendRequest {
    AppendRequest {
        aggregate_type: "user".into(),
        aggregate_id: user_id.to_string(),
        expected_sequence: expected,
        events: vec![NewEvent {
            event_type: "test.password_set".into(),
            event_version: "1".into(),
            payload: Value::Null,
        }],
        metadata: EventMetadata::by(Actor::new("test", "operator")),
        keys: Default::default(),
        credential: Some(Credential {
            user_id,
            password_hash: hash.into(),
        }),
        mfa: None,
        guards: Default::default(),
        patient_id: None,
    }
}

async fn a_credential_commits_with_its_event_or_not_at_all(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let first = password_set(ada, 0, "$argon2id$first");
    assert!(
        !format!("{first:?}").contains("$argon2id$first"),
        "Debug shows no hash"
    );
    log.append(first).await?;
    let stored = |hash: &str| vec![(ada.to_string(), hash.to_owned())];
    assert_eq!(credentials(&t.db).await?, stored("$argon2id$first"));

    // A stale command writes neither its event nor its credential.
    let stale = log.append(password_set(ada, 0, "$argon2id$stale")).await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { .. })),
        "{stale:?}"
    );
    // Nor does a unit of which one part conflicts, for any of its parts.
    let unit = log
        .append_atomic(vec![
            password_set(bob, 0, "$argon2id$bob"),
            password_set(ada, 0, "$argon2id$unit"),
        ])
        .await;
    assert!(
        matches!(unit, Err(AppendError::Conflict { .. })),
        "{unit:?}"
    );
    assert_eq!(credentials(&t.db).await?, stored("$argon2id$first"));
    assert_eq!(events(&t.db).await?.len(), 1);

    // In one batch, each command's credential lands with its own event.
    let results = log
        .append_many(vec![
            password_set(ada, 1, "$argon2id$second"),
            password_set(bob, 0, "$argon2id$bob"),
            password_set(ada, 1, "$argon2id$loser"),
        ])
        .await;
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(matches!(results[2], Err(AppendError::Conflict { .. })));
    let mut expected = vec![
        (ada.to_string(), "$argon2id$second".to_owned()),
        (bob.to_string(), "$argon2id$bob".to_owned()),
    ];
    expected.sort();
    assert_eq!(credentials(&t.db).await?, expected);
    drop(log);
    t.cleanup().await
}
