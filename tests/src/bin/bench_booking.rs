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

use anamnesis_tests::bench::{closed_loop, open_loop, BenchServer};
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
    /// Arrival rate (bookings/s) of phase 3, bookings arriving on a schedule
    /// instead of all at once; it runs for 1,000 / rate seconds.
    #[arg(long, default_value_t = 250.0)]
    rate: f64,
}

const PASSWORD: &str = "benchmark password";
const PROVIDERS: usize = 10;
const SLOTS_PER_PROVIDER: usize = 10;
const SLOT_MINUTES: i64 = 30;
/// Bookings on the week of the free-slot queries.
const WEEK_BOOKINGS: usize = 1000;
/// Bookings in flight at most in phase 3.
const IN_FLIGHT: u64 = 1000;
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
    verify(&s, &staff, day, &contended, slots).await?;

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

/// What one storm client got.
struct Answer {
    status: u16,
    code: String,
    id: String,
    position: i64,
    micros: u64,
}

/// A storm's answers and how long it took, from release to the last answer.
struct Storm {
    answers: Vec<Answer>,
    elapsed: std::time::Duration,
}

impl Storm {
    /// The log position of the last booking that landed.
    fn last_position(&self) -> i64 {
        self.answers.iter().map(|a| a.position).max().unwrap_or(0)
    }
}

/// One client per body, all released at once, each posting its booking as
/// `token` over a connection opened beforehand (the storm measures bookings,
/// not TCP handshakes).
async fn storm(
    s: &Arc<BenchServer>,
    token: &Arc<String>,
    bodies: Vec<Value>,
) -> anyhow::Result<Storm> {
    fan_out(bodies.len(), bodies.len(), |_| {
        let s = s.clone();
        async move {
            s.call("GET", "/readyz", None, None, &[])
                .await
                .map(|_| Value::Null)
        }
    })
    .await?;
    let go = Arc::new(tokio::sync::Barrier::new(bodies.len() + 1));
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let (s, token, go) = (s.clone(), token.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            let started = Instant::now();
            let (status, r) = s
                .call("POST", "/v1/appointments", Some(&token), Some(&body), &[])
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
    Ok(Storm {
        answers,
        elapsed: started.elapsed(),
    })
}

/// Prints a storm's counts by answer, rate and latency; returns (wins,
/// errors, p99 in ms). Errors are answers other than 201 and 409.
fn report(name: &str, storm: &Storm) -> anyhow::Result<(usize, usize, f64)> {
    let answers = &storm.answers;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut kinds: BTreeMap<(u16, &str), usize> = BTreeMap::new();
    for a in answers {
        latency.record(a.micros)?;
        *kinds.entry((a.status, a.code.as_str())).or_default() += 1;
    }
    let count = |code: u16| answers.iter().filter(|a| a.status == code).count();
    let (wins, conflicts) = (count(201), count(409));
    let errors = answers.len() - wins - conflicts;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<50} {:>6.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   ({:.2} s)",
        answers.len() as f64 / storm.elapsed.as_secs_f64(),
        ms(0.50),
        ms(0.99),
        ms(1.0),
        storm.elapsed.as_secs_f64()
    );
    println!(
        "{:<50} {wins} wins (201), {conflicts} conflicts (409), {errors} errors",
        ""
    );
    for ((status, code), n) in kinds {
        println!("{:<50}   {n:>5} x {status} {code}", "");
    }
    Ok((wins, errors, ms(0.99)))
}

/// The read model, once it has seen the storm's last booking, holds exactly
/// `expected` booked appointments on `day`, the winners, and no two overlap
/// on one provider's calendar.
async fn verify(
    s: &BenchServer,
    staff: &str,
    day: NaiveDate,
    storm: &Storm,
    expected: usize,
) -> anyhow::Result<()> {
    let last = storm.last_position();
    let (from, to) = (at(day, 0)?.to_rfc3339(), at(day, 24 * 60)?.to_rfc3339());
    let mut booked: Vec<(String, i64, i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/appointments?status=booked&limit=100&from={}&to={}",
            from.replace('+', "%2B"),
            to.replace('+', "%2B"),
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let at_last = [("X-Min-Position", last.to_string())];
        let (status, page) = s.call("GET", &path, Some(staff), None, &at_last).await?;
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
    let mut won: Vec<&str> = storm
        .answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.id.as_str())
        .collect();
    let mut listed: Vec<&str> = booked.iter().map(|b| b.3.as_str()).collect();
    won.sort_unstable();
    listed.sort_unstable();
    println!(
        "read model: {} booked, {overlaps} overlapping pairs, {} the winners",
        booked.len(),
        if won == listed { "exactly" } else { "NOT" }
    );
    anyhow::ensure!(
        booked.len() == expected && overlaps == 0 && won == listed,
        "the read model holds {} booked appointments ({overlaps} overlapping pairs), not the {expected} winners",
        booked.len()
    );
    Ok(())
}
