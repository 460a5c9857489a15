//! goatview: an incremental materialized-view engine for creator analytics.
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
