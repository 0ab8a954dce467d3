//! Analytics queries (ADR 0021): a clinic seeded through the HTTP API
//! (patients, ten providers of five specialties, a few thousand
//! appointments over a month, a third of them completed and a seventh
//! cancelled, prescriptions and bills with claims for some patients), then
//! each analyst question asked back to back by `--clients` clients for
//! `--seconds`, with its p50 and p99.
//!
//! cargo run --release -p anamnesis-tests --bin bench-analytics -- --backend postgres
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use anamnesis_tests::bench::{closed_loop, fan_out, id, BenchServer};
use anyhow::Context;
use chrono::{Duration, Utc};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Patients registered.
    #[arg(long, default_value_t = 500)]
    patients: usize,
    /// Appointments booked (200 a day, from tomorrow).
    #[arg(long, default_value_t = 4000)]
    appointments: usize,
    /// Patients given a prescription and a bill with a claim.
    #[arg(long, default_value_t = 300)]
    billed: usize,
    /// Concurrent clients of each question.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds of each question.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// `postgres` or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
}

const PASSWORD: &str = "benchmark password";
const PROVIDERS: usize = 10;
/// Half-hour slots a provider has a day (08:00 to 18:00).
const SLOTS: usize = 20;
const PER_DAY: usize = PROVIDERS * SLOTS;
const DRUGS: [&str; 5] = [
    "Amoxicillin",
    "Ibuprofen",
    "Lisinopril",
    "Cephalexin",
    "Salbutamol",
];

fn position(v: &Value) -> i64 {
    v["position"].as_i64().unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = anamnesis_tests::bench::backend_and_logs(&args.backend)?;
    anyhow::ensure!(
        args.patients >= PER_DAY && args.patients % PROVIDERS == 0 && args.billed <= args.patients,
        "--patients is a multiple of {PROVIDERS}, at least {PER_DAY} (no one twice a day, \
         everyone with one provider); --billed at most --patients"
    );
    let s = Arc::new(BenchServer::start(backend, args.clients.max(64)).await?);
    let admin = s.admin(PASSWORD).await?;
    let every_day = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let hours: Vec<Value> = every_day
        .iter()
        .map(|d| json!({"day": d, "intervals": [{"start": "08:00", "end": "18:00"}]}))
        .collect();
    let mut providers = Vec::new();
    let mut doctors = Vec::new();
    for p in 0..PROVIDERS {
        let name = format!("doctor{p}");
        let body = json!({"username": name, "password": PASSWORD, "role": "doctor"});
        let user = s
            .expect(201, ("POST", "/v1/users"), &admin, Some(&body))
            .await?;
        let body = json!({"user_id": id(&user)?, "display_name": format!("Dr {p}"),
                          "specialty": format!("specialty {}", p % 5), "default_minutes": 30});
        let provider = id(&s
            .expect(201, ("POST", "/v1/providers"), &admin, Some(&body))
            .await?)?;
        let path = format!("/v1/providers/{provider}/availability");
        let body = json!({"hours": hours, "slot_minutes": 30});
        s.expect(200, ("PUT", &path), &admin, Some(&body)).await?;
        providers.push(provider);
        doctors.push(s.login(&name, PASSWORD).await?);
    }
    for (name, role) in [("staff", "staff"), ("analyst", "analyst")] {
        let body = json!({"username": name, "password": PASSWORD, "role": role});
        s.expect(201, ("POST", "/v1/users"), &admin, Some(&body))
            .await?;
    }
    let staff = Arc::new(s.login("staff", PASSWORD).await?);
    let analyst = Arc::new(s.login("analyst", PASSWORD).await?);

    let seeding = Instant::now();
    let patients: Vec<String> = fan_out(args.patients, 32, |i| {
        let (s, staff) = (s.clone(), staff.clone());
        async move {
            let body = json!({
                "family_name": format!("Bench{i}"), "given_name": "Pat",
                "birth_date": format!("{}-0{}-1{}", 1940 + i % 80, 1 + i % 9, i % 10),
                "sex": if i % 2 == 0 { "female" } else { "male" },
                "address": {"line": "1 High St", "city": "Town",
                            "postal_code": format!("{:05}", 10_000 + (i % 40) * 100),
                            "country": "US"}
            });
            s.expect(201, ("POST", "/v1/patients"), &staff, Some(&body))
                .await
        }
    })
    .await?
    .iter()
    .map(id)
    .collect::<anyhow::Result<_>>()?;
    let patients = Arc::new(patients);
    let providers = Arc::new(providers);
    let tomorrow = Utc::now().date_naive() + Duration::days(1);
    let start = tomorrow.and_hms_opt(8, 0, 0).context("08:00")?.and_utc();
    let booked = fan_out(args.appointments, 32, |k| {
        let (s, staff, patients, providers) = (
            s.clone(),
            staff.clone(),
            patients.clone(),
            providers.clone(),
        );
        async move {
            let (day, slot) = (k / PER_DAY, k % PER_DAY);
            let starts = start
                + Duration::days(day as i64)
                + Duration::minutes(30 * (slot / PROVIDERS) as i64);
            let body = json!({"provider_id": providers[slot % PROVIDERS],
                              "patient_id": patients[k % patients.len()],
                              "starts_at": starts.to_rfc3339(), "reason_for_visit": "check-up"});
            let appointment = id(&s
                .expect(201, ("POST", "/v1/appointments"), &staff, Some(&body))
                .await?)?;
            if k % 7 == 0 {
                let path = format!("/v1/appointments/{appointment}/cancel");
                let body = json!({"reason": "bench"});
                return s.expect(200, ("POST", &path), &staff, Some(&body)).await;
            }
            let mut last = Value::Null;
            if k % 3 == 0 {
                for step in ["check-in", "start", "complete"] {
                    let path = format!("/v1/appointments/{appointment}/{step}");
                    last = s.expect(200, ("POST", &path), &staff, None).await?;
                }
            }
            Ok(last)
        }
    })
    .await?;
    let doctors = Arc::new(doctors);
    let price = json!({"description": "Office visit", "unit_price": 12_000});
    s.expect(
        200,
        ("PUT", "/v1/billing/price-list/99213"),
        &admin,
        Some(&price),
    )
    .await?;
    let billed = fan_out(args.billed, 16, |i| {
        let (s, staff, patients, doctors) =
            (s.clone(), staff.clone(), patients.clone(), doctors.clone());
        async move {
            let patient = &patients[i];
            // Patient i's first appointment is with provider i % 10: in care.
            let order = json!({"order": {"medication": {"name": DRUGS[i % DRUGS.len()]},
                "dose": {"amount": 10, "unit": "mg"}, "route": "oral",
                "frequency": {"kind": "times_a_day", "times": ["08:00"]},
                "starts_at": Utc::now().to_rfc3339(), "duration_days": 7}});
            let path = format!("/v1/patients/{patient}/medications");
            s.expect(201, ("POST", &path), &doctors[i % PROVIDERS], Some(&order))
                .await?;
            let body = json!({"payer": format!("Payer {}", i % 4), "member_id": format!("M{i}"),
                              "plan": "Basic", "valid_from": "2000-01-01", "rank": "primary"});
            let path = format!("/v1/patients/{patient}/coverage");
            let coverage = id(&s.expect(201, ("POST", &path), &staff, Some(&body)).await?)?;
            let body = json!({"patient_id": patient});
            let bill = id(&s
                .expect(201, ("POST", "/v1/bills"), &staff, Some(&body))
                .await?)?;
            let path = format!("/v1/bills/{bill}/lines");
            let body = json!({"code": "99213", "quantity": 1});
            s.expect(201, ("POST", &path), &staff, Some(&body)).await?;
            let path = format!("/v1/bills/{bill}/issue");
            s.expect(200, ("POST", &path), &staff, None).await?;
            let path = format!("/v1/bills/{bill}/claims");
            let body = json!({"coverage_id": coverage, "amount": 9_000});
            s.expect(201, ("POST", &path), &staff, Some(&body)).await
        }
    })
    .await?;
    let head = booked
        .iter()
        .chain(&billed)
        .map(position)
        .max()
        .unwrap_or(0);
    eprintln!(
        "seeded {} patients, {} appointments, {} prescriptions and bills in {:.1} s",
        args.patients,
        args.appointments,
        args.billed,
        seeding.elapsed().as_secs_f64()
    );
    // Wait for the analytics projector to hold every event.
    let caught_up = Instant::now();
    loop {
        let (status, _) = s
            .call(
                "GET",
                "/v1/analytics/patients",
                Some(&analyst),
                None,
                &[("X-Min-Position", head.to_string())],
            )
            .await?;
        if status == 200 {
            break;
        }
        anyhow::ensure!(
            caught_up.elapsed().as_secs() < 120,
            "analytics did not catch up"
        );
    }

    let days = (args.appointments / PER_DAY + 1) as i64;
    let (from, to) = (tomorrow, tomorrow + Duration::days(days));
    let today = Utc::now().date_naive();
    let questions = [
        (
            "appointments by day",
            format!("/v1/analytics/appointments?from={from}&to={to}&group_by=day"),
        ),
        (
            "appointments by provider",
            format!("/v1/analytics/appointments?from={from}&to={to}&group_by=provider"),
        ),
        (
            "appointments by specialty, CSV",
            format!("/v1/analytics/appointments?from={from}&to={to}&group_by=specialty&format=csv"),
        ),
        (
            "patients by age band",
            "/v1/analytics/patients?group_by=age_band".to_owned(),
        ),
        (
            "patients by region",
            "/v1/analytics/patients?group_by=region".to_owned(),
        ),
        (
            "prescriptions by class",
            format!("/v1/analytics/prescriptions?from={today}&to={today}"),
        ),
        (
            "billing by month",
            format!("/v1/analytics/billing?from={today}&to={today}&group_by=month"),
        ),
        (
            "billing by payer",
            format!("/v1/analytics/billing?from={today}&to={today}&group_by=payer"),
        ),
    ];
    let mut figures = Vec::new();
    for (name, path) in questions {
        let (s, analyst) = (s.clone(), analyst.clone());
        let path = Arc::new(path);
        let f = closed_loop(name, args.clients, args.seconds, move |_| {
            let (s, analyst, path) = (s.clone(), analyst.clone(), path.clone());
            async move {
                let status = s.get_status(&path, &analyst).await?;
                anyhow::ensure!(status == 200, "{path}: {status}");
                Ok(())
            }
        })
        .await?;
        figures.push((name, f));
    }
    println!(
        "analytics on {} ({} patients, {} appointments, {} prescriptions, bills and claims), {} clients:",
        args.backend, args.patients, args.appointments, args.billed, args.clients
    );
    for (name, f) in &figures {
        f.print(name, "req");
    }
    Arc::into_inner(s)
        .context("the server is still shared")?
        .stop()
        .await
}
