//! What black-box tests share: accounts, a patient, read-your-writes headers,
//! and running one check on both backends.

use serde_json::{json, Value};

use crate::server::{Reply, TestServer};

/// Runs each named `async fn(Backend) -> anyhow::Result<()>` as two tests,
/// one per backend, in modules `postgres` and `sqlite`.
#[macro_export]
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(anamnesis_tests::db::Backend::Postgres).await.unwrap() }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(anamnesis_tests::db::Backend::Sqlite).await.unwrap() }
        )* }
    };
}

pub const ADMIN_PASSWORD: &str = "correct horse battery";
pub const PASSWORD: &str = "a long enough password";

pub fn patient(family: &str) -> Value {
    json!({
        "family_name": family,
        "given_name": "Marie",
        "birth_date": "1967-11-07",
        "sex": "female",
        "email": "marie@example.org",
        "identifiers": [{"system": "mrn", "value": format!("MRN-{family}")}]
    })
}

pub async fn admin(s: &TestServer) -> anyhow::Result<String> {
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
    anyhow::ensure!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.login("admin", ADMIN_PASSWORD).await
}

pub async fn user(
    s: &TestServer,
    admin: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<String> {
    let r = s
        .call(
            "POST",
            "/v1/users",
            Some(admin),
            Some(json!({"username": username, "password": PASSWORD, "role": role})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "create {username}: {r:?}");
    s.login(username, PASSWORD).await
}

/// Registers a patient account; returns (token, patient id).
pub async fn patient_account(
    s: &TestServer,
    username: &str,
    family: &str,
) -> anyhow::Result<(String, String)> {
    let r = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": username, "password": PASSWORD, "patient": patient(family)})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "register {username}: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    Ok((s.login(username, PASSWORD).await?, id))
}

pub fn at(position: &Reply) -> Vec<(&'static str, String)> {
    vec![("X-Min-Position", position.body["position"].to_string())]
}

/// Records an allergy on `patient_id` as `token`.
pub async fn record_allergy(
    s: &TestServer,
    token: &str,
    patient_id: &str,
    allergy: Value,
) -> anyhow::Result<Reply> {
    s.call(
        "POST",
        &format!("/v1/patients/{patient_id}/allergies"),
        Some(token),
        Some(allergy),
        &[],
    )
    .await
}

/// Reads a patient as `token`, after the position `after` answered (if any).
pub async fn read_patient(
    s: &TestServer,
    token: &str,
    patient_id: &str,
    after: Option<&Reply>,
) -> anyhow::Result<Reply> {
    let headers = after.map(at).unwrap_or_default();
    s.call(
        "GET",
        &format!("/v1/patients/{patient_id}"),
        Some(token),
        None,
        &headers,
    )
    .await
}

/// The user id a bearer token was issued to (its `sub` claim; the test
/// reads it without checking the signature, as a client could).
pub fn user_id_of(token: &str) -> anyhow::Result<String> {
    claim_of(token, "sub")
}

/// The string claim `name` of an access token (its signature unchecked).
pub fn claim_of(token: &str, name: &str) -> anyhow::Result<String> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &validation,
    )?;
    data.claims[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("a token without {name}"))
}

/// Puts the doctor or nurse signed in as `clinician` on `patient_id`'s care
/// team, as a front-desk user made for it (`admin` makes one the first time).
pub async fn join_care(
    s: &TestServer,
    admin: &str,
    patient_id: &str,
    clinician: &str,
) -> anyhow::Result<Reply> {
    let desk = match s.login("care.desk", PASSWORD).await {
        Ok(token) => token,
        Err(_) => user(s, admin, "care.desk", "staff").await?,
    };
    let r = s
        .call(
            "POST",
            &format!("/v1/patients/{patient_id}/care-team"),
            Some(&desk),
            Some(json!({"user_id": user_id_of(clinician)?, "reason": "treating"})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "join care: {r:?}");
    Ok(r)
}

/// A drug name of letters only, different for each `n` (`Prefixbmycin`):
/// a number in a drug's name is its strength, which does not make another
/// drug, so tests that need many distinct drugs name them this way.
pub fn drug_name(prefix: &str, mut n: u64) -> String {
    let mut name = String::from(prefix);
    loop {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    name + "mycin"
}
