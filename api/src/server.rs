//! Starting and stopping the server: API, projectors, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::{Db, EventLog, LogReader};
use anamnesis_projections::access_log::AccessLog;
use anamnesis_projections::activity::Activity;
use anamnesis_projections::consume::{self, ConsumerConfig};
use anamnesis_projections::patients::Patients;
use anamnesis_projections::reminders::{self, ReminderConfig};
use anamnesis_projections::runner::{self, Projector, RunnerConfig};
use anamnesis_projections::schedule::Schedule;
use anamnesis_replay::{ChainStatus, SentinelConfig};

use crate::auth::Tokens;
use crate::config::ServeSettings;
use crate::error::ApiError;
use crate::sessions::Sessions;
use crate::state::{AppState, ProjectorHandle};

/// Connections of the query handlers' and log readers' pool.
const READ_CONNECTIONS: u32 = 16;
/// Connections of the projectors' pool (a runner holds one per batch).
const PROJECTOR_CONNECTIONS: u32 = 4;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest any request may take before it is answered `503
/// deadline_exceeded`: a slow database or a held lock never leaves a client
/// waiting without an answer. Longer than the read-your-writes wait (5 s).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// Answers a request that ran past [`REQUEST_DEADLINE`]. The work it started
/// is dropped: a command whose append was already queued may still commit
/// (its client retries with the same `Idempotency-Key` once that exists).
async fn deadline(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("anamnesis_http_deadline_exceeded_total").increment(1);
            ApiError::Unavailable {
                code: "deadline_exceeded",
                detail: "the request took too long; retry shortly".into(),
            }
            .into_response()
        }
    }
}

/// The runtime the `anamnesis` binary (and a benchmark's server) runs on:
/// twice as many worker threads as cores, at least four, unless
/// `TOKIO_WORKER_THREADS` says otherwise. A task holds its worker until it
/// yields, and some run for milliseconds without yielding (a projector
/// folding a batch, a shared read folding a thousand patients); with one
/// worker per core, the request handlers queued behind such a task waited
/// for it. With spare workers the system's scheduler runs them beside it:
/// registrations at half the sustained rate, p99 26-87 ms with two workers,
/// 13-17 ms with four (ADR 0007).
/// The process also runs without transparent huge pages
/// ([`crate::small_pages`]): this is where a process that hosts a server is
/// set up.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::small_pages();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads((2 * cores).max(4));
    }
    builder.enable_all().build()
}

/// Serves on `listener` until `shutdown` resolves, then stops the projectors
/// and closes the database.
pub async fn launch(
    settings: &ServeSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Prepared::open(settings)
        .await?
        .serve(listener, shutdown)
        .await
}

/// A server whose database is reached and current, its projectors running,
/// not yet answering HTTP.
pub struct Prepared {
    db: anamnesis_commands::Db,
    reads: anamnesis_commands::Db,
    read_models: anamnesis_commands::Db,
    state: AppState,
    edge: Edge,
    stop: watch::Sender<bool>,
    runners: Vec<tokio::task::JoinHandle<()>>,
}

impl Prepared {
    /// Reaches the database (creating and migrating it where this role may),
    /// starts the log writer and the projectors.
    pub async fn open(settings: &ServeSettings) -> anyhow::Result<Self> {
        let zone = settings.zone()?;
        settings.currency()?;
        let cors = crate::browser::origins(&settings.cors_origins)
            .context("--cors-origins / ANAMNESIS_CORS_ORIGINS")?;
        let db = crate::cli::open_database(settings).await?;
        let log = EventLog::open_with(db.clone(), settings.keyring()?)
            .await
            .context("starting the event log")?;
        let tokens = match &settings.token_key {
            Some(key) => Tokens::from_key_text(key.expose())?,
            None => Tokens::from_data_dir(&settings.data_dir)?,
        };
        // Queries and log readers get a pool of their own: a burst of reads
        // never makes a command wait for a connection, nor the reverse.
        let reads = db
            .dedicated(READ_CONNECTIONS)
            .await
            .context("opening the read pool")?;
        let reader = log.reader_on(reads.clone());
        let (stop, stopped) = watch::channel(false);
        let read_models = db
            .for_read_models(PROJECTOR_CONNECTIONS)
            .await
            .context("opening the projectors' pool")?;
        // Before the notifications projector runs: it enqueues for the
        // channels this writes (ADR 0023).
        let senders =
            crate::deliveries::start(&read_models, settings, !settings.no_consumers, &stopped)
                .await?;
        let mut started = Projectors {
            reader: reader.clone(),
            db: read_models.clone(),
            stopped: stopped.clone(),
            runners: Vec::new(),
            handles: Vec::new(),
        };
        started.spawn_paced(Activity, AUDIT_BATCH_INTERVAL);
        started.spawn(Patients);
        started.spawn(Schedule);
        started.spawn_paced(AccessLog, AUDIT_BATCH_INTERVAL);
        started.spawn(anamnesis_projections::chart::Chart);
        started.spawn(anamnesis_projections::medications::Medications);
        let nats = settings.relay()?;
        if let Some(relay) = &nats {
            started.relay(relay.clone());
        }
        started.spawn(anamnesis_projections::messaging::Messaging);
        // The fan-out consumers (ADR 0020): fed by NATS when it is
        // configured, straight from the log when it is not.
        if !settings.no_consumers {
            let consumers = nats.map(ConsumerConfig::new);
            started.consumer(
                anamnesis_projections::notifications::Notifications,
                consumers.as_ref(),
            );
            started.consumer(anamnesis_projections::alerts::Alerts, consumers.as_ref());
            started.consumer(
                anamnesis_projections::analytics::Analytics::new(zone),
                consumers.as_ref(),
            );
            started.reminders(ReminderConfig::new(zone));
        }
        started.spawn(anamnesis_projections::billing::Billing);
        let redis = match settings.redis()? {
            Some(config) => {
                let cache = anamnesis_projections::redis::Cache::open(config)
                    .context("--redis-url / REDIS_URL")?;
                started.redis(cache.clone());
                Some(cache)
            }
            None => None,
        };
        let Projectors {
            mut runners,
            handles: mut projections,
            ..
        } = started;
        for (handle, task) in senders {
            projections.push(handle);
            runners.push(task);
        }
        // The log's own verification and signed checkpoints (ADR 0009).
        let checkpoint_key = settings
            .checkpoint_key()
            .context("the checkpoint signing key")?;
        let checkpoint_dir = settings.checkpoint_dir();
        std::fs::create_dir_all(&checkpoint_dir).with_context(|| {
            format!(
                "creating the checkpoint directory {}",
                checkpoint_dir.display()
            )
        })?;
        let (chain, chain_status) = watch::channel(ChainStatus::starting());
        runners.push(tokio::spawn(anamnesis_replay::sentinel::run(
            reader.clone(),
            checkpoint_key,
            SentinelConfig {
                dir: checkpoint_dir,
                every_events: settings.checkpoint_every_events,
                every: Duration::from_secs(settings.checkpoint_every_minutes * 60),
                full_verify_limit: settings.full_verify_limit,
            },
            chain,
            stopped.clone(),
        )));
        let bus = CommandBus::new(log);
        // Before the first request: accounts of earlier releases get their
        // opaque stream and their credential (ADR 0006).
        anamnesis_commands::identity::Identity::new(bus.clone())
            .adopt_legacy_accounts()
            .await
            .context("moving accounts of an earlier release to their user ids")?;
        let sessions = Arc::new(Sessions::new(bus.clone()));
        runners.push(tokio::spawn({
            let sessions = sessions.clone();
            let stopped = stopped.clone();
            async move { sessions.follow(reader, stopped).await }
        }));
        let state = AppState::new(
            bus,
            reads.clone(),
            tokens,
            crate::metrics::handle()?,
            (projections, chain_status),
            (sessions, settings.mfa_roles()?),
            (
                zone,
                settings.slot_horizon_weeks * 7,
                settings.clinical()?,
                redis,
            ),
        );
        Ok(Self {
            db,
            reads,
            read_models,
            state,
            edge: Edge {
                cors,
                limits: crate::limits::Limits::new(settings.limits(), shared_limits(settings)?),
            },
            stop,
            runners,
        })
    }

    /// Whether any user account exists yet (a fresh install has none).
    pub async fn has_users(&self) -> anyhow::Result<bool> {
        Ok(self
            .state
            .log()
            .streams_touched("user", 0, i64::MAX, 1)
            .await?
            .len()
            == 1)
    }

    /// Serves until `shutdown` resolves, then stops the projectors and closes
    /// the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.state, &self.edge);
        // Quiet clients' limits are forgotten once a minute.
        let limits = self.edge.limits.clone();
        let forgetting = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limits.forget_quiet();
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        forgetting.abort();
        served?;
        tracing::info!("shutting down: stopping projectors");
        self.stop.send_replace(true);
        for r in self.runners {
            let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
        }
        self.reads.close().await;
        self.read_models.close().await;
        self.db.close().await;
        Ok(())
    }
}

/// The rate limits' handle on Redis (ADR 0026), when `--redis-url` is set.
fn shared_limits(settings: &ServeSettings) -> anyhow::Result<Option<crate::limits::Shared>> {
    let Some(config) = settings.redis()? else {
        return Ok(None);
    };
    let shared = crate::limits::Shared::open(&config.url, &config.prefix)
        .context("--redis-url / REDIS_URL (rate limits)")?;
    Ok(Some(shared))
}

/// The projectors a server runs, as they are started.
struct Projectors {
    reader: LogReader,
    db: Db,
    stopped: watch::Receiver<bool>,
    runners: Vec<tokio::task::JoinHandle<()>>,
    handles: Vec<ProjectorHandle>,
}

/// The shortest time between two batches of the audit read models (the
/// activity and the access log): they take every batch the writer commits
/// (every read of patient data appends its access record), and no request
/// waits for them to answer. Gathering 30 ms of appends into one
/// transaction took them from about 100 transactions a second each to at
/// most 33 under bench-load, for at most 30 ms more lag (ADR 0028).
const AUDIT_BATCH_INTERVAL: Duration = Duration::from_millis(30);

impl Projectors {
    fn spawn<P: Projector>(&mut self, projector: P) {
        self.spawn_paced(projector, RunnerConfig::default().min_batch_interval);
    }

    /// [`Projectors::spawn`], with batches at least `min_batch_interval`
    /// apart.
    fn spawn_paced<P: Projector>(&mut self, projector: P, min_batch_interval: Duration) {
        let report = self.report(projector.name(), (true, true));
        self.runners.push(tokio::spawn(runner::run_reporting(
            self.reader.clone(),
            self.db.clone(),
            projector,
            RunnerConfig {
                min_batch_interval,
                ..RunnerConfig::default()
            },
            report,
            self.stopped.clone(),
        )));
    }
}

impl Projectors {
    /// A handle for `/readyz` and `/metrics`, and the report its task fills.
    fn report(
        &mut self,
        name: &'static str,
        (essential, follows_log): (bool, bool),
    ) -> runner::Report {
        let (progress, progress_rx) = watch::channel(0);
        let (failure, failure_rx) = watch::channel(None);
        let (active, active_rx) = watch::channel(false);
        self.handles.push(ProjectorHandle {
            name,
            progress: progress_rx,
            failure: failure_rx,
            active: active_rx,
            essential,
            follows_log,
        });
        runner::Report {
            progress,
            failure,
            active,
        }
    }

    /// Starts the relay to NATS (ADR 0018), reported like a projector but
    /// not essential to readiness.
    fn relay(&mut self, config: anamnesis_projections::relay::RelayConfig) {
        let report = self.report(anamnesis_projections::relay::NAME, (false, true));
        self.runners
            .push(tokio::spawn(anamnesis_projections::relay::run(
                self.reader.clone(),
                self.db.clone(),
                config,
                report,
                self.stopped.clone(),
            )));
    }

    /// Starts a fan-out consumer (ADR 0020): a durable consumer of the
    /// relay's stream when NATS is configured (not essential to readiness:
    /// NATS away stops it, visibly, and nothing else), else a projector
    /// over the log.
    fn consumer<P>(&mut self, projector: P, nats: Option<&ConsumerConfig>)
    where
        P: Projector,
        P::Event: Clone,
    {
        let Some(config) = nats else {
            return self.spawn(projector);
        };
        let report = self.report(projector.name(), (false, true));
        self.runners.push(tokio::spawn(consume::run(
            self.reader.clone(),
            self.db.clone(),
            projector,
            config.clone(),
            report,
            self.stopped.clone(),
        )));
    }

    /// Starts the reminder sender (ADR 0020), not essential to readiness.
    fn reminders(&mut self, config: ReminderConfig) {
        // Rounds every few seconds: its position is the head as of the
        // last round, no lag.
        let report = self.report(reminders::NAME, (false, false));
        self.runners.push(tokio::spawn(reminders::run(
            self.reader.clone(),
            self.db.clone(),
            config,
            report,
            self.stopped.clone(),
        )));
    }
}

/// What the HTTP layer is configured with, beside the handlers' state.
#[derive(Clone)]
pub struct Edge {
    /// The origins browsers may call from (`--cors-origins`; none: no CORS).
    pub cors: Vec<axum::http::HeaderValue>,
    /// The rate limits.
    pub limits: Arc<crate::limits::Limits>,
}

impl Projectors {
    /// Starts the Redis projector (ADR 0022), after the `patients` and
    /// `schedule` projectors it computes from; reported like a projector
    /// but not essential to readiness (reads fall back to the database).
    fn redis(&mut self, cache: anamnesis_projections::redis::Cache) {
        use anamnesis_projections::{patients, redis, schedule};
        let upstream = redis::Upstream::Watching(
            [patients::NAME, schedule::NAME]
                .into_iter()
                .filter_map(|name| {
                    self.handles
                        .iter()
                        .find(|h| h.name == name)
                        .map(|h| (name, h.progress.clone()))
                })
                .collect(),
        );
        let (progress, progress_rx) = watch::channel(0);
        let (failure, failure_rx) = watch::channel(None);
        let (active, active_rx) = watch::channel(false);
        self.handles.push(ProjectorHandle {
            name: redis::NAME,
            progress: progress_rx,
            failure: failure_rx,
            active: active_rx,
            essential: false,
            follows_log: true,
        });
        self.runners.push(tokio::spawn(redis::run(
            cache,
            (self.reader.clone(), self.db.clone()),
            upstream,
            runner::Report {
                progress,
                failure,
                active,
            },
            self.stopped.clone(),
        )));
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState, edge: &Edge) -> axum::Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (api, mut doc) = crate::routes::api().split_for_parts();
    crate::routes::finish(&mut doc);
    let doc = std::sync::Arc::new(doc);
    let app = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::middleware,
        ))
        .layer(axum::middleware::from_fn(deadline))
        .layer(axum::middleware::from_fn_with_state(
            edge.limits.clone(),
            crate::limits::middleware,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            // Spans carry the method, the route template and the request id:
            // never the concrete path or query string, which can hold patient data.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                tracing::info_span!("request", method = %req.method(), route, request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn(crate::browser::security_headers));
    // Outermost: a preflight is answered before authentication, routing or
    // the idempotency layer see it.
    let app = match crate::browser::cors(&edge.cors) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.with_state(state)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
