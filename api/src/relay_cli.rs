//! `anamnesis relay`: the fan-out relay on its own (ADR 0018), for a
//! deployment that runs it apart from the API. On Postgres, any number may
//! run: one publishes, the others stand by.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use anamnesis_commands::EventLog;
use anamnesis_projections::relay;
use anamnesis_projections::runner::Report;

use crate::config::Settings;

/// Publishes until SIGINT/SIGTERM, saying so when it starts, stands by,
/// falls behind or recovers.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.relay()?.context(
        "the relay needs a NATS server: --nats-url or NATS_URL (e.g. nats://127.0.0.1:4222)",
    )?;
    let db = crate::cli::open_existing(settings).await?;
    let log = EventLog::open(db.clone())
        .await
        .context("opening the event log")?;
    let (stop, stopped) = watch::channel(false);
    let (progress, mut progress_rx) = watch::channel(0);
    let (failure, mut failure_rx) = watch::channel(None);
    let (active, mut active_rx) = watch::channel(false);
    println!(
        "relaying the log to {} (stream {}, subjects {}.>)",
        config.url, config.stream, config.prefix
    );
    let task = tokio::spawn(relay::run(
        log.reader(),
        db.clone(),
        config,
        Report {
            progress,
            failure,
            active,
        },
        stopped,
    ));
    let shutdown = crate::server::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Ok(()) = active_rx.changed() => {
                let active = *active_rx.borrow_and_update();
                println!("{}", if active { "publishing (active)" } else { "standing by" });
            }
            Ok(()) = failure_rx.changed() => {
                match &*failure_rx.borrow_and_update() {
                    Some(f) => eprintln!("cannot publish after position {}: {}", f.checkpoint, f.error),
                    None => println!("publishing again"),
                }
            }
            Ok(()) = progress_rx.changed() => {
                progress_rx.borrow_and_update();
            }
        }
    }
    stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    db.close().await;
    Ok(())
}
