//! `goatview produce`: publish recorded JSON Lines logs to the four Kafka topics.
//!
//! Each line goes to the topic of its `type` (contract §2.1), keyed by its `project_id`
//! (`org_id` for `api_key.*`; lowercased, so that ids in any letter case share a
//! partition). A line whose `type` cannot be read (invalid UTF-8 or JSON, no `type`) or
//! names no known topic is still published, unchanged and without a key, to the
//! video-scrape topic: the consumer then keeps it as a dead letter, as replay would.
//! Blank lines are skipped, as replay skips them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant as WallClock};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::Deserialize;

use crate::ingest::kafka::{Topics, log_client};
use crate::ingest::log::{is_blank, trim_line_end};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Kafka bootstrap servers (`host:port,...`).
    #[arg(long, env = "GOATVIEW_KAFKA_BROKERS")]
    pub brokers: String,

    #[command(flatten)]
    pub topics: Topics,

    /// Recorded logs (JSON Lines), published in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// How long the producer keeps retrying a message before reporting it undelivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// What a publish did.
#[derive(Clone, Debug, Default)]
pub struct ProduceSummary {
    /// Messages queued (delivered = `messages - failed`).
    pub messages: u64,
    /// Messages the broker did not confirm.
    pub failed: u64,
    pub bytes: u64,
    /// Lines sent to the video-scrape topic because their `type` routes nowhere.
    pub unroutable: u64,
    pub blank: u64,
    pub by_topic: BTreeMap<String, u64>,
    /// From the first line read to the last delivery confirmed.
    pub elapsed: Duration,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let s = publish(&args)?;
    let secs = s.elapsed.as_secs_f64();
    let topics: Vec<String> = s.by_topic.iter().map(|(t, n)| format!("{t}={n}")).collect();
    println!(
        "published {} message(s) ({} bytes) from {} file(s) in {:.2}s, {:.0} msgs/s; {}; \
         {} unroutable line(s) sent to {}, {} blank line(s) skipped",
        s.messages - s.failed,
        s.bytes,
        args.files.len(),
        secs,
        s.messages as f64 / secs.max(1e-9),
        topics.join(", "),
        s.unroutable,
        args.topics.video_scrape,
        s.blank,
    );
    if s.failed > 0 {
        bail!("{} message(s) were not delivered", s.failed);
    }
    Ok(())
}

/// Publishes every file in order, with a progress bar on a terminal, and waits until
/// the broker has confirmed (or failed) every message.
pub fn publish(args: &ProduceArgs) -> anyhow::Result<ProduceSummary> {
    let producer = producer(&args.brokers)?;
    let started = WallClock::now();
    let mut total = ProduceSummary::default();
    for file in &args.files {
        let len = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
        // indicatif draws only on a terminal; redirected output stays clean.
        let bar = ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(file.display().to_string());
        let reader =
            BufReader::with_capacity(1 << 20, File::open(file).with_context(|| format!("opening {}", file.display()))?);
        publish_lines(&producer, &args.topics, reader, &mut total, |b| bar.inc(b))
            .with_context(|| format!("publishing {}", file.display()))?;
        bar.finish_and_clear();
    }
    tracing::info!(in_flight = producer.in_flight_count(), "Waiting for the broker to confirm the messages.");
    total.failed = flush(&producer)?;
    total.elapsed = started.elapsed();
    Ok(total)
}

/// A producer that waits for every in-sync replica (`acks=all`) and never duplicates or
/// reorders on retry (idempotence).
pub fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<Deliveries>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "goatview-produce")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(Deliveries::default())
        .context("creating the Kafka producer")
}

/// Waits until every message is confirmed or failed; returns how many failed.
pub fn flush(producer: &ThreadedProducer<Deliveries>) -> anyhow::Result<u64> {
    producer.flush(DELIVERY_TIMEOUT + Duration::from_secs(10)).context("waiting for deliveries")?;
    let ctx = producer.context();
    let failed = ctx.failed.load(std::sync::atomic::Ordering::Relaxed);
    if let Some(e) = ctx.first_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        tracing::warn!(failed, first_error = %e, "Messages not delivered.");
    }
    Ok(failed)
}

/// Publishes every line of `reader`, calling `progress` with the bytes read.
pub fn publish_lines(
    producer: &ThreadedProducer<Deliveries>,
    topics: &Topics,
    mut reader: impl BufRead,
    summary: &mut ProduceSummary,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).context("reading")?;
        if n == 0 {
            return Ok(());
        }
        progress(n as u64);
        let body = trim_line_end(&line);
        if is_blank(body) {
            summary.blank += 1;
            continue;
        }
        publish_line(producer, topics, body, summary)?;
    }
}

/// Publishes one non-blank line (without its line ending) to the topic of its `type`,
/// keyed by its owner; a line that routes nowhere goes to the video-scrape topic unkeyed.
pub fn publish_line(
    producer: &ThreadedProducer<Deliveries>,
    topics: &Topics,
    body: &[u8],
    summary: &mut ProduceSummary,
) -> anyhow::Result<()> {
    let (topic, key) = match route(topics, body) {
        Some(r) => r,
        None => {
            summary.unroutable += 1;
            (topics.video_scrape.as_str(), None)
        }
    };
    let mut record = BaseRecord::to(topic).payload(body);
    if let Some(k) = &key {
        record = record.key(k.as_str());
    }
    send(producer, record)?;
    summary.messages += 1;
    summary.bytes += body.len() as u64;
    *summary.by_topic.entry(topic.to_owned()).or_default() += 1;
    Ok(())
}

/// Sends, waiting while librdkafka's queue is full.
pub fn send<K, P>(producer: &ThreadedProducer<Deliveries>, mut record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e).context("queueing a message"),
        }
    }
}

/// The fields that route a line.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    event_type: Option<serde_json::Value>,
    project_id: Option<serde_json::Value>,
    org_id: Option<serde_json::Value>,
}

/// The topic and key of a line, or `None` when its `type` routes nowhere.
fn route<'t>(topics: &'t Topics, line: &[u8]) -> Option<(&'t str, Option<String>)> {
    let head: Head = serde_json::from_slice(line).ok()?;
    let event_type = head.event_type?;
    let event_type = event_type.as_str()?;
    let topic = topics.for_type(event_type)?;
    let key_field = if event_type.starts_with("api_key.") { head.org_id } else { head.project_id };
    let key = key_field.as_ref().and_then(serde_json::Value::as_str).map(str::to_ascii_lowercase);
    Some((topic, key))
}

/// Counts delivery failures, keeping the first error for the summary.
#[derive(Default)]
pub struct Deliveries {
    pub failed: std::sync::atomic::AtomicU64,
    pub first_error: Mutex<Option<KafkaError>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_client(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka producer error; retrying.");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        produce: ProduceArgs,
    }

    #[test]
    fn args_parse() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["t", "--brokers", "k:9092", "a.ndjson", "b.ndjson"]).unwrap();
        assert_eq!(cli.produce.files.len(), 2);
        assert_eq!(cli.produce.topics.creator_stats, "creator-stats");
    }

    #[test]
    fn routes_by_type_and_keys_by_owner() {
        let t = Topics::default();
        let r = |s: &str| route(&t, s.as_bytes()).map(|(topic, key)| (topic.to_owned(), key));
        assert_eq!(
            r(r#"{"type":"video.scraped","project_id":"AB-CD"}"#),
            Some(("video-scrape".into(), Some("ab-cd".into())))
        );
        assert_eq!(
            r(r#"{"type":"api_key.issued","org_id":"o1","project_id":"p"}"#),
            Some(("projects".into(), Some("o1".into())))
        );
        assert_eq!(r(r#"{"type":"creator.bogus"}"#), Some(("creator-stats".into(), None)));
        assert_eq!(r(r#"{"type":"user.created"}"#), None);
        assert_eq!(r(r#"{"type":7}"#), None);
        assert_eq!(r(r#"[1,2]"#), None);
        assert_eq!(r("{not json"), None);
    }
}
