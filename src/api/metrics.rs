//! Request metrics and the `/metrics` answer (Prometheus text format 0.0.4), and the
//! per-request log line.
//!
//! Requests are labelled by route path when the path is one the router serves, and as
//! [`UNMATCHED`] otherwise, so the number of series stays bounded whatever clients send.
//! (No route has path parameters, so the path is the route.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, info, info_span};

use super::AppState;
use super::error::ApiError;
use crate::store;

/// Requests served, by `endpoint` and `status`.
pub const HTTP_REQUESTS: &str = "goatview_http_requests_total";
/// Time to answer a request, by `endpoint`.
pub const HTTP_DURATION: &str = "goatview_http_request_duration_seconds";
/// Events applied to the store (the store's `events_applied` counter).
pub const EVENTS_APPLIED: &str = "goatview_events_applied_total";
/// Messages kept as dead letters (the store's `dead_letters` counter).
pub const DEAD_LETTERS: &str = "goatview_dead_letters_total";
/// Long answers waiting for a thread of their own (`lane.rs`).
pub const LONG_WAITING: &str = "goatview_long_answers_waiting";

/// Log and label field: the route path, or [`UNMATCHED`].
pub const FIELD_ENDPOINT: &str = "endpoint";
/// Log field: the HTTP method.
pub const FIELD_METHOD: &str = "method";
/// Log and label field: the response status code.
pub const FIELD_STATUS: &str = "status";
/// Log field: time to answer, in milliseconds.
pub const FIELD_LATENCY_MS: &str = "latency_ms";
/// `endpoint` of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The counters of one router.
#[derive(Debug)]
pub struct Metrics {
    /// The paths the router serves: the only `endpoint` labels besides [`UNMATCHED`].
    routes: Vec<String>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    durations: BTreeMap<String, Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`BUCKETS`]; slower requests only count in `count`.
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    pub fn new(routes: Vec<String>) -> Metrics {
        Metrics { routes, inner: Mutex::default() }
    }

    fn endpoint(&self, path: &str) -> String {
        self.routes.iter().find(|r| *r == path).map_or(UNMATCHED, String::as_str).to_owned()
    }

    fn record(&self, endpoint: &str, status: StatusCode, took: Duration) {
        let secs = took.as_secs_f64();
        // A poisoned lock only means another request panicked mid-update; counts stay usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *inner.requests.entry((endpoint.to_owned(), status.as_u16())).or_default() += 1;
        let h = inner.durations.entry(endpoint.to_owned()).or_default();
        if let Some(i) = BUCKETS.iter().position(|&le| secs <= le) {
            h.buckets[i] += 1;
        }
        h.sum += secs;
        h.count += 1;
    }

    fn write(&self, out: &mut String) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {HTTP_REQUESTS} HTTP requests answered, by endpoint and status.");
        let _ = writeln!(out, "# TYPE {HTTP_REQUESTS} counter");
        for ((endpoint, status), n) in &inner.requests {
            let _ = writeln!(out, "{HTTP_REQUESTS}{{{FIELD_ENDPOINT}=\"{endpoint}\",{FIELD_STATUS}=\"{status}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP {HTTP_DURATION} Time to answer an HTTP request, in seconds.");
        let _ = writeln!(out, "# TYPE {HTTP_DURATION} histogram");
        for (endpoint, h) in &inner.durations {
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ =
                    writeln!(out, "{HTTP_DURATION}_bucket{{{FIELD_ENDPOINT}=\"{endpoint}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{HTTP_DURATION}_bucket{{{FIELD_ENDPOINT}=\"{endpoint}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{HTTP_DURATION}_sum{{{FIELD_ENDPOINT}=\"{endpoint}\"}} {}", h.sum);
            let _ = writeln!(out, "{HTTP_DURATION}_count{{{FIELD_ENDPOINT}=\"{endpoint}\"}} {}", h.count);
        }
    }
}

/// Middleware: one span per request, one log line and one metrics update per answer.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let endpoint = metrics.endpoint(req.uri().path());
    let span = info_span!("request", { FIELD_ENDPOINT } = %endpoint, { FIELD_METHOD } = %req.method());
    let started = std::time::Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    metrics.record(&endpoint, response.status(), took);
    span.in_scope(|| {
        info!(
            { FIELD_STATUS } = response.status().as_u16(),
            { FIELD_LATENCY_MS } = took.as_secs_f64() * 1000.0,
            "Request answered."
        );
    });
    response
}

/// `GET /metrics`.
pub async fn render(state: AppState, metrics: Arc<Metrics>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (applied, dead) = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((store.counter(store::EVENTS_APPLIED)?, store.counter(store::DEAD_LETTERS)?))
    })
    .await
    .map_err(ApiError::internal)??;

    let mut out = String::new();
    let _ = writeln!(out, "# HELP {EVENTS_APPLIED} Events applied to the store.");
    let _ = writeln!(out, "# TYPE {EVENTS_APPLIED} counter");
    let _ = writeln!(out, "{EVENTS_APPLIED} {applied}");
    let _ = writeln!(out, "# HELP {DEAD_LETTERS} Messages kept as dead letters.");
    let _ = writeln!(out, "# TYPE {DEAD_LETTERS} counter");
    let _ = writeln!(out, "{DEAD_LETTERS} {dead}");
    let _ = writeln!(out, "# HELP {LONG_WAITING} Long answers waiting for a thread of their own.");
    let _ = writeln!(out, "# TYPE {LONG_WAITING} gauge");
    let _ = writeln!(out, "{LONG_WAITING} {}", super::lane::waiting());
    if let Some(kafka) = &state.kafka {
        kafka.write_prometheus(&mut out);
    }
    metrics.write(&mut out);

    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, content_type)], out).into_response())
}
