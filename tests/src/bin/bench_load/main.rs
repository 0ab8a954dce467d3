//! `bench-load`: the system as a clinic uses it (issue 14). Seeds a
//! synthetic clinic (`anamnesis seed`, through the command layer), serves
//! it, then:
//! 1. the mixed phase: `--users` virtual users for `--seconds` (measured
//!    after `--warm-up-seconds`), each a patient, a front desk, a doctor, a
//!    nurse or a billing clerk doing what they do, with a think time between
//!    requests; per-operation requests/s, p50/p95/p99, expected conflicts
//!    and errors, and projection lag p99;
//! 2. the booking storm: `--storm-clients` clients released at once on 100
//!    slots; exactly 100 must win and the read model must hold exactly them;
//! 3. the rebuild: every read model folded again from the whole log while
//!    the server serves (events/s);
//! 4. the same-run baseline: single-row INSERTs, one per commit.
//!
//! Writes `bench-load.json` and `bench-load.svg` (p99 by second of each
//! operation) into `--out`. `--scale` also seeds a large clinic on Postgres
//! and compares point-read, search and timeline p99 there with a small one.
//!
//! cargo run --release -p anamnesis-tests --bin bench-load
#![forbid(unsafe_code)]

mod chart;
mod record;
mod scale;
mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anamnesis_tests::baseline::{baseline, baseline_table, head};
use anamnesis_tests::bench::{catch_up, BenchServer, LagSampler};
use anamnesis_tests::storm;
use anyhow::Context;
use chrono::Datelike;
use clap::Parser;
use serde_json::{json, Value};

use record::{OpFigures, Recorder};

#[derive(Debug, Parser)]
struct Args {
    /// `postgres` (a fresh database on TEST_DATABASE_URL's server) or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// Virtual users of the mixed phase.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Measured seconds of the mixed phase.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds of the mixed phase before it is measured: the users run,
    /// the server's pools open their connections and its caches fill. Their
    /// p99 is printed on a line of its own; the chart shows them too.
    #[arg(long, default_value_t = 5)]
    warm_up_seconds: u64,
    /// Mean think time of a virtual user between two requests, in ms
    /// (exponentially distributed): the offered load is about
    /// users / think time.
    #[arg(long, default_value_t = 2000)]
    think_ms: u64,
    /// Patients of the seeded clinic (about 70% have a portal account: the
    /// patient users sign in as them).
    #[arg(long, default_value_t = 1000)]
    patients: usize,
    /// Providers of the seeded clinic.
    #[arg(long, default_value_t = 10)]
    providers: usize,
    /// Clients of the booking storm (on 100 slots).
    #[arg(long, default_value_t = 1000)]
    storm_clients: usize,
    /// Measured seconds of the INSERT baseline.
    #[arg(long, default_value_t = 5)]
    baseline_seconds: u64,
    /// Where the JSON and the SVG chart go.
    #[arg(long, default_value = "target/bench-load")]
    out: PathBuf,
    /// Also the scale run: a clinic of `--scale-patients` seeded on Postgres
    /// (hours at 1,000,000), and point-read, search and timeline p99 there
    /// against the same on the small clinic.
    #[arg(long)]
    scale: bool,
    /// Patients of the scale run's clinic.
    #[arg(long, default_value_t = 1_000_000)]
    scale_patients: usize,
}

/// Days of bookings ahead in the seeded clinic (the storm's day comes after).
const AHEAD: i64 = 14;
const STORM_PROVIDERS: usize = 10;
const STORM_SLOTS: usize = 10;
const STORM_MINUTES: i64 = 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = anamnesis_tests::bench::backend_and_logs(&args.backend)?;
    anyhow::ensure!(args.users >= 1, "--users: at least 1");
    anyhow::ensure!(
        args.storm_clients >= STORM_PROVIDERS * STORM_SLOTS,
        "--storm-clients: at least {}",
        STORM_PROVIDERS * STORM_SLOTS
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let run_started = Instant::now();

    // The clinic.
    let summary_path = args.out.join("seed.json");
    eprintln!(
        "seeding a clinic of {} patients and {} providers",
        args.patients, args.providers
    );
    let seeding = Instant::now();
    let seed_args: Vec<String> = vec![
        "--patients".into(),
        args.patients.to_string(),
        "--providers".into(),
        args.providers.to_string(),
        "--days".into(),
        "60".into(),
        "--ahead".into(),
        AHEAD.to_string(),
        "--summary".into(),
        summary_path.display().to_string(),
    ];
    let clients = args.users.max(args.storm_clients) + 64;
    let s = Arc::new(BenchServer::start_seeded(backend, clients, &[], &seed_args).await?);
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let summary: Value = serde_json::from_slice(
        &std::fs::read(&summary_path).context("reading the seed's summary")?,
    )?;
    let seeded_events = summary["counts"]["events"]
        .as_u64()
        .context("the seed's summary has no event count")?;
    let start_catch_up = catch_up(&s.http, &s.base).await?;
    eprintln!(
        "seeded {seeded_events} events in {seed_seconds:.1} s; read models caught up {start_catch_up:.1} s after start"
    );

    // The mixed phase.
    let signing_in = Instant::now();
    let people = users::sign_in(&s, &summary, args.users).await?;
    let sign_in_seconds = signing_in.elapsed().as_secs_f64();
    let mix = users::mix(&people);
    eprintln!(
        "{} virtual users signed in in {sign_in_seconds:.1} s: {mix}",
        people.len()
    );
    let recorder = Arc::new(Recorder::new());
    let phase = Duration::from_secs(args.seconds);
    let warm_up = Duration::from_secs(args.warm_up_seconds);
    let running = tokio::spawn(users::run(
        s.clone(),
        people,
        recorder.clone(),
        warm_up + phase,
        Duration::from_millis(args.think_ms),
    ));
    // The first seconds open the pools' connections and fill the caches:
    // measured apart, not in the table.
    tokio::time::sleep(warm_up).await;
    let head_before = head(&s.db.db).await?;
    let sampler = LagSampler::start(s.http.clone(), s.base.clone(), Duration::from_millis(100));
    running.await??;
    let lag = sampler.finish().await?;
    let mixed_catch_up = catch_up(&s.http, &s.base).await?;
    let appended = head(&s.db.db).await? - head_before;
    let warm_up_seconds = u32::try_from(args.warm_up_seconds)?;
    let ops = recorder.figures(warm_up_seconds, phase)?;
    let (warm_p99, warm_max, warm_requests) = recorder.warm_up(warm_up_seconds)?;

    // The booking storm.
    let (storm_row, storm_ok) = booking_storm(&s, &summary, args.storm_clients).await?;

    // The rebuild, while the server serves.
    eprintln!("rebuild: every read model from the whole log");
    let rebuilt = anamnesis_api::rebuild_cli::rebuild_named(
        &s.settings,
        anamnesis_api::rebuild_cli::ALL_BUT_REDIS,
    )
    .await?;
    let (rebuilt_events, rebuild_seconds) = (rebuilt.folded, rebuilt.seconds);
    let (rebuild_log, rebuild_rate) = (rebuilt.log, rebuilt.log_rate());

    // The baseline.
    baseline_table(&s.db.db).await?;
    let base = baseline(&s.db.db, 64, args.baseline_seconds).await?;
    let one = baseline(&s.db.db, 1, args.baseline_seconds).await?;

    let small = if args.scale {
        Some(scale::reads(&s, &summary, "small clinic").await?)
    } else {
        None
    };

    // The report.
    println!();
    println!(
        "bench-load: backend {}, {} virtual users ({mix}), think time {} ms mean, {} s measured after {} s of warm-up",
        args.backend, args.users, args.think_ms, args.seconds, args.warm_up_seconds
    );
    println!(
        "clinic: {} patients, {} providers, {seeded_events} events seeded in {seed_seconds:.1} s",
        args.patients, args.providers
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "operation", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "ok", "conflicts", "errors"
    );
    let mut errors = 0;
    for o in &ops {
        errors += o.errors;
        println!(
            "{:<28} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>8} {:>9} {:>7}",
            o.name, o.rate, o.p50, o.p95, o.p99, o.max, o.ok, o.conflicts, o.errors
        );
        if let Some(e) = &o.sample_error {
            println!("{:<28} e.g. {e}", "");
        }
    }
    let total: f64 = ops.iter().map(|o| o.rate).sum();
    let worst = ops.iter().map(|o| o.p99).fold(0.0, f64::max);
    let append_rate = appended as f64 / phase.as_secs_f64();
    println!(
        "{:<28} {total:>8.1} requests/s in all; {appended} events appended ({append_rate:.1}/s)",
        "all"
    );
    println!(
        "warm-up (first {} s, not above): {warm_requests} requests, p99 {warm_p99:.1} ms, max {warm_max:.1} ms",
        args.warm_up_seconds
    );
    println!(
        "projection lag: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} samples); caught up {mixed_catch_up:.2} s after the phase",
        lag.0, lag.1, lag.2, lag.3
    );
    println!("{storm_row}");
    println!(
        "rebuild (every read model but Redis, while serving): a log of {rebuild_log} events in {rebuild_seconds:.1} s ({rebuild_rate:.0} log events/s; {rebuilt_events} events folded)"
    );
    println!(
        "baseline, 1-row INSERT per commit: 64 tasks {:.0} rows/s (p99 {:.2} ms); 1 task p50 {:.2} ms, p99 {:.2} ms (one commit)",
        base.rate(),
        base.ms(0.99),
        one.ms(0.5),
        one.ms(0.99)
    );
    let commands: Vec<&OpFigures> = ops.iter().filter(|o| users::is_command(o.name)).collect();
    let command_p99 = commands.iter().map(|o| o.p99).fold(0.0, f64::max);
    let command_p50 = commands.iter().map(|o| o.p50).fold(0.0, f64::max);
    let reads_p99 = ops
        .iter()
        .filter(|o| !users::is_command(o.name))
        .map(|o| o.p99)
        .fold(0.0, f64::max);
    println!(
        "ratio to one commit: slowest command p50 {:.1}x, p99 {:.1}x; events appended / 64-task INSERT rate: {:.3}",
        command_p50 / one.ms(0.5).max(1e-9),
        command_p99 / one.ms(0.99).max(1e-9),
        append_rate / base.rate().max(1e-9)
    );
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "goals: every p99 <= 100 ms: {} (worst {worst:.1}); commands p99 <= 25 ms: {} ({command_p99:.1}); \
         reads p99 <= 5 ms: {} ({reads_p99:.1}); 0 errors: {} ({errors}); 100 storm wins: {}; lag p99 <= 100 ms: {} ({:.0})",
        verdict(worst <= 100.0),
        verdict(command_p99 <= 25.0),
        verdict(reads_p99 <= 5.0),
        verdict(errors == 0),
        verdict(storm_ok),
        verdict(lag.1 <= 100.0),
        lag.1
    );

    let large = if args.scale {
        Some(scale::run(backend, args.scale_patients).await?)
    } else {
        None
    };
    if let (Some(small), Some(large)) = (&small, &large) {
        scale::print(small, large);
    }

    let json = json!({
        "backend": args.backend,
        "users": args.users,
        "mix": mix,
        "think_ms": args.think_ms,
        "seconds": args.seconds,
        "warm_up": {"seconds": args.warm_up_seconds, "requests": warm_requests,
            "p99_ms": warm_p99, "max_ms": warm_max},
        "clinic": {"patients": args.patients, "providers": args.providers,
            "events": seeded_events, "seed_seconds": seed_seconds,
            "catch_up_seconds": start_catch_up},
        "operations": ops.iter().map(OpFigures::json).collect::<Vec<_>>(),
        "requests_per_second": total,
        "events_appended": appended,
        "projection_lag_ms": {"p50": lag.0, "p99": lag.1, "max": lag.2, "samples": lag.3},
        "storm": storm_row,
        "storm_exact": storm_ok,
        "rebuild": {"log_events": rebuild_log, "events_folded": rebuilt_events, "seconds": rebuild_seconds, "log_events_per_second": rebuild_rate},
        "baseline": {"rows_per_second_64_tasks": base.rate(), "p99_ms_64_tasks": base.ms(0.99),
            "one_commit_p50_ms": one.ms(0.5), "one_commit_p99_ms": one.ms(0.99)},
        "scale": match (&small, &large) {
            (Some(a), Some(b)) => json!({"small": scale::json(a), "large": scale::json(b)}),
            _ => Value::Null,
        },
        "run_seconds": run_started.elapsed().as_secs_f64(),
    });
    let json_path = args.out.join("bench-load.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    let svg_path = args.out.join("bench-load.svg");
    chart::latency_over_time(
        &svg_path,
        &format!(
            "bench-load: p99 by second, {} users, {} backend",
            args.users, args.backend
        ),
        &ops,
    )?;
    println!(
        "written: {} and {} ({:.0} s in all)",
        json_path.display(),
        svg_path.display(),
        run_started.elapsed().as_secs_f64()
    );
    Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .stop()
        .await?;
    anyhow::ensure!(
        storm_ok,
        "the booking storm did not end with exactly 100 winners"
    );
    Ok(())
}

/// The storm: ten new providers with ten half-hour slots each on a weekday
/// after every seeded booking, `clients` new patients, client `i` booking
/// slot `i % 100` for patient `i`, all released at once by the front desk.
/// Returns the report's line and whether exactly 100 won and the read model
/// holds exactly them.
async fn booking_storm(
    s: &Arc<BenchServer>,
    summary: &Value,
    clients: usize,
) -> anyhow::Result<(String, bool)> {
    let admin = users::login_as(s, summary, "admin").await?;
    let desk = Arc::new(users::login_as(s, summary, "staff").await?);
    let mut day = chrono::Utc::now().date_naive() + chrono::Duration::days(AHEAD + 7);
    while day.weekday().num_days_from_monday() >= 5 {
        day += chrono::Duration::days(1);
    }
    eprintln!("storm: {STORM_PROVIDERS} providers, {clients} patients, on {day}");
    let hours = (
        json!([{"day": storm::day_name(day.weekday()), "intervals": [{"start": "09:00", "end": "14:00"}]}]),
        STORM_MINUTES,
    );
    let mut providers = Vec::new();
    for p in 0..STORM_PROVIDERS {
        providers
            .push(storm::provider(s, &admin, &format!("storm-doctor{p}"), hours.clone()).await?);
    }
    let patients: Vec<String> = anamnesis_tests::bench::fan_out(clients, 16, |i| {
        let (s, desk) = (s.clone(), desk.clone());
        async move {
            let body = json!({"family_name": format!("Storm{i}"), "given_name": "Load",
                "birth_date": "1980-01-01", "sex": "unknown",
                "identifiers": [{"system": "mrn", "value": format!("STORM-{i}")}]});
            s.expect(201, ("POST", "/v1/patients"), &desk, Some(&body))
                .await
        }
    })
    .await?
    .iter()
    .map(anamnesis_tests::bench::id)
    .collect::<anyhow::Result<_>>()?;
    let slots = STORM_PROVIDERS * STORM_SLOTS;
    let mut bodies = Vec::with_capacity(clients);
    for (i, patient) in patients.iter().enumerate() {
        let slot = i % slots;
        let minute = 9 * 60 + STORM_MINUTES * (slot % STORM_SLOTS) as i64;
        bodies.push(json!({
            "provider_id": providers[slot / STORM_SLOTS],
            "patient_id": patient,
            "starts_at": storm::at(day, minute)?.to_rfc3339(),
            "reason_for_visit": "check-up",
        }));
    }
    let result = storm::storm(s, &desk, bodies).await?;
    let name = format!("storm: {clients} clients on {slots} slots");
    let (wins, errors, p99) = storm::report(&name, &result)?;
    let verified = storm::verify(s, &desk, (day, &providers), &result, slots).await;
    let exact = wins == slots && errors == 0 && verified.is_ok();
    let line = format!(
        "storm: {clients} clients at once on {slots} slots: {wins} wins, {} conflicts, {errors} errors, p99 {p99:.1} ms, read model {}",
        result.answers.iter().filter(|a| a.status == 409).count(),
        match &verified {
            Ok(()) => "holds exactly the winners".to_owned(),
            Err(e) => format!("WRONG: {e:#}"),
        }
    );
    Ok((line, exact))
}
