//! `bench kafka`: consume throughput from a real broker, through the same consumer as
//! `serve --brokers` (`run_consumer`, with its default `--kafka-sync-ms`).
//!
//! The log is published first to fresh topics (a unique prefix, created here with the
//! same partition counts as `scripts/kafka.sh`, deleted at the end); publishing is timed
//! and printed separately. Then the consumer starts on a fresh state file, from the
//! beginning, and the clock runs until every stored position has reached its
//! partition's high watermark and the consumer has stopped, which makes its last batches
//! durable: the rate counts durable events only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{
    BenchBroker, KafkaBenchArgs, LogSource, Machine, Scratch, command_line, fresh_db, kept_at, load_average, mib,
    peak_rss_kib, print_peak_rss, reset_peak_rss,
};
use crate::cmd::produce::{ProduceSummary, flush, producer, publish_lines};
use crate::events::Instant;
use crate::r#gen::{GenConfig, GenStats};
use crate::ingest::kafka::{KafkaArgs, KafkaStats, Topics, decode_position, run_consumer, source_id};
use crate::store::{DEAD_LETTERS, EVENTS_APPLIED, Store};

/// Longest wait for one metadata or watermark request.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// `--log-file`, or a log generated into `tmp`.
pub(super) fn obtain_log(
    source: &LogSource,
    cfg: &GenConfig,
    tmp: &Path,
) -> anyhow::Result<(PathBuf, Option<GenStats>)> {
    match &source.log_file {
        Some(log) => Ok((log.clone(), None)),
        None => {
            let log = tmp.join("events.ndjson");
            let stats = super::ingest::generate_log(cfg, &log)?;
            Ok((log, Some(stats)))
        }
    }
}

/// The bench's own topics on the broker: the four source topics under a unique prefix,
/// each with its DLQ topic, and a client to read watermarks.
pub(super) struct BenchTopics {
    pub args: KafkaArgs,
    pub partitions: i32,
    admin: AdminClient<DefaultClientContext>,
    meta: BaseConsumer,
}

impl BenchTopics {
    /// Creates `<prefix>-<pid>-<nanos>-<topic>` for the four topics (`partitions` each)
    /// and their DLQ topics (1 each), and waits until metadata shows them all. The
    /// consumer settings (`args`) batch as `broker` asks.
    pub(super) async fn create(broker: &BenchBroker) -> anyhow::Result<BenchTopics> {
        let (brokers, prefix, partitions) = (broker.brokers.as_str(), &broker.topic_prefix, broker.partitions);
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating the admin client")?;
        let meta: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating the metadata client")?;
        meta.fetch_metadata(None, KAFKA_TIMEOUT).with_context(|| format!("Kafka at {brokers} is unreachable"))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let unique = format!("{prefix}-{}-{nanos}", std::process::id());
        let mut args = KafkaArgs::new(brokers);
        let named = |t: &str| format!("{unique}-{t}");
        let d = Topics::default();
        args.topics = Topics {
            video_scrape: named(&d.video_scrape),
            creator_stats: named(&d.creator_stats),
            campaign_membership: named(&d.campaign_membership),
            projects: named(&d.projects),
        };
        args.group_id = unique;
        args.batch_max_messages = broker.batch_max_messages;
        args.catch_up_max_messages = broker.catch_up_max_messages;
        args.sync_ms = broker.sync_ms;
        let topics = BenchTopics { args, partitions, admin, meta };

        let all = topics.all_topics();
        let new: Vec<NewTopic<'_>> =
            all.iter().map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1))).collect();
        let opts = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT));
        for r in topics.admin.create_topics(&new, &opts).await.context("creating topics")? {
            r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
        let started = WallClock::now();
        for (t, n) in &all {
            loop {
                let md = topics.meta.fetch_metadata(Some(t), KAFKA_TIMEOUT)?;
                if md.topics().first().is_some_and(|m| m.error().is_none() && m.partitions().len() == *n as usize) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("topic {t} did not appear within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tracing::info!(prefix = %topics.args.group_id, partitions, "Bench topics created.");
        Ok(topics)
    }

    /// Source and DLQ topics with their partition counts.
    fn all_topics(&self) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for t in self.args.topics.all() {
            out.push((t.to_owned(), self.partitions));
            out.push((self.args.dlq_topic(t), 1));
        }
        out
    }

    /// The high watermark of every source partition, by source id.
    pub(super) fn high_watermarks(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for t in self.args.topics.all() {
            for p in 0..self.partitions {
                let (_, high) = self.meta.fetch_watermarks(t, p, KAFKA_TIMEOUT).with_context(|| format!("{t}/{p}"))?;
                out.insert(source_id(t, p), high.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Deletes every topic this bench created (best effort).
    pub(super) async fn delete(self) {
        let all = self.all_topics();
        let names: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
        if let Err(e) = self.admin.delete_topics(&names, &AdminOptions::new()).await {
            tracing::warn!(error = %e, "Could not delete the bench topics.");
        }
    }
}

/// Stored Kafka positions (next offsets), by source id.
pub(super) fn stored_positions(store: &Store) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(store
        .positions()?
        .into_iter()
        .filter(|(s, _)| s.starts_with("kafka:"))
        .filter_map(|(s, b)| Some((s, decode_position(&b)?)))
        .collect())
}

/// Messages below the high watermarks not yet committed to the store: per partition
/// `high - position` (a partition without a stored position has read nothing).
pub fn lag(highs: &BTreeMap<String, u64>, positions: &BTreeMap<String, u64>) -> u64 {
    highs.iter().map(|(s, &high)| high.saturating_sub(positions.get(s).copied().unwrap_or(0))).sum()
}

/// Runs a bench, or gives up at Ctrl-C so that the caller still deletes its topics.
pub(super) async fn until_ctrl_c<T>(bench: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::select! {
        r = bench => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

/// Publishes `log` to the bench topics with `goatview produce`'s producer and waits for
/// every confirmation.
pub(super) fn publish_log(topics: &BenchTopics, log: &Path) -> anyhow::Result<ProduceSummary> {
    let brokers = topics.args.brokers.as_deref().unwrap_or_default();
    let producer = producer(brokers)?;
    let len = std::fs::metadata(log).with_context(|| format!("reading {}", log.display()))?.len();
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("publishing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = WallClock::now();
    let mut summary = ProduceSummary::default();
    let reader = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?,
    );
    publish_lines(&producer, &topics.args.topics, reader, &mut summary, |b| bar.inc(b))
        .with_context(|| format!("publishing {}", log.display()))?;
    bar.finish_and_clear();
    summary.failed = flush(&producer)?;
    summary.elapsed = started.elapsed();
    if summary.failed > 0 {
        bail!("{} message(s) were not delivered", summary.failed);
    }
    Ok(summary)
}

pub(super) async fn kafka(args: KafkaBenchArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let cfg = args.source.gen_config(now)?;
    println!("machine: {}; load average {}", Machine::detect(), load_average());
    println!("command: {}", command_line());
    let tmp = Scratch::new("kafka")?;
    let (log, _) = obtain_log(&args.source, &cfg, &tmp.0)?;
    let db = fresh_db(&args.db, &tmp.0, "kafka")?;
    let log_bytes = std::fs::metadata(&log).with_context(|| format!("reading {}", log.display()))?.len();

    let topics = BenchTopics::create(&args.broker).await?;
    let result = until_ctrl_c(kafka_on(&args, &cfg, &topics, &log, log_bytes, &db)).await;
    topics.delete().await;
    result
}

/// Opens the consumer's state file as `serve` does: with `cache_mib`, or `serve`'s cache
/// when unset.
pub(super) fn consumer_store(db: &Path, cache_mib: Option<u64>) -> anyhow::Result<Arc<Store>> {
    let cache_mib = cache_mib.unwrap_or(crate::cmd::serve::SERVE_CACHE_MIB);
    let store = Store::open_with_cache(db, Some(cache_mib)).with_context(|| format!("opening {}", db.display()))?;
    Ok(Arc::new(store))
}

async fn kafka_on(
    args: &KafkaBenchArgs,
    cfg: &GenConfig,
    topics: &BenchTopics,
    log: &Path,
    log_bytes: u64,
    db: &Path,
) -> anyhow::Result<()> {
    let published = tokio::task::block_in_place(|| publish_log(topics, log))?;
    let pub_secs = published.elapsed.as_secs_f64();
    println!(
        "published: {} messages to {} topics x {} partitions ({}-*) in {:.2}s, {:.0} msgs/s (not counted below)",
        published.messages,
        topics.args.topics.all().len(),
        topics.partitions,
        topics.args.group_id,
        pub_secs,
        published.messages as f64 / pub_secs.max(1e-9)
    );
    let highs = topics.high_watermarks()?;
    let total: u64 = highs.values().sum();
    if total != published.messages {
        tracing::warn!(
            total,
            published = published.messages,
            "High watermarks do not add up to the messages published."
        );
    }

    let peak_reset = reset_peak_rss();
    let store = consumer_store(db, args.cache_mib)?;
    let stats = Arc::new(KafkaStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The generator's instant (`--now` when given) stamps the dead letters, as in `bench ingest`.
    let stamp = Instant::from_chrono(cfg.now);
    let started = WallClock::now();
    let consumer =
        tokio::spawn(run_consumer(store.clone(), topics.args.clone(), stats.clone(), move || stamp, async {
            let _ = stopped.await;
        }));

    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("consuming [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let deadline = started + Duration::from_secs_f64(args.timeout.max(0.0));
    loop {
        let positions = stored_positions(&store)?;
        let behind = lag(&highs, &positions);
        bar.set_position(total - behind);
        if behind == 0 {
            break;
        }
        if consumer.is_finished() {
            bar.finish_and_clear();
            consumer.await.context("consumer task")??;
            bail!("the consumer stopped with {behind} message(s) left");
        }
        if WallClock::now() > deadline {
            bar.finish_and_clear();
            bail!("{behind} of {total} message(s) not consumed after {:.0}s (--timeout)", args.timeout);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    let _ = stop.send(());
    consumer.await.context("consumer task")??;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    let applied = store.counter(EVENTS_APPLIED)?;
    let dead = store.counter(DEAD_LETTERS)?;
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let syncs = stats.syncs.load(std::sync::atomic::Ordering::Relaxed);
    drop(store);
    let db_bytes = std::fs::metadata(db)?.len();

    let messages = applied + dead;
    println!("log:       {} ({:.1} MiB)", log.display(), mib(log_bytes));
    println!("events:    {applied} applied, {dead} dead letters, in {batches} batches, {syncs} durable commits");
    println!("time:      {secs:.2}s (consumer start to every position at its high watermark, durable)");
    println!("rate:      {:.0} events/s (applied + dead letters)", messages as f64 / secs.max(1e-9));
    print_peak_rss(peak, peak_reset, "consume only", "including generation and publishing");
    println!(
        "state:     {:.1} MiB = {:.2}x the log ({:.1} MiB){}",
        mib(db_bytes),
        db_bytes as f64 / log_bytes.max(1) as f64,
        mib(log_bytes),
        kept_at(&args.db, db)
    );
    if messages != total {
        println!("note:      {total} messages published but {messages} counted in the store");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_sums_what_is_left_per_partition() {
        let highs: BTreeMap<String, u64> =
            [("kafka:a/0", 10), ("kafka:a/1", 0), ("kafka:b/0", 5)].map(|(s, h)| (s.to_owned(), h)).into();
        let mut pos = BTreeMap::new();
        assert_eq!(lag(&highs, &pos), 15);
        pos.insert("kafka:a/0".to_owned(), 7);
        assert_eq!(lag(&highs, &pos), 8);
        pos.insert("kafka:b/0".to_owned(), 5);
        pos.insert("kafka:a/0".to_owned(), 10);
        assert_eq!(lag(&highs, &pos), 0);
        // A position past the watermark read when it was fetched is caught up, not negative.
        pos.insert("kafka:a/0".to_owned(), 12);
        assert_eq!(lag(&highs, &pos), 0);
    }
}
