//! Sessions over HTTP: refresh, logout, deactivation and lockout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::json;

on_both_backends!(
    sessions_refresh_end_and_lock,
    a_new_login_works_at_once_while_the_old_session_is_cached
);

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
    let login = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
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
    let refused = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
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
    let unknown = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": PASSWORD})),
            &[],
        )
        .await?;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "invalid_credentials")
    );
    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        let r = s
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": "nurse.joy", "password": "wrong password!"})),
                &[],
            )
            .await?;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    }
    let locked = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nurse.joy", "password": PASSWORD})),
            &[],
        )
        .await?;
    // A locked account answers as a wrong password does (nothing to learn).
    assert_eq!((locked.status, locked.code()), (401, "invalid_credentials"));
    s.stop().await
}
