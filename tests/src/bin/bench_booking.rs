//! Booking load. Phase 1, the storm: 10 providers with 10 half-hour slots
//! each on one future weekday, 1,000 clients released at once, client `i`
//! booking slot `i % 100` for patient `i` (each slot wanted by ten): exactly
//! 100 must win, and the read model must then hold exactly those 100, with
//! no two overlapping on a provider's calendar. Phase 2: free-slot queries
//! over a provider's week with 1,000 bookings on it.
//!
//! cargo run --release -p anamnesis-tests --bin bench-booking -- --backend postgres
#![forbid(unsafe_code)]

use std::sync::Arc;

use anamnesis_tests::bench::{catch_up, closed_loop, fan_out, id, open_loop, BenchServer};
use anamnesis_tests::storm::{at, day_name, provider, report, storm, verify, PASSWORD};
use chrono::{Datelike, Duration, Utc};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent booking clients in the storm (and patients registered).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Concurrent clients of the free-slot queries.
    #[arg(long, default_value_t = 100)]
    query_clients: usize,
    /// Measured seconds of the free-slot queries.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// `postgres` or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// Arrival rate (bookings/s) of phase 3, bookings arriving on a schedule
    /// instead of all at once; it runs for 1,000 / rate seconds.
    #[arg(long, default_value_t = 250.0)]
    rate: f64,
}

const PROVIDERS: usize = 10;
const SLOTS_PER_PROVIDER: usize = 10;
const SLOT_MINUTES: i64 = 30;
/// Bookings on the week of the free-slot queries.
const WEEK_BOOKINGS: usize = 1000;
/// Bookings in flight at most in phase 3.
const IN_FLIGHT: u64 = 1000;
/// Five-minute slots a day from 00:00 to 23:55.
const SLOTS_PER_DAY: usize = 287;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = anamnesis_tests::bench::backend_and_logs(&args.backend)?;
    anyhow::ensure!(
        args.clients >= WEEK_BOOKINGS,
        "--clients is at least {WEEK_BOOKINGS}: phase 2 books for that many patients"
    );
    let s = Arc::new(BenchServer::start(backend, args.clients).await?);

    // The storm's day: a weekday two weeks ahead; the queried week: the
    // Monday to Sunday after it (both inside the 12-week horizon).
    let today = Utc::now().date_naive();
    let mut day = today + Duration::days(14);
    while day.weekday().num_days_from_monday() >= 5 {
        day += Duration::days(1);
    }
    let monday = day + Duration::days(7 - i64::from(day.weekday().num_days_from_monday()));
    let sunday = monday + Duration::days(6);

    eprintln!(
        "seeding: {PROVIDERS} providers with {SLOTS_PER_PROVIDER} slots on {day}, {} patients",
        args.clients
    );
    let admin = s.admin(PASSWORD).await?;
    s.expect(
        201,
        ("POST", "/v1/users"),
        &admin,
        Some(&json!({"username": "desk", "password": PASSWORD, "role": "staff"})),
    )
    .await?;
    let staff = Arc::new(s.login("desk", PASSWORD).await?);
    let storm_hours = (
        json!([{"day": day_name(day.weekday()), "intervals": [{"start": "09:00", "end": "14:00"}]}]),
        SLOT_MINUTES,
    );
    let mut providers = Vec::new();
    for p in 0..PROVIDERS {
        providers.push(provider(&s, &admin, &format!("doctor{p}"), storm_hours.clone()).await?);
    }
    let patients: Vec<String> = fan_out(args.clients, 16, |i| {
        let (s, staff) = (s.clone(), staff.clone());
        async move {
            let body = json!({"family_name": format!("Bench{i}"), "given_name": "Load",
                "birth_date": "1980-01-01", "sex": "unknown",
                "identifiers": [{"system": "mrn", "value": format!("B-{i}")}]});
            s.expect(201, ("POST", "/v1/patients"), &staff, Some(&body))
                .await
        }
    })
    .await?
    .iter()
    .map(id)
    .collect::<anyhow::Result<_>>()?;

    let slots = PROVIDERS * SLOTS_PER_PROVIDER;
    eprintln!("storm: {} clients on {slots} slots", args.clients);
    let mut bodies = Vec::with_capacity(args.clients);
    for (i, patient) in patients.iter().enumerate() {
        let slot = i % slots;
        let minute = 9 * 60 + SLOT_MINUTES * (slot % SLOTS_PER_PROVIDER) as i64;
        bodies.push(json!({
            "provider_id": providers[slot / SLOTS_PER_PROVIDER],
            "patient_id": patient,
            "starts_at": at(day, minute)?.to_rfc3339(),
            "reason_for_visit": "check-up",
        }));
    }
    // The storm is measured on a settled server: the read models have
    // taken the seeding's registrations, as they would have long before a
    // clinic's slots open.
    let settled = catch_up(&s.http, &s.base).await?;
    eprintln!("read models caught up with the seeding in {settled:.2} s");
    let contended = storm(&s, &staff, bodies).await?;
    println!();
    println!("backend {}, {} clients at once", args.backend, args.clients);
    let (wins, errors, p99) = report(
        &format!("POST /v1/appointments, {slots} slots x 10 clients"),
        &contended,
    )?;
    let met = wins == slots && errors == 0 && p99 <= 100.0;
    println!(
        "goal: exactly {slots} wins, 0 errors, p99 <= 100 ms: {}",
        if met { "met" } else { "MISSED" }
    );
    verify(&s, &staff, (day, &[]), &contended, slots).await?;

    // Phase 2: one provider open all week in five-minute slots, every
    // other slot booked, each by another patient. Booked as a storm too,
    // for comparison: as many clients at once, each on a slot of its own.
    let every_day: Vec<Value> = (0..7)
        .map(|d| {
            let name = day_name((monday + Duration::days(d)).weekday());
            json!({"day": name, "intervals": [{"start": "00:00", "end": "23:55"}]})
        })
        .collect();
    let busy = provider(&s, &admin, "doctor_busy", (json!(every_day), 5)).await?;
    eprintln!("seeding: {WEEK_BOOKINGS} bookings on {monday}..{sunday}");
    let mut bodies = Vec::with_capacity(WEEK_BOOKINGS);
    for (i, patient) in patients.iter().take(WEEK_BOOKINGS).enumerate() {
        let slot = 2 * i;
        let date = monday + Duration::days((slot / SLOTS_PER_DAY) as i64);
        bodies.push(json!({"provider_id": busy, "patient_id": patient,
            "starts_at": at(date, 5 * (slot % SLOTS_PER_DAY) as i64)?.to_rfc3339(),
            "reason_for_visit": "follow-up"}));
    }
    catch_up(&s.http, &s.base).await?;
    let seeded = storm(&s, &staff, bodies).await?;
    let (wins, _, _) = report(
        &format!("POST /v1/appointments, {WEEK_BOOKINGS} slots x 1 client"),
        &seeded,
    )?;
    anyhow::ensure!(
        wins == WEEK_BOOKINGS,
        "seeding the week: {wins} of {WEEK_BOOKINGS} booked"
    );
    let last = seeded.last_position();
    let query = Arc::new(format!(
        "/v1/providers/{busy}/slots?from={monday}&to={sunday}"
    ));
    let (status, first) = s
        .call(
            "GET",
            &query,
            Some(&staff),
            None,
            &[("X-Min-Position", last.to_string())],
        )
        .await?;
    let free = first["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        status == 200 && free == 7 * SLOTS_PER_DAY - WEEK_BOOKINGS,
        "free slots of the week: {status}, {free} (expected {})",
        7 * SLOTS_PER_DAY - WEEK_BOOKINGS
    );
    let slots_query = {
        let (s, staff, query) = (s.clone(), staff.clone(), query.clone());
        move |_: u64| {
            let (s, staff, query) = (s.clone(), staff.clone(), query.clone());
            async move {
                let status = s.get_status(&query, &staff).await?;
                anyhow::ensure!(status == 200, "free slots: {status}");
                Ok(())
            }
        }
    };
    let figures = closed_loop("free slots", args.query_clients, args.seconds, slots_query).await?;
    println!("free slots of one provider's week: {free} free, {WEEK_BOOKINGS} booked");
    figures.print(
        &format!(
            "GET /v1/providers/{{id}}/slots at {} clients",
            args.query_clients
        ),
        "q",
    );

    // Phase 3: bookings arriving on a schedule, as a front desk and a portal
    // would send them: patient i takes the free slot right after their own
    // (adjacent, not overlapping), so every booking should win.
    let seconds = (WEEK_BOOKINGS as f64 / args.rate).ceil().max(1.0) as u64;
    let scheduled = {
        let (s, staff, busy) = (s.clone(), staff.clone(), busy.clone());
        let patients = Arc::new(patients.clone());
        move |n: u64| {
            let (s, staff, busy, patients) =
                (s.clone(), staff.clone(), busy.clone(), patients.clone());
            async move {
                // `open_loop` numbers arrivals with the in-flight slot in the
                // high half: back to the arrival's index.
                let i = ((n & 0xffff_ffff) * IN_FLIGHT + (n >> 32)) as usize;
                let patient = patients
                    .get(i)
                    .ok_or_else(|| anyhow::anyhow!("more arrivals than patients"))?;
                let slot = 2 * i + 1;
                let date = monday + Duration::days((slot / SLOTS_PER_DAY) as i64);
                let body = json!({"provider_id": busy, "patient_id": patient,
                    "starts_at": at(date, 5 * (slot % SLOTS_PER_DAY) as i64)?.to_rfc3339(),
                    "reason_for_visit": "follow-up"});
                s.expect(201, ("POST", "/v1/appointments"), &staff, Some(&body))
                    .await?;
                Ok(())
            }
        }
    };
    let figures = open_loop(
        "scheduled bookings",
        args.rate,
        seconds,
        IN_FLIGHT as usize,
        scheduled,
    )
    .await?;
    figures.print(
        &format!("POST /v1/appointments at {:.0}/s", args.rate),
        "req",
    );

    Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .stop()
        .await
}
