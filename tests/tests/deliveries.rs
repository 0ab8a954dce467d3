//! E-mail and webhook deliveries, on each backend (ADR 0023), against a
//! webhook receiver (an axum server started here) and an SMTP sink
//! (`anamnesis_tests::smtp_sink`), both local:
//! - a webhook arrives signed, once accepted, after two 500s on its third
//!   attempt, every attempt visible to admins; one that always fails is
//!   `dead` after N and the admins hear of it, once; a rebuild enqueues
//!   nothing again;
//! - the patient's e-mail has a generic subject and no patient data; a
//!   patient with no address on record gets none;
//! - a delivery left `sending` by a crash is `unknown` for e-mail (not
//!   sent again) and retried for webhooks (same Idempotency-Key);
//! - a notification caused longer ago than the age limit (turning a
//!   channel on, then a rebuild) is `expired`, never sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use anamnesis_tests::smtp_sink::SmtpSink;

on_both_backends!(
    webhooks_are_signed_retried_and_dead_letters_reach_the_admins,
    the_patient_is_mailed_without_patient_data,
    a_crash_mid_send_is_unknown_for_email_and_retried_for_webhooks,
    old_news_is_never_sent,
    urgent_news_overtakes_a_backlog,
);

const SECRET: &str = "a webhook secret of some length";
const WITHIN: StdDuration = StdDuration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    key: String,
    signed: bool,
    body: Value,
    raw: String,
    answered: u16,
    /// When the answer was sent.
    done: Instant,
}

/// A local webhook receiver: answers 500 to the next `fail` requests (to
/// every one while `always_fail`), 200 otherwise; checks each signature.
#[derive(Clone, Default)]
struct Receiver {
    fail: Arc<AtomicUsize>,
    always_fail: Arc<AtomicBool>,
    /// Holds every request that is not urgent for a few seconds.
    slow_ordinary: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<(Self, String)> {
        let r = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((r, format!("http://{addr}/hook")))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests accepted (answered 200).
    fn accepted(&self) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }
}

fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get("anamnesis-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(t) = t.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let Ok(given) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

async fn hook(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let failing = r.always_fail.load(Ordering::SeqCst)
        || r.fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if r.slow_ordinary.load(Ordering::SeqCst) && parsed["urgent"] == false {
        tokio::time::sleep(StdDuration::from_secs(3)).await;
    }
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.got.lock().unwrap().push(Received {
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        signed: verify(&headers, &body),
        body: parsed,
        raw: String::from_utf8_lossy(&body).into_owned(),
        answered: status.as_u16(),
        done: Instant::now(),
    });
    status
}

async fn start(backend: Backend, extra: &[&str]) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, extra).await
}

/// Waits until `check` gives `Some`, or fails saying `what`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(t) = check().await? {
            return Ok(t);
        }
        anyhow::ensure!(started.elapsed() < WITHIN, "no {what} within {WITHIN:?}");
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
}

async fn deliveries(s: &TestServer, admin: &str, query: &str) -> anyhow::Result<Vec<Value>> {
    let r = s
        .call(
            "GET",
            &format!("/v1/admin/deliveries{query}"),
            Some(admin),
            None,
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    Ok(r.body["items"].as_array().unwrap().clone())
}

async fn delivery(s: &TestServer, admin: &str, id: i64) -> anyhow::Result<Value> {
    let r = s
        .call(
            "GET",
            &format!("/v1/admin/deliveries/{id}"),
            Some(admin),
            None,
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    Ok(r.body)
}

/// Waits for the one delivery of `channel` in `status`.
async fn one_in(s: &TestServer, admin: &str, channel: &str, status: &str) -> anyhow::Result<Value> {
    until(&format!("{channel} delivery {status}"), || async {
        let items = deliveries(s, admin, &format!("?status={status}")).await?;
        Ok(items.into_iter().find(|d| d["channel"] == channel))
    })
    .await
}

/// The doctor breaks the glass on `patient` and records a normal lab:
/// the patient's account gets a `new_result` (compliance a `break_glass`).
async fn lab_result(s: &TestServer, doctor: &str, patient: &str) -> anyhow::Result<()> {
    break_glass(s, doctor, patient).await?;
    lab(s, doctor, patient).await
}

async fn break_glass(s: &TestServer, doctor: &str, patient: &str) -> anyhow::Result<()> {
    let glass = s
        .call(
            "POST",
            &format!("/v1/patients/{patient}/break-glass"),
            Some(doctor),
            Some(json!({"reason": "seen in the emergency department"})),
            &[],
        )
        .await?;
    anyhow::ensure!(glass.status < 300, "{glass:?}");
    Ok(())
}

/// A normal potassium, recorded by `doctor` (in care or behind the glass).
async fn lab(s: &TestServer, doctor: &str, patient: &str) -> anyhow::Result<()> {
    let specimen = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    let lab = s
        .call(
            "POST",
            &format!("/v1/patients/{patient}/chart"),
            Some(doctor),
            Some(
                json!({"kind": "lab", "test": "Potassium", "loinc": "2823-3", "value": 4.1,
                        "unit": "mmol/L", "interpretation": "normal", "specimen_at": specimen}),
            ),
            &[],
        )
        .await?;
    anyhow::ensure!(lab.status < 300, "{lab:?}");
    Ok(())
}

/// What the fixture patient's record says that no delivery may.
const PHI: [&str; 3] = ["Curie", "Marie", "1967"];

async fn webhooks_are_signed_retried_and_dead_letters_reach_the_admins(
    backend: Backend,
) -> anyhow::Result<()> {
    let (receiver, url) = Receiver::start().await?;
    let s = start(
        backend,
        &[
            "--webhook-url",
            &url,
            "--webhook-secret",
            SECRET,
            "--delivery-max-attempts",
            "3",
            "--delivery-backoff-ms",
            "50",
            "--delivery-backoff-max-ms",
            "200",
        ],
    )
    .await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let officer = user(&s, &admin, "auditor", "compliance").await?;
    let (_marie, marie_id) = patient_account(&s, "marie", "Curie").await?;

    // The receiver fails twice; the break-the-glass alert to compliance
    // (urgent) arrives on the third attempt.
    receiver.fail.store(2, Ordering::SeqCst);
    break_glass(&s, &doctor, &marie_id).await?;
    let sent = one_in(&s, &admin, "webhook", "sent").await?;
    let got = receiver.got();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|r| r.signed), "{got:?}");
    assert!(got.iter().all(|r| r.key == got[0].key), "{got:?}");
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let body = &got[2].body;
    assert_eq!(body["notification_id"], got[2].key.as_str());
    assert_eq!(body["kind"], "break_glass");
    assert_eq!(body["urgent"], true);
    assert_eq!(body["recipient_id"], user_id_of(&officer)?.as_str());
    assert_eq!(body["subject_type"], "patient");
    assert_eq!(body["subject_id"], marie_id.as_str());
    assert!(body["title"].is_string() && body["created_at"].is_string());
    assert!(
        PHI.iter().all(|p| !got[2].raw.contains(p)),
        "{}",
        got[2].raw
    );

    // Every attempt is visible to admins, with what went wrong.
    assert_eq!(sent["attempts"], 3, "{sent}");
    assert_eq!(sent["notification_id"], got[2].key.as_str());
    let detail = delivery(&s, &admin, sent["id"].as_i64().unwrap()).await?;
    let attempts = detail["attempts_made"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap_or(""),
                a["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("failed", "HTTP 500"), ("failed", "HTTP 500"), ("sent", "")],
        "{detail}"
    );
    assert!(attempts.iter().all(|a| a["finished_at"].is_string()));
    assert!(
        PHI.iter().all(|p| !detail.to_string().contains(p)),
        "{detail}"
    );

    // A receiver that always fails: dead after three attempts, and the
    // admin hears of it once.
    receiver.always_fail.store(true, Ordering::SeqCst);
    lab(&s, &doctor, &marie_id).await?;
    let dead = one_in(&s, &admin, "webhook", "dead").await?;
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["kind"], "new_result");
    assert_eq!(dead["last_error"], "HTTP 500");
    let key = dead["notification_id"].as_str().unwrap();
    assert_eq!(receiver.got().iter().filter(|r| r.key == key).count(), 3);
    let told = until("a delivery_failed notification", || async {
        let r = s
            .call("GET", "/v1/me/notifications", Some(&admin), None, &[])
            .await?;
        anyhow::ensure!(r.status == 200, "{r:?}");
        let failed: Vec<Value> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "delivery_failed")
            .cloned()
            .collect();
        Ok((!failed.is_empty()).then_some(failed))
    })
    .await?;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["subject_type"], "delivery");
    assert_eq!(told[0]["subject_id"], dead["id"].to_string().as_str());
    assert!(told[0]["patient_id"].is_null());
    // The glass alert arrived once; nothing else was accepted.
    assert_eq!(receiver.accepted().len(), 1);

    // Status filter and paging answer; a bad status is a problem.
    let all = deliveries(&s, &admin, "").await?;
    assert_eq!(all.len(), 2, "{all:?}");
    let page = deliveries(&s, &admin, &format!("?limit=1&before={}", all[0]["id"])).await?;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], all[1]["id"]);
    let bad = s
        .call(
            "GET",
            "/v1/admin/deliveries?status=lost",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!((bad.status, bad.code()), (400, "invalid_value"), "{bad:?}");
    assert!(bad.content_type.starts_with("application/problem+json"));
    let none = s
        .call(
            "GET",
            "/v1/admin/deliveries/999999",
            Some(&admin),
            None,
            &[],
        )
        .await?;
    assert_eq!((none.status, none.code()), (404, "not_found"));

    // A rebuild of the notifications enqueues nothing again.
    let requests = receiver.got().len();
    let out = s.cli(&["rebuild", "notifications", "alerts"], "").await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(deliveries(&s, &admin, "").await?.len(), 2);
    assert_eq!(receiver.got().len(), requests);
    s.stop().await
}

async fn the_patient_is_mailed_without_patient_data(backend: Backend) -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let s = start(
        backend,
        &[
            "--smtp-url",
            &sink.url,
            "--smtp-from",
            "Clinic <noreply@clinic.example>",
        ],
    )
    .await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    lab_result(&s, &doctor, &marie_id).await?;
    let sent = one_in(&s, &admin, "email", "sent").await?;
    assert_eq!(sent["kind"], "new_result");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.to, ["marie@example.org"]);
    assert_eq!(mail.from, "noreply@clinic.example");
    assert!(
        mail.data.contains("Subject: New result\r\n"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("sign in to read it"), "{}", mail.data);
    assert!(mail.data.contains("new_result"), "{}", mail.data);
    assert!(
        PHI.iter().all(|p| !mail.data.contains(p)),
        "patient data in the e-mail: {}",
        mail.data
    );

    // A patient with no address on record is not mailed: `skipped`.
    let mut record = patient("Lovelace");
    record.as_object_mut().unwrap().remove("email");
    let r = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "ada", "password": PASSWORD, "patient": record})),
            &[],
        )
        .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let ada_id = r.body["id"].as_str().unwrap().to_owned();
    lab_result(&s, &doctor, &ada_id).await?;
    let skipped = one_in(&s, &admin, "email", "skipped").await?;
    assert_eq!(skipped["last_error"], "no e-mail address on record");
    assert_eq!(sink.mails().len(), 1);
    // Staff have no address: the doctor's and compliance's notifications
    // are not queued for e-mail at all.
    assert_eq!(deliveries(&s, &admin, "").await?.len(), 2);
    s.stop().await
}

async fn a_crash_mid_send_is_unknown_for_email_and_retried_for_webhooks(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let (receiver, url) = Receiver::start().await?;
    let extra = [
        "--smtp-url",
        &sink.url,
        "--smtp-from",
        "noreply@clinic.example",
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
    ];
    let s = start(backend, &extra).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    lab_result(&s, &doctor, &marie_id).await?;
    one_in(&s, &admin, "email", "sent").await?;
    one_in(&s, &admin, "webhook", "sent").await?;
    assert_eq!((sink.mails().len(), receiver.got().len()), (1, 1));

    // As if the sender had crashed between calling the channels and
    // recording what they answered.
    let (db, url_db, _) = s.shut_down().await?;
    let now = chrono::Utc::now().timestamp_millis();
    for sql in [
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1".to_owned(),
        format!(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at_ms) \
             SELECT id, attempts, {now} FROM deliveries"
        ),
    ] {
        match &db.db {
            anamnesis_commands::Db::Postgres(p) => {
                sqlx::query(&sql).execute(p).await?;
            }
            anamnesis_commands::Db::Sqlite(p) => {
                sqlx::query(&sql).execute(p).await?;
            }
        }
    }
    let s = TestServer::start_on(db, url_db, &extra).await?;
    let unknown = one_in(&s, &admin, "email", "unknown").await?;
    assert_eq!(unknown["attempts"], 2);
    let detail = delivery(&s, &admin, unknown["id"].as_i64().unwrap()).await?;
    assert_eq!(detail["attempts_made"][1]["outcome"], "unknown", "{detail}");
    let webhook = until("the webhook sent again", || async {
        let items = deliveries(&s, &admin, "?status=sent").await?;
        Ok(items
            .into_iter()
            .find(|d| d["channel"] == "webhook" && d["attempts"] == 3))
    })
    .await?;
    let detail = delivery(&s, &admin, webhook["id"].as_i64().unwrap()).await?;
    let outcomes: Vec<&str> = detail["attempts_made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["sent", "interrupted", "sent"], "{detail}");
    let got = receiver.got();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].key, got[1].key, "the same Idempotency-Key");
    assert_eq!(
        sink.mails().len(),
        1,
        "an e-mail of unknown fate is not resent"
    );
    s.stop().await
}

async fn old_news_is_never_sent(backend: Backend) -> anyhow::Result<()> {
    // Notifications made while no channel is configured...
    let s = start(backend, &[]).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    user(&s, &admin, "auditor", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    lab_result(&s, &doctor, &marie_id).await?;
    until("the notifications", || async {
        let r = s
            .call("GET", "/v1/me/notifications", Some(&marie), None, &[])
            .await?;
        Ok((r.body["items"].as_array().is_some_and(|i| !i.is_empty())).then_some(()))
    })
    .await?;
    let (db, url_db, _) = s.shut_down().await?;
    // ...are older than the age limit by the time the webhook is on.
    tokio::time::sleep(StdDuration::from_millis(1_200)).await;
    let (receiver, url) = Receiver::start().await?;
    let extra = [
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
        "--delivery-max-age-seconds",
        "1",
    ];
    let s = TestServer::start_on(db, url_db, &extra).await?;
    let admin = s.login("admin", ADMIN_PASSWORD).await?;
    let doctor = s.login("dr.house", PASSWORD).await?;
    let out = s.cli(&["rebuild", "notifications", "alerts"], "").await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = deliveries(&s, &admin, "").await?;
    assert_eq!(
        all.len(),
        2,
        "marie's new result, compliance's break-glass: {all:?}"
    );
    assert!(all.iter().all(|d| d["status"] == "expired"), "{all:?}");
    assert!(all.iter().all(|d| d["attempts"] == 0), "{all:?}");

    // News is sent (the channel works): a result recorded now.
    lab_result(&s, &doctor, &marie_id).await?;
    until("the new result's webhook", || async {
        Ok((!receiver.accepted().is_empty()).then_some(()))
    })
    .await?;
    let got = receiver.got();
    assert!(
        got.iter()
            .all(|r| r.body["kind"] == "new_result" || r.body["kind"] == "break_glass"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|r| all.iter().all(|d| d["notification_id"] != r.key.as_str())),
        "old news was sent: {got:?}"
    );
    s.stop().await
}

/// On Postgres the server runs as a role that is only a member of
/// `anamnesis_app`: the grants cover the outbox, its attempts and the
/// sequence of its ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_role_delivers() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await?;
    let owner_url = db.url.clone().unwrap();
    let role = format!("anamnesis_test_login_{}", uuid::Uuid::now_v7().simple());
    let anamnesis_commands::Db::Postgres(pool) = &db.db else {
        anyhow::bail!("a Postgres test database");
    };
    sqlx::query(&format!("CREATE ROLE {role} LOGIN IN ROLE anamnesis_app"))
        .execute(pool)
        .await?;
    let mut as_role: sqlx::postgres::PgConnectOptions = owner_url.parse()?;
    as_role = as_role.username(&role);
    let role_url = sqlx::ConnectOptions::to_url_lossy(&as_role).to_string();
    let (receiver, url) = Receiver::start().await?;
    let result = async {
        let extra = ["--webhook-url", &url, "--webhook-secret", SECRET];
        let s = TestServer::start_on(db.attach().await?, Some(role_url.clone()), &extra).await?;
        let admin = admin(&s).await?;
        let doctor = user(&s, &admin, "dr.house", "doctor").await?;
        let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
        lab_result(&s, &doctor, &marie_id).await?;
        one_in(&s, &admin, "webhook", "sent").await?;
        assert_eq!(receiver.accepted().len(), 1);
        s.stop().await
    }
    .await;
    db.cleanup().await?;
    let server: sqlx::postgres::PgConnectOptions =
        anamnesis_tests::db::postgres_server_url().parse()?;
    let mut conn = sqlx::ConnectOptions::connect(&server).await?;
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await;
    result
}

async fn urgent_news_overtakes_a_backlog(backend: Backend) -> anyhow::Result<()> {
    let (receiver, url) = Receiver::start().await?;
    let s = start(
        backend,
        &["--webhook-url", &url, "--webhook-secret", SECRET],
    )
    .await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
    // An ordinary notification whose webhook takes seconds to answer...
    receiver.slow_ordinary.store(true, Ordering::SeqCst);
    lab_result(&s, &doctor, &marie_id).await?;
    until("the ordinary delivery under way", || async {
        Ok(deliveries(&s, &admin, "?status=sending")
            .await?
            .first()
            .cloned())
    })
    .await?;
    // ...does not hold up an urgent one made after it.
    user(&s, &admin, "auditor", "compliance").await?;
    let asked = Instant::now();
    break_glass(&s, &doctor, &marie_id).await?;
    until("both answered", || async {
        Ok((receiver.got().len() == 2).then_some(()))
    })
    .await?;
    let got = receiver.got();
    assert_eq!(got[0].body["kind"], "break_glass", "{got:?}");
    assert_eq!(got[0].body["urgent"], true);
    assert_eq!(got[1].body["kind"], "new_result");
    assert!(got[0].done < got[1].done);
    eprintln!(
        "urgent webhook answered {:?} after the command was sent, the ordinary one still held",
        got[0].done - asked
    );
    s.stop().await
}
