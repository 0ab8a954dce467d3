//! The Redis read models (ADR 0022) over HTTP, on each backend: free slots
//! and patient cards read from Redis equal the database's answer
//! (`Cache-Control: no-cache`) after bookings, reschedules, cancellations,
//! closures, holidays and allergy changes; a Redis of the test's own is
//! killed mid-run and reads are still served, right, from the database,
//! then it comes back empty and is refilled and used again; `rebuild
//! redis` refills it; and no key holds patient data. Each test keeps its
//! keys under a prefix of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::own_redis::OwnRedis;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration as Days, Weekday};
use serde_json::{json, Value};

on_both_backends!(
    redis_answers_as_the_database_does,
    reads_are_served_while_redis_is_away_and_it_is_refilled_after,
    rebuild_refills_redis,
    keys_hold_ids_only,
);

/// The machine's shared Redis (never stopped by a test).
const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

/// A server in Los Angeles over a fresh database, with Redis at `url`
/// under `prefix`.
async fn start(backend: Backend, url: &str, prefix: &str) -> anyhow::Result<TestServer> {
    // Fail, never skip, without a Redis (deploy/test.sh starts the shared one).
    let mut conn = connection(url).await.map_err(|e| {
        anyhow::anyhow!("Redis is required for this test and is not reachable at {url}: {e}")
    })?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    let db = TestDb::new(backend).await?;
    let db_url = db.url.clone();
    TestServer::start_on(
        db,
        db_url,
        &[
            "--time-zone",
            LOS_ANGELES,
            "--redis-url",
            url,
            "--redis-prefix",
            prefix,
        ],
    )
    .await
}

/// An answer with where it was read from.
#[derive(Debug)]
struct Read {
    status: u16,
    source: String,
    body: Value,
}

async fn get(
    s: &TestServer,
    token: &str,
    path: &str,
    headers: &[(&str, String)],
) -> anyhow::Result<Read> {
    let mut request = s.http.get(format!("{}{path}", s.base)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let r = request.send().await?;
    let status = r.status().as_u16();
    let source = r
        .headers()
        .get("x-read-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
    Ok(Read {
        status,
        source,
        body,
    })
}

/// Reads `path` once Redis answers it reflecting `after`, then from the
/// database (`Cache-Control: no-cache`): the two answers must be equal.
async fn same_both_ways(
    s: &TestServer,
    token: &str,
    path: &str,
    after: &Reply,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let cached = loop {
        let r = get(s, token, path, &at(after)).await?;
        anyhow::ensure!(r.status == 200, "GET {path}: {r:?}");
        if r.source == "redis" {
            break r;
        }
        anyhow::ensure!(r.source == "database", "GET {path}: no source: {r:?}");
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "GET {path}: Redis never answered for position {}",
            after.body["position"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut headers = at(after);
    headers.push(("Cache-Control", "no-cache".to_owned()));
    let database = get(s, token, path, &headers).await?;
    anyhow::ensure!(
        database.status == 200 && database.source == "database",
        "GET {path} (no-cache): {database:?}"
    );
    assert_eq!(
        cached.body, database.body,
        "GET {path}: Redis and the database differ"
    );
    Ok(cached.body)
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_default().to_owned()
}

fn starts(slots: &Value) -> Vec<chrono::DateTime<chrono::Utc>> {
    slots["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| instant(&s["starts_at"]))
        .collect()
}

/// A clinic with a doctor (weekday hours) and a patient account.
struct Setup {
    s: TestServer,
    clinic: Clinic,
    admin: String,
    doctor: String,
    staff: String,
    dr: String,
    marie: String,
    marie_id: String,
    /// The answer of the last command.
    last: Reply,
}

async fn setup(s: TestServer) -> anyhow::Result<Setup> {
    let clinic = Clinic::new(LOS_ANGELES)?;
    let admin = admin(&s).await?;
    let (doctor, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let dr = enroll(&s, &admin, &doctor_user, "Dr Gregory House", "Diagnostics").await?;
    let weekly = hours(&WEEKDAYS, &[("09:00", "12:00"), ("13:00", "17:00")]);
    set_hours(&s, &admin, &dr, weekly, 30).await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let last = book(
        &s,
        &staff,
        &dr,
        &marie_id,
        &clinic.at(clinic.next(Weekday::Mon), "09:00"),
    )
    .await?;
    anyhow::ensure!(last.status == 201, "book: {last:?}");
    Ok(Setup {
        s,
        clinic,
        admin,
        doctor,
        staff,
        dr,
        marie,
        marie_id,
        last,
    })
}

async fn redis_answers_as_the_database_does(backend: Backend) -> anyhow::Result<()> {
    let prefix = prefix();
    let s = start(backend, SHARED_REDIS, &prefix).await?;
    let Setup {
        s,
        clinic,
        admin,
        doctor,
        staff,
        dr,
        marie,
        marie_id,
        last: booked,
    } = setup(s).await?;
    let monday = clinic.next(Weekday::Mon);
    let (tuesday, wednesday) = (monday + Days::days(1), monday + Days::days(2));
    let week = format!(
        "/v1/providers/{dr}/slots?from={monday}&to={}",
        monday + Days::days(6)
    );
    let card = format!("/v1/patients/{marie_id}/card");

    // Booked: 09:00 is taken, from Redis as from the database.
    let slots = same_both_ways(&s, &marie, &week, &booked).await?;
    let all = starts(&slots);
    assert!(!all.contains(&clinic.instant(monday, "09:00")), "{all:?}");
    assert!(all.contains(&clinic.instant(monday, "09:30")), "{all:?}");
    assert_eq!(all.len(), 5 * 14 - 1, "{all:?}");
    let front = same_both_ways(&s, &staff, &card, &booked).await?;
    assert_eq!(front["family_name"], "Curie");
    assert_eq!(front["mrn"], "MRN-Curie");
    assert_eq!(
        front["next_appointment"]["appointment_id"],
        id(&booked).as_str()
    );
    assert!(
        front.get("allergies").is_none(),
        "staff see no allergies: {front}"
    );

    // An allergy: on the doctor's card (the booking put her in his care).
    let allergy = record_allergy(
        &s,
        &doctor,
        &marie_id,
        json!({"substance": "Penicillin", "reaction": "Hives", "severity": "severe"}),
    )
    .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    let chart = same_both_ways(&s, &doctor, &card, &allergy).await?;
    assert_eq!(
        chart["allergies"],
        json!([{"substance": "Penicillin", "severity": "severe"}])
    );
    let own = same_both_ways(&s, &marie, &card, &allergy).await?;
    assert_eq!(own["allergies"].as_array().map(Vec::len), Some(1));

    // Time off on Tuesday, a holiday on Wednesday.
    let off = post(
        &s,
        &admin,
        &format!("/v1/providers/{dr}/time-off"),
        Some(json!({"from_date": tuesday.to_string(), "reason": "Conference"})),
    )
    .await?;
    assert_eq!(off.status, 201, "{off:?}");
    let holiday = post(
        &s,
        &admin,
        "/v1/holidays",
        Some(json!({"from_date": wednesday.to_string(), "reason": "Staff training"})),
    )
    .await?;
    assert_eq!(holiday.status, 201, "{holiday:?}");
    let slots = same_both_ways(&s, &marie, &week, &holiday).await?;
    let all = starts(&slots);
    assert_eq!(all.len(), 3 * 14 - 1, "{all:?}");
    assert!(!all.contains(&clinic.instant(tuesday, "09:00")));
    assert!(!all.contains(&clinic.instant(wednesday, "09:00")));

    // Rescheduled to 10:00: 09:00 free again, 10:00 taken; the card follows.
    let appointment = id(&booked);
    let moved = post(
        &s,
        &staff,
        &format!("/v1/appointments/{appointment}/reschedule"),
        Some(json!({"starts_at": clinic.at(monday, "10:00")})),
    )
    .await?;
    assert_eq!(moved.status, 200, "{moved:?}");
    let all = starts(&same_both_ways(&s, &marie, &week, &moved).await?);
    assert!(all.contains(&clinic.instant(monday, "09:00")), "{all:?}");
    assert!(!all.contains(&clinic.instant(monday, "10:00")), "{all:?}");
    let front = same_both_ways(&s, &staff, &card, &moved).await?;
    assert_eq!(
        instant(&front["next_appointment"]["starts_at"]),
        Some(clinic.instant(monday, "10:00"))
    );

    // The allergy removed (while the doctor is still in her care): gone
    // from the card.
    let allergy_id = chart_allergy_id(&s, &doctor, &marie_id, &allergy).await?;
    let removed = s
        .call(
            "DELETE",
            &format!("/v1/patients/{marie_id}/allergies/{allergy_id}"),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(removed.status, 200, "{removed:?}");
    let chart = same_both_ways(&s, &doctor, &card, &removed).await?;
    assert_eq!(chart["allergies"], json!([]));

    // Cancelled: every slot of Monday is free, and no next appointment.
    let cancelled = post(
        &s,
        &marie,
        &format!("/v1/appointments/{appointment}/cancel"),
        Some(json!({"reason": "Feeling better"})),
    )
    .await?;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let all = starts(&same_both_ways(&s, &marie, &week, &cancelled).await?);
    assert_eq!(all.len(), 3 * 14, "{all:?}");
    let front = same_both_ways(&s, &staff, &card, &cancelled).await?;
    assert_eq!(front["next_appointment"], Value::Null);

    // The holiday withdrawn: Wednesday is back, for the specialty too.
    let holiday_id = id(&holiday);
    let withdrawn = s
        .call(
            "DELETE",
            &format!("/v1/holidays/{holiday_id}"),
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!(withdrawn.status, 200, "{withdrawn:?}");
    let all = starts(&same_both_ways(&s, &marie, &week, &withdrawn).await?);
    assert_eq!(all.len(), 4 * 14, "{all:?}");
    let next = same_both_ways(
        &s,
        &marie,
        &format!("/v1/slots?specialty=Diagnostics&from={monday}&limit=20"),
        &withdrawn,
    )
    .await?;
    assert_eq!(next["items"].as_array().map(Vec::len), Some(20), "{next}");

    // Nothing in Redis for what does not exist: the database says 404.
    let nobody = uuid::Uuid::now_v7();
    let r = get(&s, &staff, &format!("/v1/patients/{nobody}/card"), &[]).await?;
    assert_eq!((r.status, r.source.as_str()), (404, ""), "{r:?}");
    let r = get(&s, &staff, &format!("/v1/providers/{nobody}/slots"), &[]).await?;
    assert_eq!((r.status, r.source.as_str()), (404, ""), "{r:?}");

    // A card read is recorded in the access log like a patient read.
    let head = [("X-Min-Position", s.event_count().await?.to_string())];
    let log = get(&s, &marie, "/v1/me/access-log", &head).await?;
    assert!(
        log.body.to_string().contains("/card"),
        "the card reads are in the access log: {}",
        log.body
    );
    // Stopped first: a running projector would fill an emptied Redis again.
    s.stop().await?;
    forget(SHARED_REDIS, &prefix).await
}

/// The id of the patient's one allergy, from the patient read.
async fn chart_allergy_id(
    s: &TestServer,
    token: &str,
    patient: &str,
    after: &Reply,
) -> anyhow::Result<String> {
    let r = read_patient(s, token, patient, Some(after)).await?;
    Ok(r.body["allergies"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn reads_are_served_while_redis_is_away_and_it_is_refilled_after(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut own = OwnRedis::start().await?;
    let prefix = prefix();
    let s = start(backend, &own.url(), &prefix).await?;
    let Setup {
        s,
        clinic,
        staff,
        dr,
        marie,
        marie_id,
        last: booked,
        ..
    } = setup(s).await?;
    let monday = clinic.next(Weekday::Mon);
    let week = format!(
        "/v1/providers/{dr}/slots?from={monday}&to={}",
        monday + Days::days(6)
    );
    let card = format!("/v1/patients/{marie_id}/card");
    let before = same_both_ways(&s, &marie, &week, &booked).await?;
    let front = same_both_ways(&s, &staff, &card, &booked).await?;

    // Redis goes away: the same answers, from the database.
    own.kill()?;
    let r = get(&s, &marie, &week, &at(&booked)).await?;
    assert_eq!((r.status, r.source.as_str()), (200, "database"), "{r:?}");
    assert_eq!(r.body, before);
    let r = get(&s, &staff, &card, &at(&booked)).await?;
    assert_eq!((r.status, r.source.as_str()), (200, "database"), "{r:?}");
    assert_eq!(r.body, front);
    // A booking while Redis is away is read right.
    let second = book(&s, &staff, &dr, &marie_id, &clinic.at(monday, "13:00")).await?;
    assert_eq!(second.status, 201, "{second:?}");
    let r = get(&s, &marie, &week, &at(&second)).await?;
    assert_eq!((r.status, r.source.as_str()), (200, "database"), "{r:?}");
    let all = starts(&r.body);
    assert!(!all.contains(&clinic.instant(monday, "13:00")), "{all:?}");
    assert_eq!(all.len(), 5 * 14 - 2);
    // The projector says it cannot write; the server stays ready.
    let entry = redis_readiness(&s, false).await?;
    assert!(
        entry["problem"]
            .as_str()
            .is_some_and(|p| p.contains("Redis")),
        "{entry}"
    );

    // Back, empty: refilled from the log, and read from again.
    own.start_again().await?;
    redis_readiness(&s, true).await?;
    let after = same_both_ways(&s, &marie, &week, &second).await?;
    assert_eq!(starts(&after), all);
    let front = same_both_ways(&s, &staff, &card, &second).await?;
    assert_eq!(
        front["next_appointment"]["appointment_id"],
        id(&booked).as_str()
    );
    s.stop().await
}

/// Waits until `/readyz` shows the Redis projector `ready` (or not), the
/// server ready all along; returns its entry.
async fn redis_readiness(s: &TestServer, ready: bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.http.get(format!("{}/readyz", s.base)).send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        anyhow::ensure!(
            status == 200 && body["status"] == "ready",
            "Redis is not essential, the server stays ready: {body}"
        );
        let entry = body["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "redis")
            .cloned()
            .unwrap_or(Value::Null);
        anyhow::ensure!(entry["essential"] == false, "{entry}");
        if entry["ready"] == ready {
            return Ok(entry);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the Redis projector never became ready={ready}: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn rebuild_refills_redis(backend: Backend) -> anyhow::Result<()> {
    let prefix = prefix();
    let s = start(backend, SHARED_REDIS, &prefix).await?;
    let Setup {
        s,
        clinic,
        staff,
        dr,
        marie,
        marie_id,
        last: booked,
        ..
    } = setup(s).await?;
    let monday = clinic.next(Weekday::Mon);
    let week = format!("/v1/providers/{dr}/slots?from={monday}&to={monday}");
    let card = format!("/v1/patients/{marie_id}/card");
    let slots = same_both_ways(&s, &marie, &week, &booked).await?;
    let front = same_both_ways(&s, &staff, &card, &booked).await?;
    let filled = keys(SHARED_REDIS, &prefix).await?;

    // The server stops; Redis is emptied (a flush, a new instance).
    let (db, url, settings) = s.shut_down().await?;
    forget(SHARED_REDIS, &prefix).await?;
    assert!(keys(SHARED_REDIS, &prefix).await?.is_empty());

    // `rebuild redis`, with no server running, fills it again.
    let mut args = vec![
        "--data-dir".to_owned(),
        settings.data_dir.display().to_string(),
        "--time-zone".to_owned(),
        LOS_ANGELES.to_owned(),
        "--redis-url".to_owned(),
        SHARED_REDIS.to_owned(),
        "--redis-prefix".to_owned(),
        prefix.clone(),
    ];
    if let Some(url) = &url {
        args.extend(["--database-url".to_owned(), url.clone()]);
    }
    args.extend(["rebuild".to_owned(), "redis".to_owned()]);
    let out = tokio::process::Command::new(anamnesis_tests::server::binary()?)
        .env(
            "ANAMNESIS_MASTER_KEY",
            anamnesis_tests::server::TEST_MASTER_KEY,
        )
        .args(&args)
        .output()
        .await?;
    assert!(
        out.status.success(),
        "rebuild redis: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut refilled = keys(SHARED_REDIS, &prefix).await?;
    let mut filled = filled;
    refilled.sort();
    filled.sort();
    assert_eq!(refilled, filled, "the same keys as the projector wrote");

    // A server started again reads them from Redis, as before.
    let s = TestServer::start_on(
        db,
        url,
        &[
            "--time-zone",
            LOS_ANGELES,
            "--redis-url",
            SHARED_REDIS,
            "--redis-prefix",
            &prefix,
        ],
    )
    .await?;
    let r = get(&s, &marie, &week, &at(&booked)).await?;
    assert_eq!((r.status, r.source.as_str()), (200, "redis"), "{r:?}");
    assert_eq!(r.body, slots);
    let r = get(&s, &staff, &card, &at(&booked)).await?;
    assert_eq!((r.status, r.source.as_str()), (200, "redis"), "{r:?}");
    assert_eq!(r.body, front);
    // Stopped first: a running projector would fill an emptied Redis again.
    s.stop().await?;
    forget(SHARED_REDIS, &prefix).await
}

async fn keys_hold_ids_only(backend: Backend) -> anyhow::Result<()> {
    let prefix = prefix();
    let s = start(backend, SHARED_REDIS, &prefix).await?;
    let Setup {
        s,
        clinic,
        staff,
        dr,
        ..
    } = setup(s).await?;
    let patient = json!({
        "family_name": "Zyxwvutsrq",
        "given_name": "Qponmlkjih",
        "birth_date": "1967-11-07",
        "sex": "female",
        "phone": "+15550123987",
        "email": "qponmlkjih@example.org",
        "identifiers": [{"system": "mrn", "value": "MRN-8675309"}]
    });
    let registered = s
        .call("POST", "/v1/patients", Some(&staff), Some(patient), &[])
        .await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let monday = clinic.next(Weekday::Mon);
    let last = book(
        &s,
        &staff,
        &dr,
        &id(&registered),
        &clinic.at(monday, "11:00"),
    )
    .await?;
    assert_eq!(last.status, 201, "{last:?}");
    let card = format!("/v1/patients/{}/card", id(&registered));
    let front = same_both_ways(&s, &staff, &card, &last).await?;
    assert_eq!(front["mrn"], "MRN-8675309");
    same_both_ways(
        &s,
        &staff,
        &format!("/v1/providers/{dr}/slots?from={monday}&to={monday}"),
        &last,
    )
    .await?;

    let all = keys(SHARED_REDIS, &prefix).await?;
    assert!(all.iter().any(|k| k.contains(":card:")), "{all:?}");
    assert!(all.iter().any(|k| k.contains(":slots:")), "{all:?}");
    let phi = [
        "Zyxwvutsrq",
        "Qponmlkjih",
        "1967-11-07",
        "19671107",
        "+15550123987",
        "5550123987",
        "qponmlkjih@example.org",
        "8675309",
        "Curie",
        "Marie",
        "marie@example.org",
        "MRN-Curie",
    ];
    for key in &all {
        for p in phi {
            assert!(
                !key.to_lowercase().contains(&p.to_lowercase()),
                "key {key} holds patient data"
            );
        }
        // Only ids: <prefix>:checkpoint, <prefix>:card:<uuid>,
        // <prefix>:slots:<uuid>:<YYYY-MM-DD>.
        let rest = key.strip_prefix(&format!("{prefix}:")).unwrap_or("");
        let parts: Vec<&str> = rest.split(':').collect();
        let shaped = match parts.as_slice() {
            ["checkpoint"] => true,
            ["card", id] => uuid::Uuid::parse_str(id).is_ok(),
            ["slots", id, day] => {
                uuid::Uuid::parse_str(id).is_ok()
                    && chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok()
            }
            _ => false,
        };
        assert!(shaped, "key {key} is not one of the documented shapes");
    }
    // Stopped first: a running projector would fill an emptied Redis again.
    s.stop().await?;
    forget(SHARED_REDIS, &prefix).await
}

/// What makes a read fall back, told apart on a real Redis: behind the
/// position asked for, a value missing, no checkpoint, no Redis at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_falls_back_when_redis_is_behind_empty_or_away() {
    use anamnesis_projections::redis::{Cache, DaySlots, Miss, RedisConfig};
    let prefix = prefix();
    let config = |url: &str| RedisConfig {
        url: url.to_owned(),
        prefix: prefix.clone(),
        zone: anamnesis_domain::schedule::ClinicZone::parse("UTC").unwrap(),
        horizon_days: 7,
    };
    let cache = Cache::open(config(SHARED_REDIS)).unwrap();
    let provider = uuid::Uuid::now_v7();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let next = day.succ_opt().unwrap();

    // No checkpoint: empty.
    assert_eq!(
        cache.slots(provider, (day, day), None).await,
        Err(Miss::Empty)
    );
    let mut conn = connection(SHARED_REDIS).await.unwrap();
    let slots = DaySlots(vec![(1_796_630_400, 1_796_632_200)]);
    redis::pipe()
        .set(format!("{prefix}:checkpoint"), 40)
        .set(
            format!("{prefix}:slots:{provider}:{day}"),
            serde_json::to_string(&slots).unwrap(),
        )
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // There, and reflecting what is asked for (or nothing asked).
    assert_eq!(
        cache.slots(provider, (day, day), None).await,
        Ok(vec![slots.clone()])
    );
    assert_eq!(
        cache.slots(provider, (day, day), Some(40)).await,
        Ok(vec![slots])
    );
    // Behind the position asked for.
    assert_eq!(
        cache.slots(provider, (day, day), Some(41)).await,
        Err(Miss::Behind)
    );
    // One day of two missing.
    assert_eq!(
        cache.slots(provider, (day, next), None).await,
        Err(Miss::Empty)
    );
    assert_eq!(
        cache.card(provider, None).await.map(|_| ()),
        Err(Miss::Empty)
    );
    forget(SHARED_REDIS, &prefix).await.unwrap();

    // No Redis on that port: down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let away = Cache::open(config(&format!("redis://127.0.0.1:{port}"))).unwrap();
    assert_eq!(
        away.slots(provider, (day, day), None).await,
        Err(Miss::Down)
    );
}

async fn connection(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// Every key under `prefix`.
async fn keys(url: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = connection(url).await?;
    let mut all = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        all.extend(batch);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix` (the shared Redis stays tidy).
async fn forget(url: &str, prefix: &str) -> anyhow::Result<()> {
    let all = keys(url, prefix).await?;
    let mut conn = connection(url).await?;
    for chunk in all.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

/// Slots read p50/p99, from Redis and from the database (`no-cache`), over
/// HTTP on this build: `cargo test -p anamnesis-tests --test redis --
/// --ignored --nocapture`. Prints figures; asserts nothing about speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by hand"]
async fn slots_read_speed() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let prefix = prefix();
        let s = start(backend, SHARED_REDIS, &prefix).await.unwrap();
        let Setup {
            s,
            clinic,
            staff,
            dr,
            marie,
            marie_id,
            last,
            ..
        } = setup(s).await.unwrap();
        // A busier week: ten more bookings.
        let monday = clinic.next(Weekday::Mon);
        let mut last = last;
        for (i, time) in ["09:30", "10:00", "10:30", "11:00", "11:30"]
            .iter()
            .enumerate()
        {
            for day in [monday + Days::days(1), monday + Days::days(3)] {
                let (_, other) =
                    patient_account(&s, &format!("p{i}{day}"), &format!("Fam{i}{day}"))
                        .await
                        .unwrap();
                last = book(&s, &staff, &dr, &other, &clinic.at(day, time))
                    .await
                    .unwrap();
                assert_eq!(last.status, 201, "{last:?}");
            }
        }
        let _ = marie_id;
        let week = format!(
            "/v1/providers/{dr}/slots?from={monday}&to={}",
            monday + Days::days(6)
        );
        same_both_ways(&s, &marie, &week, &last).await.unwrap();
        for (name, headers) in [
            ("redis", Vec::new()),
            ("database", vec![("Cache-Control", "no-cache".to_owned())]),
        ] {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for i in 0..1_100 {
                let t = std::time::Instant::now();
                let r = get(&s, &marie, &week, &headers).await.unwrap();
                let took = t.elapsed().as_micros() as u64;
                assert_eq!(r.source, name);
                if i >= 100 {
                    h.record(took).unwrap();
                }
            }
            println!(
                "{backend:?} slots of a week from {name}: p50 {:.2} ms, p99 {:.2} ms ({} reads)",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.len()
            );
        }
        refill_rate(&s, backend, (&clinic, &staff, &dr))
            .await
            .unwrap();
        s.stop().await.unwrap();
        forget(SHARED_REDIS, &prefix).await.unwrap();
    }
}

/// How fast the projector fills an empty Redis: 300 more patients booked
/// over five weeks, then the whole log replayed under a fresh prefix.
async fn refill_rate(
    s: &TestServer,
    backend: Backend,
    (clinic, staff, dr): (&Clinic, &str, &str),
) -> anyhow::Result<()> {
    use anamnesis_projections::redis::{catch_up, Cache, RedisConfig, Upstream};
    const TIMES: [&str; 14] = [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "13:00", "13:30", "14:00", "14:30",
        "15:00", "15:30", "16:00", "16:30",
    ];
    let monday = clinic.next(Weekday::Mon);
    for i in 0..300_i64 {
        let registered = s
            .call(
                "POST",
                "/v1/patients",
                Some(staff),
                Some(patient(&format!("Load{i}"))),
                &[],
            )
            .await?;
        anyhow::ensure!(registered.status == 201, "{registered:?}");
        let day = monday + Days::days(7 * (1 + i / 70) + (i % 70) / 14);
        let time = TIMES[(i % 14) as usize];
        let booked = book(s, staff, dr, &id(&registered), &clinic.at(day, time)).await?;
        anyhow::ensure!(booked.status == 201, "{booked:?}");
    }
    let db = s.db.db.clone();
    let reader = anamnesis_commands::LogReader::detached(db.clone());
    let prefix = prefix();
    let cache = Cache::open(RedisConfig {
        url: SHARED_REDIS.to_owned(),
        prefix: prefix.clone(),
        zone: clinic.zone,
        horizon_days: 12 * 7,
    })?;
    let events = s.event_count().await?;
    let started = std::time::Instant::now();
    catch_up(
        &cache,
        (&reader, &db),
        &mut Upstream::Polling(db.clone()),
        |_, _| {},
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let keys = keys(SHARED_REDIS, &prefix).await?.len();
    println!(
        "{backend:?} refill of an empty Redis: {events} events in {seconds:.2} s \
         ({:.0} events/s), {keys} keys",
        events as f64 / seconds
    );
    forget(SHARED_REDIS, &prefix).await
}
