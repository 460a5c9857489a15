//! HTTP API (contract §4): the aggregate endpoints, their OpenAPI document, health and metrics.
//!
//! # Layout
//!
//! * `mod.rs` — [`router`], [`AppState`], [`Clock`] and the one generic handler every
//!   aggregate endpoint runs through.
//! * `endpoint.rs` — the [`Endpoint`](endpoint::Endpoint) trait and the list of endpoints;
//!   the router and the OpenAPI document are both built from that list, so they cannot drift.
//! * `videos.rs`, `creators.rs`, `campaigns.rs` — one [`Endpoint`](endpoint::Endpoint) per
//!   route: its parameters, its response types and the call into [`crate::query`].
//! * `params.rs` — query-string parsing against a declared parameter list.
//! * `lane.rs` — the threads of the long answers, at a lower priority than the others.
//! * `auth.rs` — bearer API keys and HS256 session cookies.
//! * `error.rs` — [`ApiError`], the only error type handlers return, and the envelope.
//! * `metrics.rs` — request counters and latency histograms, Prometheus text.
//! * `openapi.rs` — the OpenAPI 3.1 document.
//!
//! # A request
//!
//! ```text
//! headers ──► auth::credential ──► a query thread { store.read() (one MVCC snapshot)
//!               (401)                 ├─ caller's orgs (401)
//!                                     ├─ params::parse (400)
//!                                     ├─ query::project + org check (404)
//!                                     └─ Endpoint::run ──► query::*  } ──► envelope
//! ```
//!
//! Everything after the header check runs on a thread of its own because redb is
//! synchronous: tokio's blocking pool, or for the long answers a lane behind the short ones
//! (`lane.rs`). The whole request reads one snapshot, so ingestion never makes an answer
//! inconsistent.

mod auth;
mod campaigns;
mod creators;
mod endpoint;
mod error;
pub mod lane;
mod metrics;
mod openapi;
mod params;
mod videos;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::events::{Id, Instant, id_to_string};
use crate::query::{self, ProjectView};
use crate::store::Store;

pub use error::ApiError;

/// Prefix of every aggregate endpoint.
pub const AGGREGATE_BASE: &str = "/api/v1/analytics/aggregate";

/// The aggregate endpoints under [`AGGREGATE_BASE`], in the order of contract §4 (and of
/// [`paths`], which a test checks).
pub const ENDPOINTS: [&str; 10] = [
    "video-leaderboard",
    "posting-heatmap",
    "view-distribution",
    "outliers",
    "creator-leaderboard",
    "posting-consistency",
    "creator-scatter",
    "goal-compliance",
    "campaign-leaderboard",
    "member-overlap",
];

/// The OpenAPI document of this API.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Liveness probe.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub clock: Clock,
    /// The HMAC key of session cookies (`GOATVIEW_SESSION_SECRET`); without one, no cookie
    /// is ever valid.
    pub session_secret: Option<Arc<[u8]>>,
    /// The Kafka consumer's counters, when `serve` consumes Kafka (shown on `/metrics`).
    pub kafka: Option<Arc<crate::ingest::kafka::KafkaStats>>,
}

/// The current instant, injectable so that tests and replays are reproducible (contract §3).
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant (`GOATVIEW_NOW`).
    Fixed(Instant),
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::from_chrono(chrono::Utc::now()),
            Clock::Fixed(t) => *t,
        }
    }
}

/// The whole HTTP API. Each call has its own metrics registry.
pub fn router(state: AppState) -> Router {
    let metrics = Arc::new(metrics::Metrics::new(paths()));
    let spec = Bytes::from(openapi::document());

    let mut routes = endpoint::Routes(Router::new());
    endpoint::each(&mut routes);
    routes
        .0
        .route(HEALTHZ_PATH, get(healthz))
        .route(OPENAPI_PATH, get(move || openapi_json(spec.clone())))
        .route(METRICS_PATH, {
            let metrics = metrics.clone();
            get(move |State(state): State<AppState>| metrics::render(state, metrics.clone()))
        })
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        .with_state(state)
}

/// Every path [`router`] serves, in the order it registers them.
pub fn paths() -> Vec<String> {
    let mut paths = endpoint::Paths(Vec::new());
    endpoint::each(&mut paths);
    paths.0.extend([HEALTHZ_PATH, OPENAPI_PATH, METRICS_PATH].map(String::from));
    paths.0
}

/// `meta` of a successful answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Meta {
    /// The project asked for, lowercase.
    #[schema(format = "uuid")]
    pub project_id: String,
    /// The greatest `occurred_at` applied for the project (UTC, RFC 3339), or null.
    #[schema(format = DateTime, required = true)]
    pub last_event_at: Option<String>,
}

/// Runs one aggregate endpoint: auth, then parameters, then the project, then the query.
async fn handle<E: endpoint::Endpoint>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let credential = auth::credential(&headers, state.session_secret.as_deref(), now)?;
    let store = state.store.clone();
    // Parsed here to order the long answers by their period; a bad parameter is reported
    // after the credentials are checked (contract §4.1: 401 before 400).
    let params = params::parse(raw.as_deref(), E::PARAMS);
    let days = params.as_ref().map_or(Some(0), |p| p.range().days());
    let answer = move || {
        let _running = query::InProgress::start();
        let rtxn = store.read()?;
        let orgs = credential.orgs(&rtxn, now)?;
        let params = params?;
        let project = readable_project(&rtxn, params.project_id()?, &orgs)?;
        let data = E::run(&rtxn, &project, &params, now)?;
        let meta = Meta {
            project_id: id_to_string(&project.id),
            last_event_at: project.last_event_at.map(Instant::to_rfc3339),
        };
        // Serialised here too: a long answer should hold a blocking thread, not the runtime.
        // The envelope (contract §4.1) is `{"data": …, "error": null, "meta": …}`.
        let mut body = b"{\"data\":".to_vec();
        E::write_data(&data, &mut body).map_err(ApiError::internal)?;
        body.extend_from_slice(b",\"error\":null,\"meta\":");
        serde_json::to_writer(&mut body, &meta).map_err(ApiError::internal)?;
        body.push(b'}');
        Ok::<_, ApiError>(body)
    };
    let answer = if E::LONG {
        let due = lane::due(std::time::Instant::now(), days);
        lane::run_long(due, answer).await.ok_or_else(|| ApiError::internal("a long answer's thread panicked"))??
    } else {
        tokio::task::spawn_blocking(answer).await.map_err(ApiError::internal)??
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// The project if it is visible and belongs to one of `orgs`; one `NotFound` otherwise, so a
/// caller cannot tell another org's project from a missing one.
fn readable_project(rtxn: &redb::ReadTransaction, id: Id, orgs: &[Id]) -> Result<ProjectView, ApiError> {
    query::project(rtxn, id)?.filter(|p| orgs.contains(&p.org_id)).ok_or(ApiError::NotFound)
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn openapi_json(spec: Bytes) -> Response {
    let content_type = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, content_type)], spec).into_response()
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_the_routers() {
        let routed: Vec<String> = paths().into_iter().take(ENDPOINTS.len()).collect();
        let named: Vec<String> = ENDPOINTS.iter().map(|e| format!("{AGGREGATE_BASE}/{e}")).collect();
        assert_eq!(routed, named);
    }
}
