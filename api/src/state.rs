//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::identity::Identity;
use anamnesis_commands::schedule::Scheduler;
use anamnesis_commands::{Db, EventLog};
use anamnesis_domain::schedule::ClinicZone;

use anamnesis_projections::redis::Cache;
use anamnesis_projections::runner::Failure;
use anamnesis_replay::ChainStatus;

use crate::auth::Tokens;
use crate::sessions::Sessions;

/// What the server knows of one running projector.
#[derive(Clone)]
pub struct ProjectorHandle {
    /// Its stable name.
    pub name: &'static str,
    /// Its committed checkpoint.
    pub progress: watch::Receiver<i64>,
    /// Whether it is stuck, and on what.
    pub failure: watch::Receiver<Option<Failure>>,
    /// Whether it runs in this process or stands by for another.
    pub active: watch::Receiver<bool>,
    /// Whether the server is not ready while it is stuck: a read model is;
    /// the relay is not (the API answers rightly while NATS is away, and
    /// the relay catches up after; /readyz still shows its problem).
    pub essential: bool,
    /// Whether its position follows the log, so that its distance from the
    /// head is a lag: a projector's or the relay's is; a sender's that runs
    /// in rounds or follows an outbox (reminders, deliveries) is not.
    pub follows_log: bool,
}

/// Shared, cheaply cloned state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    bus: CommandBus,
    /// The query handlers' pool, apart from the write side's.
    reads: Db,
    identity: Identity,
    tokens: Tokens,
    metrics: PrometheusHandle,
    /// Each projector's progress and health.
    projections: Vec<ProjectorHandle>,
    /// Where verification of the log's chain stands (ADR 0009).
    chain: watch::Receiver<ChainStatus>,
    sessions: Arc<Sessions>,
    scheduler: Scheduler,
    /// How many days ahead free-slot queries reach.
    horizon_days: i64,
    /// The clinical record's settings and document store.
    clinical: crate::care::ClinicalSettings,
    /// Billing commands, in the clinic's currency.
    billing: anamnesis_commands::billing::Billing,
    /// The Redis read models, when Redis is configured (ADR 0022).
    redis: Option<Cache>,
}

impl AppState {
    pub fn new(
        bus: CommandBus,
        reads: Db,
        tokens: Tokens,
        metrics: PrometheusHandle,
        (projections, chain): (Vec<ProjectorHandle>, watch::Receiver<ChainStatus>),
        (sessions, mfa_roles): (Arc<Sessions>, Vec<anamnesis_domain::user::Role>),
        (zone, horizon_days, clinical, redis): (
            ClinicZone,
            i64,
            crate::care::ClinicalSettings,
            Option<Cache>,
        ),
    ) -> Self {
        let identity = Identity::new(bus.clone()).with_mfa_roles(mfa_roles);
        let scheduler = Scheduler::new(bus.clone(), zone);
        let billing =
            anamnesis_commands::billing::Billing::new(bus.clone(), clinical.currency, zone);
        Self(Arc::new(Inner {
            bus,
            reads,
            identity,
            tokens,
            metrics,
            projections,
            chain,
            sessions,
            scheduler,
            horizon_days,
            clinical,
            billing,
            redis,
        }))
    }

    /// The clinical record's settings and document store.
    pub fn clinical(&self) -> &crate::care::ClinicalSettings {
        &self.0.clinical
    }

    /// The Redis read models, when Redis is configured.
    pub fn redis(&self) -> Option<&Cache> {
        self.0.redis.as_ref()
    }

    /// Billing commands, in the clinic's currency.
    pub fn billing(&self) -> &anamnesis_commands::billing::Billing {
        &self.0.billing
    }

    /// The session check of every authenticated request.
    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    /// Scheduling commands, in the clinic's zone.
    pub fn scheduler(&self) -> &Scheduler {
        &self.0.scheduler
    }

    /// How many days ahead free-slot queries reach.
    pub fn horizon_days(&self) -> i64 {
        self.0.horizon_days
    }

    pub fn bus(&self) -> &CommandBus {
        &self.0.bus
    }

    pub fn log(&self) -> &EventLog {
        self.0.bus.log()
    }

    /// The pool for queries of read models.
    pub fn reads(&self) -> &Db {
        &self.0.reads
    }

    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }

    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// Where verification of the log's chain stands.
    pub fn chain(&self) -> ChainStatus {
        self.0.chain.borrow().clone()
    }

    pub fn projections(&self) -> &[ProjectorHandle] {
        &self.0.projections
    }

    /// The progress signal of projector `name`.
    pub fn progress(&self, name: &str) -> watch::Receiver<i64> {
        self.0
            .projections
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.progress.clone())
            .unwrap_or_else(|| watch::channel(0).1)
    }
}
