//! `anamnesis rebuild NAME… | --all` (ADR 0014): each read model folded
//! again from the whole log into shadow tables and swapped in, while the
//! server keeps serving, with a progress bar.

use std::io::IsTerminal;
use std::time::Instant;

use anamnesis_commands::{Db, LogReader};
use anamnesis_projections::rebuild::{rebuild, Rebuilt};
use anamnesis_projections::runner::Projector;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;

/// The read models, by the name their checkpoint is kept under.
pub const NAMES: [&str; 10] = [
    "activity",
    "patients",
    "schedule",
    "access_log",
    "chart",
    "medications",
    "messaging",
    "billing",
    "notifications",
    "analytics",
];

/// Rebuilds `names` (every read model when `all`).
pub async fn run(settings: &Settings, names: &[String], all: bool) -> anyhow::Result<()> {
    let wanted: Vec<&str> = if all {
        NAMES.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    anyhow::ensure!(
        !wanted.is_empty(),
        "name the read models to rebuild ({}), or say --all",
        NAMES.join(", ")
    );
    if let Some(unknown) = wanted.iter().find(|n| !NAMES.contains(n)) {
        anyhow::bail!(
            "no read model is called {unknown:?}; they are {}",
            NAMES.join(", ")
        );
    }
    let db = crate::cli::open_database(settings).await?;
    let result = rebuild_all(&db, &wanted, settings.zone()?).await;
    db.close().await;
    result
}

async fn rebuild_all(
    db: &Db,
    names: &[&str],
    zone: anamnesis_domain::schedule::ClinicZone,
) -> anyhow::Result<()> {
    use anamnesis_projections::billing::Billing;
    use anamnesis_projections::{
        access_log::AccessLog, activity::Activity, chart::Chart, medications::Medications,
        patients::Patients, schedule::Schedule,
    };
    let reader = LogReader::detached(db.clone());
    let started = Instant::now();
    let mut total = 0u64;
    for &name in names {
        let done = match name {
            "activity" => one(db, &reader, &Activity).await?,
            "patients" => one(db, &reader, &Patients).await?,
            "schedule" => one(db, &reader, &Schedule).await?,
            "access_log" => one(db, &reader, &AccessLog).await?,
            "chart" => one(db, &reader, &Chart).await?,
            "medications" => one(db, &reader, &Medications).await?,
            "messaging" => one(db, &reader, &anamnesis_projections::messaging::Messaging).await?,
            "billing" => one(db, &reader, &Billing).await?,
            "notifications" => {
                one(
                    db,
                    &reader,
                    &anamnesis_projections::notifications::Notifications,
                )
                .await?
            }
            "analytics" => {
                let analytics = anamnesis_projections::analytics::Analytics::new(zone);
                one(db, &reader, &analytics).await?
            }
            other => anyhow::bail!("no read model is called {other:?}"),
        };
        total += done.events;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} read model(s): {total} events in {seconds:.1} s ({:.0} events/s)",
        names.len(),
        total as f64 / seconds.max(1e-9)
    );
    Ok(())
}

async fn one<P: Projector>(db: &Db, reader: &LogReader, projector: &P) -> anyhow::Result<Rebuilt> {
    let name = projector.name();
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let template =
        format!("rebuilding {name} {{bar:40}} {{pos}}/{{len}} positions, {{per_sec}}, eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    let done = rebuild(db, reader, projector, |position, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(position.max(0) as u64);
    })
    .await;
    bar.finish_and_clear();
    let done =
        done.with_context(|| format!("rebuilding {name} (the live tables are unchanged)"))?;
    println!(
        "{name}: {} events folded in {:.2} s ({:.0} events/s), swapped in {:.2} s, at position {}",
        done.events,
        done.fold_seconds,
        done.events as f64 / done.fold_seconds.max(1e-9),
        done.swap_seconds,
        done.position
    );
    Ok(done)
}
