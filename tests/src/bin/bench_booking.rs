//! Booking load. Phase 1, the storm: 10 providers with 10 half-hour slots
//! each on one future weekday, 1,000 clients released at once, client `i`
//! booking slot `i % 100` for patient `i` (each slot wanted by ten): exactly
//! 100 must win, and the read model must then hold exactly those 100, with
//! no two overlapping on a provider's calendar. Phase 2: free-slot queries
//! over a provider's week with 1,000 bookings on it.
//!
//! cargo run --release -p anamnesis-tests --bin bench-booking -- --backend postgres
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anamnesis_tests::bench::{closed_loop, BenchServer};
use anamnesis_tests::db::Backend;
use anyhow::Context;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use clap::Parser;
use hdrhistogram::Histogram;
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
}

const PASSWORD: &str = "benchmark password";
const PROVIDERS: usize = 10;
const SLOTS_PER_PROVIDER: usize = 10;
const SLOT_MINUTES: i64 = 30;
/// Bookings on the week of the free-slot queries.
const WEEK_BOOKINGS: usize = 1000;
/// Five-minute slots a day from 00:00 to 23:55.
const SLOTS_PER_DAY: usize = 287;

/// Runs `n` calls of `op`, `parallel` at a time, in order.
async fn fan_out<F, Fut>(n: usize, parallel: usize, op: F) -> anyhow::Result<Vec<Value>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(0..n)
        .map(op)
        .buffered(parallel)
        .try_collect()
        .await
}

fn id(v: &Value) -> anyhow::Result<String> {
    Ok(v["id"].as_str().context("an id")?.to_owned())
}

fn at(day: NaiveDate, minutes: i64) -> anyhow::Result<DateTime<Utc>> {
    Ok(day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc() + Duration::minutes(minutes))
}

fn day_name(d: Weekday) -> &'static str {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][d.num_days_from_monday() as usize]
}

/// A doctor account `name` enrolled as a provider with `hours`; its id.
async fn provider(
    s: &BenchServer,
    admin: &str,
    name: &str,
    (hours, minutes): (Value, i64),
) -> anyhow::Result<String> {
    let user = s
        .expect(
            201,
            ("POST", "/v1/users"),
            admin,
            Some(&json!({"username": name, "password": PASSWORD, "role": "doctor"})),
        )
        .await?;
    let enrolled = s
        .expect(
            201,
            ("POST", "/v1/providers"),
            admin,
            Some(&json!({
            "user_id": id(&user)?, "display_name": format!("Dr {name}"),
            "specialty": "general practice", "default_minutes": minutes})),
        )
        .await?;
    let provider = id(&enrolled)?;
    s.expect(
        200,
        ("PUT", &format!("/v1/providers/{provider}/availability")),
        admin,
        Some(&json!({"hours": hours, "slot_minutes": minutes})),
    )
    .await?;
    Ok(provider)
}

/// What one storm client got.
struct Answer {
    status: u16,
    code: String,
    id: String,
    position: i64,
    micros: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let backend = match args.backend.as_str() {
        "postgres" => Backend::Postgres,
        "sqlite" => Backend::Sqlite,
        other => anyhow::bail!("--backend must be postgres or sqlite, not {other}"),
    };
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

    // Every client's connection is open before the start: the storm measures
    // bookings, not TCP handshakes.
    fan_out(args.clients, args.clients, |_| {
        let s = s.clone();
        async move {
            s.call("GET", "/readyz", None, None, &[])
                .await
                .map(|_| Value::Null)
        }
    })
    .await?;

    let slots = PROVIDERS * SLOTS_PER_PROVIDER;
    eprintln!("storm: {} clients on {slots} slots", args.clients);
    let go = Arc::new(tokio::sync::Barrier::new(args.clients + 1));
    let mut tasks = Vec::with_capacity(args.clients);
    for (i, patient) in patients.iter().enumerate() {
        let slot = i % slots;
        let body = json!({
            "provider_id": providers[slot / SLOTS_PER_PROVIDER],
            "patient_id": patient,
            "starts_at": at(day, 9 * 60 + SLOT_MINUTES * (slot % SLOTS_PER_PROVIDER) as i64)?.to_rfc3339(),
            "reason_for_visit": "check-up",
        });
        let (s, staff, go) = (s.clone(), staff.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            let started = Instant::now();
            let (status, r) = s
                .call("POST", "/v1/appointments", Some(&staff), Some(&body), &[])
                .await?;
            anyhow::Ok(Answer {
                status,
                code: r["code"].as_str().unwrap_or_default().to_owned(),
                id: r["id"].as_str().unwrap_or_default().to_owned(),
                position: r["position"].as_i64().unwrap_or(0),
                micros: started.elapsed().as_micros().max(1) as u64,
            })
        }));
    }
    go.wait().await;
    let started = Instant::now();
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await??);
    }
    let elapsed = started.elapsed();

    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut kinds: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for a in &answers {
        latency.record(a.micros)?;
        *kinds.entry((a.status, a.code.clone())).or_default() += 1;
    }
    let count = |f: &dyn Fn(u16) -> bool| answers.iter().filter(|a| f(a.status)).count();
    let wins = count(&|c| c == 201);
    let conflicts = count(&|c| c == 409);
    let errors = answers.len() - wins - conflicts;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99) = (ms(0.50), ms(0.99));

    println!();
    println!(
        "backend {}, storm of {} clients on {slots} slots ({day})",
        args.backend, args.clients
    );
    println!(
        "POST /v1/appointments   {wins} wins (201), {conflicts} conflicts (409), {errors} errors   {:.0} req/s   p50 {p50:.2} ms   p99 {p99:.2} ms   max {:.2} ms   ({:.2} s)",
        answers.len() as f64 / elapsed.as_secs_f64(),
        ms(1.0),
        elapsed.as_secs_f64()
    );
    for ((status, code), n) in &kinds {
        println!("    {status} {code:<24} {n}");
    }
    let met = wins == slots && errors == 0 && p99 <= 100.0;
    println!(
        "goal: exactly {slots} wins, 0 errors, p99 <= 100 ms: {}",
        if met { "met" } else { "MISSED" }
    );

    // The read model, once it has seen the last win: exactly the winners,
    // no two overlapping on one provider's calendar.
    let last = answers.iter().map(|a| a.position).max().unwrap_or(0);
    let mut booked: Vec<(String, i64, i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/appointments?status=booked&limit=100&from={}&to={}",
            at(day, 0)?.to_rfc3339().replace('+', "%2B"),
            at(day, 24 * 60)?.to_rfc3339().replace('+', "%2B"),
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = s
            .call(
                "GET",
                &path,
                Some(&staff),
                None,
                &[("X-Min-Position", last.to_string())],
            )
            .await?;
        anyhow::ensure!(status == 200, "listing appointments: {status} {page}");
        for a in page["items"].as_array().context("items")? {
            let time = |f: &str| -> anyhow::Result<i64> {
                Ok(DateTime::parse_from_rfc3339(a[f].as_str().context("a time")?)?.timestamp())
            };
            booked.push((
                a["provider_id"].as_str().unwrap_or_default().to_owned(),
                time("starts_at")?,
                time("ends_at")?,
                a["appointment_id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    booked.sort();
    let overlaps = booked
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        .count();
    let mut won: Vec<&str> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.id.as_str())
        .collect();
    let mut listed: Vec<&str> = booked.iter().map(|b| b.3.as_str()).collect();
    won.sort_unstable();
    listed.sort_unstable();
    println!(
        "read model: {} booked appointments, {overlaps} overlapping pairs, {} the winners",
        booked.len(),
        if won == listed { "exactly" } else { "NOT" }
    );
    anyhow::ensure!(
        booked.len() == slots && overlaps == 0 && won == listed,
        "the read model holds {} booked appointments ({overlaps} overlapping), not the {slots} winners",
        booked.len()
    );

    // Phase 2: one provider open all week in five-minute slots, every
    // other slot booked (by a different patient each).
    let every_day: Vec<Value> = (0..7)
        .map(|d| json!({"day": day_name((monday + Duration::days(d)).weekday()), "intervals": [{"start": "00:00", "end": "23:55"}]}))
        .collect();
    let busy = Arc::new(provider(&s, &admin, "doctor_busy", (json!(every_day), 5)).await?);
    eprintln!("seeding: {WEEK_BOOKINGS} bookings on {monday}..{sunday}");
    let patients = Arc::new(patients);
    let booked = fan_out(WEEK_BOOKINGS, 16, |i| {
        let (s, staff, busy, patients) = (s.clone(), staff.clone(), busy.clone(), patients.clone());
        async move {
            let slot = 2 * i;
            let starts = at(
                monday + Duration::days((slot / SLOTS_PER_DAY) as i64),
                5 * (slot % SLOTS_PER_DAY) as i64,
            )?;
            let body = json!({"provider_id": *busy, "patient_id": patients[i],
                "starts_at": starts.to_rfc3339(), "reason_for_visit": "follow-up"});
            s.expect(201, ("POST", "/v1/appointments"), &staff, Some(&body))
                .await
        }
    })
    .await?;
    let last = booked
        .iter()
        .filter_map(|b| b["position"].as_i64())
        .max()
        .unwrap_or(0);
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
                let (status, _) = s.call("GET", &query, Some(&staff), None, &[]).await?;
                anyhow::ensure!(status == 200, "free slots: {status}");
                Ok(())
            }
        }
    };
    let figures = closed_loop("free slots", args.query_clients, args.seconds, slots_query).await?;
    println!();
    println!("free slots of one provider's week ({free} free, {WEEK_BOOKINGS} booked)");
    figures.print(
        &format!(
            "GET /v1/providers/{{id}}/slots at {} clients",
            args.query_clients
        ),
        "q",
    );

    drop(answers);
    Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .stop()
        .await
}
