//! Kafka ingestion: the four topics of contract §2.1 into the store, effectively once.
//!
//! This module knows bytes, topics, partitions and offsets; `events::decode` (on the
//! threads of [`super::decoding`]) knows JSON, and `state` knows neither.
//!
//! # Effectively once
//!
//! Each partition is a source `kafka:<topic>/<partition>` whose position is the offset
//! of the next message to read (8 bytes, little-endian). A batch's events, dead letters
//! and positions commit in one redb write transaction, so after a crash the consumer
//! resumes exactly after the last batch that reached the disk: nothing is lost and
//! nothing counts twice. Offsets committed to Kafka are only for lag monitoring and are
//! never read (they may run up to a second ahead of what is durable).
//!
//! # Visible at once, durable within a second
//!
//! A batch is visible to readers as soon as it commits, but only every
//! `--kafka-sync-ms` (1 s by default) does a commit wait for the disk; the others stay in
//! memory until then ([`Store::commit_visible`]). A crash loses what was not synced yet
//! together with its positions, and the consumer reads those messages again: nothing is
//! lost or counted twice, the only cost is work redone. Syncing every batch instead
//! would write every page a batch touches once per batch: about 40 MiB per commit at L,
//! however few events it holds, which bounded the consumer near 20,000 events/s.
//!
//! # Catching up
//!
//! A batch closes after `--kafka-batch-max-ms` (200 ms) or `--kafka-batch-max-messages`,
//! so that events are visible soon. With `--kafka-catch-up-max-messages` above that
//! (2,000,000 by default), a consumer with a backlog (started late, restarted, or fallen
//! behind by a full batch or more) instead keeps reading until its batch holds that many,
//! a window like a replay's (`super::window`): of a video's scrapes in it only the latest
//! is kept. The batch commits in one transaction like any other, its changed rows written
//! into it every `--kafka-batch-max-messages` events ([`Store::commit_window`]); readers
//! see it when it is whole, and a crash before that reads it again. At scale L a backlog
//! holds each video several times, so most scrapes are never applied.
//!
//! # Why manual assignment, not a consumer group
//!
//! Every goatview instance is a complete materialized view: it needs *every* partition
//! of every topic. A consumer group would split partitions between instances sharing a
//! `group.id`, and each would answer from part of the data. So the consumer `assign`s
//! all partitions itself, each at its stored position (the beginning when none), and
//! re-reads topic metadata every `metadata_refresh_ms` to pick up new partitions or
//! topics created late (`incremental_assign`, which leaves the others where they are).
//! There is no rebalance, so no callback can move a partition while a batch is in
//! flight, and no seek can race with the fetcher.
//!
//! After the connection to the brokers was lost, every partition is assigned again at
//! its stored position once metadata can be read again. A broker that restarted has a
//! new leader epoch, and librdkafka's fetcher for a manually assigned partition can
//! stay fenced on the old one ("leader epoch is older than broker epoch") and never
//! deliver again; a fresh assignment starts it over, exactly where the store says. A
//! restart quick enough that librdkafka never reports the brokers down can leave it
//! fenced too (seen once in CI): so the partitions are also assigned again when nothing
//! has come for [`FETCH_STALL`] while the statistics show messages waiting. `group.id` only names where the
//! monitoring offsets are committed; give each instance its own.
//!
//! While the brokers are away, librdkafka queues an error report for each failed
//! connection attempt, many a second, behind which the messages fetched later wait.
//! Before the fresh assignment the consumer serves that queue for [`STALE_DRAIN`]:
//! each stale report would otherwise end the next batch before it read anything and
//! cost one more round of metadata and assignment. That took 33–47 s to resume after a
//! 10 s outage (2026-11-27); served first, the consumer read again 0.4–0.5 s after the
//! test published.
//!
//! A stored position beyond the end of its partition (the topic was deleted and created
//! again) is reset to the beginning by librdkafka (`auto.offset.reset=earliest`): the
//! state is unaffected, since events apply idempotently, but the counters count those
//! messages again.
//!
//! # Threads
//!
//! Polling and committing run on one thread of their own: `BaseConsumer::poll` and redb
//! are both synchronous, and one thread doing poll → batch → commit in order means batches
//! never overlap. The messages it polls are decoded in chunks on the machine's cores
//! ([`super::decoding`]) and taken back in the order read. [`run_consumer`] is the async
//! shell around it.
//!
//! # Poison messages
//!
//! A message that does not decode (or is larger than `max_message_bytes`) is a dead
//! letter in the store, like any other source, and a copy is published to
//! `<topic><dlq_suffix>` with [`DLQ_HEADERS`]. The copy is sent and confirmed *before*
//! the batch commits, so a crash can duplicate it on the DLQ topic but never lose it;
//! if the DLQ topic cannot be written, a warning is logged and ingestion goes on (the
//! store's dead letter is the record that counts).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as WallClock};

use clap::Args;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::decoding::{Chunk, Decoded, Decoders};
use super::push_dead_letter;
use super::window::Window;
use crate::events::Instant;
use crate::store::{Batch, Store, StoreError};

/// How soon a missing topic is looked for again.
const MISSING_TOPIC_RECHECK: Duration = Duration::from_secs(10);
/// Longest wait for one metadata request; also bounds shutdown latency while the
/// broker is unreachable.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest single `poll`, so that a shutdown request is seen promptly.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// A batch closes once no message has come for this long: the consumer has caught up.
const IDLE_GAP: Duration = Duration::from_millis(5);
/// How long the fetcher may deliver nothing while messages wait in the broker before the
/// partitions are assigned again ([`Worker::watch_fetcher`]); doubled after each time
/// that brought nothing, up to [`FETCH_STALL_MAX`]: a topic written with transactions ends
/// in control records, which count in its end offset but are never delivered.
const FETCH_STALL: Duration = Duration::from_secs(10);
const FETCH_STALL_MAX: Duration = Duration::from_secs(600);
/// Longest wait for a newly assigned partition's end offset; without it, the first
/// statistics tell.
const END_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest pause in what the fetcher delivers that a batch catching up waits through
/// while the partitions' ends say more is waiting: a window is not cut short by a broker
/// slow to serve the backlog.
const CATCH_UP_STALL: Duration = Duration::from_secs(1);
/// Messages polled before they are sent to be decoded together.
const CHUNK_MESSAGES: usize = 2048;
/// Most events a batch holds while catching up, by default (`--kafka-catch-up-max-messages`):
/// all of scale L, held as a replay holds a window.
pub const CATCH_UP_MAX_MESSAGES: u64 = 2_000_000;
/// How often librdkafka reports statistics: the lag gauge, and the partitions' end
/// offsets that tell a consumer it is behind ([`Worker::behind`]).
const STATS_INTERVAL_MS: u64 = 1000;
/// Longest wait for DLQ copies to be confirmed before a batch commits anyway.
const DLQ_FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
/// First and longest pause between retries while the broker is unreachable: the longest
/// is how late a consumer may notice that the brokers are back.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the events queued during an outage are served before the partitions are
/// assigned again: thousands of them take a few milliseconds.
const STALE_DRAIN: Duration = Duration::from_millis(20);

/// Headers of a DLQ copy: why it was rejected and where it came from.
pub const DLQ_HEADERS: [&str; 4] = [HEADER_REASON, HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET];
/// DLQ header: the dead letter's reason.
pub const HEADER_REASON: &str = "goatview.reason";
/// DLQ header: the source topic.
pub const HEADER_TOPIC: &str = "goatview.source.topic";
/// DLQ header: the source partition, in decimal.
pub const HEADER_PARTITION: &str = "goatview.source.partition";
/// DLQ header: the source offset, in decimal.
pub const HEADER_OFFSET: &str = "goatview.source.offset";

/// Reason prefix of a dead letter larger than `max_message_bytes`.
pub const REASON_OVERSIZE: &str = "oversize";

/// The four source topics (contract §2.1), each renameable.
#[derive(Clone, Debug, Args)]
pub struct Topics {
    /// Topic of `video.*` events.
    #[arg(long = "topic-video-scrape", env = "GOATVIEW_TOPIC_VIDEO_SCRAPE", default_value = "video-scrape")]
    pub video_scrape: String,

    /// Topic of `creator.*` events.
    #[arg(long = "topic-creator-stats", env = "GOATVIEW_TOPIC_CREATOR_STATS", default_value = "creator-stats")]
    pub creator_stats: String,

    /// Topic of `campaign.*` events.
    #[arg(
        long = "topic-campaign-membership",
        env = "GOATVIEW_TOPIC_CAMPAIGN_MEMBERSHIP",
        default_value = "campaign-membership"
    )]
    pub campaign_membership: String,

    /// Topic of `project.*` and `api_key.*` events.
    #[arg(long = "topic-projects", env = "GOATVIEW_TOPIC_PROJECTS", default_value = "projects")]
    pub projects: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            video_scrape: "video-scrape".into(),
            creator_stats: "creator-stats".into(),
            campaign_membership: "campaign-membership".into(),
            projects: "projects".into(),
        }
    }
}

impl Topics {
    /// All four, in contract order.
    pub fn all(&self) -> [&str; 4] {
        [&self.video_scrape, &self.creator_stats, &self.campaign_membership, &self.projects]
    }

    /// The topic an event `type` is published to, by its prefix (contract §2.1); `None`
    /// for a type that belongs to no topic.
    pub fn for_type(&self, event_type: &str) -> Option<&str> {
        let prefix = event_type.split_once('.').map_or(event_type, |(p, _)| p);
        match prefix {
            "video" => Some(&self.video_scrape),
            "creator" => Some(&self.creator_stats),
            "campaign" => Some(&self.campaign_membership),
            "project" | "api_key" => Some(&self.projects),
            _ => None,
        }
    }
}

/// Kafka consumer settings of `goatview serve`.
#[derive(Clone, Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,...`); the four topics are consumed only when set.
    #[arg(long, env = "GOATVIEW_KAFKA_BROKERS")]
    pub brokers: Option<String>,

    /// Consumer group under which offsets are committed for lag monitoring only (positions
    /// live in the database); give each instance its own.
    #[arg(long = "kafka-group", env = "GOATVIEW_KAFKA_GROUP", default_value = "goatview")]
    pub group_id: String,

    #[command(flatten)]
    pub topics: Topics,

    /// Suffix of the dead-letter topic of each source topic (`video-scrape` → `video-scrape.dlq`).
    #[arg(long = "kafka-dlq-suffix", env = "GOATVIEW_KAFKA_DLQ_SUFFIX", default_value = ".dlq")]
    pub dlq_suffix: String,

    /// Most messages per batch: one write transaction, unless the consumer is catching up.
    #[arg(
        long = "kafka-batch-max-messages",
        env = "GOATVIEW_KAFKA_BATCH_MAX_MESSAGES",
        default_value_t = 50_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub batch_max_messages: u64,

    /// Longest time (milliseconds) a batch stays open after its first message, unless the
    /// consumer is catching up.
    #[arg(long = "kafka-batch-max-ms", env = "GOATVIEW_KAFKA_BATCH_MAX_MS", default_value_t = 200)]
    pub batch_max_ms: u64,

    /// Most messages one batch holds while the consumer is behind (a full batch or more
    /// still waiting in the broker when a batch would close). A scrape superseded by a later
    /// one of the same video is dropped as it comes, so such a batch can read many more. It
    /// commits in one transaction, its changed rows written into it every
    /// `--kafka-batch-max-messages` events. At scale L the default reads the whole log
    /// 2.5–4× faster than batches alone, and with `serve`'s default cache (512 MiB) the
    /// process peaked at 1.7–1.9 GiB while serving eight clients. Up to
    /// `--kafka-batch-max-messages` turns this off (less memory: windows are held whole).
    #[arg(
        long = "kafka-catch-up-max-messages",
        env = "GOATVIEW_KAFKA_CATCH_UP_MAX_MESSAGES",
        default_value_t = CATCH_UP_MAX_MESSAGES
    )]
    pub catch_up_max_messages: u64,

    /// Longest time (milliseconds) a committed batch may stay in memory only, visible but
    /// not yet durable; a crash makes the consumer read it again from Kafka. 0 makes every
    /// batch durable as it commits.
    #[arg(long = "kafka-sync-ms", env = "GOATVIEW_KAFKA_SYNC_MS", default_value_t = 1000)]
    pub sync_ms: u64,

    /// How often (milliseconds) topic metadata is re-read to find new partitions and topics.
    #[arg(
        long = "kafka-metadata-refresh-ms",
        env = "GOATVIEW_KAFKA_METADATA_REFRESH_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..)
    )]
    pub metadata_refresh_ms: u64,

    /// Largest message value accepted; a larger one is a dead letter (`oversize`).
    #[arg(
        long = "kafka-max-message-bytes",
        env = "GOATVIEW_KAFKA_MAX_MESSAGE_BYTES",
        default_value_t = 1 << 20,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_message_bytes: u64,
}

impl KafkaArgs {
    /// Settings with every default and the given brokers (tests and embedding).
    pub fn new(brokers: impl Into<String>) -> KafkaArgs {
        KafkaArgs {
            brokers: Some(brokers.into()),
            group_id: "goatview".into(),
            topics: Topics::default(),
            dlq_suffix: ".dlq".into(),
            batch_max_messages: 50_000,
            batch_max_ms: 200,
            catch_up_max_messages: CATCH_UP_MAX_MESSAGES,
            sync_ms: 1000,
            metadata_refresh_ms: 30_000,
            max_message_bytes: 1 << 20,
        }
    }

    /// Whether a batch may grow past `batch_max_messages` to catch up
    /// (`--kafka-catch-up-max-messages`).
    pub fn catches_up(&self) -> bool {
        self.catch_up_max_messages > self.batch_max_messages
    }

    /// The dead-letter topic of a source topic.
    pub fn dlq_topic(&self, topic: &str) -> String {
        format!("{topic}{}", self.dlq_suffix)
    }
}

/// Errors that stop the consumer. An unreachable broker is not one: it is retried
/// forever.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// No brokers were configured.
    #[error("no Kafka brokers configured")]
    NoBrokers,
    /// The Kafka client could not be created (invalid configuration).
    #[error("cannot create the Kafka client: {0}")]
    Client(#[from] KafkaError),
    /// The store failed to commit a batch; the batch was not applied and will be read
    /// again after a restart.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The consumer thread panicked.
    #[error("the Kafka consumer thread panicked")]
    Panicked,
    /// The consumer's or its decoding threads could not be started.
    #[error("cannot start the consumer's threads: {0}")]
    Threads(std::io::Error),
}

/// Consumer counters, shared with whoever reports them (e.g. `/metrics`).
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages received from Kafka.
    pub consumed: AtomicU64,
    /// Events committed to the store.
    pub applied: AtomicU64,
    /// Dead letters committed to the store.
    pub dead_letters: AtomicU64,
    /// Write transactions committed.
    pub batches: AtomicU64,
    /// Durable commits: batches that waited for the disk, and syncs of earlier batches.
    pub syncs: AtomicU64,
    /// DLQ copies confirmed by the broker.
    pub dlq_published: AtomicU64,
    /// DLQ copies the broker did not confirm.
    pub dlq_failed: AtomicU64,
    /// Errors reported by the Kafka client (mostly an unreachable broker).
    pub client_errors: AtomicU64,
    /// Partitions currently assigned.
    pub partitions: AtomicU64,
    /// Times every partition was assigned again at its stored position: once per outage
    /// of the brokers, or after the fetcher stalled ([`Worker::reassign_all`]).
    pub reassignments: AtomicU64,
    /// Messages in Kafka not yet committed to the store, summed over partitions
    /// (refreshed every few seconds from the client's statistics).
    pub lag: AtomicU64,
}

/// Prometheus names of [`KafkaStats`].
pub mod metric {
    pub const CONSUMED: &str = "goatview_kafka_messages_consumed_total";
    pub const APPLIED: &str = "goatview_kafka_events_applied_total";
    pub const DEAD_LETTERS: &str = "goatview_kafka_dead_letters_total";
    pub const BATCHES: &str = "goatview_kafka_batches_total";
    pub const SYNCS: &str = "goatview_kafka_syncs_total";
    pub const DLQ_PUBLISHED: &str = "goatview_kafka_dlq_published_total";
    pub const DLQ_FAILED: &str = "goatview_kafka_dlq_failed_total";
    pub const CLIENT_ERRORS: &str = "goatview_kafka_client_errors_total";
    pub const PARTITIONS: &str = "goatview_kafka_assigned_partitions";
    pub const REASSIGNMENTS: &str = "goatview_kafka_reassignments_total";
    pub const LAG: &str = "goatview_kafka_lag_messages";
}

impl KafkaStats {
    /// Appends the counters in Prometheus text format 0.0.4.
    pub fn write_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rows: [(&str, &str, &str, &AtomicU64); 11] = [
            (metric::CONSUMED, "counter", "Messages received from Kafka.", &self.consumed),
            (metric::APPLIED, "counter", "Events from Kafka committed to the store.", &self.applied),
            (metric::DEAD_LETTERS, "counter", "Dead letters from Kafka committed to the store.", &self.dead_letters),
            (metric::BATCHES, "counter", "Write transactions committed by the Kafka consumer.", &self.batches),
            (metric::SYNCS, "counter", "Durable commits of the Kafka consumer.", &self.syncs),
            (metric::DLQ_PUBLISHED, "counter", "Dead-letter copies confirmed on DLQ topics.", &self.dlq_published),
            (metric::DLQ_FAILED, "counter", "Dead-letter copies not confirmed on DLQ topics.", &self.dlq_failed),
            (metric::CLIENT_ERRORS, "counter", "Errors reported by the Kafka client.", &self.client_errors),
            (metric::PARTITIONS, "gauge", "Kafka partitions assigned.", &self.partitions),
            (metric::REASSIGNMENTS, "counter", "Times the Kafka partitions were assigned again.", &self.reassignments),
            (metric::LAG, "gauge", "Kafka messages not yet committed to the store.", &self.lag),
        ];
        for (name, kind, help, value) in rows {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// The source id of a partition.
pub fn source_id(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

/// Encodes a stored position: the next offset to read.
pub fn encode_position(next_offset: u64) -> Vec<u8> {
    next_offset.to_le_bytes().to_vec()
}

/// Decodes a stored position; `None` when it is not one this module wrote.
pub fn decode_position(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Consumes the four topics into `store` until `shutdown` completes, then commits the
/// batch in flight and returns. It never returns because the broker is unreachable: it
/// logs and retries while the caller goes on serving. Dropping the future also stops
/// the consumer (without waiting for it).
pub async fn run_consumer(
    store: Arc<Store>,
    args: KafkaArgs,
    stats: Arc<KafkaStats>,
    clock: impl Fn() -> Instant + Send + 'static,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConsumerError> {
    let brokers = args.brokers.clone().filter(|b| !b.trim().is_empty()).ok_or(ConsumerError::NoBrokers)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    // A thread of its own, not one of tokio's blocking pool: it runs as long as the
    // process, and the pool is kept for queries (`serve --max-query-threads`).
    let (done, worker) = tokio::sync::oneshot::channel();
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("goatview-kafka".into())
            .spawn(move || {
                // Dropped unsent if the consumer panics.
                let _ = done.send(Worker::new(store, args, &brokers, stats, stop).and_then(|w| w.run(clock)));
            })
            .map_err(ConsumerError::Threads)?;
    }
    tokio::pin!(worker);
    tokio::select! {
        res = &mut worker => return res.map_err(|_| ConsumerError::Panicked)?,
        () = shutdown => {}
    }
    stop.store(true, Ordering::Relaxed);
    worker.await.map_err(|_| ConsumerError::Panicked)?
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Where one assigned partition stands.
struct Partition {
    topic: String,
    partition: i32,
    source: String,
    /// The next offset to read, as last committed to the store.
    next: i64,
}

/// A dead letter's copy for the DLQ topic.
struct DlqCopy {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    raw: Vec<u8>,
    reason: String,
}

/// Where a polled message came from, kept while it is decoded.
struct Polled {
    /// Index into `Worker::partitions`.
    partition: usize,
    offset: i64,
    /// The message's key, in its chunk's bytes.
    key: Option<Range<usize>>,
}

/// What one `gather` read.
struct Gathered {
    /// The valid events read.
    events: Window,
    /// The dead letters read (positions are added at commit).
    batch: Batch,
    dlq: Vec<DlqCopy>,
    /// The next offset of each partition read, by index into `Worker::partitions`.
    next: BTreeMap<usize, i64>,
}

/// Why assigning partitions failed.
enum RefreshError {
    /// The broker did not answer; retried with backoff.
    Kafka(KafkaError),
    /// A stored position could not be read; fatal like a failed commit.
    Store(StoreError),
}

impl From<KafkaError> for RefreshError {
    fn from(e: KafkaError) -> Self {
        RefreshError::Kafka(e)
    }
}

/// The synchronous consumer: owns the Kafka clients and runs on one blocking thread.
struct Worker {
    store: Arc<Store>,
    args: KafkaArgs,
    stats: Arc<KafkaStats>,
    stop: Arc<AtomicBool>,
    consumer: BaseConsumer<ConsumerCtx>,
    brokers: String,
    /// Created on the first dead letter, so that a healthy stream opens no producer.
    dlq: Option<ThreadedProducer<DlqCtx>>,
    /// Assigned partitions; few, so a linear search beats hashing a `(String, i32)`.
    partitions: Vec<Partition>,
    /// Committed next offsets by `(topic, partition)`, read by the statistics callback.
    committed: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// Partitions' end offsets, written by the statistics callback.
    ends: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// Set by the client context when the brokers became unreachable.
    disconnected: Arc<AtomicBool>,
    /// When the oldest batch committed but not yet durable was committed.
    unsynced_since: Option<WallClock>,
    /// A sync of the batches committed before it, running on a thread of its own while this
    /// one gathers the next batch (whose commit waits for it: redb has one writer).
    syncing: Option<std::thread::JoinHandle<Result<Duration, StoreError>>>,
    /// Decode what is polled on the machine's cores while this thread polls on.
    decoders: Decoders<Polled>,
    /// Since when gathering has read nothing while messages wait ([`Worker::watch_fetcher`]).
    starved_since: Option<WallClock>,
    /// How long a stall may last before the partitions are assigned again.
    stall_limit: Duration,
}

impl Worker {
    fn new(
        store: Arc<Store>,
        args: KafkaArgs,
        brokers: &str,
        stats: Arc<KafkaStats>,
        stop: Arc<AtomicBool>,
    ) -> Result<Worker, ConsumerError> {
        let committed = Arc::new(Mutex::new(HashMap::new()));
        let disconnected = Arc::new(AtomicBool::new(false));
        let ends = Arc::new(Mutex::new(HashMap::new()));
        let errors = Arc::new(ErrorLog::default());
        let consumer: BaseConsumer<ConsumerCtx> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &args.group_id)
            .set("client.id", "goatview")
            // Positions live in the store; Kafka's offsets are written for monitoring only.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string())
            // A full prefetch queue makes the fetcher wait this long (1 s by default)
            // before it asks again: a consumer reading a backlog faster would go idle.
            .set("fetch.queue.backoff.ms", "20")
            // A fetch with nothing to return waits this long (500 ms by default) on the
            // broker, and the metadata and offset requests sent on the same connection wait
            // behind it: four topics' metadata took 1.5 s at 500 ms, 0.3–0.6 s at 100 ms.
            .set("fetch.wait.max.ms", "100")
            // Reconnect within a second of the brokers' return, not up to 10 s later.
            .set("reconnect.backoff.max.ms", "1000")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(ConsumerCtx {
                stats: stats.clone(),
                disconnected: disconnected.clone(),
                committed: committed.clone(),
                ends: ends.clone(),
                errors,
            })?;
        Ok(Worker {
            store,
            args,
            stats,
            stop,
            consumer,
            brokers: brokers.to_owned(),
            dlq: None,
            partitions: Vec::new(),
            committed,
            ends,
            disconnected,
            unsynced_since: None,
            syncing: None,
            decoders: Decoders::per_core().map_err(ConsumerError::Threads)?,
            starved_since: None,
            stall_limit: FETCH_STALL,
        })
    }

    fn dlq_producer(&mut self) -> Result<&ThreadedProducer<DlqCtx>, KafkaError> {
        if self.dlq.is_none() {
            let producer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("client.id", "goatview-dlq")
                .set("acks", "all")
                .set("message.timeout.ms", DLQ_FLUSH_TIMEOUT.as_millis().to_string())
                .set_log_level(RDKafkaLogLevel::Warning)
                .create_with_context(DlqCtx { stats: self.stats.clone(), errors: Arc::new(ErrorLog::default()) })?;
            self.dlq = Some(producer);
        }
        Ok(self.dlq.as_ref().expect("just created"))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn disconnected(&self) -> bool {
        self.disconnected.load(Ordering::Relaxed)
    }

    /// Assigns every partition afresh at its stored position (see "After the connection
    /// ... was lost" in the module doc). Runs between batches, so `next` is what the
    /// store holds. A failure counts as disconnected, so it is tried again once metadata
    /// can be read.
    fn reassign_all(&mut self) {
        let assigned = (|| -> Result<(), KafkaError> {
            let mut tpl = TopicPartitionList::new();
            for p in &self.partitions {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))?;
            }
            self.consumer.incremental_unassign(&tpl)?;
            self.consumer.incremental_assign(&tpl)
        })();
        match assigned {
            Ok(()) => {
                self.stats.reassignments.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    partitions = self.partitions.len(),
                    "Kafka partitions assigned again at their stored positions."
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot assign Kafka partitions again; retrying.");
                self.disconnected.store(true, Ordering::Relaxed);
            }
        }
    }

    fn run(mut self, clock: impl Fn() -> Instant) -> Result<(), ConsumerError> {
        let refresh = Duration::from_millis(self.args.metadata_refresh_ms);
        let mut backoff = BACKOFF_MIN;
        let mut next_refresh = WallClock::now();
        // While disconnected, metadata is retried on the backoff, not the refresh period.
        let mut retry_at = WallClock::now();
        while !self.stopped() {
            // A sync that ended while the stream was idle is counted, or stops the consumer.
            if self.syncing.as_ref().is_some_and(|s| s.is_finished()) {
                self.finish_sync()?;
            }
            if self.sync_due().is_some_and(|due| WallClock::now() >= due) {
                self.start_sync()?;
            }
            let now = WallClock::now();
            if now >= next_refresh || (self.disconnected() && now >= retry_at) {
                match self.refresh_assignment() {
                    Ok(complete) => {
                        if backoff > BACKOFF_MIN {
                            tracing::info!("Kafka reachable again.");
                        }
                        if self.disconnected() {
                            // Serve what queued up while the brokers were away: their stale
                            // error reports, and messages fetched under the assignment about
                            // to be replaced (read again from the stored positions).
                            self.sleep_until(WallClock::now() + STALE_DRAIN);
                            self.disconnected.store(false, Ordering::Relaxed);
                            self.reassign_all();
                        }
                        backoff = BACKOFF_MIN;
                        // Missing topics are looked for again soon; otherwise, rarely.
                        next_refresh =
                            WallClock::now() + if complete { refresh } else { refresh.min(MISSING_TOPIC_RECHECK) };
                    }
                    Err(RefreshError::Store(e)) => return Err(e.into()),
                    Err(RefreshError::Kafka(e)) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Kafka unreachable; retrying.");
                        next_refresh = WallClock::now() + backoff;
                        retry_at = next_refresh;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            if self.partitions.is_empty() {
                self.sleep_until(self.wake_at(next_refresh));
                continue;
            }
            if self.disconnected() {
                self.sleep_until(self.wake_at(retry_at.max(WallClock::now() + POLL_SLICE).min(next_refresh)));
                continue;
            }
            let gathered = self.gather(&clock, self.wake_at(next_refresh));
            let starved = gathered.events.read() == 0 && gathered.batch.is_empty();
            if !starved {
                self.commit(gathered)?;
            }
            self.watch_fetcher(starved);
        }
        self.finish_sync()?;
        if self.unsynced_since.is_some() {
            self.start_sync()?;
            self.finish_sync()?;
        }
        tracing::info!("Kafka consumer stopped.");
        Ok(())
    }

    /// Assigns every partition of the topics not assigned yet, at its stored position.
    /// Returns whether all four topics were found.
    fn refresh_assignment(&mut self) -> Result<bool, RefreshError> {
        let mut found = Vec::new();
        let mut complete = true;
        for topic in self.args.topics.all() {
            let md = self.consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
            for t in md.topics() {
                if let Some(err) = t.error() {
                    complete = false;
                    tracing::warn!(topic, error = ?err, "Kafka topic unavailable; will look again.");
                    continue;
                }
                found.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
            }
        }
        let have: HashSet<(&str, i32)> = self.partitions.iter().map(|p| (p.topic.as_str(), p.partition)).collect();
        let new: Vec<(String, i32)> = found.into_iter().filter(|(t, p)| !have.contains(&(t.as_str(), *p))).collect();
        if new.is_empty() {
            return Ok(complete);
        }
        let mut tpl = TopicPartitionList::new();
        let mut added = Vec::new();
        for (topic, partition) in new {
            let source = source_id(&topic, partition);
            let stored = self.store.position(&source).map_err(RefreshError::Store)?;
            let next = match stored.as_deref().map(decode_position) {
                Some(Some(n)) => Some(n as i64),
                Some(None) => {
                    tracing::warn!(source = %source, "Unreadable stored position; reading the partition from the beginning.");
                    None
                }
                None => None,
            };
            tpl.add_partition_offset(&topic, partition, next.map_or(Offset::Beginning, Offset::Offset))?;
            tracing::info!(source = %source, next_offset = ?next, "Assigning Kafka partition.");
            added.push(Partition { topic, partition, source, next: next.unwrap_or(0) });
        }
        self.consumer.incremental_assign(&tpl)?;
        {
            let mut committed = lock(&self.committed);
            for p in &added {
                committed.insert((p.topic.clone(), p.partition), p.next);
            }
        }
        // The end of each new partition now, so that a consumer starting behind reads its
        // backlog in large batches at once, not only from the first statistics on.
        if self.args.catches_up() {
            for p in &added {
                match self.consumer.fetch_watermarks(&p.topic, p.partition, END_TIMEOUT) {
                    Ok((_, high)) => _ = lock(&self.ends).insert((p.topic.clone(), p.partition), high),
                    Err(e) => tracing::debug!(source = %p.source, error = %e, "Cannot read a partition's end yet."),
                }
            }
        }
        self.partitions.extend(added);
        self.stats.partitions.store(self.partitions.len() as u64, Ordering::Relaxed);
        Ok(complete)
    }

    /// Polls until the batch is full, no message has come for [`IDLE_GAP`], `batch_max_ms`
    /// have passed since its first message, `wake_at` comes before any message (a metadata
    /// refresh or a sync is due) or a stop is requested. So a consumer that keeps up
    /// commits each event within milliseconds, and one that is behind (its queue never
    /// runs dry) commits full batches.
    ///
    /// A batch that is full or out of time goes on while a full batch or more is still
    /// waiting in the broker ([`Worker::behind`]), until it holds `catch_up_max_messages`
    /// (superseded scrapes are dropped as they come, so it may read many more), through
    /// pauses of up to [`CATCH_UP_STALL`] in what the fetcher delivers: a consumer that
    /// restarts behind, or falls behind, reads its backlog in large windows, where most
    /// scrapes of a video supersede one another and are never applied.
    fn gather(&mut self, clock: &impl Fn() -> Instant, wake_at: WallClock) -> Gathered {
        let max_messages = self.args.batch_max_messages as usize;
        let catch_up_max = self.args.catch_up_max_messages as usize;
        let mut catching_up = false;
        let max_bytes = self.args.max_message_bytes as usize;
        let window = Duration::from_millis(self.args.batch_max_ms);
        let mut events = Window::default();
        let mut batch = Batch::default();
        let mut dlq = Vec::new();
        // Next offset of each partition read in this batch, by index into `partitions`.
        let mut next: BTreeMap<usize, i64> = BTreeMap::new();
        let mut deadline: Option<WallClock> = None;
        let mut now_instant: Option<Instant> = None;
        let mut error_pause = Duration::from_millis(50);
        // Messages polled, not yet sent to be decoded.
        let mut polled: Chunk<Polled> = Chunk::default();
        // Since when no message has come while catching up.
        let mut stalled_since: Option<WallClock> = None;
        loop {
            let undecoded = self.decoders.in_flight() + polled.len();
            let read = events.read() as usize + batch.dead_letters.len() + undecoded;
            // What the batch holds in memory: superseded scrapes are dropped as they come.
            let held = events.held() + batch.dead_letters.len() + undecoded;
            if self.stopped() {
                break;
            }
            let now = WallClock::now();
            let full = if catching_up { held >= catch_up_max } else { read >= max_messages };
            if full || deadline.is_some_and(|d| now >= d) {
                if held < catch_up_max && self.behind(&next) {
                    catching_up = true;
                    deadline = Some(now + window);
                    continue;
                }
                break;
            }
            if read == 0 && self.disconnected() {
                break; // the run loop waits for the brokers, then assigns afresh
            }
            let until = deadline.unwrap_or(wake_at);
            if now >= until {
                break;
            }
            // Catching up, a pause in what the fetcher delivers does not mean caught up.
            let slice = if read == 0 || catching_up { POLL_SLICE } else { IDLE_GAP };
            let msg = match self.consumer.poll(slice.min(until - now)) {
                // Catching up, the fetcher may pause while the brokers serve the backlog.
                None if catching_up
                    && self.behind(&next)
                    && stalled_since.get_or_insert(now).elapsed() < CATCH_UP_STALL =>
                {
                    continue;
                }
                None if read > 0 => break,
                None => continue,
                Some(Err(e)) => {
                    self.consumer.context().errors.report(&self.stats, "consumer", &e, "poll");
                    std::thread::sleep(error_pause);
                    error_pause = (error_pause * 2).min(Duration::from_secs(2));
                    continue;
                }
                Some(Ok(m)) => m,
            };
            stalled_since = None;
            error_pause = Duration::from_millis(50);
            self.stats.consumed.fetch_add(1, Ordering::Relaxed);
            deadline.get_or_insert(now + window);
            let Some(idx) =
                self.partitions.iter().position(|p| p.topic == msg.topic() && p.partition == msg.partition())
            else {
                continue; // not ours; cannot happen with manual assignment
            };
            let offset = msg.offset();
            let at = *now_instant.get_or_insert_with(clock);
            let payload = msg.payload().unwrap_or_default();
            let refused = (payload.len() > max_bytes).then(|| {
                format!("{REASON_OVERSIZE}: {} bytes, limit {max_bytes} (raw truncated to the limit)", payload.len())
            });
            let key = msg.key().map(|k| polled.keep(k));
            polled.push(Polled { partition: idx, offset, key }, &payload[..payload.len().min(max_bytes)], refused);
            next.insert(idx, offset + 1);
            if polled.len() >= CHUNK_MESSAGES
                && let Some(decoded) = self.decoders.send(std::mem::take(&mut polled))
            {
                self.take_decoded(decoded, &mut events, &mut batch, &mut dlq, at);
            }
        }
        let at = now_instant.unwrap_or_else(clock);
        while let Some(decoded) = self.decoders.oldest() {
            self.take_decoded(decoded, &mut events, &mut batch, &mut dlq, at);
        }
        if !polled.is_empty() {
            self.take_decoded(polled.decode(), &mut events, &mut batch, &mut dlq, at);
        }
        batch.positions =
            next.iter().map(|(&idx, &n)| (self.partitions[idx].source.clone(), encode_position(n as u64))).collect();
        Gathered { events, batch, dlq, next }
    }

    /// Takes decoded messages into the batch: events into the window, the others as dead
    /// letters with their DLQ copies. The events superseded go back to the decoding
    /// threads to be dropped.
    fn take_decoded(
        &mut self,
        Decoded { chunk, events: decoded }: Decoded<Polled>,
        events: &mut Window,
        batch: &mut Batch,
        dlq: &mut Vec<DlqCopy>,
        at: Instant,
    ) {
        let mut superseded = Vec::new();
        for ((m, payload, _), result) in chunk.messages.into_iter().zip(decoded) {
            match result {
                Ok(ev) => superseded.extend(events.push(ev)),
                Err(reason) => {
                    let p = &self.partitions[m.partition];
                    let raw = &chunk.bytes[payload];
                    dlq.push(DlqCopy {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        offset: m.offset,
                        key: m.key.map(|k| chunk.bytes[k].to_vec()),
                        raw: raw.to_vec(),
                        reason: reason.clone(),
                    });
                    push_dead_letter(batch, &p.source, m.offset as u64, raw, reason, at);
                }
            }
        }
        self.decoders.discard(superseded);
    }

    /// Whether at least `batch_max_messages` messages wait in the broker beyond what this
    /// batch has read (`next`, else the stored positions), by the partitions' end offsets
    /// in the latest statistics (or as read when assigned). Those are at most
    /// [`STATS_INTERVAL_MS`] old and ends only grow, so this errs toward "caught up".
    /// Asking the broker here instead (`fetch_watermarks`) blocked a busy consumer for up to
    /// its timeout.
    fn behind(&self, next: &BTreeMap<usize, i64>) -> bool {
        self.args.catches_up() && self.waiting(next) >= self.args.batch_max_messages
    }

    /// Messages waiting in the broker beyond `next` (else the stored positions), by the
    /// partitions' end offsets in the latest statistics.
    fn waiting(&self, next: &BTreeMap<usize, i64>) -> u64 {
        let ends = lock(&self.ends);
        let waiting: i64 = (self.partitions.iter().enumerate())
            .filter_map(|(idx, p)| {
                let end = *ends.get(&(p.topic.clone(), p.partition))?;
                Some(end.saturating_sub(next.get(&idx).copied().unwrap_or(p.next)).max(0))
            })
            .sum();
        waiting as u64
    }

    /// Assigns every partition again when the fetcher has delivered nothing for
    /// [`FETCH_STALL`] while messages wait in the broker: after a broker restart the
    /// fetcher can stay fenced without librdkafka ever reporting the brokers down (see
    /// "After the connection ... was lost" in the module doc). Called after a gather that
    /// read nothing (`starved`) or something.
    fn watch_fetcher(&mut self, starved: bool) {
        if !starved {
            self.stall_limit = FETCH_STALL;
        }
        let waiting = if starved && !self.disconnected() { self.waiting(&BTreeMap::new()) } else { 0 };
        if waiting == 0 {
            self.starved_since = None;
            return;
        }
        let since = *self.starved_since.get_or_insert_with(WallClock::now);
        if since.elapsed() < self.stall_limit {
            return;
        }
        self.starved_since = None;
        self.stall_limit = (self.stall_limit * 2).min(FETCH_STALL_MAX);
        tracing::warn!(
            waiting,
            stalled_secs = since.elapsed().as_secs(),
            "Kafka delivered nothing while messages wait; assigning the partitions again."
        );
        self.reassign_all();
    }

    /// When the batches committed but not yet durable must be synced, if there are any.
    fn sync_due(&self) -> Option<WallClock> {
        self.unsynced_since.map(|t| t + Duration::from_millis(self.args.sync_ms))
    }

    /// `at`, or earlier if a sync is due before it: when an idle wait must end.
    fn wake_at(&self, at: WallClock) -> WallClock {
        self.sync_due().map_or(at, |due| at.min(due))
    }

    /// Starts making every batch committed so far durable, on a thread of its own: a sync
    /// writes out what the batches since the last one changed (100–200 ms a second at
    /// 20,000 events/s), and gathering the next batch need not wait for it.
    fn start_sync(&mut self) -> Result<(), ConsumerError> {
        self.finish_sync()?;
        let store = Arc::clone(&self.store);
        let started = WallClock::now();
        let syncing = std::thread::Builder::new()
            .name("goatview-sync".into())
            .spawn(move || store.sync().map(|()| started.elapsed()))
            .map_err(ConsumerError::Threads)?;
        self.syncing = Some(syncing);
        self.unsynced_since = None;
        Ok(())
    }

    /// Waits for the sync started last, if any; its failure stops the consumer.
    fn finish_sync(&mut self) -> Result<(), ConsumerError> {
        let Some(syncing) = self.syncing.take() else { return Ok(()) };
        match syncing.join() {
            Ok(Ok(took)) => {
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(sync_ms = took.as_millis() as u64, "Kafka batches made durable.");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Cannot sync the store; stopping the consumer.");
                Err(e.into())
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Publishes DLQ copies, commits the batch to the store (durably when the consumer
    /// stops or `--kafka-sync-ms` is 0), starts a sync if one is due, then reports
    /// progress. A batch read while catching up writes its changed rows every
    /// `--kafka-batch-max-messages` events.
    fn commit(&mut self, Gathered { mut events, mut batch, dlq, next }: Gathered) -> Result<(), ConsumerError> {
        if !dlq.is_empty() {
            self.publish_dlq(&dlq);
        }
        // The commit would wait for a running sync anyway; this reports how it ended.
        self.finish_sync()?;
        let started = WallClock::now();
        events.take_into(&mut batch);
        self.unsynced_since.get_or_insert(started);
        // `--kafka-sync-ms 0` asks that a batch be durable as it becomes visible.
        let durable = self.stopped() || self.args.sync_ms == 0;
        let committed = self.store.commit_window(&batch, self.args.batch_max_messages as usize, durable);
        if let Err(e) = committed {
            tracing::error!(error = %e, messages = batch.len(), "Cannot commit a Kafka batch; stopping the consumer.");
            return Err(e.into());
        }
        if durable {
            self.unsynced_since = None;
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        } else if self.sync_due().is_some_and(|due| WallClock::now() >= due) {
            self.start_sync()?;
        }
        let (events, dead) = (batch.events.len() as u64 + batch.other_events, batch.dead_letters.len() as u64);
        self.stats.applied.fetch_add(events, Ordering::Relaxed);
        self.stats.dead_letters.fetch_add(dead, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            events,
            dead_letters = dead,
            durable,
            commit_ms = started.elapsed().as_millis() as u64,
            "Kafka batch committed."
        );

        // Monitoring only: Kafka's committed offsets are never read back.
        let mut tpl = TopicPartitionList::new();
        let mut committed = lock(&self.committed);
        for (idx, n) in next {
            let p = &mut self.partitions[idx];
            p.next = n;
            committed.insert((p.topic.clone(), p.partition), n);
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(n));
        }
        drop(committed);
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "Cannot commit monitoring offsets to Kafka.");
        }
        Ok(())
    }

    /// Sends DLQ copies and waits (bounded) until the broker confirms them.
    fn publish_dlq(&mut self, copies: &[DlqCopy]) {
        let dlq_topics: Vec<String> = copies.iter().map(|c| self.args.dlq_topic(&c.topic)).collect();
        let stats = self.stats.clone();
        let producer = match self.dlq_producer() {
            Ok(p) => p,
            Err(e) => {
                stats.dlq_failed.fetch_add(copies.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, copies = copies.len(), "Cannot create the DLQ producer; the dead letters stay in the store.");
                return;
            }
        };
        for (c, dlq_topic) in copies.iter().zip(&dlq_topics) {
            let (partition, offset) = (c.partition.to_string(), c.offset.to_string());
            let headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header { key: HEADER_REASON, value: Some(c.reason.as_str()) })
                .insert(Header { key: HEADER_TOPIC, value: Some(c.topic.as_str()) })
                .insert(Header { key: HEADER_PARTITION, value: Some(partition.as_str()) })
                .insert(Header { key: HEADER_OFFSET, value: Some(offset.as_str()) });
            let mut record = BaseRecord::to(dlq_topic).payload(&c.raw).headers(headers);
            if let Some(key) = &c.key {
                record = record.key(key);
            }
            let mut attempts = 0;
            while let Err((e, back)) = producer.send(record) {
                attempts += 1;
                if attempts > 100 {
                    stats.dlq_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic = %dlq_topic, source_offset = c.offset, error = %e, "Cannot queue a DLQ copy; the dead letter stays in the store.");
                    break;
                }
                record = back;
                std::thread::sleep(Duration::from_millis(10)); // the queue is full; let it drain
            }
        }
        if let Err(e) = producer.flush(DLQ_FLUSH_TIMEOUT) {
            tracing::warn!(error = %e, copies = copies.len(), "DLQ copies not confirmed; the dead letters stay in the store.");
        }
    }

    fn sleep_until(&self, when: WallClock) {
        while !self.stopped() {
            let now = WallClock::now();
            if now >= when {
                return;
            }
            // Serve client callbacks (errors, statistics) while idle; messages polled here
            // are dropped, so callers reassign or have nothing assigned.
            let _ = self.consumer.poll(POLL_SLICE.min(when - now));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold plain numbers; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often the same client error is logged as a warning; repeats in between are
/// debug lines (librdkafka reports an unreachable broker on every reconnect attempt).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Client errors, logged as warnings at most once per [`ERROR_LOG_INTERVAL`] each.
#[derive(Default)]
struct ErrorLog {
    /// When each kind of error was last a warning; few kinds, so a list.
    last_warned: Mutex<Vec<(Option<RDKafkaErrorCode>, WallClock)>>,
}

impl ErrorLog {
    fn report(&self, stats: &KafkaStats, client: &'static str, error: &KafkaError, reason: &str) {
        stats.client_errors.fetch_add(1, Ordering::Relaxed);
        let now = WallClock::now();
        let mut last = lock(&self.last_warned);
        let code = error.rdkafka_error_code();
        let seen = last.iter().position(|(c, _)| *c == code);
        if seen.is_some_and(|i| now.duration_since(last[i].1) < ERROR_LOG_INTERVAL) {
            tracing::debug!(client, error = %error, reason, "Kafka client error; retrying.");
            return;
        }
        match seen {
            Some(i) => last[i].1 = now,
            None => last.push((code, now)),
        }
        tracing::warn!(client, error = %error, reason, "Kafka client error; retrying.");
    }
}

/// Logs client events with fields and keeps the error and lag figures.
struct ConsumerCtx {
    stats: Arc<KafkaStats>,
    /// Set when the connection to the brokers is lost; cleared by a fresh assignment.
    disconnected: Arc<AtomicBool>,
    committed: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// End offset of each partition as of the latest statistics ([`STATS_INTERVAL_MS`]).
    ends: Arc<Mutex<HashMap<(String, i32), i64>>>,
    errors: Arc<ErrorLog>,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_client(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        ) {
            self.disconnected.store(true, Ordering::Relaxed);
        }
        self.errors.report(&self.stats, "consumer", &error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let committed = lock(&self.committed);
        let mut ends = lock(&self.ends);
        let mut lag = 0u64;
        for t in statistics.topics.values() {
            for p in t.partitions.values() {
                // Partition -1 is librdkafka's internal "unassigned" partition.
                let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
                if p.partition < 0 || end < 0 {
                    continue;
                }
                ends.insert((t.topic.clone(), p.partition), end);
                let next = committed.get(&(t.topic.clone(), p.partition)).copied().unwrap_or(0).max(p.lo_offset);
                lag += end.saturating_sub(next).max(0) as u64;
            }
        }
        self.stats.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for ConsumerCtx {}

/// Counts DLQ deliveries.
struct DlqCtx {
    stats: Arc<KafkaStats>,
    errors: Arc<ErrorLog>,
}

impl ClientContext for DlqCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_client(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.report(&self.stats, "dlq_producer", &error, reason);
    }
}

impl ProducerContext for DlqCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        match result {
            Ok(_) => {
                self.stats.dlq_published.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.stats.dlq_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = m.topic(), error = %e, "DLQ copy not delivered; the dead letter stays in the store.");
            }
        }
    }
}

/// librdkafka's own log lines, as `tracing` events with target `librdkafka`. Connection
/// failures (facility `FAIL`) are debug lines: the error callback reports them.
pub(crate) fn log_client(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if facility == "FAIL" {
        tracing::debug!(target: "librdkafka", facility, "{message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn args_parse_with_defaults() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["t", "--brokers", "k:9092", "--topic-projects", "p2"]).unwrap();
        assert_eq!(cli.kafka.brokers.as_deref(), Some("k:9092"));
        assert_eq!(cli.kafka.topics.projects, "p2");
        assert_eq!(cli.kafka.topics.video_scrape, "video-scrape");
        assert_eq!(cli.kafka.dlq_topic("x"), "x.dlq");
        assert_eq!(
            (cli.kafka.batch_max_messages, cli.kafka.batch_max_ms, cli.kafka.max_message_bytes),
            (50_000, 200, 1 << 20)
        );
        assert_eq!(cli.kafka.catch_up_max_messages, CATCH_UP_MAX_MESSAGES);
        assert!(cli.kafka.catches_up());
        assert_eq!(cli.kafka.group_id, "goatview");
    }

    #[test]
    fn positions_round_trip() {
        assert_eq!(decode_position(&encode_position(12_345)), Some(12_345));
        assert_eq!(decode_position(b"short"), None);
    }

    #[test]
    fn types_route_by_prefix() {
        let t = Topics::default();
        assert_eq!(t.for_type("video.scraped"), Some("video-scrape"));
        assert_eq!(t.for_type("creator.goal_set"), Some("creator-stats"));
        assert_eq!(t.for_type("campaign.item_added"), Some("campaign-membership"));
        assert_eq!(t.for_type("project.deleted"), Some("projects"));
        assert_eq!(t.for_type("api_key.issued"), Some("projects"));
        assert_eq!(t.for_type("user.created"), None);
    }
}
