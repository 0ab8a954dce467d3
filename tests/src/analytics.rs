//! The analytics scenario (ADR 0021), kept apart from the test that runs it
//! so that the same assertions can run against any way of feeding the
//! analytics tables (the in-process projector, or a consumer fed from
//! NATS): [`seed`] makes a small clinic through the HTTP API,
//! [`record_no_shows`] records the no-shows (their start must have passed,
//! so they go through the command layer with the clock at the end of the
//! day, the server stopped), and [`check`] holds the analyst API to the
//! numbers, the small-cell suppression and the absence of patient data.

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::{Actor, EventLog, EventMetadata};
use anamnesis_domain::schedule::{Appointment, AppointmentCommand};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::fixtures::{admin, user};
use crate::schedule::{account, book, enroll, free_slots, hours, set_hours, Clinic, EVERY_DAY};
use crate::server::{Reply, TestServer};

mod check;

pub use check::{check, check_tables, dump, get};

/// The clinic's zone: far from UTC, so that local days matter.
pub const ZONE: &str = crate::schedule::LOS_ANGELES;

/// Patients in the clinic.
pub const PATIENTS: usize = 12;

/// What [`seed`] made, and what the checks need of it.
pub struct Seeded {
    pub analyst: String,
    pub doctor: String,
    pub provider_a: String,
    pub provider_b: String,
    pub patients: Vec<String>,
    /// Today, the late cancellation's day, and the two visit days.
    pub today: NaiveDate,
    pub late_day: NaiveDate,
    pub day: NaiveDate,
    pub next_day: NaiveDate,
    /// The appointments the patients missed, and the staff member who
    /// records it.
    pub missed: Vec<String>,
    pub staff_user: String,
    /// The mean days from booking to start of the first day's visits, as
    /// the test measured it.
    pub lead_days: f64,
    /// Every value of a patient the fixtures wrote: none may reach the
    /// analytics tables or answers.
    pub secrets: Vec<String>,
}

fn demographics(i: usize) -> Value {
    let birth = if i < 10 {
        format!("{}-0{}-1{}", 1962 + i % 8, 1 + i % 9, i % 10)
    } else {
        format!("2000-05-1{}", i % 10)
    };
    let postal = if i < 10 {
        format!("SW1A {i}ZZ")
    } else {
        format!("EC1A {i}BB")
    };
    json!({
        "family_name": format!("Quillfeather{i}"),
        "given_name": format!("Ottoline{i}"),
        "birth_date": birth,
        "sex": if i < 9 { "female" } else { "male" },
        "phone": format!("+44 20 7946 {:04}", 100 + i),
        "email": format!("ottoline{i}@quill.example"),
        "address": {"line": format!("{i} Vauxhall Bridge Road"), "city": "Westminster",
                    "postal_code": postal, "region": "Greater London", "country": "GB"},
        "identifiers": [{"system": "mrn", "value": format!("MRN-QF-{i:03}")}]
    })
}

/// The values of patient `i` that must never be seen in analytics.
fn secrets_of(i: usize) -> Vec<String> {
    let d = demographics(i);
    let mut out: Vec<String> = [
        &d["family_name"],
        &d["given_name"],
        &d["birth_date"],
        &d["phone"],
        &d["email"],
        &d["address"]["line"],
        &d["address"]["postal_code"],
        &d["identifiers"][0]["value"],
    ]
    .iter()
    .filter_map(|v| v.as_str().map(str::to_owned))
    .collect();
    out.push(format!("QF-M-{i}"));
    out
}

async fn ok(r: Reply, what: &str) -> anyhow::Result<Reply> {
    anyhow::ensure!(r.status < 300, "{what}: {r:?}");
    Ok(r)
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    ok(
        s.call("POST", path, Some(token), Some(body), &[]).await?,
        path,
    )
    .await
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_default().to_owned()
}

/// Makes the clinic through the HTTP API: 12 patients, two providers,
/// visits completed, cancelled (one late) and booked to be missed,
/// prescriptions of three classes, a bill with a claim for everyone, a
/// patient who moves and one who dies.
pub async fn seed(s: &TestServer) -> anyhow::Result<Seeded> {
    let clinic = Clinic::new(ZONE)?;
    let admin = admin(s).await?;
    let staff = user(s, &admin, "front.desk", "staff").await?;
    let staff_user = crate::fixtures::user_id_of(&staff)?;
    let analyst = user(s, &admin, "the.analyst", "analyst").await?;
    let (doctor, doctor_a) = account(s, &admin, "dr.a", "doctor").await?;
    let (_, doctor_b) = account(s, &admin, "dr.b", "doctor").await?;
    let provider_a = enroll(s, &admin, &doctor_a, "Dr A", "Cardiology").await?;
    let provider_b = enroll(s, &admin, &doctor_b, "Dr B", "Dermatology").await?;
    for p in [&provider_a, &provider_b] {
        set_hours(s, &admin, p, hours(&EVERY_DAY, &[("07:00", "19:00")]), 30).await?;
    }
    let mut patients = Vec::new();
    let mut secrets = vec![
        "Westminster".to_owned(),
        "Greater London".to_owned(),
        "Persistent cough".to_owned(),
        "Amoxicillin".to_owned(),
        "Ibuprofen".to_owned(),
        "Salbutamol".to_owned(),
        "Office visit".to_owned(),
        "Gold Plus".to_owned(),
        "moved abroad".to_owned(),
        "rash on day two".to_owned(),
        "cash".to_owned(),
    ];
    for i in 0..PATIENTS {
        patients.push(id(&post(s, &staff, "/v1/patients", demographics(i)).await?));
        secrets.extend(secrets_of(i));
    }

    // The first day: Dr A sees ten patients; five come, five will not.
    // The last visit is at 17:30 local, which is the next day in UTC.
    let today = clinic.today();
    let day = today + Duration::days(3);
    let next_day = day + Duration::days(1);
    let mut lead = 0.0;
    let mut missed = Vec::new();
    for (i, patient) in patients.iter().take(10).enumerate() {
        let time = if i == 9 {
            "17:30".to_owned()
        } else {
            format!("{:02}:{}", 8 + i / 2, if i % 2 == 0 { "00" } else { "30" })
        };
        let starts = clinic.instant(day, &time);
        let booked = ok(
            book(s, &staff, &provider_a, patient, &clinic.rfc3339(starts)).await?,
            "booking",
        )
        .await?;
        lead += (starts - Utc::now()).num_seconds() as f64 / 86_400.0;
        let appointment = id(&booked);
        if i < 5 {
            for step in ["check-in", "start", "complete"] {
                let path = format!("/v1/appointments/{appointment}/{step}");
                ok(s.call("POST", &path, Some(&staff), None, &[]).await?, &path).await?;
            }
        } else {
            missed.push(appointment);
        }
    }
    // The next day: Dr B sees five; one cancels in good time.
    for (i, patient) in patients.iter().take(6).enumerate() {
        let starts = clinic.at(next_day, &format!("{:02}:00", 9 + i));
        let appointment = id(&ok(
            book(s, &staff, &provider_b, patient, &starts).await?,
            "booking",
        )
        .await?);
        if i == 0 {
            let path = format!("/v1/appointments/{appointment}/cancel");
            post(s, &staff, &path, json!({"reason": "moved abroad"})).await?;
        } else {
            for step in ["check-in", "start", "complete"] {
                let path = format!("/v1/appointments/{appointment}/{step}");
                ok(s.call("POST", &path, Some(&staff), None, &[]).await?, &path).await?;
            }
        }
    }
    // A late cancellation: Dr B's next free slot, within a day.
    let slots = free_slots(
        s,
        &staff,
        &provider_b,
        (today, today + Duration::days(1)),
        None,
    )
    .await?;
    let soon: DateTime<Utc> = slots
        .into_iter()
        .find(|t| *t > Utc::now() + Duration::minutes(10))
        .ok_or_else(|| anyhow::anyhow!("no free slot within a day"))?;
    let late = id(&ok(
        book(s, &staff, &provider_b, &patients[10], &clinic.rfc3339(soon)).await?,
        "booking",
    )
    .await?);
    let cancelled = post(
        s,
        &staff,
        &format!("/v1/appointments/{late}/cancel"),
        json!({"reason": "moved abroad"}),
    )
    .await?;
    anyhow::ensure!(cancelled.status < 300, "late cancel: {cancelled:?}");

    prescribe_all(s, &doctor, &patients).await?;
    bill_all(s, &admin, &staff, &patients).await?;
    // The last patient moves into the first ten's region; the tenth dies.
    let mut moved = demographics(11);
    moved["address"]["postal_code"] = json!("SW1A 9QQ");
    let path = format!("/v1/patients/{}/demographics", patients[11]);
    ok(
        s.call("PUT", &path, Some(&staff), Some(moved), &[]).await?,
        &path,
    )
    .await?;
    secrets.push("SW1A 9QQ".to_owned());
    let path = format!("/v1/patients/{}/deceased", patients[9]);
    post(s, &doctor, &path, json!({"deceased_on": today.to_string()})).await?;
    Ok(Seeded {
        analyst,
        doctor,
        provider_a,
        provider_b,
        patients,
        today,
        late_day: clinic.zone.date_of(soon),
        day,
        next_day,
        missed,
        staff_user,
        lead_days: lead / 10.0,
        secrets,
    })
}

/// Amoxicillin for five (one discontinued), ibuprofen for five, and
/// salbutamol (a drug the class table does not know) for two.
async fn prescribe_all(s: &TestServer, doctor: &str, patients: &[String]) -> anyhow::Result<()> {
    let order = |name: &str| {
        json!({"order": {"medication": {"name": name}, "dose": {"amount": 500, "unit": "mg"},
               "route": "oral", "frequency": {"kind": "times_a_day", "times": ["08:00", "20:00"]},
               "starts_at": Utc::now().to_rfc3339(), "duration_days": 7}})
    };
    for (i, patient) in patients.iter().take(10).enumerate() {
        let path = format!("/v1/patients/{patient}/medications");
        let drug = if i < 5 { "Amoxicillin" } else { "Ibuprofen" };
        let written = post(s, doctor, &path, order(drug)).await?;
        if i == 0 {
            let stop = format!("/v1/medications/{}/stop", id(&written));
            post(
                s,
                doctor,
                &stop,
                json!({"outcome": "discontinued", "reason": "rash on day two"}),
            )
            .await?;
        }
        if i < 2 {
            post(s, doctor, &path, order("Salbutamol")).await?;
        }
    }
    Ok(())
}

/// A bill of 120.00 for everyone, issued, with a claim of 96.00: Acme
/// pays five in full (the patient pays the rest) and denies five; Beta
/// has not answered its two.
async fn bill_all(
    s: &TestServer,
    admin: &str,
    staff: &str,
    patients: &[String],
) -> anyhow::Result<()> {
    let price = json!({"description": "Office visit", "unit_price": 12_000});
    let set = s
        .call(
            "PUT",
            "/v1/billing/price-list/99213",
            Some(admin),
            Some(price),
            &[],
        )
        .await?;
    ok(set, "price").await?;
    for (i, patient) in patients.iter().enumerate() {
        let payer = if i < 10 { "Acme Health" } else { "Beta Mutual" };
        let coverage = post(
            s,
            staff,
            &format!("/v1/patients/{patient}/coverage"),
            json!({"payer": payer, "member_id": format!("QF-M-{i}"), "plan": "Gold Plus",
                   "valid_from": "2000-01-01", "rank": "primary"}),
        )
        .await?;
        let bill = id(&post(s, staff, "/v1/bills", json!({"patient_id": patient})).await?);
        let lines = format!("/v1/bills/{bill}/lines");
        post(s, staff, &lines, json!({"code": "99213", "quantity": 1})).await?;
        post(s, staff, &format!("/v1/bills/{bill}/issue"), json!(null)).await?;
        let claim = post(
            s,
            staff,
            &format!("/v1/bills/{bill}/claims"),
            json!({"coverage_id": id(&coverage), "amount": 9_600}),
        )
        .await?;
        if i >= 10 {
            continue;
        }
        let response = format!("/v1/bills/{bill}/claims/{}/response", id(&claim));
        post(s, staff, &response, json!({"outcome": "accepted"})).await?;
        if i < 5 {
            post(
                s,
                staff,
                &response,
                json!({"outcome": "adjudicated", "paid": 9_600}),
            )
            .await?;
            let pay = format!("/v1/bills/{bill}/payments");
            post(s, staff, &pay, json!({"amount": 2_400, "method": "cash"})).await?;
        } else {
            let denied = json!({"outcome": "adjudicated", "paid": 0, "reason_codes": ["CO-50"]});
            post(s, staff, &response, denied).await?;
        }
    }
    Ok(())
}

/// Records the no-shows: the server stops, the command layer records them
/// with the clock at the end of the first day, and the server starts again
/// in the clinic's zone, with `extra` arguments (a NATS URL, say).
pub async fn record_no_shows(
    s: TestServer,
    seeded: &Seeded,
    extra: &[&str],
) -> anyhow::Result<TestServer> {
    let (db, url, _) = s.shut_down().await?;
    let log = EventLog::open_with(db.db.clone(), crate::server::test_keyring()?).await?;
    let bus = CommandBus::new(log);
    let now = Clinic::new(ZONE)?.instant(seeded.day, "23:00");
    let meta = EventMetadata::by(Actor::new(seeded.staff_user.as_str(), "staff"));
    for appointment in &seeded.missed {
        bus.execute::<Appointment>(appointment, AppointmentCommand::NoShow { now }, &(), &meta)
            .await
            .map_err(|e| anyhow::anyhow!("no-show: {e}"))?;
    }
    drop(bus);
    let mut args = vec!["--time-zone", ZONE];
    args.extend_from_slice(extra);
    TestServer::start_on(db, url, &args).await
}
