//! `goatview bench`: ingest throughput and HTTP query latency, measured on this machine.
//!
//! - `ingest` generates a log (or takes one), replays it into a fresh state file through the
//!   same `replay_file` path as `goatview replay`, and prints throughput, peak RSS and sizes.
//! - `query` is a closed-loop HTTP load generator over real loopback sockets: each of
//!   `--concurrency` clients keeps one connection alive and sends the next request of a
//!   fixed, realistic parameter mix as soon as the last answer is read. Latencies go to one
//!   HDR histogram per endpoint and period. It speaks to goatview or to any server that
//!   answers the same paths (the PostgreSQL baseline), so two `--json` outputs compare.
//! - `compare` prints two `--json` outputs side by side.
//! - `kafka` publishes a log to fresh topics on a real broker, then times the consumer of
//!   `serve --brokers` reading it all into a fresh state file.
//! - `freshness` measures event → visible in the HTTP API while a background producer
//!   keeps the consumer busy at a steady rate.
//!
//! The HTTP client is a minimal HTTP/1.1 one over `tokio::net::TcpStream` (keep-alive,
//! `Content-Length` and chunked bodies): hyper's client half is not compiled into this crate
//! and tokio's `io-util` is off, so this costs no new dependency.
//!
//! Layout: this file holds the arguments, `run` and the machine/RSS helpers; `ingest`
//! the replay benchmark; `query` the request mix, load loop, tables and `compare`;
//! `http` the client; `kafka` the broker benchmark and the topic helpers `freshness`
//! shares.

pub mod freshness;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod query;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::mib;
use crate::events::Instant;
use crate::r#gen::{GenConfig, Scale};

/// `goatview bench`: measure ingest and query performance.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Generate a log (or take one), replay it into a fresh state file, print throughput,
    /// peak RSS and sizes.
    Ingest(IngestArgs),
    /// Load an HTTP API with a realistic request mix; print latency per endpoint.
    Query(QueryArgs),
    /// Print two `bench query --json` outputs side by side, per endpoint, with ratios B/A.
    Compare(CompareArgs),
    /// Publish a log to fresh topics on a real broker, then time the consumer of `serve
    /// --brokers` reading it all into a fresh state file.
    Kafka(KafkaBenchArgs),
    /// Measure event → visible in the HTTP API (p50/p99/max) under a steady Kafka load.
    Freshness(FreshnessArgs),
}

/// Where the log comes from: generated, or `--log-file`.
#[derive(Debug, Args)]
pub struct LogSource {
    /// Size of the generated log: tiny, test, demo, s, m or l.
    #[arg(long, env = "GOATVIEW_BENCH_SCALE", default_value = "s")]
    pub scale: String,

    /// Seed of the generated log.
    #[arg(long, env = "GOATVIEW_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Use this log instead of generating one (`bench ingest --print-key` still derives its
    /// key from `--scale` and `--seed`). Not `--log`, which is the global tracing filter.
    #[arg(long, env = "GOATVIEW_BENCH_LOG_FILE")]
    pub log_file: Option<PathBuf>,
}

impl LogSource {
    /// The generator settings, stamped with `now` when given.
    fn gen_config(&self, now: Option<Instant>) -> anyhow::Result<GenConfig> {
        let scale: Scale = self.scale.parse().map_err(anyhow::Error::msg)?;
        let mut cfg = GenConfig::new(self.seed, scale);
        if let Some(now) = now {
            cfg.now = now.to_chrono();
        }
        Ok(cfg)
    }
}

/// The broker a Kafka bench runs against and the topics it creates there.
#[derive(Debug, Args)]
pub struct BenchBroker {
    /// Kafka bootstrap servers (`host:port,...`). Its own variable, not
    /// `GOATVIEW_KAFKA_BROKERS`, so that a bench never creates topics on a broker by accident.
    #[arg(long, env = "GOATVIEW_BENCH_BROKERS")]
    pub brokers: String,

    /// Partitions of each of the four source topics (their DLQ topics get 1).
    #[arg(long, env = "GOATVIEW_BENCH_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,

    /// Start of the topic names; `-<pid>-<nanos>-<topic>` makes them unique. They are
    /// deleted at the end.
    #[arg(long, env = "GOATVIEW_BENCH_TOPIC_PREFIX", default_value = "gvbench")]
    pub topic_prefix: String,

    /// Most messages per batch (as `serve --kafka-batch-max-messages`).
    #[arg(long, env = "GOATVIEW_BENCH_BATCH_MAX_MESSAGES", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_max_messages: u64,

    /// Most events one batch holds while the consumer is behind (as `serve
    /// --kafka-catch-up-max-messages`); up to `--batch-max-messages` turns catching up off.
    #[arg(long, env = "GOATVIEW_BENCH_CATCH_UP_MAX_MESSAGES", default_value_t = crate::ingest::kafka::CATCH_UP_MAX_MESSAGES)]
    pub catch_up_max_messages: u64,

    /// Longest time (ms) a committed batch stays visible but not durable (as `serve
    /// --kafka-sync-ms`); 0 makes every batch durable.
    #[arg(long, env = "GOATVIEW_BENCH_SYNC_MS", default_value_t = 1000)]
    pub sync_ms: u64,
}

#[derive(Debug, Args)]
pub struct KafkaBenchArgs {
    #[command(flatten)]
    pub broker: BenchBroker,

    #[command(flatten)]
    pub source: LogSource,

    /// Keep the state file here (must not exist yet); a temporary file otherwise.
    #[arg(long, env = "GOATVIEW_BENCH_DB")]
    pub db: Option<PathBuf>,

    /// Give up when the consumer has not caught up after this many seconds.
    #[arg(long, env = "GOATVIEW_BENCH_TIMEOUT", default_value_t = 1800.0)]
    pub timeout: f64,

    /// Size of redb's page cache in MiB (as `serve --cache-mib`; 512 when unset, as `serve`
    /// uses).
    #[arg(long, env = "GOATVIEW_BENCH_CACHE_MIB", value_parser = clap::value_parser!(u64).range(16..))]
    pub cache_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct FreshnessArgs {
    #[command(flatten)]
    pub broker: BenchBroker,

    #[command(flatten)]
    pub source: LogSource,

    /// Background load: the log's lines published at this many events per second (paced;
    /// the log starts over when it ends). 0 for none.
    #[arg(long, env = "GOATVIEW_BENCH_RATE", default_value_t = 20_000.0)]
    pub rate: f64,

    /// Milliseconds between two probes, on a fixed schedule: a probe does not wait for the
    /// one before it to become visible.
    #[arg(long, env = "GOATVIEW_BENCH_PROBE_INTERVAL", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_interval: u64,

    /// Seconds of measurement (probes and load).
    #[arg(long, env = "GOATVIEW_BENCH_DURATION", default_value_t = 60.0)]
    pub duration: f64,

    /// Size of redb's page cache in MiB (as `serve --cache-mib`; 512 when unset, as `serve`
    /// uses).
    #[arg(long, env = "GOATVIEW_BENCH_CACHE_MIB", value_parser = clap::value_parser!(u64).range(16..))]
    pub cache_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub source: LogSource,

    /// Keep the state file here (must not exist yet); a temporary file otherwise.
    #[arg(long, env = "GOATVIEW_BENCH_DB")]
    pub db: Option<PathBuf>,

    /// Events whose changed rows are held in memory before they are written into the
    /// window's write transaction. Bigger is faster and uses more memory.
    #[arg(long, env = "GOATVIEW_BENCH_BATCH_SIZE", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Events read before they are applied: in a window, a video's scrapes that a later
    /// one supersedes are dropped unapplied. A larger window drops more and holds more
    /// memory. At least the batch size.
    #[arg(long, env = "GOATVIEW_BENCH_WINDOW", default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,

    /// Size of redb's page cache in MiB (512 when unset, as `replay` uses).
    #[arg(long, env = "GOATVIEW_BENCH_CACHE_MIB", value_parser = clap::value_parser!(u64).range(16..))]
    pub cache_mib: Option<u64>,

    /// Also print an API key and the id of the largest visible project it can read.
    #[arg(long, env = "GOATVIEW_BENCH_PRINT_KEY")]
    pub print_key: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Base URL of the server (`http://host:port`, optionally with a path prefix); the
    /// endpoints are `<url>/api/v1/analytics/aggregate/<endpoint>`.
    #[arg(long, env = "GOATVIEW_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// API key sent as `Authorization: Bearer`; none for servers without auth.
    #[arg(long, env = "GOATVIEW_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// The project every request reads.
    #[arg(long, env = "GOATVIEW_BENCH_PROJECT")]
    pub project: String,

    /// Concurrent clients (one keep-alive connection each), one measured run per value.
    #[arg(long, env = "GOATVIEW_BENCH_CONCURRENCY", value_delimiter = ',', default_value = "1,8")]
    pub concurrency: Vec<usize>,

    /// Stop a run after this many requests (all endpoints together).
    #[arg(long, env = "GOATVIEW_BENCH_REQUESTS")]
    pub requests: Option<u64>,

    /// Stop a run after this many seconds.
    #[arg(long, env = "GOATVIEW_BENCH_DURATION", default_value_t = 20.0)]
    pub duration: f64,

    /// A label for this run in the JSON output (e.g. `goatview` or `postgres`).
    #[arg(long, env = "GOATVIEW_BENCH_LABEL", default_value = "")]
    pub label: String,

    /// Also write the figures as JSON Lines here, for `bench compare`.
    #[arg(long, env = "GOATVIEW_BENCH_JSON")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference run (`bench query --json`).
    pub a: PathBuf,
    /// The run compared with it; ratios are B/A.
    pub b: PathBuf,
}

pub fn run(args: BenchArgs, now: Option<Instant>) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Ingest(args) => ingest::ingest(args, now),
        BenchCommand::Query(args) => {
            // One thread: the client takes at most one of the cores it shares with the server.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(query::query(args, now))
        }
        BenchCommand::Kafka(args) => multi_thread()?.block_on(kafka::kafka(args, now)),
        BenchCommand::Freshness(args) => multi_thread()?.block_on(freshness::freshness(args, now)),
        BenchCommand::Compare(args) => {
            let a = query::read_rows(&args.a)?;
            let b = query::read_rows(&args.b)?;
            print!("{}", query::compare_table(&a, &b));
            Ok(())
        }
    }
}

/// The runtime of the Kafka benches: the consumer takes a blocking thread of its own,
/// the API and the measurer share the workers (one per core).
fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

// ---------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------

/// What the figures were measured on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus,
            cpu_model: proc_field(&cpuinfo, "model name").unwrap_or("unknown").to_owned(),
            mem_total_kib: proc_kib(&meminfo, "MemTotal").unwrap_or(0),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} CPUs ({}), {:.1} GiB RAM", self.cpus, self.cpu_model, self.mem_total_kib as f64 / 1048576.0)
    }
}

/// The value of the first `name: value` line of a /proc file.
fn proc_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// A `name: N kB` field of a /proc file.
fn proc_kib(text: &str, name: &str) -> Option<u64> {
    proc_field(text, name)?.trim_end_matches("kB").trim().parse().ok()
}

/// A `N kB` field of this process's `/proc/self/status`.
fn status_kib(name: &str) -> Option<u64> {
    proc_kib(&std::fs::read_to_string("/proc/self/status").ok()?, name)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5), so that the peak of
/// what follows is not the generator's, and returns that RSS in KiB (`None` if the reset
/// failed). Memory the generator freed but the allocator kept counts in it: the peak
/// after the reset is never below it.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(status_kib("VmRSS").unwrap_or(0))
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("goatview-bench-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The state file a bench writes: `--db`, which must not exist yet, or one in `tmp`.
fn fresh_db(db: &Option<PathBuf>, tmp: &Path, bench: &str) -> anyhow::Result<PathBuf> {
    match db {
        Some(db) if db.exists() => anyhow::bail!("{} exists; bench {bench} needs a fresh state file", db.display()),
        Some(db) => Ok(db.clone()),
        None => Ok(tmp.join("bench.redb")),
    }
}

/// Prints the `peak RSS:` line: `measured` names what the peak covers when the counter
/// could be reset after generation (`reset` holds the RSS then), `otherwise` when it could not.
fn print_peak_rss(peak: Option<u64>, reset: Option<u64>, measured: &str, otherwise: &str) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    match (peak, reset) {
        (Some(kib), Some(start)) => {
            println!("peak RSS:  {:.1} MiB ({measured}; {:.1} MiB resident when it started)", mib(kib), mib(start))
        }
        (Some(kib), None) => println!("peak RSS:  {:.1} MiB ({otherwise})", mib(kib)),
        (None, _) => println!("peak RSS:  unknown (no /proc/self/status)"),
    }
}

/// `, kept at <db>` when the state file was asked for with `--db`.
fn kept_at(asked: &Option<PathBuf>, db: &Path) -> String {
    if asked.is_some() { format!(", kept at {}", db.display()) } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_args_parse() {
        use clap::{CommandFactory, Parser};
        crate::cli::Cli::command().debug_assert();
        let parse = |args: &[&str]| match crate::cli::Cli::try_parse_from(args).unwrap().command {
            crate::cli::Command::Bench(b) => b.command,
            other => panic!("{other:?}"),
        };
        match parse(&["goatview", "bench", "kafka", "--brokers", "h:1", "--partitions", "2"]) {
            BenchCommand::Kafka(a) => {
                assert_eq!((a.broker.brokers.as_str(), a.broker.partitions, a.source.scale.as_str()), ("h:1", 2, "s"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["goatview", "bench", "freshness", "--brokers", "h:1", "--rate", "500", "--probe-interval", "50"])
        {
            BenchCommand::Freshness(a) => {
                assert_eq!((a.rate, a.probe_interval, a.duration), (500.0, 50, 60.0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\tgoatview\nVmHWM:\t  123456 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(proc_kib(status, "VmHWM"), Some(123456));
        assert_eq!(proc_field("model name\t: Some CPU @ 2GHz\n", "model name"), Some("Some CPU @ 2GHz"));
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
