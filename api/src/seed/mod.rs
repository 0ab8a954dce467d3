//! `anamnesis seed` (ADR 0027): a realistic, reproducible synthetic clinic
//! written through the command layer, so that the log, its chain and every
//! read model are real. Providers with working hours, time off and clinic
//! holidays; patients with demographics, insurance, allergies and history;
//! past visits (completed, cancelled, no-show) with their chart,
//! prescriptions, bills, claims and payments; visits booked ahead; message
//! threads. Many patients are written at once (the writer group-commits
//! them); a progress bar shows events/s and the time left.

mod names;
mod plan;
mod setup;
mod story;
mod visit;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use anamnesis_commands::billing::Billing;
use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::identity::{hash_password, Identity};
use anamnesis_commands::schedule::Scheduler;
use anamnesis_commands::{Db, EventLog};

use crate::config::Settings;
use plan::{Outcome, Sizes};

/// The password of every account the seed makes, unless `--password`.
pub const DEFAULT_PASSWORD: &str = "seeded clinic password";

/// `anamnesis seed`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Patients to register.
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    /// Providers (two doctors to a nurse, the first a doctor).
    #[arg(long, default_value_t = 10)]
    pub providers: usize,
    /// Days of history before today (1 to 730).
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    /// Days of bookings after today (0 to 365).
    #[arg(long, default_value_t = 30)]
    pub ahead: i64,
    /// The same seed (on the same day) gives the same clinic: names,
    /// dates, counts. Ids are fresh.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The password of every account it creates (at least 10 characters).
    #[arg(long, default_value = DEFAULT_PASSWORD, hide_default_value = false)]
    pub password: String,
    /// Seed even though the database already holds patients.
    #[arg(long)]
    pub force: bool,
    /// Patients written at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Also write the summary (counts, logins) to this file, as JSON.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<std::path::PathBuf>,
}

/// What was written, counted as it is.
#[derive(Clone)]
pub struct Tally(Arc<Counts>);

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    patients: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    no_show: AtomicU64,
    booked: AtomicU64,
    chart_entries: AtomicU64,
    prescriptions: AtomicU64,
    bills: AtomicU64,
    claims: AtomicU64,
    payments: AtomicU64,
    threads: AtomicU64,
    bar: std::sync::OnceLock<ProgressBar>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Tally {
    fn events(&self, n: usize) {
        add(&self.0.events, n as u64);
    }
    fn patient(&self) {
        add(&self.0.patients, 1);
        if let Some(bar) = self.0.bar.get() {
            bar.inc(1);
            let events = self.0.events.load(Ordering::Relaxed);
            let seconds = bar.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{events} events, {:.0} events/s",
                events as f64 / seconds
            ));
        }
    }
    fn appointment(&self, outcome: Outcome) {
        let c = &self.0;
        add(
            match outcome {
                Outcome::Completed => &c.completed,
                Outcome::Cancelled => &c.cancelled,
                Outcome::NoShow => &c.no_show,
                Outcome::Booked => &c.booked,
            },
            1,
        );
    }
    fn chart(&self, entries: u64) {
        add(&self.0.chart_entries, entries);
    }
    fn prescription(&self) {
        add(&self.0.prescriptions, 1);
    }
    fn bill(&self) {
        add(&self.0.bills, 1);
    }
    fn claim(&self) {
        add(&self.0.claims, 1);
    }
    fn payment(&self) {
        add(&self.0.payments, 1);
    }
    fn thread(&self) {
        add(&self.0.threads, 1);
    }

    /// The counts by name, in a fixed order.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("events", get(&c.events)),
            ("patients", get(&c.patients)),
            ("appointments_completed", get(&c.completed)),
            ("appointments_cancelled", get(&c.cancelled)),
            ("appointments_no_show", get(&c.no_show)),
            ("appointments_booked", get(&c.booked)),
            ("chart_entries", get(&c.chart_entries)),
            ("prescriptions", get(&c.prescriptions)),
            ("bills", get(&c.bills)),
            ("claims", get(&c.claims)),
            ("payments", get(&c.payments)),
            ("threads", get(&c.threads)),
        ]
    }
}

/// Seeds the configured database.
pub async fn run(settings: &Settings, args: &SeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.patients >= 1, "--patients: at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&args.providers),
        "--providers: 1 to 1000"
    );
    anyhow::ensure!((1..=730).contains(&args.days), "--days: 1 to 730");
    anyhow::ensure!((0..=365).contains(&args.ahead), "--ahead: 0 to 365");
    anyhow::ensure!(args.concurrency >= 1, "--concurrency: at least 1");
    let zone = settings.zone()?;
    let currency = settings.currency()?;
    let db = crate::cli::open_database(settings).await?;
    let keyring = settings.keyring()?;
    let result = seed(&db, keyring, args, (zone, currency)).await;
    db.close().await;
    result
}

async fn seed(
    db: &Db,
    keyring: anamnesis_commands::Keyring,
    args: &SeedArgs,
    (zone, currency): (
        anamnesis_domain::schedule::ClinicZone,
        anamnesis_domain::billing::Currency,
    ),
) -> anyhow::Result<()> {
    let bus = CommandBus::new(EventLog::open_with(db.clone(), keyring).await?);
    let has_patients = !bus
        .log()
        .streams_touched("patient", 0, i64::MAX, 1)
        .await
        .context("looking for patients")?
        .is_empty();
    anyhow::ensure!(
        args.force || !has_patients,
        "the database already holds patients: seed an empty one, or pass --force to add \
         a synthetic clinic beside them"
    );
    // One hash for every account: thousands of argon2 hashes would take
    // longer than everything else together.
    let hash = hash_password(args.password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("--password: {e}"))?;
    let now = chrono::Utc::now();
    let sizes = Sizes {
        seed: args.seed,
        patients: args.patients,
        providers: args.providers,
        days: args.days,
        ahead: args.ahead,
        today: zone.date_of(now),
    };
    let started = Instant::now();
    let first = bus.log().head_position().await?;
    let identity = Identity::new(bus.clone());
    let providers = plan::providers(&sizes);
    let staff = setup::clinic((&bus, &identity), &sizes, &providers, &hash, (zone, now)).await?;
    let holidays = plan::holidays(&sizes);
    let mut visits: Vec<Vec<plan::Visit>> = vec![Vec::new(); sizes.patients];
    let mut unplaced = 0;
    for p in &providers {
        let (planned, left_out) = plan::schedule(&sizes, p, &holidays);
        unplaced += left_out;
        for v in planned {
            visits[v.patient].push(v);
        }
    }
    if unplaced > 0 {
        eprintln!(
            "{unplaced} visits found no free slot in their provider's hours and are left \
             out: more --providers would see them"
        );
    }
    for list in &mut visits {
        list.sort_by_key(|v| (v.date, v.start));
    }
    let tally = Tally(Arc::default());
    let bar = bar(sizes.patients as u64);
    let _ = tally.0.bar.set(bar.clone());
    let clinic = Arc::new(story::Clinic {
        scheduler: Scheduler::new(bus.clone(), zone),
        billing: Billing::new(bus.clone(), currency, zone),
        bus: bus.clone(),
        identity,
        zone,
        now,
        sizes,
        staff,
        providers,
        hash,
        tally: tally.clone(),
    });
    let mut written = futures::stream::iter(visits.into_iter().enumerate())
        .map(|(i, visits)| {
            let clinic = clinic.clone();
            async move {
                let plan = plan::patient(&clinic.sizes, i);
                clinic.patient(plan, visits).await
            }
        })
        .buffer_unordered(args.concurrency);
    while let Some(done) = written.next().await {
        if let Err(e) = done {
            bar.abandon();
            return Err(e.context(
                "seeding stopped; what was written stays (each command is whole): \
                 seed a fresh database again",
            ));
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let position = bus.log().head_position().await?;
    summary(&clinic, args, (seconds, position, position - first))
}

/// Prints what was made, and a few logins; writes it as JSON to
/// `--summary`. Usernames and counts only: no patient data.
fn summary(
    clinic: &story::Clinic,
    args: &SeedArgs,
    (seconds, position, events): (f64, i64, i64),
) -> anyhow::Result<()> {
    let mut counts = clinic.tally.counts();
    // Every event the seed appended, its setup's too.
    if let Some(c) = counts.first_mut() {
        c.1 = u64::try_from(events).unwrap_or(0);
    }
    let mut logins: Vec<(&str, String)> = clinic.staff.logins.clone();
    let portal: Vec<String> = (0..clinic.sizes.patients)
        .map(|i| plan::patient(&clinic.sizes, i))
        .filter(|p| p.portal)
        .take(1000)
        .map(|p| p.username)
        .collect();
    println!(
        "seeded {} patients and {} providers (seed {}): {events} events in {seconds:.1} s \
         ({:.0} events/s), log at position {position}",
        clinic.sizes.patients,
        clinic.sizes.providers,
        clinic.sizes.seed,
        events as f64 / seconds.max(1e-9)
    );
    for (name, n) in &counts[1..] {
        println!("  {name}: {n}");
    }
    let password = if args.password == DEFAULT_PASSWORD {
        format!("password {DEFAULT_PASSWORD:?}")
    } else {
        "the --password given".to_owned()
    };
    println!("logins ({password}):");
    if let Some(first) = portal.first() {
        logins.push(("patient", first.clone()));
    }
    let mut shown: Vec<&str> = Vec::new();
    for (role, username) in &logins {
        if !shown.contains(role) {
            shown.push(role);
            println!("  {role}: {username}");
        }
    }
    if let Some(path) = &args.summary {
        let json = serde_json::json!({
            "seed": clinic.sizes.seed,
            "today": clinic.sizes.today,
            "position": position,
            "seconds": seconds,
            "counts": counts.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "logins": logins.iter().map(|(role, username)| serde_json::json!({"role": role, "username": username}))
                .collect::<Vec<_>>(),
            "patient_logins": portal,
        });
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text)
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal.
fn bar(patients: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(patients), target);
    let template = "seeding {bar:40} {pos}/{len} patients, {msg}, eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
