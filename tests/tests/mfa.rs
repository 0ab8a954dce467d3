//! Multi-factor authentication over HTTP (ADR 0025): enrolment with a code
//! computed here (the `totp-rs` crate, from the `otpauth://` URI the server
//! gives), the two-step login, replayed and wrong codes, recovery codes that
//! work once, a required role that must enrol before it can use the API,
//! the lockout, an admin's reset, and no secret in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};
use totp_rs::TOTP;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};

on_both_backends!(
    a_user_enrols_and_logs_in_with_a_code_replays_and_used_codes_fail,
    a_required_role_enrols_before_it_can_use_the_api_and_an_admin_resets_it
);

/// An authenticator, as the test holds it: the TOTP of the enrolment's URI
/// and the last time step it answered with (a server refuses that step
/// and earlier ones).
struct Authenticator {
    totp: TOTP,
    last: Option<u64>,
}

impl Authenticator {
    fn from(enrolment: &Reply) -> Self {
        let uri = enrolment.body["otpauth_uri"].as_str().unwrap();
        Self {
            totp: TOTP::from_url(uri).unwrap(),
            last: None,
        }
    }

    /// A code of the earliest step the server accepts that is newer than
    /// the last one used (the server takes one step either side of now).
    /// Near the end of a step it waits for the next, so that the step it
    /// picks is still inside the server's window when the request lands.
    async fn fresh(&mut self) -> String {
        let mut now = chrono::Utc::now();
        while now.timestamp() % 30 >= 28 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            now = chrono::Utc::now();
        }
        let current = now.timestamp() as u64 / 30;
        let step = self.last.map_or(current - 1, |l| (l + 1).max(current - 1));
        assert!(
            step <= current + 1,
            "no fresh step left before the next one"
        );
        self.last = Some(step);
        self.totp.generate(step * 30)
    }

    /// Six digits that are no code of any step the server accepts now.
    fn wrong(&self) -> String {
        let now = chrono::Utc::now().timestamp() as u64;
        let near: Vec<String> = (0..5)
            .map(|i| self.totp.generate((now + i * 30).saturating_sub(60)))
            .collect();
        (0..)
            .map(|n| format!("{:06}", 123_456 + n))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> Reply {
    s.call("POST", path, token, Some(body), &[]).await.unwrap()
}

/// The password step; the reply (tokens or a challenge).
async fn password(s: &TestServer, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password});
    let r = post(s, "/v1/auth/login", None, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r
}

/// The password step of an account with a second factor: its challenge.
async fn challenge(s: &TestServer, username: &str, pw: &str, enrol: bool) -> String {
    let r = password(s, username, pw).await;
    assert_eq!(r.body["mfa_required"], true, "{r:?}");
    assert_eq!(r.body["enrolment_required"], enrol, "{r:?}");
    assert!(r.body.get("access_token").is_none(), "{r:?}");
    r.body["challenge"].as_str().unwrap().to_owned()
}

/// The second step.
async fn answer(s: &TestServer, challenge: &str, field: &str, code: &str) -> Reply {
    let body = json!({"challenge": challenge, field: code});
    post(s, "/v1/auth/login/mfa", None, body).await
}

fn refused(r: &Reply, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{r:?}");
    assert_eq!(r.content_type, "application/problem+json");
}

/// Whether any event's payload holds `text`.
async fn log_holds(s: &TestServer, text: &str) -> bool {
    let sql = "SELECT count(*) FROM events WHERE CAST(payload AS TEXT) LIKE $1";
    let like = format!("%{text}%");
    let n: i64 = match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => {
            sqlx::query_scalar(sql).bind(like).fetch_one(p).await
        }
        anamnesis_commands::Db::Sqlite(p) => sqlx::query_scalar(sql).bind(like).fetch_one(p).await,
    }
    .unwrap();
    n > 0
}

/// The event types of the log, in order.
async fn event_types(s: &TestServer) -> Vec<(String, Option<String>)> {
    let sql = "SELECT event_type, reason FROM events ORDER BY global_position";
    match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        anamnesis_commands::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn a_user_enrols_and_logs_in_with_a_code_replays_and_used_codes_fail(
    backend: Backend,
) -> anyhow::Result<()> {
    // The test server requires no role to use a second factor: a doctor
    // enrols of their own accord.
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.mfa", "doctor").await?;

    let started = post(&s, "/v1/me/mfa/totp", Some(&doctor), json!({})).await;
    assert_eq!(started.status, 200, "{started:?}");
    let uri = started.body["otpauth_uri"].as_str().unwrap();
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/Anamnesis:dr.mfa?"), "{uri}");
    assert!(
        uri.contains("issuer=Anamnesis") && uri.contains(&secret),
        "{uri}"
    );
    let mut phone = Authenticator::from(&started);
    assert_eq!(phone.totp.get_secret_base32(), secret);

    // Not enrolled until a code confirms it: the login is still one step.
    assert!(password(&s, "dr.mfa", PASSWORD).await.body["access_token"].is_string());
    let wrong = json!({"code": phone.wrong()});
    refused(
        &post(&s, "/v1/me/mfa/totp/confirm", Some(&doctor), wrong).await,
        401,
        "invalid_mfa_code",
    );
    let enrolling_code = phone.fresh().await;
    let confirmed = post(
        &s,
        "/v1/me/mfa/totp/confirm",
        Some(&doctor),
        json!({"code": enrolling_code}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    let recovery: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(confirmed.body.get("tokens").is_none(), "{confirmed:?}");
    let again = post(&s, "/v1/me/mfa/totp", Some(&doctor), json!({})).await;
    refused(&again, 409, "mfa_already_enrolled");

    // Two steps now. The challenge is no token for the API.
    let first = challenge(&s, "dr.mfa", PASSWORD, false).await;
    let r = s
        .call("GET", "/v1/providers", Some(&first), None, &[])
        .await?;
    refused(&r, 401, "invalid_token");
    refused(
        &answer(&s, &first, "code", &phone.wrong()).await,
        401,
        "invalid_mfa_code",
    );
    // The code that confirmed the enrolment does not log in: replayed.
    refused(
        &answer(&s, &first, "code", &enrolling_code).await,
        401,
        "invalid_mfa_code",
    );
    let login_code = phone.fresh().await;
    let tokens = answer(&s, &first, "code", &login_code).await;
    assert_eq!(tokens.status, 200, "{tokens:?}");
    let access = tokens.body["access_token"].as_str().unwrap().to_owned();
    let r = s
        .call("GET", "/v1/providers", Some(&access), None, &[])
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    // An answered challenge is closed.
    refused(
        &answer(&s, &first, "recovery_code", &recovery[0]).await,
        401,
        "mfa_challenge_closed",
    );

    // The same code on a new challenge: replayed.
    let second = challenge(&s, "dr.mfa", PASSWORD, false).await;
    refused(
        &answer(&s, &second, "code", &login_code).await,
        401,
        "invalid_mfa_code",
    );
    // A recovery code works once.
    let r = answer(&s, &second, "recovery_code", &recovery[0]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let third = challenge(&s, "dr.mfa", PASSWORD, false).await;
    refused(
        &answer(&s, &third, "recovery_code", &recovery[0]).await,
        401,
        "invalid_mfa_code",
    );
    let typed = recovery[1].to_uppercase().replace('-', " ");
    let r = answer(&s, &third, "recovery_code", &typed).await;
    assert_eq!(r.status, 200, "{r:?}");
    let access = r.body["access_token"].as_str().unwrap().to_owned();

    // A doctor need not use a second factor: they may turn it off, with a
    // current code, and log in in one step again.
    let disable = json!({"code": phone.wrong()});
    refused(
        &post(&s, "/v1/me/mfa/totp/disable", Some(&access), disable).await,
        401,
        "invalid_mfa_code",
    );
    let disable = json!({"code": phone.fresh().await});
    let r = post(&s, "/v1/me/mfa/totp/disable", Some(&access), disable).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(password(&s, "dr.mfa", PASSWORD).await.body["access_token"].is_string());

    // The log says what happened, and holds no secret and no recovery code.
    let types: Vec<String> = event_types(&s).await.into_iter().map(|t| t.0).collect();
    for expected in [
        "user.mfa_enrolment_started",
        "user.mfa_enrolled",
        "user.mfa_challenged",
        "user.mfa_verified",
        "user.recovery_code_used",
        "user.mfa_disabled",
    ] {
        assert!(types.iter().any(|t| t == expected), "{expected}: {types:?}");
    }
    assert!(!log_holds(&s, &secret).await);
    for code in &recovery {
        assert!(!log_holds(&s, code).await);
    }
    s.stop().await
}

async fn a_required_role_enrols_before_it_can_use_the_api_and_an_admin_resets_it(
    backend: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let s = TestServer::start_on(db, url, &["--mfa-roles", "admin,compliance"]).await?;
    let out = s
        .cli(
            &[
                "users",
                "add",
                "--username",
                "admin",
                "--role",
                "admin",
                "--password-stdin",
            ],
            ADMIN_PASSWORD,
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A new admin's right password gives a challenge that only enrols.
    let pass = challenge(&s, "admin", ADMIN_PASSWORD, true).await;
    let r = s
        .call("GET", "/v1/providers", Some(&pass), None, &[])
        .await?;
    refused(&r, 401, "invalid_token");
    let nurse = json!({"username": "nurse.n", "password": PASSWORD, "role": "nurse"});
    refused(
        &post(&s, "/v1/users", Some(&pass), nurse.clone()).await,
        401,
        "invalid_token",
    );
    refused(
        &answer(&s, &pass, "code", "123456").await,
        401,
        "mfa_enrolment_required",
    );
    let started = post(&s, "/v1/me/mfa/totp", Some(&pass), json!({})).await;
    assert_eq!(started.status, 200, "{started:?}");
    let mut phone = Authenticator::from(&started);
    let confirmed = post(
        &s,
        "/v1/me/mfa/totp/confirm",
        Some(&pass),
        json!({"code": phone.fresh().await}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    let admin = confirmed.body["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let recovery = confirmed.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // The enrolment challenge opened the session; it enrols no more.
    refused(
        &post(&s, "/v1/me/mfa/totp", Some(&pass), json!({})).await,
        409,
        "mfa_already_enrolled",
    );
    assert_eq!(post(&s, "/v1/users", Some(&admin), nurse).await.status, 201);

    // A role that is not required logs in as before.
    let nurse = password(&s, "nurse.n", PASSWORD).await;
    let nurse = nurse.body["access_token"].as_str().unwrap().to_owned();
    // A required role may not turn its second factor off.
    let r = post(
        &s,
        "/v1/me/mfa/totp/disable",
        Some(&admin),
        json!({"code": phone.fresh().await}),
    )
    .await;
    refused(&r, 422, "mfa_required");

    // A compliance officer enrols at their first login, then loses their
    // phone: an admin resets it, with a reason, and they enrol again.
    let auditor = json!({"username": "auditor", "password": PASSWORD, "role": "compliance"});
    assert_eq!(
        post(&s, "/v1/users", Some(&admin), auditor).await.status,
        201
    );
    let theirs = challenge(&s, "auditor", PASSWORD, true).await;
    let started = post(&s, "/v1/me/mfa/totp", Some(&theirs), json!({})).await;
    let mut their_phone = Authenticator::from(&started);
    let code = json!({"code": their_phone.fresh().await});
    let r = post(&s, "/v1/me/mfa/totp/confirm", Some(&theirs), code).await;
    assert_eq!(r.status, 200, "{r:?}");
    challenge(&s, "auditor", PASSWORD, false).await;
    let path = "/v1/users/auditor/mfa/reset";
    refused(
        &post(&s, path, Some(&nurse), json!({"reason": "lost phone"})).await,
        403,
        "forbidden",
    );
    refused(
        &post(&s, path, Some(&admin), json!({"reason": " "})).await,
        422,
        "reason_required",
    );
    let r = post(&s, path, Some(&admin), json!({"reason": "lost phone"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    challenge(&s, "auditor", PASSWORD, true).await;
    let events = event_types(&s).await;
    assert!(events
        .iter()
        .any(|(t, reason)| t == "user.mfa_reset" && reason.as_deref() == Some("lost phone")));

    // Wrong codes count towards the lockout like wrong passwords: the
    // fifth locks the account, and then a right answer does not let in.
    let locked = challenge(&s, "admin", ADMIN_PASSWORD, false).await;
    for _ in 0..5 {
        refused(
            &answer(&s, &locked, "code", &phone.wrong()).await,
            401,
            "invalid_mfa_code",
        );
    }
    refused(
        &answer(&s, &locked, "recovery_code", &recovery).await,
        401,
        "invalid_credentials",
    );
    let body = json!({"username": "admin", "password": ADMIN_PASSWORD});
    refused(
        &post(&s, "/v1/auth/login", None, body).await,
        401,
        "invalid_credentials",
    );
    s.stop().await
}
