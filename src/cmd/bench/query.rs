//! `bench query` and `bench compare`: the request mix, the closed-loop load, the
//! per-endpoint tables and their JSON rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as WallClock};

use anyhow::Context;
use chrono::{Days, NaiveDate};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::http::{Conn, Target};
use super::{Machine, QueryArgs, command_line, load_average};
use crate::api::ENDPOINTS;
use crate::events::Instant;

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

pub(super) async fn query(args: QueryArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let target = Target::parse(&args.url, args.key.as_deref())?;
    let now = crate::cmd::now(now);
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

pub(super) fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
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
    use crate::cmd::bench::ingest::largest_project_key;
    use crate::r#gen::{GenConfig, Scale, generate};
    use crate::ingest::log::{Batching, replay_file};
    use crate::store::Store;

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
        replay_file(&store, &log, Batching::of(1000), now, |_| {}).unwrap();
        let (key, project) = largest_project_key(&sample.stats).unwrap();

        let state = AppState { store, clock: Clock::Fixed(now), session_secret: None, kafka: None };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::api::router(state)).await });

        let target = Target::parse(&format!("http://{addr}"), Some(&key)).unwrap();
        let mix = request_mix(&project, crate::time::local_date(chrono_tz::Tz::UTC, now));
        // Bounded by requests, not time, so that a loaded machine cannot fail it: the
        // clients take the endpoints in turn, so each answers exactly `ROUNDS`.
        const ROUNDS: u64 = 6;
        let stop = Stop { requests: Some(ROUNDS * ENDPOINTS.len() as u64), duration: Duration::from_secs(120) };
        let run = run_load(&target, &mix, 2, stop).await;
        for (e, name) in ENDPOINTS.iter().enumerate() {
            let total = run.endpoint_total(e);
            assert_eq!(total.errors, 0, "{name}: {:?}", total.first_error);
            assert_eq!(total.hist.len(), ROUNDS, "{name} answered {} requests", total.hist.len());
        }

        // A wrong key: every request is counted as an error, none as a latency.
        let bad = Target::parse(&format!("http://{addr}"), Some("gv_00000000000000000000000000000000")).unwrap();
        let run = run_load(&bad, &mix, 1, Stop { requests: Some(20), duration: Duration::from_secs(5) }).await;
        let totals: Vec<Cell> = (0..ENDPOINTS.len()).map(|e| run.endpoint_total(e)).collect();
        assert_eq!(totals.iter().map(|c| c.errors).sum::<u64>(), 20);
        assert!(totals[0].first_error.as_deref().unwrap().starts_with("HTTP 401"), "{:?}", totals[0].first_error);
    }
}
