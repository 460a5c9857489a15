//! goatview: an incremental materialized-view engine for creator analytics.
//!
//! Events from Kafka or recorded logs are folded into per-project aggregates in a redb
//! file; an Axum server answers the dashboard's aggregate analytics from them.
//!
//! ```text
//! Kafka / log ─► ingest ─bytes─► events::decode ─Event─► store::commit ─► state::apply
//!                                 (dead letters)        (one write txn with positions)
//! HTTP ─► api (auth, params) ─► query::* over a redb read transaction ─► JSON envelope
//! ```
//!
//! # Layout
//! - [`events`]: typed events, their last-writer-wins order, and `decode` with reasons.
//! - [`state`]: registers and aggregates in redb tables, changed only by `apply`.
//! - [`time`]: local days in any zone and the zone-free quarter-hour buckets.
//! - [`store`]: the redb file; batches commit state, dead letters and positions together.
//! - [`ingest`]: recorded logs and Kafka, moving bytes and positions into batches.
//! - [`query`]: each endpoint's answer from a read transaction.
//! - [`api`]: the HTTP layer: auth, parameters, envelope, OpenAPI, metrics.
//! - [`cli`], [`cmd`]: the command line and one module per subcommand.
//! - [`r#gen`]: the deterministic workload generator.
//! - [`telemetry`]: logging setup.

pub mod api;
pub mod cli;
pub mod cmd;
pub mod events;
pub mod r#gen;
pub mod ingest;
pub mod query;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;

/// Waits for a scoped thread and returns what it returned, passing a panic of it on.
pub(crate) fn join<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
