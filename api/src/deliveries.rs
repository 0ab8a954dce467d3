//! Starting the delivery sender (ADR 0023) in `serve` (and in any
//! subcommand that runs the notifications): the channels the settings
//! configure are written to `delivery_channels` first, so the projector
//! enqueues for exactly those, then one sender per lane starts, each
//! reported like the relay (not essential to readiness).

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use anamnesis_commands::Db;
use anamnesis_projections::deliveries::{self, Channels};
use anamnesis_projections::runner::Report;

use crate::config::Settings;
use crate::state::ProjectorHandle;

/// Writes the configured channels and, with `senders`, starts a sender per
/// lane when there is any channel; returns their handles and tasks (none without a channel).
pub async fn start(
    db: &Db,
    settings: &Settings,
    senders: bool,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<(ProjectorHandle, tokio::task::JoinHandle<()>)>> {
    let config = settings.deliveries()?;
    let channels = Arc::new(Channels::open(&config)?);
    deliveries::configure(db, &config)
        .await
        .context("writing the delivery channels")?;
    // Without `senders` (`serve --no-consumers`) the channels are written,
    // for the consumers that run apart and enqueue, and the senders run
    // with those consumers (`anamnesis consume notifications`).
    if channels.names().is_empty() || !senders {
        return Ok(Vec::new());
    }
    tracing::info!(channels = ?channels.names(), "delivering notifications");
    Ok(deliveries::LANES
        .into_iter()
        .map(|lane| {
            let (progress, progress_rx) = watch::channel(0);
            let (failure, failure_rx) = watch::channel(None);
            let (active, active_rx) = watch::channel(false);
            let handle = ProjectorHandle {
                name: lane.name,
                progress: progress_rx,
                failure: failure_rx,
                active: active_rx,
                essential: false,
                // Deliveries follow their outbox, not the log.
                follows_log: false,
            };
            let task = tokio::spawn(deliveries::run(
                db.clone(),
                config.clone(),
                channels.clone(),
                lane,
                Report {
                    progress,
                    failure,
                    active,
                },
                stopped.clone(),
            ));
            (handle, task)
        })
        .collect())
}
