//! `anamnesis consume <name>`: one fan-out consumer on its own (ADR 0020),
//! for a deployment that runs it apart from the API. With NATS configured
//! it is a durable pull consumer of the relay's stream; without, it reads
//! the log. On Postgres any number may run: one applies, the others stand
//! by (the same lease as inside `serve`).

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use anamnesis_commands::{Db, EventLog, LogReader};
use anamnesis_projections::consume::{self, ConsumerConfig};
use anamnesis_projections::reminders::{self, ReminderConfig};
use anamnesis_projections::runner::{self, Failure, Projector, Report, RunnerConfig};

use crate::config::Settings;

/// The consumers there are.
pub const NAMES: [&str; 3] = ["notifications", "alerts", "analytics"];

/// Consumes until SIGINT/SIGTERM, saying so when it starts, stands by,
/// gets stuck or recovers.
pub async fn run(settings: &Settings, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        NAMES.contains(&name),
        "no consumer {name:?}: one of {}",
        NAMES.join(", ")
    );
    let db = crate::cli::open_existing(settings).await?;
    let log = EventLog::open_with(db.clone(), settings.keyring()?)
        .await
        .context("opening the event log")?;
    let nats = settings.relay()?.map(ConsumerConfig::new);
    match &nats {
        Some(c) => println!(
            "consuming {name} from NATS {} (stream {}, durable anamnesis-{name})",
            c.relay.url, c.relay.stream
        ),
        None => println!("consuming {name} from the log (no NATS configured)"),
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut reports = Vec::new();
    let reader = log.reader();
    match name {
        "notifications" => {
            let projector = anamnesis_projections::notifications::Notifications;
            tasks.push(start(
                &reader,
                &db,
                projector,
                nats.as_ref(),
                &mut reports,
                &stopped,
            ));
            // E-mail and webhooks, and reminders, are the notifications' too.
            for (handle, task) in crate::deliveries::start(&db, settings, true, &stopped).await? {
                reports.push(Watched {
                    name: handle.name,
                    failure: handle.failure,
                    active: handle.active,
                });
                tasks.push(task);
            }
            let (report, rx) = report("reminders");
            reports.push(rx);
            tasks.push(tokio::spawn(reminders::run(
                reader.clone(),
                db.clone(),
                ReminderConfig::new(settings.zone()?),
                report,
                stopped.clone(),
            )));
        }
        "alerts" => {
            let projector = anamnesis_projections::alerts::Alerts;
            tasks.push(start(
                &reader,
                &db,
                projector,
                nats.as_ref(),
                &mut reports,
                &stopped,
            ));
        }
        _ => {
            let projector = anamnesis_projections::analytics::Analytics::new(settings.zone()?);
            tasks.push(start(
                &reader,
                &db,
                projector,
                nats.as_ref(),
                &mut reports,
                &stopped,
            ));
        }
    }
    let shutdown = crate::server::shutdown_signal();
    tokio::pin!(shutdown);
    let watched = watch_all(reports);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = watched => {}
    }
    stop.send_replace(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    db.close().await;
    Ok(())
}

/// What a task reports, as the CLI watches it.
struct Watched {
    name: &'static str,
    failure: watch::Receiver<Option<Failure>>,
    active: watch::Receiver<bool>,
}

fn report(name: &'static str) -> (Report, Watched) {
    let (progress, _) = watch::channel(0);
    let (failure, failure_rx) = watch::channel(None);
    let (active, active_rx) = watch::channel(false);
    (
        Report {
            progress,
            failure,
            active,
        },
        Watched {
            name,
            failure: failure_rx,
            active: active_rx,
        },
    )
}

fn start<P>(
    reader: &LogReader,
    db: &Db,
    projector: P,
    nats: Option<&ConsumerConfig>,
    reports: &mut Vec<Watched>,
    stopped: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    P: Projector,
    P::Event: Clone,
{
    let (report, rx) = report(projector.name());
    reports.push(rx);
    match nats {
        Some(config) => tokio::spawn(consume::run(
            reader.clone(),
            db.clone(),
            projector,
            config.clone(),
            report,
            stopped.clone(),
        )),
        None => tokio::spawn(runner::run_reporting(
            reader.clone(),
            db.clone(),
            projector,
            RunnerConfig::default(),
            report,
            stopped.clone(),
        )),
    }
}

/// Prints each task's changes of state, forever.
async fn watch_all(reports: Vec<Watched>) {
    let mut watching = futures::stream::FuturesUnordered::new();
    for w in reports {
        watching.push(watch_one(w));
    }
    use futures::StreamExt;
    while watching.next().await.is_some() {}
}

async fn watch_one(mut w: Watched) {
    loop {
        tokio::select! {
            Ok(()) = w.active.changed() => {
                let active = *w.active.borrow_and_update();
                println!("{}: {}", w.name, if active { "active" } else { "standing by" });
            }
            Ok(()) = w.failure.changed() => {
                match &*w.failure.borrow_and_update() {
                    Some(f) => eprintln!("{}: stuck after position {}: {}", w.name, f.checkpoint, f.error),
                    None => println!("{}: working again", w.name),
                }
            }
            else => return,
        }
    }
}
