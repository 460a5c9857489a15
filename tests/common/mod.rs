//! Shared test helpers: temp stores filled from event lines, the real router, and the
//! comparison of engine answers with the independent reference model.
#![allow(dead_code)]

pub mod reference;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use goatview::api::{AppState, Clock, router};
use goatview::events::Instant;
use goatview::ingest::push_message;
use goatview::store::{Batch, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const BASE: &str = "/api/v1/analytics/aggregate";

/// A store in a temp dir; the dir lives as long as this value.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
        TestStore { dir, store }
    }

    /// Applies lines in batches of `batch` through the same decode path as ingestion.
    pub fn apply_lines<S: AsRef<str>>(&self, lines: &[S], batch: usize) {
        for (i, chunk) in lines.chunks(batch.max(1)).enumerate() {
            let mut b = Batch::default();
            for (j, line) in chunk.iter().enumerate() {
                let line = line.as_ref();
                if !line.trim().is_empty() {
                    push_message(
                        &mut b,
                        "test",
                        (i * batch + j) as u64,
                        line.as_bytes(),
                        Instant { secs: 0, nanos: 0 },
                    );
                }
            }
            self.store.commit(&b).unwrap();
        }
    }

    pub fn dump(&self) -> Vec<String> {
        goatview::state::tables::dump_state(&self.store.read().unwrap()).unwrap()
    }

    pub fn app(&self, now: chrono::DateTime<chrono::Utc>) -> axum::Router {
        router(AppState {
            store: self.store.clone(),
            clock: Clock::Fixed(Instant::from_chrono(now)),
            session_secret: None,
            kafka: None,
        })
    }
}

/// GET through the router with no socket; returns status and JSON body.
pub async fn get(app: &axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(k) = bearer {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// URL of an endpoint with query pairs (values are URL-safe in these tests).
pub fn uri(endpoint: &str, query: &[(String, String)]) -> String {
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B"))).collect();
    format!("{BASE}/{endpoint}?{}", q.join("&"))
}

pub fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// View counts of the videos the reference puts in the query's `[from, to]` (empty when
/// either side is open): what `compare` needs to judge view-distribution bins.
pub fn period_views(reference: &reference::Reference, project: &str, query: &[(String, String)]) -> Vec<u64> {
    let param = |name: &str| query.iter().find(|q| q.0 == name).map(|q| q.1.as_str());
    match (param("from"), param("to")) {
        (Some(from), Some(to)) => reference.views_in_period(project, from, to),
        _ => Vec::new(),
    }
}

/// Compares an engine answer with the reference's exact one. Everything must be equal,
/// except what contract §4.3 lets an HDR histogram approximate: percentiles within 0.1%,
/// and bin counts off only by values within 0.1% of a bin edge.
pub fn compare(endpoint: &str, engine: &Value, expected: &Value, views: &[u64]) -> Result<(), String> {
    if endpoint != "view-distribution" || expected["total"] == 0 {
        return if engine == expected { Ok(()) } else { Err(format!("engine {engine}\nreference {expected}")) };
    }
    for k in ["total", "min", "max"] {
        if engine[k] != expected[k] {
            return Err(format!("{k}: engine {} reference {}", engine[k], expected[k]));
        }
    }
    for k in ["p50", "p75", "p90", "p99"] {
        let (e, r) = (engine[k].as_f64().unwrap(), expected[k].as_f64().unwrap());
        if (e - r).abs() > r * 0.001 {
            return Err(format!("{k}: engine {e} reference {r}"));
        }
    }
    let (eb, rb) = (engine["bins"].as_array().unwrap(), expected["bins"].as_array().unwrap());
    if eb.len() != rb.len() {
        return Err(format!("bins: {} vs {}", eb.len(), rb.len()));
    }
    let mut sum = 0;
    for (e, r) in eb.iter().zip(rb) {
        for k in ["bin_index", "bin_lower", "bin_upper"] {
            if e[k] != r[k] {
                return Err(format!("bin {k}: engine {e} reference {r}"));
            }
        }
        let (lo, hi) = (r["bin_lower"].as_u64().unwrap() as f64, r["bin_upper"].as_u64().unwrap() as f64);
        let near_edge = |v: u64| {
            let v = v as f64;
            (v - lo).abs() <= v * 0.001 || (v - hi).abs() <= v * 0.001
        };
        let slack = views.iter().filter(|&&v| near_edge(v)).count() as i64;
        let diff = e["video_count"].as_i64().unwrap() - r["video_count"].as_i64().unwrap();
        if diff.abs() > slack {
            return Err(format!(
                "bin count off by {diff} with {slack} values near its edges: engine {e} reference {r}"
            ));
        }
        sum += e["video_count"].as_u64().unwrap();
    }
    if sum != expected["total"].as_u64().unwrap() {
        return Err(format!("bins hold {sum} videos, total is {}", expected["total"]));
    }
    Ok(())
}
