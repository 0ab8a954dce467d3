//! Arbitrary Unicode in every text value of the patient record, over HTTP, on
//! both backends: each value is either refused with a 422 naming its field
//! (and nothing is written), or stored, projected and read back exactly as
//! the domain keeps it (surrounding white space trimmed; identifier systems
//! lowercased). The scheduling free text too: a provider's display name and
//! specialty, a visit's reason, an overbooking's, a cancellation's and a
//! closure's; and the chart's: note sections, a lab's test and unit, a
//! diagnosis, a procedure, a vaccine's lot; a message thread's subject
//! and a message's body; and billing's: a coverage's payer, member id and
//! plan, a service code's description, a payment's method, an adjustment's
//! and a void's reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::{admin, at, patient, patient_account, user};
use anamnesis_tests::schedule::{enroll, hours, set_hours, user_id, EVERY_DAY};
use anamnesis_tests::server::TestServer;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// Cases per backend. Each is two or three HTTP calls against a real server.
const CASES: u32 = 256;

#[test]
fn arbitrary_text_is_refused_or_read_back_exactly_on_postgres() {
    roundtrip(Backend::Postgres);
}

#[test]
fn arbitrary_text_is_refused_or_read_back_exactly_on_sqlite() {
    roundtrip(Backend::Sqlite);
}

/// Where a fuzzed value goes in a request, and where it comes back.
#[derive(Debug, Clone, Copy)]
enum Field {
    Demographic(&'static str),
    Address(&'static str),
    IdentifierSystem,
    IdentifierValue,
    Allergy(&'static str),
    Condition(&'static str),
    Provider(&'static str),
    Booking(&'static str),
    CancelReason,
    ClosureReason,
    /// A chart entry's kind and text field.
    Chart(&'static str, &'static str),
    /// A prescription's text field (`name` of the drug, `instructions`).
    Medication(&'static str),
    /// A message thread's subject or its first message's body.
    Message(&'static str),
    /// A billing text field.
    Billing(&'static str),
}

const FIELDS: [Field; 39] = [
    Field::Demographic("family_name"),
    Field::Demographic("given_name"),
    Field::Demographic("phone"),
    Field::Demographic("email"),
    Field::Address("line"),
    Field::Address("city"),
    Field::Address("postal_code"),
    Field::Address("region"),
    Field::Address("country"),
    Field::IdentifierSystem,
    Field::IdentifierValue,
    Field::Allergy("substance"),
    Field::Allergy("reaction"),
    Field::Condition("code"),
    Field::Condition("description"),
    Field::Provider("display_name"),
    Field::Provider("specialty"),
    Field::Booking("reason_for_visit"),
    Field::Booking("overbook_reason"),
    Field::CancelReason,
    Field::ClosureReason,
    Field::Chart("note", "subjective"),
    Field::Chart("note", "plan"),
    Field::Chart("lab", "test"),
    Field::Chart("lab", "unit"),
    Field::Chart("diagnosis", "description"),
    Field::Chart("procedure", "description"),
    Field::Chart("immunization", "lot"),
    Field::Medication("name"),
    Field::Medication("instructions"),
    Field::Message("subject"),
    Field::Message("body"),
    Field::Billing("payer"),
    Field::Billing("member_id"),
    Field::Billing("plan"),
    Field::Billing("description"),
    Field::Billing("method"),
    Field::Billing("adjustment"),
    Field::Billing("void"),
];

/// What the scheduling fields need: an admin and the front desk, and a
/// provider who works round the clock from `start` (each case books its own
/// five minutes after it).
struct Scheduling {
    admin: String,
    staff: String,
    provider: String,
    start: DateTime<Utc>,
}

/// Text from anywhere in Unicode, weighted towards what breaks things:
/// controls, NUL, bidirectional and zero-width characters, odd white space.
fn arbitrary_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\u{0}',
        '\u{1}',
        '\t',
        '\n',
        '\r',
        '\u{1b}',
        '\u{7f}',
        '\u{85}',
        '\u{9f}',
        '\u{a0}',
        '\u{ad}',
        '\u{200b}',
        '\u{200d}',
        '\u{200e}',
        '\u{2028}',
        '\u{202e}',
        '\u{2066}',
        '\u{3000}',
        '\u{feff}',
        '\u{fffd}',
        '\u{fffe}',
        '\u{1f600}',
        '\u{10ffff}',
        ' ',
        '@',
        '.',
        '+',
        '-',
        '(',
        '"',
        '\\',
        '\'',
        '%',
        '_',
    ]);
    let letters = prop::sample::select("aZé9ßЖ中ع".chars().collect::<Vec<_>>());
    let one = prop_oneof![4 => letters, 3 => special, 3 => any::<char>()];
    prop::collection::vec(one, 0..14).prop_map(String::from_iter)
}

/// What the domain keeps of a value it accepts.
fn kept(field: Field, text: &str) -> String {
    match field {
        Field::IdentifierSystem => text.trim().to_lowercase(),
        _ => text.trim().to_owned(),
    }
}

fn roundtrip(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, doctor, record, scheduling) = rt
        .block_on(async {
            let s = TestServer::start(backend).await?;
            let admin = admin(&s).await?;
            let doctor = user(&s, &admin, "dr.house", "doctor").await?;
            let staff = user(&s, &admin, "front.desk", "staff").await?;
            let clinician = user_id(&s, &admin, "dr.slots", "doctor").await?;
            let provider = enroll(&s, &admin, &clinician, "Dr Slots", "General").await?;
            set_hours(
                &s,
                &admin,
                &provider,
                hours(&EVERY_DAY, &[("00:00", "23:55")]),
                5,
            )
            .await?;
            let tomorrow = Utc::now().date_naive() + Duration::days(1);
            let scheduling = Scheduling {
                admin,
                staff,
                provider,
                start: tomorrow.and_time(NaiveTime::MIN).and_utc(),
            };
            let record = s
                .call(
                    "POST",
                    "/v1/patients",
                    Some(&doctor),
                    Some(patient("Fuzz")),
                    &[],
                )
                .await?;
            anyhow::ensure!(record.status == 201, "{record:?}");
            let record = record.body["id"].as_str().unwrap().to_owned();
            Ok::<_, anyhow::Error>((s, doctor, record, scheduling))
        })
        .unwrap();
    let n = AtomicUsize::new(0);
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..FIELDS.len(), arbitrary_text());
    let result = runner.run(&strategy, |(i, text)| {
        let case = n.fetch_add(1, Ordering::Relaxed);
        let outcome = rt.block_on(async {
            match FIELDS[i] {
                field @ (Field::Provider(_)
                | Field::Booking(_)
                | Field::CancelReason
                | Field::ClosureReason) => {
                    scheduling_case(&s, &scheduling, &record, case, field, &text).await
                }
                Field::Chart(kind, name) => {
                    chart_case(&s, &doctor, &record, (kind, name), &text).await
                }
                Field::Medication(name) => medication_case(&s, &doctor, case, name, &text).await,
                Field::Message(name) => message_case(&s, &scheduling.staff, name, &text).await,
                Field::Billing(name) => {
                    billing_case(&s, &scheduling, &record, (case, name), &text).await
                }
                field => one_case(&s, &doctor, &record, case, field, &text).await,
            }
        });
        match outcome {
            Ok(true) => accepted.fetch_add(1, Ordering::Relaxed),
            Ok(false) => refused.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "{:?} {text:?}: {e:#}",
                    FIELDS[i]
                )))
            }
        };
        Ok(())
    });
    rt.block_on(s.stop()).unwrap();
    result.unwrap();
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    // Both outcomes were exercised, or the property proved little.
    assert!(
        accepted > 10 && refused > 10,
        "accepted {accepted}, refused {refused}"
    );
}

/// One value in one field. `Ok(true)` when it was stored and read back
/// exactly, `Ok(false)` when it was refused with a 422 naming the field.
async fn one_case(
    s: &TestServer,
    doctor: &str,
    record: &str,
    case: usize,
    field: Field,
    text: &str,
) -> anyhow::Result<bool> {
    let before = s.event_count().await?;
    let mut body = patient(&format!("Case{case}"));
    body["identifiers"] = json!([{"system": "mrn", "value": format!("FUZZ-{case}")}]);
    body["address"] = json!({"line": "1 Rue Pierre", "city": "Paris", "postal_code": "75005",
                             "region": "IDF", "country": "FR"});
    let (path, sent_field, request) = match field {
        Field::Demographic(name) => {
            body[name] = json!(text);
            ("/v1/patients".to_owned(), name.to_owned(), body)
        }
        Field::Address(name) => {
            body["address"][name] = json!(text);
            ("/v1/patients".to_owned(), format!("address.{name}"), body)
        }
        Field::IdentifierSystem => {
            body["identifiers"][0]["system"] = json!(text);
            (
                "/v1/patients".to_owned(),
                "identifiers.system".to_owned(),
                body,
            )
        }
        Field::IdentifierValue => {
            // Unique per case, so that no two cases claim one identifier.
            body["identifiers"][0]["value"] = json!(format!("{text}#{case}"));
            (
                "/v1/patients".to_owned(),
                "identifiers.value".to_owned(),
                body,
            )
        }
        Field::Allergy(name) => {
            let mut a = json!({"substance": format!("Substance {case}"), "reaction": "hives",
                               "severity": "mild"});
            a[name] = json!(text);
            (
                format!("/v1/patients/{record}/allergies"),
                name.to_owned(),
                a,
            )
        }
        Field::Provider(_)
        | Field::Booking(_)
        | Field::CancelReason
        | Field::ClosureReason
        | Field::Chart(..)
        | Field::Medication(_)
        | Field::Message(_) => {
            anyhow::bail!("another domain's field in a patient case")
        }
        Field::Billing(_) => anyhow::bail!("a billing field in a patient case"),
        Field::Condition(name) => {
            let mut c = json!({"code": "J45", "description": "asthma"});
            c[name] = json!(text);
            (
                format!("/v1/patients/{record}/conditions"),
                name.to_owned(),
                c,
            )
        }
    };
    let r = s
        .call("POST", &path, Some(doctor), Some(request), &[])
        .await?;
    if r.status == 422 {
        let duplicate = r.code() == "duplicate_allergy" && sent_field == "substance";
        anyhow::ensure!(
            duplicate || r.field() == sent_field,
            "refused naming another field: {r:?}"
        );
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(r.status == 201, "neither stored nor refused: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    let patient_id = match field {
        Field::Allergy(_) | Field::Condition(_) => record.to_owned(),
        _ => id.clone(),
    };
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{patient_id}"),
            Some(doctor),
            None,
            &at(&r),
        )
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let find = |list: &str| -> Value {
        read.body[list]
            .as_array()
            .and_then(|items| items.iter().find(|x| x["id"] == json!(id)).cloned())
            .unwrap_or(Value::Null)
    };
    let back = match field {
        Field::Demographic(name) => read.body[name].clone(),
        Field::Address(name) => read.body["address"][name].clone(),
        Field::IdentifierSystem => read.body["identifiers"][0]["system"].clone(),
        Field::IdentifierValue => read.body["identifiers"][0]["value"].clone(),
        Field::Allergy(name) => find("allergies")[name].clone(),
        Field::Condition(name) => find("conditions")[name].clone(),
        _ => anyhow::bail!("a scheduling field in a patient case"),
    };
    let sent = match field {
        Field::IdentifierValue => format!("{text}#{case}"),
        _ => text.to_owned(),
    };
    let expected = kept(field, &sent);
    anyhow::ensure!(
        back.as_str() == Some(expected.as_str()),
        "read back {back:?}, expected {expected:?}"
    );
    Ok(true)
}

/// One value in one scheduling field, as [`one_case`] does for the record.
async fn scheduling_case(
    s: &TestServer,
    sc: &Scheduling,
    record: &str,
    case: usize,
    field: Field,
    text: &str,
) -> anyhow::Result<bool> {
    let slot = sc.start + Duration::minutes(5 * case as i64);
    let booking = json!({"provider_id": sc.provider, "patient_id": record,
                         "starts_at": slot.to_rfc3339(),
                         "ends_at": (slot + Duration::minutes(5)).to_rfc3339(),
                         "reason_for_visit": "Check-up"});
    let provider = format!("/v1/providers/{}", sc.provider);
    let (token, path, sent_field, body, read_path) = match field {
        Field::Provider(name) => {
            let user = user_id(s, &sc.admin, &format!("dr.case{case}"), "doctor").await?;
            let mut body = json!({"user_id": user, "display_name": "Dr Case",
                                  "specialty": "General", "default_minutes": 30});
            body[name] = json!(text);
            (
                &sc.admin,
                "/v1/providers".to_owned(),
                name,
                body,
                String::new(),
            )
        }
        Field::Booking(name) => {
            let mut body = booking;
            body[name] = json!(text);
            let path = match name {
                "overbook_reason" => "/v1/appointments/overbook",
                _ => "/v1/appointments",
            };
            (
                &sc.staff,
                path.to_owned(),
                name,
                body,
                "/v1/appointments/".to_owned(),
            )
        }
        Field::CancelReason => {
            let booked = s
                .call(
                    "POST",
                    "/v1/appointments",
                    Some(&sc.staff),
                    Some(booking),
                    &[],
                )
                .await?;
            anyhow::ensure!(booked.status == 201, "not booked: {booked:?}");
            let id = booked.body["id"].as_str().unwrap_or_default();
            (
                &sc.staff,
                format!("/v1/appointments/{id}/cancel"),
                "reason",
                json!({"reason": text}),
                "/v1/appointments/".to_owned(),
            )
        }
        Field::ClosureReason => {
            let start = slot + Duration::days(2);
            (
                &sc.staff,
                format!("{provider}/time-off"),
                "reason",
                json!({"starts_at": start.to_rfc3339(),
                       "ends_at": (start + Duration::minutes(5)).to_rfc3339(), "reason": text}),
                provider.clone(),
            )
        }
        _ => anyhow::bail!("a patient field in a scheduling case"),
    };
    let before = s.event_count().await?;
    let r = s.call("POST", &path, Some(token), Some(body), &[]).await?;
    if r.status == 422 {
        anyhow::ensure!(
            r.field() == sent_field,
            "refused naming another field: {r:?}"
        );
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(
        r.status == 201 || r.status == 200,
        "neither stored nor refused: {r:?}"
    );
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    let read_path = match field {
        Field::Provider(_) => format!("/v1/providers/{id}"),
        Field::ClosureReason => read_path,
        _ => format!("{read_path}{id}"),
    };
    let read = s
        .call("GET", &read_path, Some(&sc.staff), None, &at(&r))
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let back = match field {
        Field::Provider(name) | Field::Booking(name) => read.body[name].clone(),
        Field::CancelReason => read.body["cancel_reason"].clone(),
        _ => read.body["time_off"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["closure_id"] == json!(id)))
            .map(|c| c["reason"].clone())
            .unwrap_or(Value::Null),
    };
    anyhow::ensure!(
        back.as_str() == Some(text.trim()),
        "read back {back:?}, expected {:?}",
        text.trim()
    );
    Ok(true)
}

/// One value in one chart field, as [`one_case`] does for the record.
async fn chart_case(
    s: &TestServer,
    doctor: &str,
    record: &str,
    (kind, name): (&str, &str),
    text: &str,
) -> anyhow::Result<bool> {
    let when = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let mut body = match kind {
        "note" => json!({"kind": "note", "assessment": "Well"}),
        "lab" => json!({"kind": "lab", "test": "Sodium", "value": 140, "unit": "mmol/L",
                        "interpretation": "normal", "specimen_at": when}),
        "diagnosis" => json!({"kind": "diagnosis", "description": "Asthma", "status": "active"}),
        "procedure" => {
            json!({"kind": "procedure", "description": "Spirometry", "performed_at": when})
        }
        _ => json!({"kind": "immunization", "vaccine": "Influenza", "lot": "L1", "dose": "0.5 mL",
                    "site": "left deltoid", "given_at": when}),
    };
    body[name] = json!(text);
    let before = s.event_count().await?;
    let path = format!("/v1/patients/{record}/chart");
    let r = s.call("POST", &path, Some(doctor), Some(body), &[]).await?;
    if r.status == 422 {
        anyhow::ensure!(r.field() == name, "refused naming another field: {r:?}");
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(r.status == 201, "neither stored nor refused: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default();
    let read = s
        .call(
            "GET",
            &format!("/v1/chart/{id}"),
            Some(doctor),
            None,
            &at(&r),
        )
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let back = &read.body["current"][name];
    anyhow::ensure!(
        back.as_str() == Some(text.trim()),
        "read back {back:?}, expected {:?}",
        text.trim()
    );
    Ok(true)
}

/// A prescription with `text` in one field, for a record of its own (the
/// doctor registers it, and so cares for it): no earlier case's allergy or
/// drug stands in its way.
async fn medication_case(
    s: &TestServer,
    doctor: &str,
    case: usize,
    name: &str,
    text: &str,
) -> anyhow::Result<bool> {
    let registered = s
        .call(
            "POST",
            "/v1/patients",
            Some(doctor),
            Some(patient(&format!("Med{case}"))),
            &[],
        )
        .await?;
    anyhow::ensure!(registered.status == 201, "registering: {registered:?}");
    let record = registered.body["id"].as_str().unwrap_or_default();
    let mut order = json!({
        "medication": {"name": "Metformin"},
        "dose": {"amount": 500, "unit": "mg"},
        "route": "oral",
        "frequency": {"kind": "times_a_day", "times": ["08:00"]},
        "starts_at": Utc::now().to_rfc3339(),
        "instructions": "With breakfast"
    });
    let field = match name {
        "name" => {
            order["medication"]["name"] = json!(text);
            "medication.name"
        }
        _ => {
            order[name] = json!(text);
            name
        }
    };
    let before = s.event_count().await?;
    let path = format!("/v1/patients/{record}/medications");
    let r = s
        .call(
            "POST",
            &path,
            Some(doctor),
            Some(json!({"order": order})),
            &[],
        )
        .await?;
    if r.status == 422 {
        anyhow::ensure!(r.field() == field, "refused naming another field: {r:?}");
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(r.status == 201, "neither stored nor refused: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default();
    let read = s
        .call(
            "GET",
            &format!("/v1/medications/{id}"),
            Some(doctor),
            None,
            &at(&r),
        )
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let order = &read.body["medication"]["order"];
    let back = match name {
        "name" => &order["medication"]["name"],
        _ => &order[name],
    };
    anyhow::ensure!(
        back.as_str() == Some(text.trim()),
        "read back {back:?}, expected {:?}",
        text.trim()
    );
    Ok(true)
}

/// One value in a message thread's subject or body, as [`one_case`] does
/// for the record: the patient (an account made by the first case) writes
/// to the front desk.
async fn message_case(s: &TestServer, desk: &str, name: &str, text: &str) -> anyhow::Result<bool> {
    // One patient account per server, made by its first case.
    static WRITERS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let known = WRITERS.lock().unwrap().get(&s.base).cloned();
    let patient = match known {
        Some(token) => token,
        None => {
            let token = patient_account(s, "fuzz.patient", "Writer").await?.0;
            WRITERS
                .lock()
                .unwrap()
                .insert(s.base.clone(), token.clone());
            token
        }
    };
    let patient_id = claim(&patient, "pid")?;
    let mut body = json!({"patient_id": patient_id, "subject": "Question", "body": "Hello",
                          "participants": [claim(desk, "sub")?]});
    body[name] = json!(text);
    let before = s.event_count().await?;
    let r = s
        .call("POST", "/v1/threads", Some(&patient), Some(body), &[])
        .await?;
    if r.status == 422 {
        anyhow::ensure!(r.field() == name, "refused naming another field: {r:?}");
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(r.status == 201, "neither stored nor refused: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default();
    let read = s
        .call(
            "GET",
            &format!("/v1/threads/{id}"),
            Some(&patient),
            None,
            &at(&r),
        )
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let back = match name {
        "subject" => &read.body["thread"]["subject"],
        _ => &read.body["messages"][0]["body"],
    };
    anyhow::ensure!(
        back.as_str() == Some(text.trim()),
        "read back {back:?}, expected {:?}",
        text.trim()
    );
    Ok(true)
}

/// A claim of a bearer token, read without checking the signature (as
/// `fixtures::user_id_of` does).
fn claim(token: &str, name: &str) -> anyhow::Result<String> {
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

/// One value in one billing field, as [`one_case`] does for the record:
/// a coverage's text (read back from the coverage), a service code's
/// description (from the price list), a payment's method (from the bill).
async fn billing_case(
    s: &TestServer,
    sc: &Scheduling,
    record: &str,
    (case, name): (usize, &str),
    text: &str,
) -> anyhow::Result<bool> {
    let ok = |r: &anamnesis_tests::server::Reply, what: &str| {
        anyhow::ensure!(r.status < 300, "{what}: {r:?}");
        Ok(r.body["id"].as_str().unwrap_or_default().to_owned())
    };
    let (method, path, body, read_path) = match name {
        "description" => (
            "PUT",
            format!("/v1/billing/price-list/F{case}"),
            json!({"description": text, "unit_price": 100}),
            "/v1/billing/price-list".to_owned(),
        ),
        "method" | "adjustment" | "void" => {
            let price = json!({"description": "Fuzz", "unit_price": 100});
            let set = s
                .call(
                    "PUT",
                    "/v1/billing/price-list/FUZZ",
                    Some(&sc.admin),
                    Some(price),
                    &[],
                )
                .await?;
            ok(&set, "listing")?;
            let opened = s
                .call(
                    "POST",
                    "/v1/bills",
                    Some(&sc.staff),
                    Some(json!({"patient_id": record})),
                    &[],
                )
                .await?;
            let bill = ok(&opened, "opening")?;
            let line = json!({"code": "FUZZ", "quantity": 1});
            let lined = s
                .call(
                    "POST",
                    &format!("/v1/bills/{bill}/lines"),
                    Some(&sc.staff),
                    Some(line),
                    &[],
                )
                .await?;
            ok(&lined, "adding a line")?;
            let issued = s
                .call(
                    "POST",
                    &format!("/v1/bills/{bill}/issue"),
                    Some(&sc.staff),
                    None,
                    &[],
                )
                .await?;
            ok(&issued, "issuing")?;
            let (path, body) = match name {
                "method" => ("payments", json!({"amount": 100, "method": text})),
                "adjustment" => (
                    "adjustments",
                    json!({"kind": "adjustment", "amount": 100, "reason": text}),
                ),
                _ => ("void", json!({"reason": text})),
            };
            (
                "POST",
                format!("/v1/bills/{bill}/{path}"),
                body,
                format!("/v1/bills/{bill}"),
            )
        }
        _ => {
            let day =
                chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap() + Duration::days(case as i64);
            let mut body = json!({"payer": "Acme", "member_id": "M-1", "plan": "Gold",
                                  "valid_from": day.to_string(), "valid_to": day.to_string(),
                                  "rank": "secondary"});
            body[name] = json!(text);
            (
                "POST",
                format!("/v1/patients/{record}/coverage"),
                body,
                format!("/v1/patients/{record}/coverage"),
            )
        }
    };
    let token = match name {
        "description" => &sc.admin,
        _ => &sc.staff,
    };
    let before = s.event_count().await?;
    let r = s.call(method, &path, Some(token), Some(body), &[]).await?;
    if r.status == 422 {
        let field = match name {
            "adjustment" | "void" => "reason",
            _ => name,
        };
        anyhow::ensure!(r.field() == field, "refused naming another field: {r:?}");
        anyhow::ensure!(
            s.event_count().await? == before,
            "a refused request wrote events"
        );
        return Ok(false);
    }
    anyhow::ensure!(r.status < 300, "neither stored nor refused: {r:?}");
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    let read = s
        .call("GET", &read_path, Some(token), None, &at(&r))
        .await?;
    anyhow::ensure!(read.status == 200, "not read back: {read:?}");
    let back = match name {
        "description" => read
            .body
            .as_array()
            .and_then(|l| l.iter().find(|p| p["code"] == json!(format!("F{case}"))))
            .map(|p| p["description"].clone()),
        "method" | "adjustment" => Some(read.body["movements"][0]["note"].clone()),
        "void" => Some(read.body["void_reason"].clone()),
        _ => read
            .body
            .as_array()
            .and_then(|l| l.iter().find(|c| c["coverage_id"] == json!(id)))
            .map(|c| c[name].clone()),
    }
    .unwrap_or(Value::Null);
    anyhow::ensure!(
        back.as_str() == Some(text.trim()),
        "read back {back:?}, expected {:?}",
        text.trim()
    );
    Ok(true)
}
