//! goatview: an incremental materialized-view engine for creator analytics.
pub mod api;
pub mod events;
pub mod state;
pub mod time;
pub mod query;
pub mod store;
pub mod ingest;
pub mod cli;
pub mod cmd;
pub mod telemetry;
pub mod r#gen;
