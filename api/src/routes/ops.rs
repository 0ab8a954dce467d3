//! Health, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

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
    pub status: &'static str,
    pub database: bool,
    /// Projector name → running.
    pub projections: Vec<(String, bool)>,
}

/// The database answers and every projector is running.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.log().head_position().await.is_ok();
    // A runner holds its progress sender; a stopped runner closes the channel.
    let projections: Vec<(String, bool)> = state
        .projections()
        .iter()
        .map(|(name, rx)| (name.to_string(), rx.has_changed().is_ok()))
        .collect();
    let ready = database && projections.iter().all(|(_, up)| *up);
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
            projections,
        }),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Projection lag, measured at scrape time: events behind the log head, and
    // how long ago the oldest unprojected event was recorded.
    if let Ok(head) = state.log().head_position().await {
        for (name, rx) in state.projections() {
            let at = *rx.borrow();
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
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
