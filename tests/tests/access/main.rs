//! Who may do what, over HTTP: every route of the served OpenAPI document,
//! called by every role and without a token, held to the endpoint × role
//! table (`anamnesis_tests::access::TABLE`). Each call is prepared so that it
//! succeeds when permitted: an allowed call must answer the route's exact
//! success status, a forbidden one `403 forbidden` and write nothing, a call
//! without a token to a route that needs one `401 unauthenticated`. A row
//! that cannot succeed in a test (a no-show before the start) names the
//! domain's refusal instead, which only a permitted caller gets.
//!
//! The scheduling routes and their setup (two providers, appointments) are
//! in `schedule.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use serde_json::{json, Value};

use anamnesis_tests::access::{self, Record, Row, ROLES, TABLE};
use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};

mod billing;
mod chart;
mod medications;
mod messaging;
mod mfa;
mod schedule;

on_both_backends!(every_endpoint_answers_every_role_per_the_matrix);

/// A signed-in account of one role.
struct Account {
    role: &'static str,
    username: String,
    password: &'static str,
    access: String,
    refresh: String,
}

/// One request, ready to send.
struct Call {
    path: String,
    body: Option<Value>,
    /// A raw body and its media type, instead of JSON.
    raw: Option<(Vec<u8>, &'static str)>,
    token: Option<String>,
}

/// The server, an account per role, and the records the calls act on.
struct World {
    s: TestServer,
    accounts: Vec<Account>,
    own_id: String,
    other_id: String,
    /// A record in the doctor's care only.
    doctors_id: String,
    /// A record in no one's care, behind the doctor's broken glass.
    glass_id: String,
    /// A signed note per record, for the routes that read one.
    notes: Vec<(String, String)>,
    /// A medication per record, for the routes that read or administer one.
    medications: Vec<(String, String)>,
    /// A document on the own record, for the route that reads its bytes.
    document: Option<String>,
    /// The message thread the messaging routes act on, once started.
    thread: Option<String>,
    /// The providers and appointments the scheduling routes act on.
    clinic: schedule::Clinic,
    /// The coverage and bills the billing routes act on.
    ledger: billing::Ledger,
    /// The enrolled account and recovery codes the second login step uses.
    mfa: mfa::Enrolled,
    /// Makes names, identifiers and substances unique per call.
    n: usize,
}

/// Creates an account as `admin`; returns its user id.
async fn create_user(
    s: &TestServer,
    admin: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": PASSWORD, "role": role});
    let r = s
        .call("POST", "/v1/users", Some(admin), Some(body), &[])
        .await?;
    anyhow::ensure!(r.status == 201, "creating {username}: {r:?}");
    Ok(r.body["id"].as_str().unwrap_or_default().to_owned())
}

/// Logs in; returns (access token, refresh token).
async fn login(s: &TestServer, username: &str, password: &str) -> anyhow::Result<(String, String)> {
    let r = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 200, "login {username}: {r:?}");
    let token = |k: &str| r.body[k].as_str().unwrap_or_default().to_owned();
    Ok((token("access_token"), token("refresh_token")))
}

impl World {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        let s = TestServer::start(backend).await?;
        let admin = admin(&s).await?;
        let (_, own_id) = patient_account(&s, "pat", "Patient").await?;
        let mut accounts = Vec::new();
        let mut user_ids = Vec::new();
        for role in ROLES {
            let (username, password) = match role {
                "admin" => ("admin".to_owned(), ADMIN_PASSWORD),
                "patient" => ("pat".to_owned(), PASSWORD),
                _ => {
                    let name = format!("{role}.user");
                    user_ids.push((role, create_user(&s, &admin, &name, role).await?));
                    (name, PASSWORD)
                }
            };
            let (access, refresh) = login(&s, &username, password).await?;
            accounts.push(Account {
                role,
                username,
                password,
                access,
                refresh,
            });
        }
        let mut world = Self {
            s,
            accounts,
            own_id,
            other_id: String::new(),
            doctors_id: String::new(),
            glass_id: String::new(),
            notes: Vec::new(),
            medications: Vec::new(),
            document: None,
            thread: None,
            clinic: schedule::Clinic::default(),
            ledger: billing::Ledger::default(),
            mfa: mfa::Enrolled::default(),
            n: 0,
        };
        world.other_id = world.new_patient().await?;
        let user_id = |role| {
            user_ids
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, id)| id.clone())
                .unwrap()
        };
        world
            .open_clinic(&user_id("doctor"), &user_id("nurse"))
            .await?;
        world.open_chart().await?;
        world.open_billing().await?;
        Ok(world)
    }

    fn account(&self, role: &str) -> &Account {
        self.accounts.iter().find(|a| a.role == role).unwrap()
    }

    fn unique(&mut self) -> usize {
        self.n += 1;
        self.n
    }

    /// A call as `role` that must succeed.
    async fn setup(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let token = self.account(role).access.clone();
        let r = self.s.call(method, path, Some(&token), body, &[]).await?;
        anyhow::ensure!(
            r.status < 300,
            "setting up {method} {path} as {role}: {r:?}"
        );
        Ok(r)
    }

    /// A command as `role` that must succeed; returns the id it answers.
    async fn as_role(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<String> {
        let r = self.setup(role, method, path, body).await?;
        Ok(r.body["id"].as_str().unwrap_or_default().to_owned())
    }

    /// A command as the doctor that must succeed; returns the id it answers.
    async fn as_doctor(&self, method: &str, path: &str, body: Value) -> anyhow::Result<String> {
        self.as_role("doctor", method, path, Some(body)).await
    }

    async fn new_patient(&mut self) -> anyhow::Result<String> {
        let family = format!("Fresh{}", self.unique());
        self.as_doctor("POST", "/v1/patients", patient(&family))
            .await
    }

    /// An account for the user routes to act on: new, and deactivated when
    /// the call is to reactivate it.
    async fn target_user(&mut self, deactivated: bool) -> anyhow::Result<String> {
        let name = format!("target{}", self.unique());
        let admin = self.account("admin").access.clone();
        create_user(&self.s, &admin, &name, "nurse").await?;
        if deactivated {
            let path = format!("/v1/users/{name}/deactivate");
            let r = self.s.call("POST", &path, Some(&admin), None, &[]).await?;
            anyhow::ensure!(r.status == 200, "deactivating {name}: {r:?}");
        }
        Ok(name)
    }

    /// The request `row` makes for `role` (`None`: without a token), built so
    /// that it succeeds if the caller is allowed: the same request whoever
    /// sends it, apart from whose credentials a login or refresh carries.
    async fn prepare(&mut self, row: &Row, role: Option<&str>) -> anyhow::Result<Call> {
        let n = self.unique();
        // Credentials in a body are the caller's; without a token, the doctor's.
        let me = self.account(role.unwrap_or("doctor"));
        let (username, password, refresh) = (me.username.clone(), me.password, me.refresh.clone());
        let token = role.map(|r| self.account(r).access.clone());
        let id = match row.record {
            Record::None => String::new(),
            Record::Own => self.own_id.clone(),
            Record::Other => self.other_id.clone(),
            Record::Fresh => self.new_patient().await?,
            Record::Doctors => self.doctors_id.clone(),
            Record::Glass => self.glass_id.clone(),
        };
        if let Some((path, body)) = self.schedule_request(row, &id).await? {
            return Ok(Call {
                path,
                body,
                raw: None,
                token,
            });
        }
        if let Some((path, body)) = self.medication_request(row, &id).await? {
            return Ok(Call {
                path,
                body,
                raw: None,
                token,
            });
        }
        if let Some((path, body)) = self.billing_request(row, &id).await? {
            return Ok(Call {
                path,
                body,
                raw: None,
                token,
            });
        }
        match self.chart_request(row, &id).await? {
            Some(chart::Prepared::Json(path, body)) => {
                return Ok(Call {
                    path,
                    body,
                    raw: None,
                    token,
                })
            }
            Some(chart::Prepared::Bytes(path, bytes, media_type)) => {
                return Ok(Call {
                    path,
                    body: None,
                    raw: Some((bytes, media_type)),
                    token,
                })
            }
            None => {}
        }
        if let Some((path, body)) = self.messaging_request(row, &id).await? {
            return Ok(Call {
                path,
                body,
                raw: None,
                token,
            });
        }
        if let Some((path, body)) = self.mfa_request(row, role).await? {
            return Ok(Call {
                path,
                body,
                raw: None,
                token,
            });
        }
        let family = match row.record {
            Record::Own => "Patient",
            _ => "Other",
        };
        let (path, body) = match row.route {
            "POST /v1/auth/login" => (
                "/v1/auth/login".to_owned(),
                Some(json!({"username": username, "password": password})),
            ),
            "POST /v1/auth/refresh" => (
                "/v1/auth/refresh".to_owned(),
                Some(json!({"refresh_token": refresh})),
            ),
            "POST /v1/auth/register" => (
                "/v1/auth/register".to_owned(),
                Some(json!({
                    "username": format!("signup{n}"),
                    "password": PASSWORD,
                    "patient": patient(&format!("Signup{n}")),
                })),
            ),
            "POST /v1/auth/logout" => {
                // A session of its own: logging out must not end the one
                // the other calls use.
                let token = match role {
                    Some(_) => Some(login(&self.s, &username, password).await?.0),
                    None => None,
                };
                return Ok(Call {
                    path: "/v1/auth/logout".to_owned(),
                    body: None,
                    raw: None,
                    token,
                });
            }
            "POST /v1/auth/password" => (
                "/v1/auth/password".to_owned(),
                Some(json!({"current_password": password, "new_password": password})),
            ),
            "POST /v1/users" => (
                "/v1/users".to_owned(),
                Some(
                    json!({"username": format!("staff{n}"), "password": PASSWORD, "role": "nurse"}),
                ),
            ),
            "POST /v1/users/{username}/deactivate" => {
                let target = self.target_user(false).await?;
                (format!("/v1/users/{target}/deactivate"), None)
            }
            "POST /v1/users/{username}/reactivate" => {
                let target = self.target_user(true).await?;
                (format!("/v1/users/{target}/reactivate"), None)
            }
            "POST /v1/patients" => ("/v1/patients".to_owned(), Some(patient(&format!("New{n}")))),
            "GET /v1/patients" => ("/v1/patients?name=pa".to_owned(), None),
            "GET /v1/patients/{id}" => (format!("/v1/patients/{id}"), None),
            "GET /v1/patients/{id}/card" => (format!("/v1/patients/{id}/card"), None),
            "GET /v1/access-log" => ("/v1/access-log".to_owned(), None),
            "GET /v1/me/access-log" => ("/v1/me/access-log".to_owned(), None),
            "GET /v1/me/notifications" => ("/v1/me/notifications".to_owned(), None),
            "GET /v1/analytics/appointments" => (
                "/v1/analytics/appointments?from=2026-01-01&to=2026-12-31".to_owned(),
                None,
            ),
            "GET /v1/analytics/patients" => ("/v1/analytics/patients".to_owned(), None),
            "GET /v1/analytics/prescriptions" => (
                "/v1/analytics/prescriptions?from=2026-01-01&to=2026-12-31".to_owned(),
                None,
            ),
            "GET /v1/analytics/billing" => (
                "/v1/analytics/billing?from=2026-01-01&to=2026-12-31&group_by=payer".to_owned(),
                None,
            ),
            "POST /v1/me/notifications/{id}/read" => {
                ("/v1/me/notifications/0.0/read".to_owned(), None)
            }
            "GET /v1/admin/deliveries" => ("/v1/admin/deliveries?status=dead".to_owned(), None),
            "GET /v1/admin/deliveries/{id}" => ("/v1/admin/deliveries/1".to_owned(), None),
            "GET /v1/patients/{id}/history" => (format!("/v1/patients/{id}/history"), None),
            "GET /v1/patients/{id}/as-of" => {
                (format!("/v1/patients/{id}/as-of?position=1000000"), None)
            }
            "GET /v1/patients/{id}/export" => (format!("/v1/patients/{id}/export"), None),
            "POST /v1/patients/{id}/erasure" => (
                format!("/v1/patients/{id}/erasure"),
                Some(json!({"reason": "the patient's request under GDPR article 17"})),
            ),
            "PUT /v1/patients/{id}/demographics" => (
                format!("/v1/patients/{id}/demographics"),
                Some(patient(family)),
            ),
            "POST /v1/patients/{id}/allergies" => (
                format!("/v1/patients/{id}/allergies"),
                Some(json!({"substance": format!("S{n}"), "reaction": "r", "severity": "mild"})),
            ),
            "DELETE /v1/patients/{id}/allergies/{allergy_id}" => {
                let allergy =
                    json!({"substance": format!("D{n}"), "reaction": "r", "severity": "mild"});
                let path = format!("/v1/patients/{id}/allergies");
                let allergy_id = self.as_doctor("POST", &path, allergy).await?;
                (format!("/v1/patients/{id}/allergies/{allergy_id}"), None)
            }
            "POST /v1/patients/{id}/conditions" => (
                format!("/v1/patients/{id}/conditions"),
                Some(json!({"description": format!("C{n}")})),
            ),
            "POST /v1/patients/{id}/conditions/{condition_id}/resolve" => {
                let condition = json!({"description": format!("R{n}")});
                let path = format!("/v1/patients/{id}/conditions");
                let condition_id = self.as_doctor("POST", &path, condition).await?;
                (
                    format!("/v1/patients/{id}/conditions/{condition_id}/resolve"),
                    Some(json!({"resolved_on": "2020-01-01"})),
                )
            }
            "POST /v1/patients/{id}/deceased" => (
                format!("/v1/patients/{id}/deceased"),
                Some(json!({"deceased_on": "2020-01-01"})),
            ),
            "GET /healthz" | "GET /readyz" | "GET /metrics" => {
                (row.route.split_once(' ').unwrap().1.to_owned(), None)
            }
            other => anyhow::bail!(
                "the table has a row for {other}, but this test prepares no request for it: \
                 add one to World::prepare (or World::schedule_request)"
            ),
        };
        Ok(Call {
            path,
            body,
            raw: None,
            token,
        })
    }

    /// After a call that ends every session of the account (a password
    /// change), signs in again.
    async fn sign_in_again(&mut self, role: &str) -> anyhow::Result<()> {
        let (username, password) = {
            let a = self.account(role);
            (a.username.clone(), a.password)
        };
        let (access, refresh) = login(&self.s, &username, password).await?;
        let a = self.accounts.iter_mut().find(|a| a.role == role).unwrap();
        (a.access, a.refresh) = (access, refresh);
        Ok(())
    }
}

async fn every_endpoint_answers_every_role_per_the_matrix(backend: Backend) -> anyhow::Result<()> {
    let mut w = World::new(backend).await?;
    // The routes come from the served document: each must have a row, and
    // each row must name a documented route.
    let doc = w.s.call("GET", "/openapi.json", None, None, &[]).await?;
    assert_eq!(doc.status, 200, "{doc:?}");
    if let Some(differences) = access::differences(&doc.body) {
        panic!("{differences}");
    }

    let callers: Vec<Option<&str>> = ROLES.iter().copied().map(Some).chain([None]).collect();
    let mut calls = 0;
    for row in TABLE {
        let (method, _) = row.route.split_once(' ').unwrap();
        for &role in &callers {
            let call = w.prepare(row, role).await?;
            let who = role.unwrap_or("anonymous");
            let what = format!(
                "{who} {} {} ({:?} record, {:?} calendar)",
                row.route, row.variant, row.record, row.calendar
            );
            let before = w.s.event_count().await?;
            let r = match call.raw {
                Some((bytes, media_type)) => {
                    w.s.raw(method, &call.path, call.token.as_deref(), media_type, bytes)
                        .await?
                }
                None => {
                    w.s.call(method, &call.path, call.token.as_deref(), call.body, &[])
                        .await?
                }
            };
            calls += 1;
            if row.allows(role) {
                assert_eq!(r.status, row.permitted_status(), "{what} is allowed: {r:?}");
                if let Some(refusal) = row.refusal {
                    // Past the policy, refused by the domain: nothing written.
                    assert_eq!(r.code(), refusal, "{what}: {r:?}");
                    assert_eq!(w.s.event_count().await?, before, "{what} wrote events");
                }
            } else {
                let refused = match role {
                    Some(_) => (403, "forbidden"),
                    None => (401, "unauthenticated"),
                };
                assert_eq!((r.status, r.code()), refused, "{what}: {r:?}");
                assert_eq!(r.content_type, "application/problem+json", "{what}");
                assert_eq!(w.s.event_count().await?, before, "{what} wrote events");
            }
            if row.route == "POST /v1/auth/password" && r.status == 204 {
                w.sign_in_again(role.unwrap()).await?;
            }
        }
    }
    assert_eq!(calls, TABLE.len() * (ROLES.len() + 1));
    w.s.stop().await
}
