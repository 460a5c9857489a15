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
//!
//! The HTTP client is a minimal HTTP/1.1 one over `tokio::net::TcpStream` (keep-alive,
//! `Content-Length` and chunked bodies): hyper's client half is not compiled into this crate
//! and tokio's `io-util` is off, so this costs no new dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as WallClock};

use anyhow::{Context, bail};
use chrono::{Days, NaiveDate};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::api::ENDPOINTS;
use crate::events::Instant;
use crate::r#gen::{GenConfig, GenStats, ProjectStatus, Scale, generate_to};
use crate::ingest::log::replay_file;
use crate::store::Store;

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
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Size of the generated log: tiny, test, demo, s, m or l.
    #[arg(long, env = "GOATVIEW_BENCH_SCALE", default_value = "s")]
    pub scale: String,

    /// Seed of the generated log.
    #[arg(long, env = "GOATVIEW_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Replay this log instead of generating one (`--scale`/`--seed` then only matter for
    /// `--print-key`). Not `--log`, which is the global tracing filter.
    #[arg(long, env = "GOATVIEW_BENCH_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Keep the state file here (must not exist yet); a temporary file otherwise.
    #[arg(long, env = "GOATVIEW_BENCH_DB")]
    pub db: Option<PathBuf>,

    /// Lines per write transaction.
    #[arg(long, env = "GOATVIEW_BENCH_BATCH_SIZE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

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
        BenchCommand::Ingest(args) => ingest(args, now),
        BenchCommand::Query(args) => {
            // One thread: the client takes at most one of the cores it shares with the server.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(query(args, now))
        }
        BenchCommand::Compare(args) => {
            let a = read_rows(&args.a)?;
            let b = read_rows(&args.b)?;
            print!("{}", compare_table(&a, &b));
            Ok(())
        }
    }
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

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    proc_kib(&std::fs::read_to_string("/proc/self/status").ok()?, "VmHWM")
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5), so that the peak of
/// what follows is not the generator's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

// ---------------------------------------------------------------------------
// Ingest
// ---------------------------------------------------------------------------

fn ingest(args: IngestArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let scale: Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let mut cfg = GenConfig::new(args.seed, scale);
    if let Some(now) = now {
        cfg.now = now.to_chrono();
    }
    let machine = Machine::detect();
    println!("machine: {machine}; load average {}", load_average());
    println!("command: {}", command_line());

    let tmp = std::env::temp_dir().join(format!("goatview-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = ingest_in(&args, &cfg, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn ingest_in(args: &IngestArgs, cfg: &GenConfig, tmp: &Path) -> anyhow::Result<()> {
    let (log, stats) = match &args.log_file {
        Some(log) => {
            // The keys are a function of the seed and scale: generate them without the log.
            let stats = args.print_key.then(|| generate_to(cfg, std::io::sink())).transpose()?;
            (log.clone(), stats)
        }
        None => {
            let log = tmp.join("events.ndjson");
            let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let started = WallClock::now();
            let stats = generate_to(cfg, BufWriter::with_capacity(1 << 20, file))?;
            println!(
                "generated: scale {} seed {} now {}: {} lines ({} events, {} duplicates, {} invalid) in {:.1}s",
                cfg.scale,
                cfg.seed,
                cfg.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                stats.lines,
                stats.events,
                stats.duplicates,
                stats.invalid,
                started.elapsed().as_secs_f64()
            );
            (log, Some(stats))
        }
    };
    let db = match &args.db {
        Some(db) if db.exists() => bail!("{} exists; bench ingest needs a fresh state file", db.display()),
        Some(db) => db.clone(),
        None => tmp.join("bench.redb"),
    };
    let log_bytes = std::fs::metadata(&log).with_context(|| format!("reading {}", log.display()))?.len();
    let peak_reset = reset_peak_rss();

    let store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let mut points: Vec<(f64, u64)> = Vec::new();
    let started = WallClock::now();
    // The generator's instant (`--now` when given) stamps the dead letters.
    let stamp = Instant::from_chrono(cfg.now);
    let summary = replay_file(&store, &log, args.batch_size as usize, stamp, |b| {
        points.push((started.elapsed().as_secs_f64(), b))
    })
    .with_context(|| format!("replaying {}", log.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    drop(store);
    let db_bytes = std::fs::metadata(&db)?.len();

    let messages = summary.events + summary.dead_letters;
    println!("log:       {} ({:.1} MiB)", log.display(), mib(log_bytes));
    println!("events:    {} applied, {} dead letters", summary.events, summary.dead_letters);
    println!("time:      {secs:.2}s");
    println!(
        "rate:      {:.0} events/s (applied + dead letters, as `replay` counts)",
        messages as f64 / secs.max(1e-9)
    );
    match steady_rate(&points, log_bytes, messages, args.batch_size) {
        Some(rate) => println!("steady:    {rate:.0} events/s over the last half of the log"),
        None => println!("steady:    n/a (too few batches)"),
    }
    match peak {
        Some(kib) => println!(
            "peak RSS:  {:.1} MiB{}",
            kib as f64 / 1024.0,
            if peak_reset { " (replay only)" } else { " (including generation)" }
        ),
        None => println!("peak RSS:  unknown (no /proc/self/status)"),
    }
    println!(
        "state:     {:.1} MiB = {:.2}x the log ({:.1} MiB){}",
        mib(db_bytes),
        db_bytes as f64 / log_bytes.max(1) as f64,
        mib(log_bytes),
        if args.db.is_some() { format!(", kept at {}", db.display()) } else { String::new() }
    );
    if let Some(stats) = stats.filter(|_| args.print_key) {
        let (key, project) = largest_project_key(&stats).context("the generated log has no usable key")?;
        let now = cfg.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        println!("key:       {key}\nproject:   {project}");
        println!(
            "query:     goatview --now {now} serve --db {db}\n           goatview --now {now} bench query --key {key} --project {project}",
            db = db.display()
        );
    }
    Ok(())
}

/// Events/s over the last half of the log, from the `(seconds, bytes)` after each batch.
/// Every batch but the last holds exactly `batch_size` non-blank lines, so the events after
/// a point are `messages` minus the full batches before it.
pub fn steady_rate(points: &[(f64, u64)], log_bytes: u64, messages: u64, batch_size: u64) -> Option<f64> {
    let mid = points.iter().position(|&(_, b)| b >= log_bytes / 2)?;
    let (t_mid, _) = points[mid];
    let &(t_end, _) = points.last()?;
    let after = messages.checked_sub((mid as u64 + 1) * batch_size)?;
    (mid + 1 < points.len() && after > 0 && t_end > t_mid).then(|| after as f64 / (t_end - t_mid))
}

/// The key of the org owning the visible project with the most videos, and that project.
pub fn largest_project_key(stats: &GenStats) -> Option<(String, String)> {
    let mut projects: Vec<_> = stats.projects.iter().filter(|p| p.status == ProjectStatus::Visible).collect();
    projects.sort_by_key(|p| std::cmp::Reverse((p.videos, p.creators)));
    projects.iter().find_map(|p| {
        let key = stats.api_keys.iter().find(|k| k.project_ids.contains(&p.project_id))?;
        Some((key.key.clone(), p.project_id.clone()))
    })
}

// ---------------------------------------------------------------------------
// Query: the request mix
// ---------------------------------------------------------------------------

/// The period a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Period {
    /// The last 7 local days, today included.
    #[serde(rename = "7d")]
    Last7,
    #[serde(rename = "30d")]
    Last30,
    #[serde(rename = "90d")]
    Last90,
    /// No `from`/`to` where they are optional; ten years back where they are required.
    #[serde(rename = "all")]
    All,
    /// The endpoint takes no period.
    #[serde(rename = "none")]
    None,
}

impl Period {
    pub const ALL: [Period; 5] = [Period::Last7, Period::Last30, Period::Last90, Period::All, Period::None];
    const RANGES: [Period; 4] = [Period::Last7, Period::Last30, Period::Last90, Period::All];

    pub fn label(self) -> &'static str {
        match self {
            Period::Last7 => "7d",
            Period::Last30 => "30d",
            Period::Last90 => "90d",
            Period::All => "all",
            Period::None => "none",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// `&from=…&to=…` relative to `today`.
    fn query(self, today: NaiveDate, required: bool) -> String {
        let days = match self {
            Period::Last7 => 7,
            Period::Last30 => 30,
            Period::Last90 => 90,
            Period::All if required => 3650,
            Period::All | Period::None => return String::new(),
        };
        let from = today - Days::new(days - 1);
        format!("&from={from}&to={today}")
    }
}

/// One request of the mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Index into [`ENDPOINTS`].
    pub endpoint: usize,
    pub period: Period,
    /// The path and query, from `/api/…`.
    pub target: String,
}

/// Every endpoint's requests, cycled through in order; `today` is the local date the
/// periods end on. Leaderboards vary order, limit and offset; heatmap and consistency
/// are asked in the project's zone and two others; distributions with 20 and 50 bins.
pub fn request_mix(project: &str, today: NaiveDate) -> Vec<Vec<Request>> {
    const ORDERS: [&str; 6] = ["view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at"];
    const ZONES: [&str; 3] = ["", "&tz=Asia/Kolkata", "&tz=America/New_York"];
    let mut mix: Vec<Vec<Request>> = vec![Vec::new(); ENDPOINTS.len()];
    let mut add = |endpoint: usize, period: Period, extra: String| {
        let base = crate::api::AGGREGATE_BASE;
        let target = format!("{base}/{}?project_id={project}{extra}", ENDPOINTS[endpoint]);
        mix[endpoint].push(Request { endpoint, period, target });
    };
    for p in Period::RANGES {
        let open = p.query(today, false);
        let closed = p.query(today, true);
        for (i, order) in ORDERS.iter().enumerate() {
            let limit = [10, 50, 100][i % 3];
            let offset = [0, 0, 100, 1000][(i + p.index()) % 4];
            add(0, p, format!("{open}&order={order}&limit={limit}&offset={offset}"));
        }
        for zone in ZONES {
            add(1, p, format!("{closed}{zone}"));
        }
        for bins in [20, 50] {
            add(2, p, format!("{closed}&bin_count={bins}"));
        }
        for (x, limit) in [("1.5", 50), ("3", 10)] {
            add(3, p, format!("{open}&min_x_multiple={x}&limit={limit}"));
        }
        for (limit, offset) in [(100, 0), (20, 0), (50, 50)] {
            add(4, p, format!("{open}&limit={limit}&offset={offset}"));
        }
        for zone in ZONES {
            add(5, p, format!("{closed}{zone}"));
        }
        add(6, p, open.clone());
        add(8, p, closed);
    }
    add(7, Period::None, String::new());
    for dimension in ["creator", "video"] {
        add(9, Period::None, format!("&dimension={dimension}"));
    }
    mix
}

/// The `i`-th request of a run: endpoints in turn, each cycling through its own requests,
/// so every endpoint gets the same share whatever the concurrency.
pub fn nth_request(mix: &[Vec<Request>], i: u64) -> &Request {
    let e = (i % mix.len() as u64) as usize;
    let round = i / mix.len() as u64;
    &mix[e][(round % mix[e].len() as u64) as usize]
}

// ---------------------------------------------------------------------------
// Query: the HTTP client
// ---------------------------------------------------------------------------

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    /// Path prefix before `/api/…`, without a trailing slash.
    pub prefix: String,
    /// The `Authorization` header line, if any.
    pub auth: Option<String>,
}

impl Target {
    pub fn parse(url: &str, key: Option<&str>) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must start with http:// (got {url:?})");
        };
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            bail!("--url has no host: {url:?}");
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = prefix.trim_end_matches('/');
        Ok(Target {
            authority,
            prefix: if prefix.is_empty() { String::new() } else { format!("/{prefix}") },
            auth: key.map(|k| format!("Authorization: Bearer {k}\r\n")),
        })
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
}

/// A response: status and body.
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Conn {
    async fn connect(authority: &str) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(64 << 10), pos: 0 })
    }

    /// Sends a `GET` and reads the whole answer. `Ok((response, keep))`: `keep` is false
    /// when the server closes the connection after it.
    async fn get(&mut self, target: &Target, path: &str) -> std::io::Result<(Response, bool)> {
        let auth = target.auth.as_deref().unwrap_or("");
        let req = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\n\r\n",
            target.prefix, target.authority
        );
        self.write_all(req.as_bytes()).await?;

        let head_end = loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.pos..head_end]).map_err(|_| invalid("non-UTF-8 header"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| invalid("bad Content-Length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep = !value.eq_ignore_ascii_case("close");
            }
        }
        self.pos = head_end;

        let mut body = Vec::new();
        if chunked {
            loop {
                let line = self.line().await?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                body.extend_from_slice(self.take(size).await?);
                if !self.line().await?.is_empty() {
                    return Err(invalid("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = length {
            body.extend_from_slice(self.take(n).await?);
        } else {
            // Neither: the body runs to the end of the connection.
            while self.fill().await.is_ok() {}
            body.extend_from_slice(&self.buf[self.pos..]);
            self.pos = self.buf.len();
            keep = false;
        }
        Ok((Response { status, body }, keep))
    }

    /// The next CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// The next `n` bytes.
    async fn take(&mut self, n: usize) -> std::io::Result<&[u8]> {
        while self.buf.len() - self.pos < n {
            self.fill().await?;
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    /// Reads more bytes; an error at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.capacity() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 << 10];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

// ---------------------------------------------------------------------------
// Query: running and recording
// ---------------------------------------------------------------------------

/// What one endpoint and period saw in a run.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Latencies of 200 answers, in microseconds.
    pub hist: Histogram<u64>,
    /// Answers other than 200, and connection failures.
    pub errors: u64,
    /// One example of an error, for the report.
    pub first_error: Option<String>,
}

impl Cell {
    fn new() -> Cell {
        Cell {
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            errors: 0,
            first_error: None,
        }
    }

    fn add(&mut self, other: &Cell) {
        self.hist.add(&other.hist).expect("same bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// One run at one concurrency: a cell per endpoint and period.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub concurrency: usize,
    pub seconds: f64,
    /// Indexed by endpoint, then [`Period::index`].
    pub cells: Vec<Vec<Cell>>,
}

impl RunResult {
    fn new(concurrency: usize) -> RunResult {
        RunResult { concurrency, seconds: 0.0, cells: vec![vec![Cell::new(); Period::ALL.len()]; ENDPOINTS.len()] }
    }

    /// Every period of an endpoint together.
    pub fn endpoint_total(&self, e: usize) -> Cell {
        let mut total = Cell::new();
        self.cells[e].iter().for_each(|c| total.add(c));
        total
    }
}

/// When a run stops: after `requests` requests or `duration`, whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    pub requests: Option<u64>,
    pub duration: Duration,
}

/// Runs `concurrency` closed-loop clients over the mix until `stop`.
pub async fn run_load(target: &Target, mix: &[Vec<Request>], concurrency: usize, stop: Stop) -> RunResult {
    let next = Arc::new(AtomicU64::new(0));
    let started = WallClock::now();
    let deadline = started + stop.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (target, mix, next) = (target.clone(), mix.to_vec(), next.clone());
        tasks.spawn(async move {
            let mut result = RunResult::new(concurrency);
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if stop.requests.is_some_and(|n| i >= n) || WallClock::now() >= deadline {
                    break;
                }
                let req = nth_request(&mix, i);
                let cell = &mut result.cells[req.endpoint][req.period.index()];
                let sent = WallClock::now();
                let answer = match conn.take() {
                    Some(c) => Ok(c),
                    None => Conn::connect(&target.authority).await,
                };
                let answer = match answer {
                    Ok(mut c) => c.get(&target, &req.target).await.map(|(r, keep)| {
                        if keep {
                            conn = Some(c);
                        }
                        r
                    }),
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(r) if r.status == 200 => {
                        let micros = sent.elapsed().as_micros().max(1) as u64;
                        let _ = cell.hist.record(micros.min(cell.hist.high()));
                    }
                    Ok(r) => {
                        let body = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned();
                        cell.error(format!("HTTP {} for {}: {body}", r.status, req.target));
                    }
                    Err(e) => {
                        cell.error(format!("{e} for {}", req.target));
                        // Do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            result
        });
    }
    let mut total = RunResult::new(concurrency);
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("client task panicked");
        for (t, c) in total.cells.iter_mut().flatten().zip(r.cells.iter().flatten()) {
            t.add(c);
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// One line of the report and of the JSON output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    pub concurrency: usize,
    pub endpoint: String,
    /// A [`Period`] label, or `total` for every period of the endpoint.
    pub period: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rps: f64,
}

impl Row {
    pub fn from_cell(label: &str, concurrency: usize, endpoint: &str, period: &str, cell: &Cell, secs: f64) -> Row {
        let ms = |us: u64| us as f64 / 1000.0;
        let ok = cell.hist.len();
        let (p50, p99, max) = if ok == 0 {
            (0, 0, 0)
        } else {
            (cell.hist.value_at_quantile(0.5), cell.hist.value_at_quantile(0.99), cell.hist.max())
        };
        Row {
            label: label.to_owned(),
            concurrency,
            endpoint: endpoint.to_owned(),
            period: period.to_owned(),
            requests: ok + cell.errors,
            errors: cell.errors,
            p50_ms: ms(p50),
            p99_ms: ms(p99),
            max_ms: ms(max),
            rps: (ok + cell.errors) as f64 / secs.max(1e-9),
        }
    }
}

/// The rows of a run: per endpoint a `total` row, then one per period it was asked for.
pub fn rows(label: &str, run: &RunResult) -> Vec<Row> {
    let mut rows = Vec::new();
    for (e, name) in ENDPOINTS.iter().enumerate() {
        rows.push(Row::from_cell(label, run.concurrency, name, "total", &run.endpoint_total(e), run.seconds));
        for p in Period::ALL {
            let cell = &run.cells[e][p.index()];
            if cell.hist.len() + cell.errors > 0 {
                rows.push(Row::from_cell(label, run.concurrency, name, p.label(), cell, run.seconds));
            }
        }
    }
    rows
}

/// The per-endpoint table (`total` rows), then p50/p99 per period.
pub fn format_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "requests", "errors", "p50 ms", "p99 ms", "max ms", "req/s"
    );
    let (mut requests, mut errors, mut rps) = (0, 0, 0.0);
    for r in rows.iter().filter(|r| r.period == "total") {
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>7} {:>9.3} {:>9.3} {:>9.3} {:>9.1}",
            r.endpoint, r.requests, r.errors, r.p50_ms, r.p99_ms, r.max_ms, r.rps
        );
        requests += r.requests;
        errors += r.errors;
        rps += r.rps;
    }
    let _ = writeln!(out, "{:<22} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9.1}", "all", requests, errors, "", "", "", rps);

    let _ = writeln!(out, "\np50 / p99 ms by period:");
    let _ = write!(out, "{:<22}", "endpoint");
    for p in Period::RANGES {
        let _ = write!(out, " {:>17}", p.label());
    }
    let _ = writeln!(out, " {:>17}", "(no period)");
    let mut by: BTreeMap<(&str, &str), &Row> = BTreeMap::new();
    for r in rows {
        by.insert((r.endpoint.as_str(), r.period.as_str()), r);
    }
    for name in rows.iter().filter(|r| r.period == "total").map(|r| r.endpoint.as_str()) {
        let _ = write!(out, "{name:<22}");
        for p in Period::ALL {
            let cell = match by.get(&(name, p.label())) {
                Some(r) => format!("{:.2} / {:.2}", r.p50_ms, r.p99_ms),
                None => "-".to_owned(),
            };
            let _ = write!(out, " {cell:>17}");
        }
        out.push('\n');
    }
    out
}

async fn query(args: QueryArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let target = Target::parse(&args.url, args.key.as_deref())?;
    let now = super::now(now);
    let today = crate::time::local_date(chrono_tz::Tz::UTC, now);
    let mix = request_mix(&args.project, today);
    println!("machine: {}; load average {}", Machine::detect(), load_average());
    println!("command: {}", command_line());
    println!(
        "target:  {} project {}, periods ending {today} (UTC date of {}); {} distinct requests",
        args.url,
        args.project,
        now.to_rfc3339(),
        mix.iter().map(Vec::len).sum::<usize>()
    );

    // One untimed pass over every request: warms caches and shows errors before timing.
    let all: u64 = mix.iter().map(|m| m.len() as u64).max().unwrap_or(0) * mix.len() as u64;
    let warm = run_load(&target, &mix, 1, Stop { requests: Some(all), duration: Duration::from_secs(600) }).await;
    let warm_errors: Vec<_> = (0..ENDPOINTS.len()).map(|e| warm.endpoint_total(e)).filter(|c| c.errors > 0).collect();
    if !warm_errors.is_empty() {
        println!("warm-up: {} endpoint(s) answered errors, e.g.:", warm_errors.len());
        for c in &warm_errors {
            println!("  {}", c.first_error.as_deref().unwrap_or("?"));
        }
    }

    let mut json = match &args.json {
        Some(path) => {
            Some(BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?))
        }
        None => None,
    };
    let stop = Stop { requests: args.requests, duration: Duration::from_secs_f64(args.duration.max(0.0)) };
    for &c in &args.concurrency {
        let run = run_load(&target, &mix, c, stop).await;
        let rows = rows(&args.label, &run);
        println!("\nconcurrency {c}: {:.1}s", run.seconds);
        print!("{}", format_table(&rows));
        for (e, name) in ENDPOINTS.iter().enumerate() {
            if let Some(err) = run.endpoint_total(e).first_error {
                println!("first error of {name}: {err}");
            }
        }
        if let Some(out) = &mut json {
            for r in &rows {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
        }
    }
    if let Some(mut out) = json {
        out.flush()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compare
// ---------------------------------------------------------------------------

fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if !line.trim().is_empty() {
            rows.push(serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), i + 1))?);
        }
    }
    Ok(rows)
}

/// A's rows with B's figures for the same concurrency, endpoint and period, and B/A.
pub fn compare_table(a: &[Row], b: &[Row]) -> String {
    let label = |rows: &[Row], default: &str| {
        rows.first().map(|r| r.label.clone()).filter(|l| !l.is_empty()).unwrap_or_else(|| default.to_owned())
    };
    let (la, lb) = (label(a, "A"), label(b, "B"));
    let ratio = |x: f64, y: f64| if x > 0.0 { format!("{:.1}x", y / x) } else { "-".to_owned() };
    let mut out = String::new();
    let mut level = None;
    for ra in a {
        if level != Some(ra.concurrency) {
            level = Some(ra.concurrency);
            let _ = writeln!(out, "\nconcurrency {} (A = {la}, B = {lb}; ratios B/A)", ra.concurrency);
            let _ = writeln!(
                out,
                "{:<22} {:<6} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
                "endpoint", "period", "A p50 ms", "B p50 ms", "p50 B/A", "A p99 ms", "B p99 ms", "p99 B/A"
            );
        }
        let Some(rb) =
            b.iter().find(|r| r.concurrency == ra.concurrency && r.endpoint == ra.endpoint && r.period == ra.period)
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "{:<22} {:<6} {:>10.3} {:>10.3} {:>8} {:>10.3} {:>10.3} {:>8}",
            ra.endpoint,
            ra.period,
            ra.p50_ms,
            rb.p50_ms,
            ratio(ra.p50_ms, rb.p50_ms),
            ra.p99_ms,
            rb.p99_ms,
            ratio(ra.p99_ms, rb.p99_ms)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppState, Clock};
    use crate::r#gen::generate;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    #[test]
    fn mix_has_valid_dates_and_parameters() {
        let project = "5eed0000-0000-4000-8000-000000000001";
        let mix = request_mix(project, today());
        assert_eq!(mix.len(), ENDPOINTS.len());
        for (e, requests) in mix.iter().enumerate() {
            assert!(!requests.is_empty(), "{} has requests", ENDPOINTS[e]);
            for r in requests {
                assert_eq!(r.endpoint, e);
                let (path, query) = r.target.split_once('?').unwrap();
                assert!(path.ends_with(ENDPOINTS[e]));
                let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                assert_eq!(params["project_id"], project);
                let date = |k: &str| params.get(k).map(|d| crate::events::parse_date(d).expect("YYYY-MM-DD"));
                match (date("from"), date("to")) {
                    (Some(from), Some(to)) => {
                        assert_eq!(to, today());
                        let days = (to - from).num_days() + 1;
                        let expected = match r.period {
                            Period::Last7 => 7,
                            Period::Last30 => 30,
                            Period::Last90 => 90,
                            Period::All => 3650,
                            Period::None => panic!("dated request without a period: {}", r.target),
                        };
                        assert_eq!(days, expected, "{}", r.target);
                    }
                    (None, None) => assert!(matches!(r.period, Period::All | Period::None), "{}", r.target),
                    _ => panic!("half-open range in {}", r.target),
                }
                if let Some(tz) = params.get("tz") {
                    tz.parse::<chrono_tz::Tz>().expect("IANA zone");
                }
                let int = |k: &str| params.get(k).map(|v| v.parse::<u64>().expect("integer"));
                if let Some(l) = int("limit") {
                    assert!((1..=200).contains(&l));
                }
                if let Some(b) = int("bin_count") {
                    assert!((5..=50).contains(&b));
                }
            }
        }
        // Zones, bins, orders and periods all appear.
        let all: Vec<&str> = mix.iter().flatten().map(|r| r.target.as_str()).collect();
        for needle in ["tz=Asia/Kolkata", "tz=America/New_York", "bin_count=20", "bin_count=50", "order=posted_at"] {
            assert!(all.iter().any(|t| t.contains(needle)), "{needle}");
        }
        // Open ranges only where `from`/`to` are optional.
        for e in [1, 2, 5, 8] {
            assert!(mix[e].iter().all(|r| r.target.contains("&from=")), "{}", ENDPOINTS[e]);
        }
        // Round robin: ten consecutive requests hit ten endpoints.
        let hit: Vec<usize> = (0..10).map(|i| nth_request(&mix, i).endpoint).collect();
        assert_eq!(hit, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn target_parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/", Some("k")).unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.prefix, "");
        assert_eq!(t.auth.as_deref(), Some("Authorization: Bearer k\r\n"));
        let t = Target::parse("http://localhost/base/", None).unwrap();
        assert_eq!((t.authority.as_str(), t.prefix.as_str(), t.auth), ("localhost:80", "/base", None));
        assert!(Target::parse("https://x", None).is_err());
    }

    #[test]
    fn table_shows_percentiles_in_ms() {
        let mut run = RunResult::new(8);
        run.seconds = 2.0;
        for us in 1..=1000 {
            run.cells[0][Period::Last7.index()].hist.record(us).unwrap();
        }
        run.cells[0][Period::All.index()].error("HTTP 500".into());
        let rows = rows("goatview", &run);
        let total = &rows[0];
        assert_eq!((total.endpoint.as_str(), total.period.as_str()), ("video-leaderboard", "total"));
        assert_eq!((total.requests, total.errors), (1001, 1));
        assert!((total.p50_ms - 0.5).abs() < 0.001, "{}", total.p50_ms);
        assert!((total.p99_ms - 0.99).abs() < 0.001, "{}", total.p99_ms);
        assert!((total.max_ms - 1.0).abs() < 0.001, "{}", total.max_ms);
        assert!((total.rps - 500.5).abs() < 1e-9);

        let table = format_table(&rows);
        let line = table.lines().find(|l| l.starts_with("video-leaderboard")).unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["video-leaderboard", "1001", "1", "0.500", "0.990", "1.000", "500.5"]
        );
        assert!(table.contains("0.50 / 0.99"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("member-overlap") && l.contains(" 0 ")), "{table}");

        let json = serde_json::to_string(total).unwrap();
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), *total);
        let mut slower = total.clone();
        slower.p50_ms *= 30.0;
        let cmp = compare_table(&rows, &[slower]);
        assert!(cmp.contains("30.0x"), "{cmp}");
    }

    #[test]
    fn steady_rate_counts_the_last_half() {
        // 4 full batches of 10 and a last one of 5; half the bytes after the 2nd batch.
        let points = [(1.0, 100), (2.0, 200), (3.0, 300), (4.0, 400), (4.5, 450)];
        assert_eq!(steady_rate(&points, 450, 45, 10), Some(25.0 / 2.5));
        assert_eq!(steady_rate(&points[..1], 100, 5, 10), None);
    }

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\tgoatview\nVmHWM:\t  123456 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(proc_kib(status, "VmHWM"), Some(123456));
        assert_eq!(proc_field("model name\t: Some CPU @ 2GHz\n", "model name"), Some("Some CPU @ 2GHz"));
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }

    /// The load generator against the real router over a loopback socket, for about a second.
    #[tokio::test]
    async fn query_bench_against_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GenConfig::new(3, Scale::Tiny);
        let sample = generate(&cfg);
        let log = dir.path().join("tiny.ndjson");
        std::fs::write(&log, sample.lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let now = Instant::from_chrono(cfg.now);
        replay_file(&store, &log, 1000, now, |_| {}).unwrap();
        let (key, project) = largest_project_key(&sample.stats).unwrap();

        let state = AppState { store, clock: Clock::Fixed(now), session_secret: None, kafka: None };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::api::router(state)).await });

        let target = Target::parse(&format!("http://{addr}"), Some(&key)).unwrap();
        let mix = request_mix(&project, crate::time::local_date(chrono_tz::Tz::UTC, now));
        let run = run_load(&target, &mix, 2, Stop { requests: None, duration: Duration::from_secs(1) }).await;
        for (e, name) in ENDPOINTS.iter().enumerate() {
            let total = run.endpoint_total(e);
            assert_eq!(total.errors, 0, "{name}: {:?}", total.first_error);
            assert!(total.hist.len() >= 5, "{name} answered {} requests", total.hist.len());
        }

        // A wrong key: every request is counted as an error, none as a latency.
        let bad = Target::parse(&format!("http://{addr}"), Some("gv_00000000000000000000000000000000")).unwrap();
        let run = run_load(&bad, &mix, 1, Stop { requests: Some(20), duration: Duration::from_secs(5) }).await;
        let totals: Vec<Cell> = (0..ENDPOINTS.len()).map(|e| run.endpoint_total(e)).collect();
        assert_eq!(totals.iter().map(|c| c.errors).sum::<u64>(), 20);
        assert!(totals[0].first_error.as_deref().unwrap().starts_with("HTTP 401"), "{:?}", totals[0].first_error);
    }
}
