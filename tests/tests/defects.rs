//! The defects a hostile client and a new user found (issue 6), each tried
//! again from outside, on both backends: a real server over HTTP, its CLI as
//! a separate process, and the database as an attacker with access would see it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use anamnesis_commands::{Actor, AppendRequest, Db, EventLog, EventMetadata, NewEvent};
use anamnesis_domain::codec::StoredForm;
use anamnesis_domain::patient::{BirthDate, Contact, Demographics, PatientEvent, PersonName, Sex};
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer, TEST_TOKEN_KEY};
use chrono::NaiveDate;
use serde_json::{json, Value};

on_both_backends!(
    nul_and_control_characters_are_refused_and_the_read_model_keeps_up,
    an_event_a_projector_cannot_apply_stops_it_loudly,
    an_event_of_a_type_this_release_does_not_know_stops_its_projector,
    an_old_event_with_a_nul_still_projects_without_rewriting_the_log,
    bad_query_values_get_400_naming_the_parameter,
    a_forged_row_in_the_log_stops_appends_with_an_integrity_error,
    deactivation_logout_and_password_change_end_access_at_once,
    an_identifier_belongs_to_one_patient,
    tokens_have_issuer_audience_and_one_second_of_leeway,
    the_token_key_reads_the_same_from_flag_and_file,
    problems_never_repeat_unknown_field_names,
    clinical_dates_are_iso_and_plausible,
);

/// The least-privilege role is a Postgres matter: SQLite has no roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_as_a_least_privilege_login_role() {
    least_privilege_role().await.unwrap()
}

fn with(family: &str, f: impl Fn(&mut Value)) -> Value {
    let mut p = patient(family);
    f(&mut p);
    p
}

async fn register(s: &TestServer, username: &str, body: Value) -> anyhow::Result<Reply> {
    s.call(
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"username": username, "password": PASSWORD, "patient": body})),
        &[],
    )
    .await
}

async fn readyz(s: &TestServer) -> anyhow::Result<Reply> {
    s.call("GET", "/readyz", None, None, &[]).await
}

/// Polls `check` until it holds or `seconds` pass.
async fn eventually<F, Fut>(seconds: u64, mut check: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if check().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Appends a raw event to the server's log, as an older release or a buggy
/// one could have: through the append path, so the chain is intact.
async fn append_raw(
    s: &TestServer,
    aggregate_id: &str,
    event_type: &str,
    payload: Value,
) -> anyhow::Result<i64> {
    let log = EventLog::open(s.db.db.clone()).await?;
    let done = log
        .append(AppendRequest {
            aggregate_type: "patient".into(),
            aggregate_id: aggregate_id.into(),
            expected_sequence: 0,
            events: vec![NewEvent {
                event_type: event_type.into(),
                event_version: "1".into(),
                payload,
            }],
            metadata: EventMetadata::by(Actor::new("test:legacy", "operator")),
            keys: Default::default(),
            credential: None,
            mfa: None,
            guards: Default::default(),
            patient_id: None,
        })
        .await?;
    Ok(done.last_position)
}

async fn nul_and_control_characters_are_refused_and_the_read_model_keeps_up(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let before = s.event_count().await?;

    let cases: Vec<(&str, Value)> = vec![
        ("family_name", with("Cu\u{0}rie", |_| {})),
        (
            "given_name",
            with("Curie", |p| p["given_name"] = json!("Ma\u{0}rie")),
        ),
        (
            "email",
            with("Curie", |p| p["email"] = json!("marie\u{0}@example.org")),
        ),
        (
            "identifiers.value",
            with("Curie", |p| {
                p["identifiers"] = json!([{"system": "mrn", "value": "12\u{0}3"}])
            }),
        ),
        (
            "address.line",
            with("Curie", |p| {
                p["address"] = json!({"line": "1 rue\u{0}", "city": "Paris",
                                      "postal_code": "75005", "country": "FR"})
            }),
        ),
        ("family_name", with("Cu\u{1b}[31mrie", |_| {})),
        ("family_name", with("\u{202e}eiruC", |_| {})),
        (
            "given_name",
            with("Curie", |p| p["given_name"] = json!("\u{200b}\u{feff}")),
        ),
    ];
    for (i, (field, body)) in cases.into_iter().enumerate() {
        let r = register(&s, &format!("hostile{i}"), body).await?;
        assert_eq!(r.status, 422, "{field}: {r:?}");
        assert_eq!(r.field(), field, "{r:?}");
        assert!(
            ["invalid_characters", "empty_field"].contains(&r.code()),
            "{r:?}"
        );
        assert_eq!(r.content_type, "application/problem+json");
    }
    // An allergy substance with a NUL, recorded by a doctor.
    let curie = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    let id = curie.body["id"].as_str().unwrap().to_owned();
    let nul_allergy = s
        .call(
            "POST",
            &format!("/v1/patients/{id}/allergies"),
            Some(&doctor),
            Some(
                json!({"substance": "Peni\u{0}cillin", "reaction": "hives", "severity": "severe"}),
            ),
            &[],
        )
        .await?;
    assert_eq!(
        (nul_allergy.status, nul_allergy.field()),
        (422, "substance")
    );
    assert_eq!(
        s.event_count().await?,
        before + 2,
        "a refused request wrote events (a doctor's registration is two)"
    );

    // A normal registration right after is projected and read back at once.
    let marie = register(&s, "marie", patient("Sklodowska")).await?;
    assert_eq!(marie.status, 201, "{marie:?}");
    let marie_id = marie.body["id"].as_str().unwrap();
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&doctor),
            None,
            &at(&marie),
        )
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["family_name"], "Sklodowska");
    // A life-threatening allergy recorded now shows on the next read.
    join_care(&s, &admin, marie_id, &doctor).await?;
    let allergy = record_allergy(
        &s,
        &doctor,
        marie_id,
        json!({"substance": "Latex", "reaction": "anaphylaxis,\nintubated", "severity": "life_threatening"}),
    )
    .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    let read = read_patient(&s, &doctor, marie_id, Some(&allergy)).await?;
    assert_eq!(
        read.body["allergies"][0]["reaction"],
        "anaphylaxis,\nintubated"
    );
    assert_eq!(readyz(&s).await?.status, 200);
    s.stop().await
}

/// An event type of its aggregate that this release does not know (written
/// by a newer release, say) stops that projector before it, never skipped;
/// a projector that reads no payloads goes on.
async fn an_event_of_a_type_this_release_does_not_know_stops_its_projector(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let unknown = append_raw(
        &s,
        &uuid::Uuid::now_v7().to_string(),
        "patient.teleported",
        json!({"to": "elsewhere"}),
    )
    .await?;
    let stuck = eventually(10, || async {
        let r = readyz(&s).await?;
        Ok(r.status == 503
            && r.body["projections"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "patients" && p["ready"] == false)
            }))
    })
    .await?;
    assert!(stuck, "readyz did not report the stuck projector");
    let r = readyz(&s).await?;
    let projections = r.body["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let patients = projections
        .iter()
        .find(|p| p["name"] == "patients")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        patients["position"].as_i64(),
        Some(unknown - 1),
        "{patients}"
    );
    let problem = patients["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains(&format!("position {unknown}")),
        "{problem}"
    );
    assert!(
        problem.contains("unknown event patient.teleported"),
        "{problem}"
    );
    let activity = projections
        .iter()
        .find(|p| p["name"] == "activity")
        .cloned()
        .unwrap_or_default();
    assert_eq!(activity["ready"], true, "{activity}");

    // A rebuild stops at the same event and says where; the live tables of
    // a read model that cannot fold it stay as they were (on Postgres
    // every read model folds from one shared read of the log, ADR 0014).
    let out = s.cli(&["rebuild", "--all"], "").await?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("position {unknown}")), "{said}");
    // Whichever read model of patients' events meets it first names it.
    assert!(said.contains("(the live tables are unchanged)"), "{said}");
    let r = readyz(&s).await?;
    assert_eq!(r.status, 503, "still stuck after the failed rebuild");
    s.stop().await
}

async fn an_event_a_projector_cannot_apply_stops_it_loudly(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    // An event of a known type whose payload this release cannot read.
    let poison = append_raw(
        &s,
        &uuid::Uuid::now_v7().to_string(),
        "patient.registered",
        json!({"demographics": {"name": "not a name"}, "user_id": null}),
    )
    .await?;

    let stuck = eventually(10, || async {
        let r = readyz(&s).await?;
        Ok(r.status == 503
            && r.body["projections"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "patients" && p["ready"] == false))
    })
    .await?;
    assert!(stuck, "readyz did not report the stuck projector");
    let r = readyz(&s).await?;
    assert_eq!(r.body["status"], "not_ready");
    let patients = r.body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "patients")
        .unwrap()
        .clone();
    // It names where it stopped, and it never moved past the event.
    assert_eq!(
        patients["position"].as_i64().unwrap(),
        poison - 1,
        "{patients}"
    );
    assert!(
        patients["problem"]
            .as_str()
            .unwrap()
            .contains(&format!("position {poison}")),
        "{patients}"
    );
    // The activity projector, which can apply it, went on.
    assert!(r.body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "activity" && p["ready"] == true));
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("anamnesis_projection_failing{projection=\"patients\"} 1"),
        "{metrics}"
    );
    // Reads that need what comes after it say so instead of showing stale data.
    let later = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Later")),
            &[],
        )
        .await?;
    assert_eq!(later.status, 201);
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{}", later.body["id"].as_str().unwrap()),
            Some(&doctor),
            None,
            &at(&later),
        )
        .await?;
    assert_eq!((read.status, read.code()), (503, "not_caught_up"));
    s.stop().await
}

async fn an_old_event_with_a_nul_still_projects_without_rewriting_the_log(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    // What an unauthenticated registration put in the log before the fix.
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let legacy = PatientEvent::PatientRegistered {
        demographics: Demographics {
            name: PersonName {
                family: "Cu\u{0}rie".into(),
                given: "Marie".into(),
            },
            birth_date: BirthDate::parse(NaiveDate::from_ymd_opt(1967, 11, 7).unwrap(), today)?,
            sex: Sex::Female,
            contact: Contact::default(),
            address: None,
            identifiers: Vec::new(),
        },
        user_id: None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let position = append_raw(&s, &id, "patient.registered", legacy.to_stored()?.payload).await?;
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{id}"),
            Some(&doctor),
            None,
            &[("X-Min-Position", position.to_string())],
        )
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["family_name"], "Cu\u{fffd}rie");
    // The log still holds the event exactly as it was recorded.
    let sql = "SELECT payload FROM events WHERE global_position = $1";
    let payload: String = match &s.db.db {
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT payload::text FROM events WHERE global_position = $1")
                .bind(position)
                .fetch_one(p)
                .await?
        }
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(position).fetch_one(p).await?,
    };
    assert!(payload.contains("Cu\\u0000rie"), "{payload}");
    assert_eq!(readyz(&s).await?.status, 200);
    s.stop().await
}

async fn bad_query_values_get_400_naming_the_parameter(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    for (query, field) in [
        ("name=%00", "name"),
        ("name=a%1Bb", "name"),
        ("identifier=%00", "identifier"),
        ("cursor=%00abc", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("birth_date=2020-1-1", "birth_date"),
        ("birth_date=%00", "birth_date"),
        ("limit=many", "limit"),
        ("limit=0", "limit"),
    ] {
        let r = s
            .call(
                "GET",
                &format!("/v1/patients?{query}"),
                Some(&doctor),
                None,
                &[],
            )
            .await?;
        assert_eq!((r.status, r.field()), (400, field), "{query}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json");
    }
    s.stop().await
}

async fn a_forged_row_in_the_log_stops_appends_with_an_integrity_error(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let head: i64 = match &s.db.db {
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT position FROM log_head")
                .fetch_one(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT position FROM log_head")
                .fetch_one(p)
                .await?
        }
    };
    // Someone with database access inserts a row past the head.
    let forged = "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
         sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, actor_role, \
         prev_hash, hash) VALUES ($1, $2, 'patient', 'forged', 1, 'patient.deceased', '1', \
         '{}', '{}', $3, 'intruder', 'admin', $4, $4)";
    let zeros = vec![0u8; 32];
    match &s.db.db {
        Db::Postgres(p) => {
            sqlx::query(forged)
                .bind(head + 1)
                .bind(uuid::Uuid::now_v7())
                .bind(chrono::Utc::now())
                .bind(&zeros)
                .execute(p)
                .await?;
        }
        Db::Sqlite(p) => {
            sqlx::query(forged)
                .bind(head + 1)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(chrono::Utc::now())
                .bind(&zeros)
                .execute(p)
                .await?;
        }
    }
    let count = s.event_count().await?;
    let refused = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "log_integrity"),
        "{refused:?}"
    );
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(
        s.event_count().await?,
        count,
        "an append went past the inconsistency"
    );
    let r = readyz(&s).await?;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body["writer"]["ready"], false);
    let problem = r.body["writer"]["problem"].as_str().unwrap();
    assert!(
        problem.contains(&format!("position {head}")) && problem.contains("outside anamnesis"),
        "{problem}"
    );
    s.stop().await
}

async fn deactivation_logout_and_password_change_end_access_at_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let read = |token: String| {
        let s = &s;
        let path = format!("/v1/patients/{marie_id}");
        async move { s.call("GET", &path, Some(&token), None, &[]).await }
    };
    assert_eq!(read(doctor.clone()).await?.status, 200);

    // Deactivation: the doctor's token stops reading and writing at once.
    let off = s
        .call(
            "POST",
            "/v1/users/dr.house/deactivate",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(off.status, 200);
    let r = read(doctor.clone()).await?;
    assert_eq!((r.status, r.code()), (401, "session_closed"));
    let write = s
        .call(
            "POST",
            &format!("/v1/patients/{marie_id}/allergies"),
            Some(&doctor),
            Some(json!({"substance": "Latex", "reaction": "rash", "severity": "mild"})),
            &[],
        )
        .await?;
    assert_eq!(write.status, 401, "{write:?}");

    // Logout ends that session only.
    user(&s, &admin, "nurse.joy", "nurse").await?;
    let first = s.login("nurse.joy", PASSWORD).await?;
    let second = s.login("nurse.joy", PASSWORD).await?;
    let out = s
        .call("POST", "/v1/auth/logout", Some(&first), None, &[])
        .await?;
    assert_eq!(out.status, 204);
    assert_eq!(read(first).await?.status, 401);
    assert_eq!(read(second.clone()).await?.status, 200);

    // A password change ends every session, and the old password.
    let wrong = s
        .call(
            "POST",
            "/v1/auth/password",
            Some(&second),
            Some(json!({"current_password": "not the password", "new_password": "a brand new password"})),
            &[],
        )
        .await?;
    assert_eq!(wrong.status, 401);
    assert_eq!(read(second.clone()).await?.status, 200);
    let changed = s
        .call(
            "POST",
            "/v1/auth/password",
            Some(&second),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new password"})),
            &[],
        )
        .await?;
    assert_eq!(changed.status, 204, "{changed:?}");
    assert_eq!(read(second).await?.status, 401);
    let old = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(old.status, 401);
    let fresh = s.login("nurse.joy", "a brand new password").await?;

    // Another instance of the same clinic learns of a logout from the log.
    let other = s.another().await?;
    let path = format!("/v1/patients/{marie_id}");
    let there = other.call("GET", &path, Some(&fresh), None, &[]).await?;
    assert_eq!(there.status, 200, "{there:?}");
    let out = s
        .call("POST", "/v1/auth/logout", Some(&fresh), None, &[])
        .await?;
    assert_eq!(out.status, 204);
    let ended = eventually(5, || async {
        Ok(other
            .call("GET", &path, Some(&fresh), None, &[])
            .await?
            .status
            == 401)
    })
    .await?;
    assert!(
        ended,
        "the other instance still accepts a logged-out session"
    );
    other.stop().await?;
    s.stop().await
}

async fn an_identifier_belongs_to_one_patient(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let clerk = user(&s, &admin, "front.desk", "staff").await?;
    let mrn = |value: &str, family: &str| {
        with(family, |p| {
            p["identifiers"] = json!([{"system": "MRN", "value": value}])
        })
    };
    let a = s
        .call(
            "POST",
            "/v1/patients",
            Some(&clerk),
            Some(mrn("000123", "Curie")),
            &[],
        )
        .await?;
    assert_eq!(a.status, 201);
    let a_id = a.body["id"].as_str().unwrap().to_owned();
    // Same system (case-insensitive) and value: refused, on register...
    let b = s
        .call(
            "POST",
            "/v1/patients",
            Some(&clerk),
            Some(mrn("000123", "Lovelace")),
            &[],
        )
        .await?;
    assert_eq!((b.status, b.code()), (409, "identifier_taken"), "{b:?}");
    // ...and on self-registration, which then creates no account either.
    let own = register(&s, "ada", mrn("000123", "Lovelace")).await?;
    assert_eq!((own.status, own.code()), (409, "identifier_taken"));
    let retry = register(&s, "ada", mrn("000456", "Lovelace")).await?;
    assert_eq!(retry.status, 201, "{retry:?}");
    let ada = s.login("ada", PASSWORD).await?;
    let ada_id = retry.body["id"].as_str().unwrap().to_owned();
    // A patient cannot set their own MRN to another patient's.
    let steal = s
        .call(
            "PUT",
            &format!("/v1/patients/{ada_id}/demographics"),
            Some(&ada),
            Some(mrn("000123", "Lovelace")),
            &[],
        )
        .await?;
    assert_eq!((steal.status, steal.code()), (409, "identifier_taken"));
    // Keeping one's own identifier on an update is fine.
    let keep = s
        .call(
            "PUT",
            &format!("/v1/patients/{a_id}/demographics"),
            Some(&clerk),
            Some(mrn("000123", "Curie-Sklodowska")),
            &[],
        )
        .await?;
    assert_eq!(keep.status, 200, "{keep:?}");
    // Once released, it can be taken.
    let release = s
        .call(
            "PUT",
            &format!("/v1/patients/{a_id}/demographics"),
            Some(&clerk),
            Some(mrn("000999", "Curie")),
            &[],
        )
        .await?;
    assert_eq!(release.status, 200);
    let take = s
        .call(
            "PUT",
            &format!("/v1/patients/{ada_id}/demographics"),
            Some(&ada),
            Some(mrn("000123", "Lovelace")),
            &[],
        )
        .await?;
    assert_eq!(take.status, 200, "{take:?}");

    // Twenty clients race for one new MRN: exactly one wins.
    let races = (0..20).map(|i| {
        let body = mrn("RACE-1", &format!("Racer{i}"));
        let (s, clerk) = (&s, &clerk);
        async move {
            s.call("POST", "/v1/patients", Some(clerk), Some(body), &[])
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
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let winner = results.iter().find(|r| r.status == 201).unwrap();
    let found = s
        .call(
            "GET",
            "/v1/patients?identifier=RACE-1",
            Some(&clerk),
            None,
            &at(winner),
        )
        .await?;
    assert_eq!(
        found.body["items"].as_array().unwrap().len(),
        1,
        "{found:?}"
    );
    s.stop().await
}

/// Signs `claims` with the test servers' key.
fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_TOKEN_KEY.as_bytes()),
    )
    .unwrap()
}

/// The claims of a token the server issued.
fn claims_of(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.insecure_disable_signature_validation();
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_secret(&[]), &v)
        .unwrap()
        .claims
}

async fn tokens_have_issuer_audience_and_one_second_of_leeway(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let claims = claims_of(&doctor);
    assert_eq!(claims["iss"], "anamnesis");
    assert_eq!(claims["aud"], "anamnesis-api");
    let now = chrono::Utc::now().timestamp();
    let probe = |token: String| {
        let s = &s;
        async move {
            s.call("GET", "/v1/patients?name=a", Some(&token), None, &[])
                .await
        }
    };
    assert_eq!(probe(sign(&claims)).await?.status, 200);
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 3);
    let r = probe(sign(&expired)).await?;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    let mut foreign = claims.clone();
    foreign["aud"] = json!("some-other-service");
    assert_eq!(probe(sign(&foreign)).await?.status, 401);
    let mut issuer = claims.clone();
    issuer["iss"] = json!("someone-else");
    assert_eq!(probe(sign(&issuer)).await?.status, 401);
    let mut bare = claims.clone();
    bare.as_object_mut().unwrap().remove("aud");
    bare.as_object_mut().unwrap().remove("iss");
    assert_eq!(probe(sign(&bare)).await?.status, 401);
    s.stop().await
}

async fn the_token_key_reads_the_same_from_flag_and_file(backend: Backend) -> anyhow::Result<()> {
    // One instance takes the key from --token-key; another, on the same
    // database, finds the same text in <data-dir>/token.key.
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let shared = s.db.attach().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token.key"), format!("{TEST_TOKEN_KEY}\n"))?;
    let other = match backend {
        // The embedded database lives in the data directory: key file beside it.
        Backend::Sqlite => {
            std::fs::write(
                shared.data_dir().unwrap().join("token.key"),
                format!("{TEST_TOKEN_KEY}\n"),
            )?;
            TestServer::start_on(shared, None, &["--no-token-key"]).await?
        }
        Backend::Postgres => {
            let dir_arg = dir.path().display().to_string();
            TestServer::start_on(
                shared,
                s.url.clone(),
                &["--no-token-key", "--data-dir", &dir_arg],
            )
            .await?
        }
    };
    // Authenticated there: the admin's token is good, the user is unknown.
    let r = other
        .call(
            "POST",
            "/v1/users/nobody/deactivate",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(r.status, 404, "{r:?}");
    other.stop().await?;
    s.stop().await
}

async fn problems_never_repeat_unknown_field_names(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let secret = "Curie-1967-11-07-ssn-123456789";
    let r = register(&s, "marie", with("Curie", |p| p[secret] = json!(1))).await?;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    assert_eq!(r.field(), "patient");
    assert!(!r.body.to_string().contains(secret), "{r:?}");
    let r = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "a", "password": "b", secret: 1})),
            &[],
        )
        .await?;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    assert!(r.body.get("field").is_none(), "{r:?}");
    assert!(!r.body.to_string().contains(secret));
    s.stop().await
}

async fn clinical_dates_are_iso_and_plausible(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let p = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    let id = p.body["id"].as_str().unwrap().to_owned();
    let before = s.event_count().await?;
    let condition = |onset: &str| json!({"description": "asthma", "onset": onset});
    for (onset, status, code) in [
        ("0000-01-01", 422, "implausible_date"),
        ("1849-12-31", 422, "implausible_date"),
        ("-0001-01-01", 400, "invalid_value"),
        ("+2020-01-01", 400, "invalid_value"),
        ("2020-1-1", 400, "invalid_value"),
        ("12020-01-01", 400, "invalid_value"),
        ("1960-01-01", 422, "before_birth"),
        ("2999-01-01", 422, "date_in_the_future"),
    ] {
        let r = s
            .call(
                "POST",
                &format!("/v1/patients/{id}/conditions"),
                Some(&doctor),
                Some(condition(onset)),
                &[],
            )
            .await?;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (status, code, "onset"),
            "{onset}: {r:?}"
        );
    }
    let r = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(with("Lovelace", |p| p["birth_date"] = json!("1815-12-10"))),
            &[],
        )
        .await?;
    assert_eq!((r.status, r.field()), (422, "birth_date"));
    let r = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(with("Lovelace", |p| p["birth_date"] = json!("1967-1-7"))),
            &[],
        )
        .await?;
    assert_eq!((r.status, r.field()), (400, "birth_date"));
    let ok = s
        .call(
            "POST",
            &format!("/v1/patients/{id}/conditions"),
            Some(&doctor),
            Some(condition("1990-05-01")),
            &[],
        )
        .await?;
    assert_eq!(ok.status, 201, "{ok:?}");
    let cid = ok.body["id"].as_str().unwrap();
    let r = s
        .call(
            "POST",
            &format!("/v1/patients/{id}/conditions/{cid}/resolve"),
            Some(&doctor),
            Some(json!({"resolved_on": "0000-01-01"})),
            &[],
        )
        .await?;
    assert_eq!((r.status, r.field()), (422, "resolved_on"));
    let r = s
        .call(
            "POST",
            &format!("/v1/patients/{id}/deceased"),
            Some(&doctor),
            Some(json!({"deceased_on": "2020-13-01"})),
            &[],
        )
        .await?;
    assert_eq!((r.status, r.field()), (400, "deceased_on"));
    assert_eq!(s.event_count().await?, before + 1);
    s.stop().await
}

async fn least_privilege_role() -> anyhow::Result<()> {
    // The owner (the test's superuser) migrates; the server logs in as a
    // role that is only a member of anamnesis_app.
    let db = TestDb::new(Backend::Postgres).await?;
    let owner_url = db.url.clone().unwrap();
    let role = format!("anamnesis_test_login_{}", uuid::Uuid::now_v7().simple());
    let Db::Postgres(pool) = &db.db else {
        anyhow::bail!("a Postgres test database");
    };
    sqlx::query(&format!("CREATE ROLE {role} LOGIN IN ROLE anamnesis_app"))
        .execute(pool)
        .await?;
    let mut as_role: sqlx::postgres::PgConnectOptions = owner_url.parse()?;
    as_role = as_role.username(&role);
    let role_url = sqlx::ConnectOptions::to_url_lossy(&as_role).to_string();
    let result = async {
        let s = TestServer::start_on(db.attach().await?, Some(role_url.clone()), &[]).await?;
        let admin = admin(&s).await?;
        let doctor = user(&s, &admin, "dr.house", "doctor").await?;
        let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
        join_care(&s, &admin, &marie_id, &doctor).await?;
        let latex = json!({"substance": "Latex", "reaction": "rash", "severity": "mild"});
        let allergy = record_allergy(&s, &doctor, &marie_id, latex).await?;
        assert_eq!(allergy.status, 201, "{allergy:?}");
        let read = read_patient(&s, &doctor, &marie_id, Some(&allergy)).await?;
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(readyz(&s).await?.status, 200);

        // What the role cannot do to the log, whatever it tries.
        let app = anamnesis_commands::Db::postgres(&role_url, 2).await?;
        let Db::Postgres(app) = &app else {
            unreachable!()
        };
        for attack in [
            "UPDATE log_head SET position = 0",
            "UPDATE log_head SET position = position + 1",
            "UPDATE log_head SET hash = decode(repeat('00', 32), 'hex')",
            "DELETE FROM events",
            "UPDATE events SET actor_id = 'someone'",
            "TRUNCATE events",
            "DELETE FROM log_head",
            "CREATE TABLE sneaky (x int)",
        ] {
            assert!(
                sqlx::query(attack).execute(app).await.is_err(),
                "{attack} was allowed"
            );
        }
        app.close().await;
        s.stop().await
    }
    .await;

    // `serve` as that role on a database nobody migrated says what to run.
    let empty = TestDb::new_unmigrated().await?;
    let mut empty_as_role: sqlx::postgres::PgConnectOptions = empty.url.clone().unwrap().parse()?;
    empty_as_role = empty_as_role.username(&role);
    let out = tokio::process::Command::new(anamnesis_tests::server::binary()?)
        .arg("--database-url")
        .arg(sqlx::ConnectOptions::to_url_lossy(&empty_as_role).to_string())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("serve")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    empty.cleanup().await?;
    db.cleanup().await?;
    let server: sqlx::postgres::PgConnectOptions =
        anamnesis_tests::db::postgres_server_url().parse()?;
    let mut conn = sqlx::ConnectOptions::connect(&server).await?;
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await;
    result?;
    assert!(
        !out.status.success(),
        "serve started on an unmigrated database"
    );
    assert!(stderr.contains("anamnesis migrate"), "{stderr}");
    Ok(())
}
