//! The command line: every flag has a `GOATVIEW_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::events::Instant;

/// goatview: incremental materialized views for creator analytics.
///
/// Events from Kafka or recorded logs are folded into per-project aggregates in a redb
/// file; an HTTP server answers the dashboard's aggregate analytics from them.
#[derive(Debug, Parser)]
#[command(name = "goatview", version)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `goatview=debug`.
    #[arg(long, env = "GOATVIEW_LOG", default_value = "info", global = true)]
    pub log: String,

    /// The current instant for everything (RFC 3339); the system clock when unset.
    #[arg(long, env = "GOATVIEW_NOW", global = true, value_parser = parse_now)]
    pub now: Option<Instant>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply recorded JSON Lines event logs to the database, then print a summary.
    Replay(ReplayArgs),
    /// Serve the aggregate analytics API (and consume Kafka when brokers are given).
    Serve(ServeArgs),
    /// List dead letters (events that could not be applied) as JSON Lines.
    DeadLetters(DbArgs),
    /// Generate sample data, replay it into a local database and serve it.
    Demo(DemoArgs),
    /// Write a deterministic, realistic event log.
    Gen(GenArgs),
    /// Publish recorded JSON Lines logs to the Kafka topics, keyed by project.
    Produce(crate::cmd::produce::ProduceArgs),
    /// Measure ingest throughput, HTTP query latency and Kafka freshness (`ingest`, `query`,
    /// `compare`, `kafka`, `freshness`).
    Bench(crate::cmd::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Path of the redb state file (created if missing).
    #[arg(long, env = "GOATVIEW_DB")]
    pub db: PathBuf,

    /// Size of redb's page cache in MiB. When unset: 512 for `replay` and `serve`, which
    /// also hold a window of events (a Kafka consumer catching up), and redb's default,
    /// 1024, otherwise. Ingestion slows sharply once the pages one batch changes no longer
    /// fit in it.
    #[arg(long, env = "GOATVIEW_CACHE_MIB", value_parser = clap::value_parser!(u64).range(16..))]
    pub cache_mib: Option<u64>,
}

impl DbArgs {
    /// Opens the state file with the cache asked for.
    pub fn open(&self) -> anyhow::Result<crate::store::Store> {
        self.open_with_default_cache(None)
    }

    /// Opens the state file with the cache asked for, or `default_mib` (redb's default when
    /// `None`).
    pub fn open_with_default_cache(&self, default_mib: Option<u64>) -> anyhow::Result<crate::store::Store> {
        use anyhow::Context;
        crate::store::Store::open_with_cache(&self.db, self.cache_mib.or(default_mib))
            .with_context(|| format!("opening {}", self.db.display()))
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Events whose changed rows are held in memory before they are written into the
    /// window's write transaction. Bigger is faster and uses more memory.
    #[arg(long, env = "GOATVIEW_BATCH_SIZE", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Events read before they are applied: in a window, a video's scrapes that a later
    /// one supersedes are dropped unapplied. A larger window drops more and holds more
    /// memory. At least the batch size.
    #[arg(long, env = "GOATVIEW_WINDOW", default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,

    /// Leave the file as ingestion left it instead of compacting it at the end (redb keeps
    /// the pages freed by earlier transactions until the file is compacted).
    #[arg(long, env = "GOATVIEW_NO_COMPACT")]
    pub no_compact: bool,

    /// Recorded logs, applied in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub kafka: crate::ingest::kafka::KafkaArgs,
}

#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "GOATVIEW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// HMAC secret of `goatview_session` cookies (HS256); cookies are refused when unset.
    #[arg(long, env = "GOATVIEW_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,

    /// Threads that compute aggregate answers: more requests wait their turn. Twice the
    /// machine's cores when unset. Half of them (at least one), at a lower priority,
    /// compute the four endpoints whose answers take tens of milliseconds; the others (at
    /// least one) the short answers.
    /// More threads only share the cores, and each may keep memory of its own (a malloc
    /// arena holding what it freed).
    #[arg(long, env = "GOATVIEW_MAX_QUERY_THREADS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_query_threads: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's log and database.
    #[arg(long, env = "GOATVIEW_DEMO_DIR", default_value = "goatview-demo")]
    pub dir: PathBuf,

    /// Seed of the generated sample data.
    #[arg(long, env = "GOATVIEW_SEED", default_value_t = 7)]
    pub seed: u64,

    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Size: tiny, test, demo, s, m or l.
    #[arg(long, env = "GOATVIEW_SCALE", default_value = "s")]
    pub scale: String,

    /// Seed: the same seed writes the same bytes.
    #[arg(long, env = "GOATVIEW_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Output file.
    #[arg(long, env = "GOATVIEW_OUT")]
    pub out: PathBuf,
}

fn parse_now(s: &str) -> Result<Instant, String> {
    crate::events::parse_timestamp(s).ok_or_else(|| format!("not an RFC 3339 timestamp with offset: {s:?}"))
}
