//! `bench freshness`: how long an event takes to become visible in the HTTP API while
//! the consumer is under a steady background load.
//!
//! Everything runs in this process, on a fresh state file and fresh topics (as in
//! `bench kafka`): the consumer of `serve --brokers` (`run_consumer`), the API router on a
//! loopback port, a background producer that publishes the log's lines at `--rate`
//! (paced; the log starts over when it ends), and the measurer.
//!
//! The measurer owns a probe project (its own org, API key, creator and one video). Every
//! `--probe-interval`, on a fixed schedule, it produces a `video.scraped` of the probe
//! video whose `view_count` is the probe's number; meanwhile it asks `video-leaderboard`
//! for the project over loopback, again and again. The probe video's events share one
//! partition and their counts only grow, so an answer showing count `n` shows every probe
//! up to `n`. The time from handing a probe to the Kafka client (the producer of
//! `goatview produce`, so `linger.ms=20` is included) to the first answer showing it goes
//! to an HDR histogram.
//!
//! Probes do not wait for each other: a slow period gets as many probes as a fast one, so
//! the percentiles are not biased toward the fast periods (coordinated omission). When the
//! measuring time ends, probes in flight are still waited for, under the same load.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant as WallClock};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rdkafka::producer::ThreadedProducer;
use sha2::{Digest, Sha256};

use super::http::{Conn, Target};
use super::kafka::{BenchTopics, consumer_store, lag, obtain_log, stored_positions, until_ctrl_c};
use super::{FreshnessArgs, Machine, Scratch, command_line, load_average};
use crate::api::{AGGREGATE_BASE, AppState, Clock};
use crate::cmd::produce::{Deliveries, ProduceSummary, flush, producer, publish_line};
use crate::events::Instant;
use crate::ingest::kafka::{KafkaStats, Topics, run_consumer};
use crate::store::Store;

/// A probe not visible after this long is counted as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of the same probe.
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// Longest wait for the consumer to drain what is left once the load stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// How many events should have been sent `elapsed` after the start, at `rate` per second.
pub fn due(rate: f64, elapsed: Duration) -> u64 {
    (rate * elapsed.as_secs_f64()).floor() as u64
}

/// Longest single wait of the paced producer, so that it sees a stop promptly.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// How long to wait, `elapsed` after the start with `sent` events sent, until the next
/// one is due at `rate` per second; zero when it already is, at most [`MAX_WAIT`] (also
/// when nothing is ever due, at a rate of 0).
pub fn wait_for_next(rate: f64, sent: u64, elapsed: Duration) -> Duration {
    if rate <= 0.0 {
        return MAX_WAIT;
    }
    let wait = (sent + 1) as f64 / rate - elapsed.as_secs_f64();
    if wait >= MAX_WAIT.as_secs_f64() { MAX_WAIT } else { Duration::from_secs_f64(wait.max(0.0)) }
}

/// Width of the windows of the freshness-over-time table, in seconds.
const WINDOW_SECS: f64 = 10.0;

/// Probes that were produced in one window of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Seconds from the start of the run to the window's start.
    pub start: f64,
    pub probes: usize,
    /// Nearest-rank median and largest freshness, in microseconds.
    pub p50_us: u64,
    pub max_us: u64,
    /// Largest of the `extra` values seen in the window (the consumer's lag).
    pub max_extra: u64,
}

/// Groups `(seconds since start, freshness µs, extra)` samples into windows of `width`
/// seconds, in order; windows without samples are left out.
pub fn windows(samples: &[(f64, u64, u64)], width: f64) -> Vec<Window> {
    let mut by: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = std::collections::BTreeMap::new();
    for &(t, us, extra) in samples {
        by.entry((t.max(0.0) / width).floor() as u64).or_default().push((us, extra));
    }
    by.into_iter()
        .map(|(i, mut v)| {
            v.sort_unstable();
            Window {
                start: i as f64 * width,
                probes: v.len(),
                p50_us: v[v.len().div_ceil(2) - 1].0,
                max_us: v[v.len() - 1].0,
                max_extra: v.iter().map(|x| x.1).max().unwrap_or(0),
            }
        })
        .collect()
}

/// Probes produced and not yet seen, oldest first, with when each was produced.
#[derive(Debug)]
pub struct InFlight<T> {
    probes: VecDeque<(u64, T)>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight { probes: VecDeque::new() }
    }
}

impl<T: Copy + PartialOrd> InFlight<T> {
    pub fn produced(&mut self, n: u64, at: T) {
        self.probes.push_back((n, at));
    }

    /// An answer showed count `seen`: removes every probe up to it and returns when each
    /// was produced.
    pub fn seen(&mut self, seen: u64) -> Vec<T> {
        let k = self.probes.iter().take_while(|(n, _)| *n <= seen).count();
        self.probes.drain(..k).map(|(_, at)| at).collect()
    }

    /// Removes the probes produced before `cutoff` (lost); returns how many.
    pub fn expire(&mut self, cutoff: T) -> usize {
        let k = self.probes.iter().take_while(|(_, at)| *at < cutoff).count();
        self.probes.drain(..k).count()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.probes.len()
    }
}

/// The probe project: ids, the API key and the events that set it up.
#[derive(Clone, Debug)]
pub struct Probe {
    pub project_id: String,
    pub org_id: String,
    pub creator_id: String,
    pub video_id: String,
    pub key_id: String,
    pub key: String,
    /// Makes every probe id unique to this run.
    pub tag: u64,
}

/// The RFC 3339 text of `2026-01-01T00:00:00Z` plus `millis`.
fn at(millis: u64) -> String {
    let base = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("valid instant");
    (base + chrono::Duration::milliseconds(millis as i64)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Probe {
    pub fn new(tag: u64) -> Probe {
        let tag = tag & 0xffff_ffff_ffff;
        let id = |kind: u16| format!("b0b0{kind:04x}-0000-4000-8000-{tag:012x}");
        Probe {
            project_id: id(1),
            org_id: id(2),
            creator_id: id(3),
            video_id: id(4),
            key_id: id(5),
            key: format!("gv_b0b0{:012x}{tag:016x}", tag.rotate_left(7) & 0xffff_ffff_ffff),
            tag,
        }
    }

    fn event_id(&self, n: u64) -> String {
        format!("b0b0e000-{:04x}-4000-8000-{:012x}", n & 0xffff, ((n >> 16) ^ self.tag) & 0xffff_ffff_ffff)
    }

    /// `project.upserted`, `api_key.issued` and `creator.snapshot` for the probe.
    pub fn setup_events(&self) -> Vec<String> {
        let sha: String = Sha256::digest(self.key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        vec![
            serde_json::json!({
                "type": "project.upserted", "event_id": self.event_id(1 << 40), "project_id": self.project_id,
                "occurred_at": at(0), "org_id": self.org_id, "name": "goatview bench probe", "timezone": "UTC",
            })
            .to_string(),
            serde_json::json!({
                "type": "api_key.issued", "event_id": self.event_id(2 << 40), "occurred_at": at(0),
                "key_id": self.key_id, "org_id": self.org_id, "key_sha256": sha, "expires_at": null,
            })
            .to_string(),
            serde_json::json!({
                "type": "creator.snapshot", "event_id": self.event_id(3 << 40), "project_id": self.project_id,
                "occurred_at": at(0), "creator_id": self.creator_id, "tiktok_handle": "goatview_probe",
                "display_name": null, "avatar_url": null, "follower_count": 1,
            })
            .to_string(),
        ]
    }

    /// The `n`-th probe: the probe video with `view_count` `n`, ordered after probe `n - 1`.
    pub fn scrape(&self, n: u64) -> String {
        serde_json::json!({
            "type": "video.scraped", "event_id": self.event_id(n), "project_id": self.project_id,
            "occurred_at": at(n), "video_id": self.video_id, "creator_id": self.creator_id,
            "posted_at": at(0), "title": "goatview bench probe", "thumbnail_url": null, "url": null,
            "view_count": n, "like_count": 0, "comment_count": 0, "share_count": 0, "save_count": 0,
        })
        .to_string()
    }

    /// The request that shows the probe video's count.
    pub fn path(&self) -> String {
        format!("{AGGREGATE_BASE}/video-leaderboard?project_id={}&limit=1", self.project_id)
    }
}

/// The `view_count` of the first `video-leaderboard` item; 0 when there is none.
pub fn leaderboard_views(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    match data.first() {
        Some(item) => item.get("view_count")?.as_u64(),
        None => Some(0),
    }
}

/// Publishes one event (routed and keyed as `goatview produce` does).
fn produce_one(producer: &ThreadedProducer<Deliveries>, topics: &Topics, event: &str) -> anyhow::Result<()> {
    let mut summary = ProduceSummary::default();
    publish_line(producer, topics, event.as_bytes(), &mut summary)
}

/// What the background producer did.
#[derive(Debug, Default)]
struct Background {
    sent: u64,
    wraps: u64,
    seconds: f64,
    failed: u64,
}

/// Publishes the log's lines at `rate` per second until `stop`, starting the log over at
/// its end; counts into `sent` as it goes.
fn background(
    brokers: &str,
    topics: &Topics,
    log: &Path,
    rate: f64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<Background> {
    let producer = producer(brokers)?;
    let mut summary = ProduceSummary::default();
    let mut out = Background::default();
    let open = || -> anyhow::Result<_> {
        let f = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
        Ok(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let mut reader = open()?;
    let mut line = Vec::new();
    let started = WallClock::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let elapsed = started.elapsed();
        let target = due(rate, elapsed);
        if n >= target {
            std::thread::sleep(wait_for_next(rate, n, elapsed).max(Duration::from_micros(200)));
            continue;
        }
        // At most 1000 at a time, so that a stop is seen promptly when behind.
        let until = target.min(n + 1000);
        while n < until {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                reader = open()?;
                out.wraps += 1;
                continue;
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            publish_line(&producer, topics, body, &mut summary)?;
            n += 1;
        }
        sent.store(n, Ordering::Relaxed);
    }
    out.seconds = started.elapsed().as_secs_f64();
    out.sent = n;
    out.failed = flush(&producer)?;
    Ok(out)
}

pub(super) async fn freshness(args: FreshnessArgs, now: Option<Instant>) -> anyhow::Result<()> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a non-negative number of events per second");
    }
    let cfg = args.source.gen_config(now)?;
    println!("machine: {}; load average {}", Machine::detect(), load_average());
    println!("command: {}", command_line());
    let tmp = Scratch::new("freshness")?;
    let (log, _) = obtain_log(&args.source, &cfg, &tmp.0)?;
    let topics = BenchTopics::create(&args.broker).await?;
    let result = until_ctrl_c(freshness_on(&args, now, &topics, &log, &tmp.0.join("bench.redb"))).await;
    topics.delete().await;
    result
}

async fn freshness_on(
    args: &FreshnessArgs,
    now: Option<Instant>,
    topics: &BenchTopics,
    log: &Path,
    db: &Path,
) -> anyhow::Result<()> {
    let brokers = args.broker.brokers.clone();
    let store = consumer_store(db, args.cache_mib)?;
    let stats = Arc::new(KafkaStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let consumer =
        tokio::spawn(run_consumer(store.clone(), topics.args.clone(), stats.clone(), move || crate::cmd::now(now), {
            stopped()
        }));
    let state = AppState {
        store: store.clone(),
        clock: now.map_or(Clock::System, Clock::Fixed),
        session_secret: None,
        kafka: Some(stats.clone()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let serving = axum::serve(listener, crate::api::router(state)).with_graceful_shutdown(stopped());
    let server = tokio::spawn(async move { serving.await });
    println!(
        "setup:     consumer (run_consumer) and API router in this process, API on http://{addr}; topics {}-* \
         ({} partitions); a durable commit at least every {} ms",
        topics.args.group_id, topics.partitions, topics.args.sync_ms
    );

    let result = measure(args, &brokers, topics, log, &store, &stats, &addr.to_string()).await;
    let _ = stop_tx.send(true);
    let consumed = consumer.await.context("consumer task")?;
    let _ = server.await;
    consumed?;
    result
}

async fn measure(
    args: &FreshnessArgs,
    brokers: &str,
    topics: &BenchTopics,
    log: &Path,
    store: &Store,
    stats: &KafkaStats,
    addr: &str,
) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let probe = Probe::new(nanos as u64 ^ u64::from(std::process::id()));
    let target = Target::parse(&format!("http://{addr}"), Some(&probe.key))?;
    let path = probe.path();
    let probes = producer(brokers)?;
    let t = &topics.args.topics;

    // Set the probe project up and wait until its key reads it.
    let setup_started = WallClock::now();
    for e in probe.setup_events() {
        produce_one(&probes, t, &e)?;
    }
    let mut conn = Conn::connect(&target.authority).await?;
    loop {
        let (r, _) = conn.get(&target, &path).await?;
        if r.status == 200 {
            break;
        }
        if setup_started.elapsed() > PROBE_TIMEOUT {
            bail!(
                "the probe project is not readable after {:?}: HTTP {} {}",
                PROBE_TIMEOUT,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "probe:     project {} readable {:.2}s after its setup events were produced",
        probe.project_id,
        setup_started.elapsed().as_secs_f64()
    );

    // The background load.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (brokers, topics, log, stop, sent) =
            (brokers.to_owned(), t.clone(), log.to_owned(), stop.clone(), sent.clone());
        let rate = args.rate;
        std::thread::Builder::new()
            .name("bench-load".into())
            .spawn(move || background(&brokers, &topics, &log, rate, &stop, &sent))?
    };
    // Stops the load if this future is dropped (Ctrl-C), before the topics are deleted.
    let _stop_load = StopOnDrop(stop.clone());

    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let mut samples: Vec<(f64, u64, u64)> = Vec::new();
    let (mut n, mut lost, mut polls, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    let mut max_stats_lag = 0u64;
    let mut in_flight = InFlight::default();
    let interval = Duration::from_secs_f64(args.probe_interval.max(1) as f64 / 1000.0);
    let started = WallClock::now();
    let end = started + Duration::from_secs_f64(args.duration.max(0.0));
    let mut next = started;
    let bar = indicatif::ProgressBar::new(args.duration.max(0.0) as u64)
        .with_style(indicatif::ProgressStyle::with_template("measuring [{bar:40}] {pos}/{len}s {msg}").expect("valid"));
    loop {
        let now = WallClock::now();
        let probing = now < end;
        if !probing && in_flight.is_empty() {
            break;
        }
        // Every probe due by now, on the schedule, however long the last answer took.
        while probing && next <= now {
            n += 1;
            produce_one(&probes, t, &probe.scrape(n))?;
            in_flight.produced(n, WallClock::now());
            next += interval;
        }
        polls += 1;
        let seen = match conn.get(&target, &path).await {
            Ok((r, _)) if r.status == 200 => leaderboard_views(&r.body),
            Ok((r, _)) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
                None
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                conn = Conn::connect(&target.authority).await?;
                None
            }
        };
        if let Some(seen) = seen {
            let answered = WallClock::now();
            for produced in in_flight.seen(seen) {
                let micros = answered.duration_since(produced).as_micros().max(1) as u64;
                let _ = hist.record(micros.min(hist.high()));
                let at = produced.duration_since(started).as_secs_f64();
                samples.push((at, micros, stats.lag.load(Ordering::Relaxed)));
            }
        }
        if let Some(cutoff) = WallClock::now().checked_sub(PROBE_TIMEOUT) {
            lost += in_flight.expire(cutoff) as u64;
        }
        max_stats_lag = max_stats_lag.max(stats.lag.load(Ordering::Relaxed));
        bar.set_position(started.elapsed().as_secs().min(args.duration.max(0.0) as u64));
        bar.set_message(format!(
            "{n} probes ({} in flight), p50 {:.1} ms, {} events sent",
            in_flight.len(),
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            sent.load(Ordering::Relaxed)
        ));
        tokio::time::sleep(POLL_PAUSE).await;
    }
    bar.finish_and_clear();
    let measured = end.duration_since(started).as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let load = tokio::task::spawn_blocking(move || load.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the background producer panicked"))??;
    flush(&probes)?;

    // Where the consumer stands when the load stops, and how long it takes to drain.
    let highs = tokio::task::block_in_place(|| topics.high_watermarks())?;
    let lag_at_end = lag(&highs, &stored_positions(store)?);
    let drain_started = WallClock::now();
    let mut left = lag_at_end;
    while left > 0 && drain_started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = lag(&highs, &stored_positions(store)?);
    }
    let drain = drain_started.elapsed().as_secs_f64();

    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "load:      {:.0} events/s achieved of {:.0} asked ({} events in {:.1}s{}{})",
        load.sent as f64 / load.seconds.max(1e-9),
        args.rate,
        load.sent,
        load.seconds,
        if load.wraps > 0 { format!(", the log started over {} time(s)", load.wraps) } else { String::new() },
        if load.failed > 0 { format!(", {} NOT DELIVERED", load.failed) } else { String::new() }
    );
    println!(
        "probes:    {n} in {measured:.1}s, one every {} ms (not waiting for each other): {} visible, {lost} lost \
         (not visible within {}s); {polls} polls of video-leaderboard, {errors} errors",
        args.probe_interval,
        hist.len(),
        PROBE_TIMEOUT.as_secs()
    );
    if let Some(e) = first_error {
        println!("           first error: {e}");
    }
    if hist.is_empty() {
        println!("freshness: n/a (no probe became visible)");
    } else {
        println!(
            "freshness: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (produce call -> visible over HTTP)",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            hist.max() as f64 / 1000.0
        );
    }
    if samples.len() > 1 {
        println!(
            "by {WINDOW_SECS:.0} s window of produce time (lag: largest in the consumer's statistics, one a second):"
        );
        println!("  {:>7} {:>7} {:>10} {:>10} {:>10}", "from s", "probes", "p50 ms", "max ms", "lag");
        for w in windows(&samples, WINDOW_SECS) {
            println!(
                "  {:>7.0} {:>7} {:>10.1} {:>10.1} {:>10}",
                w.start,
                w.probes,
                w.p50_us as f64 / 1000.0,
                w.max_us as f64 / 1000.0,
                w.max_extra
            );
        }
    }
    println!(
        "lag:       {lag_at_end} messages behind the high watermarks when the load stopped ({}); \
         largest lag in the consumer's statistics during the run: {max_stats_lag}",
        if lag_at_end == 0 {
            "kept up".to_owned()
        } else if left == 0 {
            format!("drained in {drain:.2}s")
        } else {
            format!("{left} still left after {drain:.0}s: did NOT keep up")
        }
    );
    Ok(())
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_sends_rate_per_second() {
        assert_eq!(due(20_000.0, Duration::from_millis(0)), 0);
        assert_eq!(due(20_000.0, Duration::from_millis(1)), 20);
        assert_eq!(due(20_000.0, Duration::from_secs(3)), 60_000);
        assert_eq!(due(0.0, Duration::from_secs(3)), 0);
        // 10/s: the 6th event (index 5) is due at 0.6 s.
        assert_eq!(wait_for_next(10.0, 5, Duration::from_millis(550)), Duration::from_millis(50));
        assert_eq!(wait_for_next(10.0, 5, Duration::from_millis(700)), Duration::ZERO);
        // Long waits are cut short so that a stop is seen; no load at all waits too.
        assert_eq!(wait_for_next(0.5, 0, Duration::ZERO), MAX_WAIT);
        assert_eq!(wait_for_next(0.0, 0, Duration::from_secs(1)), MAX_WAIT);
    }

    #[test]
    fn probe_events_decode_and_are_distinct() {
        let p = Probe::new(0x1234_5678_9abc_def0);
        let mut events = p.setup_events();
        events.extend((1..=3).map(|n| p.scrape(n)));
        for e in &events {
            crate::events::decode(e.as_bytes()).unwrap_or_else(|err| panic!("{err}: {e}"));
        }
        let ids: std::collections::BTreeSet<String> = events
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap()["event_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), events.len());
        assert!(p.key.starts_with("gv_") && p.key.len() == 35, "{}", p.key);
        assert!(at(1) < at(2) && at(999) < at(1000), "{} {}", at(999), at(1000));
    }

    #[test]
    fn windows_group_by_produce_time() {
        let samples = [(0.5, 300, 1), (9.9, 100, 7), (3.0, 200, 2), (25.0, 50, 0)];
        let w = windows(&samples, 10.0);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0], Window { start: 0.0, probes: 3, p50_us: 200, max_us: 300, max_extra: 7 });
        assert_eq!(w[1], Window { start: 20.0, probes: 1, p50_us: 50, max_us: 50, max_extra: 0 });
        // Nearest rank: the median of two is the smaller.
        assert_eq!(windows(&[(1.0, 10, 0), (2.0, 20, 0)], 10.0)[0].p50_us, 10);
        assert!(windows(&[], 10.0).is_empty());
    }

    #[test]
    fn a_count_seen_shows_every_probe_up_to_it() {
        let mut f = InFlight::default();
        for (n, at) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            f.produced(n, at);
        }
        assert_eq!(f.seen(0), Vec::<i32>::new());
        // Probe 2's count shows probe 1 too: it was applied before it, or superseded by it.
        assert_eq!(f.seen(2), vec![10, 20]);
        assert_eq!(f.seen(2), Vec::<i32>::new(), "each probe is counted once");
        assert_eq!(f.len(), 2);
        // Probes produced before the cutoff are lost; later ones still wait.
        assert_eq!(f.expire(35), 1);
        assert_eq!(f.seen(9), vec![40]);
        assert!(f.is_empty());
        assert_eq!(f.expire(100), 0);
    }

    #[test]
    fn leaderboard_count_is_read() {
        assert_eq!(leaderboard_views(br#"{"data":[{"view_count":42,"video_id":"x"}],"error":null}"#), Some(42));
        assert_eq!(leaderboard_views(br#"{"data":[],"error":null,"meta":{}}"#), Some(0));
        assert_eq!(leaderboard_views(br#"{"data":null,"error":{"code":"x"}}"#), None);
    }

    /// The probe project becomes readable and the probe count visible through the real
    /// store and router (no Kafka).
    #[tokio::test]
    async fn probe_is_visible_through_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let p = Probe::new(7);
        let mut batch = crate::store::Batch::default();
        for e in p.setup_events().into_iter().chain([p.scrape(1), p.scrape(3), p.scrape(2)]) {
            batch.events.push(crate::events::decode(e.as_bytes()).unwrap());
        }
        store.commit(&batch).unwrap();
        let state = AppState { store, clock: Clock::System, session_secret: None, kafka: None };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::api::router(state)).await });
        let target = Target::parse(&format!("http://{addr}"), Some(&p.key)).unwrap();
        let mut conn = Conn::connect(&target.authority).await.unwrap();
        let (r, _) = conn.get(&target, &p.path()).await.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(leaderboard_views(&r.body), Some(3));
    }
}
