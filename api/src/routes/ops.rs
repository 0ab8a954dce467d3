//! Health, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use anamnesis_commands::StoreError;

use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The database answers.
    pub database: bool,
    /// This process can append to the log.
    pub writer: Component,
    /// Every projector, by name.
    pub projections: Vec<ProjectorState>,
    /// Verification of the log's hash chain and signed checkpoints (ADR 0009).
    pub chain: ChainReadiness,
}

/// Where verification of the log stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainReadiness {
    /// The start-up verification passed and no break was found since.
    pub ready: bool,
    /// `verifying`, `verified` or `broken`.
    pub state: &'static str,
    /// The last position verified.
    pub verified_position: i64,
    /// Verification reaches back to genesis or to a signed checkpoint.
    pub anchored: bool,
    /// The newest signed checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_position: Option<i64>,
    /// Where the log is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_position: Option<i64>,
    /// Why not ready, or what last failed (positions and hashes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl From<anamnesis_replay::ChainStatus> for ChainReadiness {
    fn from(s: anamnesis_replay::ChainStatus) -> Self {
        use anamnesis_replay::ChainState;
        Self {
            ready: s.ready(),
            state: match s.state {
                ChainState::Verifying => "verifying",
                ChainState::Verified => "verified",
                ChainState::Broken => "broken",
            },
            verified_position: s.verified_position,
            anchored: s.anchored,
            checkpoint_position: s.checkpoint_position,
            break_position: s.break_position,
            problem: s.problem,
        }
    }
}

/// A part of the server that is up, or why it is not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Component {
    pub ready: bool,
    /// Why not, for an operator (positions and causes, never patient data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Why the writer's last transaction failed, while it has not succeeded since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// One projector's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectorState {
    pub name: &'static str,
    /// Whether the server is ready only while it is: every read model is;
    /// the NATS relay is not (`relay`: the API answers rightly meanwhile).
    pub essential: bool,
    /// Running and not stuck.
    pub ready: bool,
    /// Its position (read-your-writes waits for it).
    pub position: i64,
    /// Applying events in this process; false: standing by while another
    /// instance does (Postgres, one active instance per projector).
    pub active: bool,
    /// Why it is stuck (it stays on the event after `position` until fixed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Ready when the database answers, this process can append, the log's
/// chain verified, and no projector is stopped or stuck; the body names what
/// is not, the relay's problems (NATS away) included.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready", body = Readiness),
              (status = 503, description = "not ready: the body says what is not", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    // One read answers both: does the database answer, and does the head
    // agree with the events (an integrity failure means it does answer).
    let head = state.log().check_head().await;
    let database = !matches!(head, Err(StoreError::Database(_)));
    let problem = match head {
        Err(e) => Some(e.to_string()),
        Ok(()) if !state.log().writer_running() => Some("the event writer has stopped".into()),
        Ok(()) => None,
    };
    let writer = Component {
        ready: problem.is_none(),
        problem,
        last_failure: state.log().last_append_failure(),
    };
    let projections: Vec<ProjectorState> = state
        .projections()
        .iter()
        .map(|p| {
            // A runner holds its progress sender; a stopped runner closes the channel.
            let running = p.progress.has_changed().is_ok();
            let stuck = p.failure.borrow().clone();
            let problem = match (&stuck, running) {
                (Some(f), _) => Some(format!(
                    "stuck after position {}: {}",
                    f.checkpoint, f.error
                )),
                (None, false) => Some("stopped".to_owned()),
                (None, true) => None,
            };
            ProjectorState {
                name: p.name,
                essential: p.essential,
                ready: problem.is_none(),
                position: *p.progress.borrow(),
                active: *p.active.borrow(),
                problem,
            }
        })
        .collect();
    let chain = ChainReadiness::from(state.chain());
    let ready = database
        && writer.ready
        && chain.ready
        && projections.iter().all(|p| p.ready || !p.essential);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            database,
            writer,
            projections,
            chain,
        }),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Projection lag, measured at scrape time: events behind the log head, and
    // how long ago the oldest unprojected event was recorded.
    if let Ok(head) = state.log().head_position().await {
        for p in state.projections().iter() {
            let (name, at) = (&p.name, *p.progress.borrow());
            let stuck = if p.failure.borrow().is_some() {
                1.0
            } else {
                0.0
            };
            metrics::gauge!("anamnesis_projection_failing", "projection" => *name).set(stuck);
            // A sender in rounds or of an outbox has no lag (its health
            // shows in `/readyz` and the failing gauge).
            if !p.follows_log {
                continue;
            }
            let behind = (head - at).max(0);
            metrics::gauge!("anamnesis_projection_lag_events", "projection" => *name)
                .set(behind as f64);
            let seconds = if behind == 0 {
                0.0
            } else {
                match state.log().read_from(at, 1).await {
                    Ok(events) => events
                        .first()
                        .map(|e| {
                            (chrono::Utc::now() - e.recorded_at).num_milliseconds() as f64 / 1000.0
                        })
                        .unwrap_or(0.0),
                    Err(_) => 0.0,
                }
            };
            metrics::gauge!("anamnesis_projection_lag_seconds", "projection" => *name).set(seconds);
        }
    }
    let chain = state.chain();
    metrics::gauge!("anamnesis_chain_verified_position").set(chain.verified_position as f64);
    let broken = chain.state == anamnesis_replay::ChainState::Broken;
    metrics::gauge!("anamnesis_chain_break").set(if broken { 1.0 } else { 0.0 });
    metrics::gauge!("anamnesis_chain_break_position").set(chain.break_position.unwrap_or(0) as f64);
    metrics::gauge!("anamnesis_checkpoint_position")
        .set(chain.checkpoint_position.unwrap_or(0) as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
