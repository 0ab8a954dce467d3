//! Sessions over HTTP: refresh, logout, deactivation and lockout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};
use serde_json::json;

on_both_backends!(
    sessions_refresh_end_and_lock,
    a_new_login_works_at_once_while_the_old_session_is_cached,
    a_refresh_never_extends_the_session,
    a_wrong_current_password_counts_towards_the_lockout
);

/// Changing a password asks for the current one: a guess like a login's.
/// Five wrong ones lock the account as five wrong logins do (they once
/// counted for nothing, so a stolen access token could guess for ever).
async fn a_wrong_current_password_counts_towards_the_lockout(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    user(&s, &admin, "nurse.joy", "nurse").await?;
    let token = s.login("nurse.joy", PASSWORD).await?;
    for guess in 0..5 {
        let wrong = s
            .call(
                "POST",
                "/v1/auth/password",
                Some(&token),
                Some(json!({"current_password": format!("guess number {guess}"),
                    "new_password": "a brand new password"})),
                &[],
            )
            .await?;
        assert_eq!(wrong.status, 401, "guess {guess}: {wrong:?}");
    }
    let locked = sign_in(&s, "nurse.joy", PASSWORD).await?;
    assert_eq!(locked.status, 401, "{locked:?}");
    // Locked, the right current password changes nothing either.
    let right = s
        .call(
            "POST",
            "/v1/auth/password",
            Some(&token),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new password"})),
            &[],
        )
        .await?;
    assert_eq!(right.status, 401, "{right:?}");
    s.stop().await
}

/// `POST /v1/auth/login` as `username`: the whole answer.
async fn sign_in(s: &TestServer, username: &str, password: &str) -> anyhow::Result<Reply> {
    let body = json!({"username": username, "password": password});
    s.call("POST", "/v1/auth/login", None, Some(body), &[])
        .await
}

/// A token's `exp`, read without checking its signature (the server
/// checks that; the test reads what it promised).
fn expiry(token: &serde_json::Value) -> i64 {
    let token = token.as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &validation,
    )
    .unwrap()
    .claims;
    claims["exp"].as_i64().unwrap()
}

/// A session lasts its lifetime (12 h) from the login that opened it:
/// each refresh hands out tokens that end when the session ends, never
/// later (it once restarted the 12 h at every refresh, so a stolen refresh
/// token lived for ever).
async fn a_refresh_never_extends_the_session(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    user(&s, &admin, "nurse.joy", "nurse").await?;
    let login = sign_in(&s, "nurse.joy", PASSWORD).await?;
    assert_eq!(login.status, 200, "{login:?}");
    let ends = expiry(&login.body["refresh_token"]);
    let now = chrono::Utc::now().timestamp();
    assert!((now + 12 * 3600 - 5..=now + 12 * 3600 + 5).contains(&ends));
    let mut refresh = login.body["refresh_token"].clone();
    for round in 0..2 {
        // Whole seconds apart, so a restarted lifetime would show.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let refreshed = s
            .call(
                "POST",
                "/v1/auth/refresh",
                None,
                Some(json!({ "refresh_token": refresh })),
                &[],
            )
            .await?;
        assert_eq!(refreshed.status, 200, "round {round}: {refreshed:?}");
        assert!(
            expiry(&refreshed.body["refresh_token"]) <= ends,
            "round {round}: the refresh token outlives the session"
        );
        assert!(expiry(&refreshed.body["access_token"]) <= ends);
        refresh = refreshed.body["refresh_token"].clone();
    }
    Ok(())
}

/// The session check caches each account; a login adds a session the
/// cache has not seen until its follower reads the log. A request with the
/// new token right after the login must not be refused meanwhile (it once
/// was, on both backends, within a few rounds).
async fn a_new_login_works_at_once_while_the_old_session_is_cached(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let first = user(&s, &admin, "front.desk", "staff").await?;
    for round in 0..20 {
        // The account is cached with the sessions known so far...
        let cached = s
            .call("GET", "/v1/patients", Some(&first), None, &[])
            .await?;
        assert_eq!(cached.status, 200, "round {round}: {cached:?}");
        // ...and a session opened now is honoured on the very next request.
        let token = s.login("front.desk", PASSWORD).await?;
        let fresh = s
            .call("GET", "/v1/patients", Some(&token), None, &[])
            .await?;
        assert_eq!(fresh.status, 200, "round {round}: {fresh:?}");
    }
    Ok(())
}

async fn sessions_refresh_end_and_lock(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    user(&s, &admin, "nurse.joy", "nurse").await?;
    let login = sign_in(&s, "nurse.joy", PASSWORD).await?;
    assert_eq!(
        (login.status, login.body["token_type"].as_str()),
        (200, Some("Bearer"))
    );
    assert!(login.body["expires_in"].as_i64().unwrap() > 0);
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = json!({"refresh_token": login.body["refresh_token"]});
    let refreshed = s
        .call("POST", "/v1/auth/refresh", None, Some(refresh.clone()), &[])
        .await?;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    // An access token is not a refresh token.
    let wrong = s
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": access})),
            &[],
        )
        .await?;
    assert_eq!(wrong.status, 401);
    let out = s
        .call("POST", "/v1/auth/logout", Some(&access), None, &[])
        .await?;
    assert_eq!(out.status, 204);
    let after = s
        .call("POST", "/v1/auth/refresh", None, Some(refresh), &[])
        .await?;
    assert_eq!((after.status, after.code()), (401, "session_closed"));

    // Deactivated accounts cannot log in; reactivated ones can.
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
    let refused = sign_in(&s, "nurse.joy", PASSWORD).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (401, "account_deactivated")
    );
    s.call(
        "POST",
        "/v1/users/nurse.joy/reactivate",
        Some(&admin),
        None,
        &[],
    )
    .await?;
    s.login("nurse.joy", PASSWORD).await?;

    // An unknown user and a wrong password look alike.
    let unknown = sign_in(&s, "nobody", PASSWORD).await?;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "invalid_credentials")
    );
    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        let r = sign_in(&s, "nurse.joy", "wrong password!").await?;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    }
    let locked = sign_in(&s, "nurse.joy", PASSWORD).await?;
    // A locked account answers as a wrong password does (nothing to learn).
    assert_eq!((locked.status, locked.code()), (401, "invalid_credentials"));
    s.stop().await
}
