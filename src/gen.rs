//! Deterministic, seeded generator of realistic goatview event logs.
//!
//! Every line produced is one Kafka message value / recorded-log line as defined in
//! contract §2.1. The same [`GenConfig`] always produces the same bytes, on every
//! platform and forever: randomness comes from an in-module SplitMix64/xoshiro256**
//! PRNG, every entity is derived from a hash of `(seed, kind, project, index)`, and
//! only IEEE-exact float operations (`+ - * /`, `sqrt`) are used (no `exp`/`ln`/`powf`,
//! whose last bit may differ between libm versions).
//!
//! # What is in a log
//!
//! * Orgs, projects (`project.upserted`) in the zones of [`ZONES`]; one project is
//!   renamed (upserted twice), one deleted and later upserted again, one deleted for
//!   good, one never upserted (its creators and videos exist, the project does not).
//! * Creators with Zipf-like sizes; `creator.snapshot` histories with growing (some
//!   shrinking) follower counts, tied `occurred_at` pairs, late first snapshots (after
//!   the creator's videos), creators removed for good or removed and re-snapshotted,
//!   creators never snapshotted (their videos are invisible), handle renames.
//! * Videos: power-law views (Pareto, index 4/3) growing over repeated scrapes;
//!   `posted_at` with a daily and weekly rhythm in the project's zone, 88% in the
//!   120 days before `now`, the rest up to 400 days back; rich projects also have posts
//!   around every DST change of their zone in that span (local 00:30–03:30, both sides
//!   of ambiguous hours) and around local and UTC midnight; equal `posted_at` and equal
//!   view counts (twins); creator moves, `posted_at` corrections, retitles, null/absent
//!   titles and thumbnails, zero views, removals with and without later re-scrapes.
//! * Goals (posts/views; past, current, future, single-day; replaced; removed;
//!   on an untracked creator), campaigns (depth-3 nesting, a 2-cycle, a self-loop,
//!   rename, deletion, membership before the campaign exists, a never-created nested
//!   campaign, item added then removed, a foreign video id), API keys (valid, future
//!   expiry, expired, revoked; an org with keys but no projects on some scales).
//! * Disorder: random v4 event ids (some uppercase), some entity ids uppercase,
//!   timestamps with non-`Z` offsets and 1/3/6/9-digit fractions, Python-style JSON
//!   (`", "`, `": "`, `\uXXXX` escapes), reordered fields, unknown extra fields,
//!   locally shuffled order (each line moves at most `shuffle_window` positions),
//!   ~2% exact duplicate lines later in the file, ~0.1% invalid lines (dead letters,
//!   every kind of [`INVALID_KINDS`] at least once from Test upwards) and a few blank
//!   lines.
//!
//! Everything is relative to [`GenConfig::now`] (default [`DEFAULT_NOW`]): replay and
//! serve the log with `GOATVIEW_NOW` set to the same instant, or keys expire and
//! "today" moves. DST posts cover the zone's changes in the 400 days before `now`
//! (with the default, America/New_York's 2025-11-02, 2026-03-08 and 2026-11-01).
//! [`ProjectInfo::landmarks`] names the ids of the special cases for tests.
//!
//! `gen` is a reserved word in edition 2024, so the module path is `goatview::r#gen`.
//!
//! Logical events are produced in global `occurred_at` order by a k-way merge over
//! per-entity cursors, so memory is `O(videos)` at ~24 bytes per video plus small
//! per-project tables; nothing else grows with the output (scale L: 10M+ lines).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::str::FromStr;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

/// The default `now` of [`GenConfig`].
pub const DEFAULT_NOW: &str = "2026-11-20T12:00:00Z";

/// The zones the rich projects cycle through (Test and S use each once).
pub const ZONES: [&str; 6] =
    ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "UTC", "Australia/Lord_Howe"];

/// The kinds of invalid lines, cycled in order.
pub const INVALID_KINDS: [&str; 24] = [
    "not_json_truncated",
    "unknown_type",
    "missing_video_id",
    "count_as_string",
    "negative_count",
    "fractional_count",
    "exponent_count",
    "unknown_timezone",
    "empty_handle",
    "malformed_uuid",
    "timestamp_without_offset",
    "goal_ends_before_start",
    "count_overflow",
    "unknown_item_type",
    "top_level_array",
    "type_not_string",
    "null_required_field",
    "goal_bad_metric",
    "goal_zero_target",
    "bad_key_sha256",
    "missing_event_id",
    "impossible_date",
    "trailing_garbage",
    "bool_count",
];

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;
const NONE8: u8 = u8::MAX;
const NONE16: u16 = u16::MAX;
const MAX_SCRAPES: usize = 16;
const RECENT_DAYS: i64 = 120;
const OLD_DAYS: i64 = 400;
const TRACK_DAYS: i64 = 90;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Size presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scale {
    /// ~200 lines: 2 data projects (+2 micro projects for the deleted / never-upserted cases).
    Tiny,
    /// ~15k lines: 6 rich projects, one per zone of [`ZONES`] (+2 micro).
    Test,
    /// ~50k lines: 3 realistic projects (+2 micro).
    Demo,
    /// ~100k lines: 6 rich projects (+2 micro).
    S,
    /// ~1M lines: one 100k-video project, 5 mid-size, 100 small.
    M,
    /// ~10.3M lines: one project with 5,000 creators, 1M videos, 10M scrapes,
    /// 200k snapshots, 200 campaigns, 20k memberships; 500 small projects.
    L,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Tiny => "tiny",
            Scale::Test => "test",
            Scale::Demo => "demo",
            Scale::S => "s",
            Scale::M => "m",
            Scale::L => "l",
        }
    }
}

impl FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiny" => Ok(Scale::Tiny),
            "test" => Ok(Scale::Test),
            "demo" => Ok(Scale::Demo),
            "s" => Ok(Scale::S),
            "m" => Ok(Scale::M),
            "l" => Ok(Scale::L),
            other => Err(format!("unknown scale {other:?} (expected tiny, test, demo, s, m or l)")),
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Generator settings. Everything but `seed`, `scale` and `now` is a knob with a
/// sensible default; `messy: false, duplicate_rate: 0.0, invalid_lines: false,
/// shuffle_window: Some(0)` gives a clean, chronological log.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub scale: Scale,
    /// The generation instant: every `occurred_at` and `posted_at` is before it.
    pub now: DateTime<Utc>,
    /// Max positions a line moves from its chronological place (`None` = the scale's default).
    pub shuffle_window: Option<usize>,
    /// Fraction of valid lines repeated verbatim at a later position.
    pub duplicate_rate: f64,
    /// Emit dead-letter lines (~0.1%) and a few blank lines.
    pub invalid_lines: bool,
    /// Offsets, fractions, uppercase ids, Python-style JSON, reordered and extra fields.
    pub messy: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            scale: Scale::Test,
            now: default_now(),
            shuffle_window: None,
            duplicate_rate: 0.02,
            invalid_lines: true,
            messy: true,
        }
    }
}

impl GenConfig {
    pub fn new(seed: u64, scale: Scale) -> Self {
        GenConfig { seed, scale, ..Default::default() }
    }
}

/// [`DEFAULT_NOW`] as an instant.
pub fn default_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(DEFAULT_NOW).expect("valid DEFAULT_NOW").to_utc()
}

/// A usable (issued, not revoked, not expired) API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoKey {
    /// The secret: `gv_` + 32 lowercase hex digits.
    pub key: String,
    pub key_id: String,
    pub org_id: String,
    /// The org's visible projects (lowercase UUIDs).
    pub project_ids: Vec<String>,
}

/// Final state of a project in the generated log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectStatus {
    /// Upserted (possibly deleted and upserted again): readable.
    Visible,
    /// Upserted, later deleted for good: 404.
    Deleted,
    /// Data exists but no `project.upserted` ever: 404.
    NeverUpserted,
}

/// One generated project, with the ids of its special cases (for tests).
#[derive(Clone, Debug)]
pub struct ProjectInfo {
    pub project_id: String,
    pub org_id: String,
    /// The name of the winning `project.upserted`.
    pub name: String,
    pub timezone: String,
    pub status: ProjectStatus,
    pub creators: u32,
    pub videos: u32,
    /// Special-case entity ids, e.g. `"campaign.cycle_a"` or `"video.removed_for_good"`
    /// (lowercase UUIDs). Only rich projects have them.
    pub landmarks: BTreeMap<&'static str, String>,
}

/// Counts of what was written.
#[derive(Clone, Debug, Default)]
pub struct GenStats {
    /// All lines written (events + duplicates + invalid + blank).
    pub lines: u64,
    /// Distinct valid events.
    pub events: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub blank: u64,
    /// Distinct valid events per `type`.
    pub by_type: BTreeMap<&'static str, u64>,
    pub api_keys: Vec<DemoKey>,
    pub projects: Vec<ProjectInfo>,
}

/// A whole log in memory.
#[derive(Clone, Debug)]
pub struct Generated {
    pub lines: Vec<String>,
    pub api_keys: Vec<DemoKey>,
    pub projects: Vec<ProjectInfo>,
    pub stats: GenStats,
}

/// Generates a whole log in memory (meant for Tiny/Test/Demo/S).
pub fn generate(cfg: &GenConfig) -> Generated {
    let mut sink = VecSink(Vec::new());
    let stats = run(cfg, &mut sink).expect("in-memory sink cannot fail");
    Generated { lines: sink.0, api_keys: stats.api_keys.clone(), projects: stats.projects.clone(), stats }
}

/// Streams a log as JSON Lines (each line ends with `\n`) with bounded memory.
pub fn generate_to<W: Write>(cfg: &GenConfig, out: W) -> io::Result<GenStats> {
    let mut sink = WriteSink(io::BufWriter::with_capacity(1 << 20, out));
    let stats = run(cfg, &mut sink)?;
    sink.0.flush()?;
    Ok(stats)
}

const T_KEY_REVOKED: usize = 13;
/// The event types, in contract order.
pub const EVENT_TYPES: [&str; 14] = [
    "video.scraped",
    "video.removed",
    "creator.snapshot",
    "creator.removed",
    "creator.goal_set",
    "creator.goal_removed",
    "campaign.upserted",
    "campaign.deleted",
    "campaign.item_added",
    "campaign.item_removed",
    "project.upserted",
    "project.deleted",
    "api_key.issued",
    "api_key.revoked",
];

// ---------------------------------------------------------------------------
// PRNG and hashing
// ---------------------------------------------------------------------------

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of `(seed, tag, a, b)`.
fn hash4(seed: u64, tag: u64, a: u64, b: u64) -> u64 {
    let mut s = seed ^ tag.wrapping_mul(0xA24B_AED4_963E_E407);
    let x = splitmix(&mut s);
    let mut s = x ^ a.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    let y = splitmix(&mut s);
    let mut s = y ^ b.wrapping_mul(0xC13F_A9A9_02A6_328F);
    splitmix(&mut s)
}

/// xoshiro256** seeded by SplitMix64.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [splitmix(&mut sm), splitmix(&mut sm), splitmix(&mut sm), splitmix(&mut sm)];
        Rng { s }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [lo, hi] (inclusive).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn uuid(&mut self) -> u128 {
        v4(self.next_u64(), self.next_u64())
    }
}

fn v4(hi: u64, lo: u64) -> u128 {
    let mut x = ((hi as u128) << 64) | lo as u128;
    x &= !(0xF_u128 << 76);
    x |= 0x4_u128 << 76;
    x &= !(0x3_u128 << 62);
    x |= 0x2_u128 << 62;
    x
}

/// Rounds to a whole second 90% of the time.
fn sec(t: i64, r: &mut Rng) -> i64 {
    if r.chance(0.9) { t - t.rem_euclid(1000) } else { t }
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

// Hash tags.
const T_ORG: u64 = 1;
const T_PROJECT: u64 = 2;
const T_CREATOR: u64 = 3;
const T_VIDEO: u64 = 4;
const T_CAMPAIGN: u64 = 5;
const T_GOAL: u64 = 6;
const T_KEY: u64 = 7;
const T_VPLAN: u64 = 8;
const T_VFLAGS: u64 = 9;
const T_CPLAN: u64 = 10;
const T_SNAPJ: u64 = 11;
const T_TWIN: u64 = 12;
const T_KEYTEXT: u64 = 13;
const T_STREAM: u64 = 14;
const T_EMIT: u64 = 15;
const T_PROJPLAN: u64 = 16;
const T_MISC: u64 = 17;
const T_VNUM: u64 = 18;
const T_TEXT: u64 = 19;

// ---------------------------------------------------------------------------
// Scale presets
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Normal,
    Renamed,
    DeletedThenRestored,
    DeletedForGood,
    NeverUpserted,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    tz: &'static str,
    org: u32,
    creators: u32,
    videos: u32,
    scrapes: (u8, u8),
    snaps: (u16, u16),
    campaigns: u32,
    memberships: u32,
    goals: u32,
    role: Role,
    rich: bool,
    extreme: bool,
}

#[allow(clippy::too_many_arguments)]
fn rich(
    tz: &'static str,
    org: u32,
    creators: u32,
    videos: u32,
    scrapes: (u8, u8),
    snaps: (u16, u16),
    campaigns: u32,
    memberships: u32,
    goals: u32,
    role: Role,
) -> Spec {
    Spec { tz, org, creators, videos, scrapes, snaps, campaigns, memberships, goals, role, rich: true, extreme: false }
}

fn small(tz: &'static str, org: u32, creators: u32, videos: u32) -> Spec {
    Spec {
        tz,
        org,
        creators,
        videos,
        scrapes: (2, 4),
        snaps: (2, 5),
        campaigns: 2,
        memberships: 6,
        goals: 1,
        role: Role::Normal,
        rich: false,
        extreme: false,
    }
}

fn aux(tz: &'static str, org: u32, role: Role) -> Spec {
    Spec {
        tz,
        org,
        creators: 2,
        videos: 5,
        scrapes: (1, 2),
        snaps: (1, 2),
        campaigns: 1,
        memberships: 2,
        goals: 1,
        role,
        rich: false,
        extreme: false,
    }
}

struct Layout {
    specs: Vec<Spec>,
    /// Orgs that get API keys but no project.
    key_only_orgs: u32,
    window: usize,
    dup_window: u64,
    min_invalid: u64,
    blank_min: u64,
}

fn layout(scale: Scale) -> Layout {
    use Role::*;
    let [ny, berlin, kolkata, kathmandu, utc, lord_howe] = ZONES;
    let mut specs = Vec::new();
    let (key_only_orgs, window, dup_window, min_invalid, blank_min);
    match scale {
        Scale::Tiny => {
            specs.push(rich(ny, 0, 6, 30, (2, 4), (2, 4), 10, 14, 5, Renamed));
            let mut p1 = small(kolkata, 0, 3, 8);
            p1.scrapes = (1, 3);
            p1.snaps = (1, 3);
            p1.role = DeletedThenRestored;
            specs.push(p1);
            key_only_orgs = 0;
            window = 8;
            dup_window = 400;
            min_invalid = 3;
            blank_min = 0;
        }
        Scale::Test => {
            specs.push(rich(ny, 0, 80, 1100, (2, 6), (4, 10), 14, 160, 70, Renamed));
            specs.push(rich(berlin, 0, 40, 450, (2, 5), (3, 8), 10, 40, 10, DeletedThenRestored));
            let mut p2 = rich(kolkata, 1, 40, 420, (2, 5), (3, 8), 10, 40, 10, Normal);
            p2.extreme = true;
            specs.push(p2);
            specs.push(rich(kathmandu, 1, 30, 320, (2, 5), (3, 8), 10, 30, 8, Normal));
            specs.push(rich(utc, 2, 30, 300, (2, 5), (3, 8), 10, 30, 8, Normal));
            specs.push(rich(lord_howe, 0, 30, 300, (2, 5), (3, 8), 10, 30, 8, Normal));
            key_only_orgs = 1;
            window = 100;
            dup_window = 20_000;
            min_invalid = INVALID_KINDS.len() as u64;
            blank_min = 2;
        }
        Scale::Demo => {
            specs.push(rich(ny, 0, 200, 5000, (2, 6), (6, 14), 16, 320, 40, Renamed));
            specs.push(rich(berlin, 0, 120, 3000, (2, 6), (6, 14), 12, 160, 20, DeletedThenRestored));
            specs.push(rich(kolkata, 1, 100, 2500, (2, 6), (6, 14), 10, 120, 15, Normal));
            key_only_orgs = 1;
            window = 200;
            dup_window = 60_000;
            min_invalid = INVALID_KINDS.len() as u64;
            blank_min = 2;
        }
        Scale::S => {
            specs.push(rich(ny, 0, 300, 8000, (2, 5), (5, 12), 20, 400, 80, Renamed));
            specs.push(rich(berlin, 0, 200, 5000, (2, 5), (5, 12), 14, 200, 30, DeletedThenRestored));
            let mut p2 = rich(kolkata, 1, 150, 4000, (2, 5), (5, 12), 12, 150, 25, Normal);
            p2.extreme = true;
            specs.push(p2);
            specs.push(rich(kathmandu, 1, 100, 3000, (2, 5), (5, 12), 10, 100, 20, Normal));
            specs.push(rich(utc, 2, 100, 2500, (2, 5), (5, 12), 10, 100, 20, Normal));
            specs.push(rich(lord_howe, 0, 100, 2000, (2, 5), (5, 12), 10, 100, 20, Normal));
            key_only_orgs = 1;
            window = 500;
            dup_window = 120_000;
            min_invalid = INVALID_KINDS.len() as u64;
            blank_min = 3;
        }
        Scale::M => {
            specs.push(rich(ny, 0, 2000, 100_000, (8, 8), (20, 20), 60, 5000, 200, Renamed));
            specs.push(rich(berlin, 1, 100, 6000, (3, 5), (5, 12), 10, 100, 20, DeletedThenRestored));
            specs.push(rich(kolkata, 1, 100, 6000, (3, 5), (5, 12), 10, 100, 20, Normal));
            specs.push(rich(kathmandu, 2, 100, 6000, (3, 5), (5, 12), 10, 100, 20, Normal));
            specs.push(rich(utc, 2, 100, 6000, (3, 5), (5, 12), 10, 100, 20, Normal));
            specs.push(rich(lord_howe, 3, 100, 6000, (3, 5), (5, 12), 10, 100, 20, Normal));
            for i in 0..100u32 {
                specs.push(small(ZONES[i as usize % ZONES.len()], 4 + i % 20, 5, 40));
            }
            key_only_orgs = 1;
            window = 1000;
            dup_window = 100_000;
            min_invalid = INVALID_KINDS.len() as u64;
            blank_min = 3;
        }
        Scale::L => {
            specs.push(rich(ny, 0, 5000, 1_000_000, (10, 10), (40, 40), 200, 20_000, 500, Renamed));
            for i in 0..500u32 {
                let mut s = small(ZONES[i as usize % ZONES.len()], 1 + i % 50, 5, 30);
                if i == 1 {
                    s.role = DeletedThenRestored;
                }
                specs.push(s);
            }
            key_only_orgs = 1;
            window = 1000;
            dup_window = 100_000;
            min_invalid = INVALID_KINDS.len() as u64;
            blank_min = 3;
        }
    }
    let org_after = specs.iter().map(|s| s.org).max().unwrap_or(0);
    specs.push(aux("Europe/London", org_after, DeletedForGood));
    specs.push(aux("America/Sao_Paulo", org_after, NeverUpserted));
    Layout { specs, key_only_orgs, window, dup_window, min_invalid, blank_min }
}

// ---------------------------------------------------------------------------
// Text material
// ---------------------------------------------------------------------------

const WORDS: [&str; 48] = [
    "morning",
    "routine",
    "recipe",
    "easy",
    "pasta",
    "outfit",
    "check",
    "day",
    "in",
    "my",
    "life",
    "trying",
    "viral",
    "hack",
    "gym",
    "leg",
    "day",
    "skincare",
    "tips",
    "travel",
    "vlog",
    "Tokyo",
    "Lisbon",
    "café",
    "crème",
    "brûlée",
    "budget",
    "haul",
    "unboxing",
    "review",
    "honest",
    "3",
    "ingredient",
    "dessert",
    "how",
    "to",
    "style",
    "the",
    "best",
    "ever",
    "part",
    "2",
    "POV:",
    "you",
    "finally",
    "learn",
    "this",
    "trick",
];
const HASHTAGS: [&str; 16] = [
    "#fyp",
    "#foryou",
    "#viral",
    "#grwm",
    "#cooking",
    "#foodtok",
    "#fitness",
    "#booktok",
    "#ootd",
    "#travel",
    "#skincare",
    "#comedy",
    "#dance",
    "#learnontiktok",
    "#diy",
    "#petsoftiktok",
];
const EMOJI: [&str; 12] = ["🔥", "😂", "✨", "💅", "🚀", "❤️", "🤯", "🙌", "🍜", "🎶", "👀", "🥹"];
const ODD_TITLES: [&str; 10] = [
    "\"quoted\" title with a back\\slash",
    "line one\nline two",
    "tab\tseparated",
    "日本語のタイトル 🍣",
    "Ünïcödé everywhere — ça va?",
    "مرحبا بالعالم",
    "emoji only 🔥🔥🔥",
    "   padded title   ",
    "a/b/c <tag> & 'apostrophe'",
    "𝓯𝓪𝓷𝓬𝔂 𝓽𝓮𝔁𝓽",
];
const FIRST: [&str; 20] = [
    "Ava", "Liam", "Zoë", "José", "Mia", "Noah", "Chloé", "Aarav", "Priya", "Sakura", "Mateo", "Ngozi", "Søren", "Åsa",
    "Li", "Fatima", "Oliver", "Émile", "Diya", "Kai",
];
const LAST: [&str; 15] = [
    "Smith", "García", "Müller", "Sharma", "Tanaka", "O'Brien", "Nguyen", "Kowalski", "Okafor", "Shrestha", "Rossi",
    "Dubois", "Kim", "Silva", "Ivanova",
];
const HANDLE_PARTS: [&str; 24] = [
    "cook", "dance", "fit", "travel", "beauty", "tech", "daily", "vibes", "with", "the", "real", "its", "just", "mr",
    "miss", "chef", "gamer", "style", "diy", "pet", "mom", "dad", "studio", "eats",
];
const PROJECT_NAMES: [&str; 8] = [
    "Acme Beauty",
    "Northwind Eats",
    "Globex Fitness",
    "Initech Travel",
    "Umbrella Pets",
    "Hooli Tech",
    "Stark Fashion",
    "Wayne Games",
];
const CAMPAIGN_NAMES: [&str; 16] = [
    "Summer Launch",
    "Back to School",
    "Holiday '26",
    "Été collection",
    "Zebra Push",
    "apple promo",
    "Ωmega test",
    "🚀 Rocket week",
    "Black Friday",
    "Creators Q3",
    "UGC wave 2",
    "Ramadan Specials",
    "Diwali Glow",
    "Évian x Creators",
    "Ångström drop",
    "zz last",
];
const EXTRA_OFFSETS: [i32; 13] =
    [7200, -18000, 19800, 20700, -12600, 3600, -28800, 32400, 37800, -34200, 50400, -43200, 0];
const DOW_W: [f64; 7] = [1.15, 0.9, 1.0, 1.1, 1.05, 1.0, 0.75];
const HOUR_W: [f64; 24] = [
    0.6, 0.4, 0.3, 0.2, 0.2, 0.3, 0.6, 1.0, 1.3, 1.4, 1.5, 1.6, 2.0, 1.9, 1.6, 1.5, 1.7, 2.0, 2.6, 3.0, 3.0, 2.6, 1.8,
    1.1,
];

fn handle_text(seed: u64, pi: u32, c: u32, variant: u64) -> String {
    let mut r = Rng::new(hash4(seed, T_TEXT, ((pi as u64) << 32) | c as u64, 100 + variant));
    let mut s = String::new();
    match r.below(4) {
        0 => {
            s.push_str(&r.pick(&FIRST).to_lowercase());
            s.push('.');
            s.push_str(r.pick(&HANDLE_PARTS));
        }
        1 => {
            s.push_str(r.pick(&HANDLE_PARTS));
            s.push_str(r.pick(&HANDLE_PARTS));
        }
        2 => {
            s.push_str(r.pick(&HANDLE_PARTS));
            s.push('_');
            s.push_str(r.pick(&HANDLE_PARTS));
        }
        _ => {
            s.push_str("the");
            s.push_str(r.pick(&HANDLE_PARTS));
        }
    }
    // Non-ASCII first names are folded crudely; handles are [a-z0-9._].
    let mut out: String = s
        .chars()
        .map(|ch| match ch {
            'a'..='z' | '0'..='9' | '.' | '_' => ch,
            'é' | 'è' | 'ë' => 'e',
            'ø' | 'ö' => 'o',
            'å' | 'ä' => 'a',
            _ => 'x',
        })
        .collect();
    if r.chance(0.6) {
        let _ = write!(out, "{}", r.below(1000));
    }
    // Creator index makes handles unique within a project.
    let _ = write!(out, "{c}");
    out
}

fn display_name(seed: u64, pi: u32, c: u32) -> String {
    let mut r = Rng::new(hash4(seed, T_TEXT, ((pi as u64) << 32) | c as u64, 200));
    match r.below(6) {
        0 => format!("{} {}", r.pick(&FIRST), r.pick(&LAST)),
        1 => format!("{} {}", r.pick(&FIRST), r.pick(&EMOJI)),
        2 => format!("the {} show", r.pick(&FIRST)),
        3 => ["李小龙", "さくら", "Дмитрий", "Ελένη", "अनन्या", "नेपाली"][r.below(6) as usize].to_string(),
        4 => format!("{} | {}", r.pick(&FIRST), r.pick(&HASHTAGS)),
        _ => format!("{} {}.", r.pick(&FIRST), &r.pick(&LAST)[..1]),
    }
}

fn title_text(seed: u64, h: u64) -> String {
    let mut r = Rng::new(hash4(seed, T_TEXT, h, 300));
    if r.chance(0.04) {
        return r.pick(&ODD_TITLES).to_string();
    }
    let mut s = String::new();
    let n = r.between(2, 8);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(r.pick(&WORDS));
    }
    if r.chance(0.4) {
        s.push(' ');
        s.push_str(r.pick(&EMOJI));
    }
    for _ in 0..r.below(4) {
        s.push(' ');
        s.push_str(r.pick(&HASHTAGS));
    }
    s
}

fn hex_of(h: u64, digits: usize) -> String {
    let full = format!("{h:016x}");
    full[..digits.min(16)].to_string()
}

// ---------------------------------------------------------------------------
// Time helpers
// ---------------------------------------------------------------------------

fn utc_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("timestamp in range")
}

fn offset_secs(tz: &Tz, ms: i64) -> i32 {
    tz.offset_from_utc_datetime(&utc_ms(ms).naive_utc()).fix().local_minus_utc()
}

fn local_date(tz: &Tz, ms: i64) -> NaiveDate {
    utc_ms(ms).with_timezone(tz).date_naive()
}

/// The first instant of `date` in `tz` (contract §3).
fn start_of_day(tz: &Tz, date: NaiveDate) -> i64 {
    let midnight = date.and_time(NaiveTime::MIN);
    for m in (0..=24 * 60).step_by(15) {
        let local = midnight + TimeDelta::minutes(m);
        match tz.from_local_datetime(&local) {
            LocalResult::Single(x) => return x.timestamp_millis(),
            LocalResult::Ambiguous(a, b) => return a.timestamp_millis().min(b.timestamp_millis()),
            LocalResult::None => {}
        }
    }
    midnight.and_utc().timestamp_millis()
}

/// Local dates (in `tz`) on which the UTC offset changes, within `[from, to)`.
fn transition_dates(tz: &Tz, from: i64, to: i64) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut t = from;
    let mut prev = offset_secs(tz, t);
    while t < to {
        let t2 = t + HOUR;
        let o = offset_secs(tz, t2);
        if o != prev {
            out.push(local_date(tz, t2));
            prev = o;
        }
        t = t2;
    }
    out
}

#[derive(Clone, Copy)]
enum Frac {
    None,
    Digits(u8),
}

#[derive(Clone, Copy)]
struct TsStyle {
    offset: i32,
    z: bool,
    frac: Frac,
}

fn write_ts(s: &mut String, ms: i64, st: TsStyle) {
    let local = utc_ms(ms + st.offset as i64 * 1000).naive_utc();
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        local.year(),
        local.month(),
        local.day(),
        chrono::Timelike::hour(&local),
        chrono::Timelike::minute(&local),
        chrono::Timelike::second(&local)
    );
    let milli = ms.rem_euclid(1000);
    match st.frac {
        Frac::None => {}
        Frac::Digits(n) => {
            let _ = match n {
                1 => write!(s, ".{}", milli / 100),
                3 => write!(s, ".{milli:03}"),
                6 => write!(s, ".{milli:03}000"),
                _ => write!(s, ".{milli:03}000000"),
            };
        }
    }
    if st.z {
        s.push('Z');
    } else {
        let o = st.offset;
        let sign = if o < 0 { '-' } else { '+' };
        let a = o.abs();
        let _ = write!(s, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
    }
}

fn ts_string(ms: i64) -> String {
    let mut s = String::new();
    write_ts(&mut s, ms, clean_ts(ms));
    s
}

fn clean_ts(ms: i64) -> TsStyle {
    TsStyle { offset: 0, z: true, frac: if ms % 1000 == 0 { Frac::None } else { Frac::Digits(3) } }
}

fn uuid_text(id: u128, upper: bool) -> String {
    let u = uuid::Uuid::from_u128(id);
    if upper { u.hyphenated().to_string().to_uppercase() } else { u.hyphenated().to_string() }
}

// ---------------------------------------------------------------------------
// JSON object writer
// ---------------------------------------------------------------------------

fn json_escape(out: &mut String, v: &str, ascii: bool) {
    out.push('"');
    let plain = v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && !(ascii && b > 0x7e));
    if plain {
        out.push_str(v);
        out.push('"');
        return;
    }
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ascii && (c as u32) > 0x7e => {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[derive(Default)]
struct Obj {
    s: String,
    ends: Vec<usize>,
    py: bool,
    ascii: bool,
}

impl Obj {
    fn start(&mut self, py: bool) {
        self.s.clear();
        self.ends.clear();
        self.py = py;
        self.ascii = py;
    }
    fn key(&mut self, k: &str) {
        self.s.push('"');
        self.s.push_str(k);
        self.s.push_str(if self.py { "\": " } else { "\":" });
    }
    fn end(&mut self) {
        self.ends.push(self.s.len());
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        json_escape(&mut self.s, v, self.ascii);
        self.end();
    }
    fn null(&mut self, k: &str) {
        self.raw(k, "null");
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.s.push_str(v);
        self.end();
    }
    fn u64(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.s, "{v}");
        self.end();
    }
    fn id(&mut self, k: &str, id: u128, upper: bool) {
        self.key(k);
        self.s.push('"');
        let u = uuid::Uuid::from_u128(id);
        let mut buf = [0u8; 36];
        let t = if upper { u.hyphenated().encode_upper(&mut buf) } else { u.hyphenated().encode_lower(&mut buf) };
        self.s.push_str(t);
        self.s.push('"');
        self.end();
    }
    fn ts(&mut self, k: &str, ms: i64, st: TsStyle) {
        self.key(k);
        self.s.push('"');
        write_ts(&mut self.s, ms, st);
        self.s.push('"');
        self.end();
    }
    /// Joins the fields; `order` 0 = as written, 1 = reversed, 2 = first field last.
    fn finish(&self, order: u8) -> String {
        let n = self.ends.len();
        let mut out = String::with_capacity(self.s.len() + 2 * n + 2);
        out.push('{');
        let span = |i: usize| {
            let a = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.s[a..self.ends[i]]
        };
        let sep = if self.py { ", " } else { "," };
        for j in 0..n {
            let i = match order {
                1 => n - 1 - j,
                2 => (j + 1) % n,
                _ => j,
            };
            if j > 0 {
                out.push_str(sep);
            }
            out.push_str(span(i));
        }
        out.push('}');
        out
    }
}

// ---------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------

struct Proj {
    pi: u32,
    id: u128,
    org: u32,
    tz: Tz,
    tz_name: &'static str,
    name: String,
    final_name: String,
    spec: Spec,
    cum: Vec<f64>,
    specials: Vec<i64>,
    today: NaiveDate,
    created: i64,
    /// Forced special videos (u32::MAX = none).
    v_removed_good: u32,
    v_removed_back: u32,
    v_moved: u32,
    v_reposted: u32,
    v_late_creator: u32,
    v_extreme: u32,
    /// A video with the same `posted_at` and counts as the one before it.
    v_twin: u32,
    /// Forced special creators.
    c_late: u32,
    c_removed_good: u32,
    c_removed_back: u32,
    c_never: u32,
    c_tie: u32,
}

impl Proj {
    fn pick_creator(&self, r: &mut Rng) -> u32 {
        let total = *self.cum.last().expect("creators");
        let u = r.f64() * total;
        let i = self.cum.partition_point(|&x| x <= u);
        (i as u32).min(self.spec.creators - 1)
    }
    fn size(&self, c: u32) -> f64 {
        1.0 + 24.0 / (c as f64 + 3.0)
    }
    fn forced_video(&self, v: u32) -> bool {
        (v as usize) <= self.specials.len()
            || [
                self.v_removed_good,
                self.v_removed_back,
                self.v_moved,
                self.v_reposted,
                self.v_late_creator,
                self.v_extreme,
            ]
            .contains(&v)
    }
}

struct Video {
    creator: u32,
    creator2: u32,
    switch_at: u8,
    posted: i64,
    posted2: i64,
    repost_at: u8,
    views: u64,
    tau: f64,
    n: u8,
    times: [i64; MAX_SCRAPES],
    removal_after: u8,
    removal_t: i64,
    rates: [f64; 4],
    title: u8,
    retitle_at: u8,
    thumb: u8,
    url_null: bool,
    vseed: u64,
}

impl Video {
    fn steps(&self) -> u16 {
        self.n as u16 + u16::from(self.removal_after != NONE8)
    }
    /// `Some(k)` = scrape k, `None` = the removal.
    fn step(&self, s: u16) -> Option<u8> {
        if self.removal_after == NONE8 || s <= self.removal_after as u16 {
            Some(s as u8)
        } else if s == self.removal_after as u16 + 1 {
            None
        } else {
            Some((s - 1) as u8)
        }
    }
    fn step_time(&self, s: u16) -> i64 {
        match self.step(s) {
            Some(k) => self.times[k as usize],
            None => self.removal_t,
        }
    }
    fn g(&self, t: i64) -> f64 {
        let x = (t - self.posted) as f64 / self.tau;
        1.0 - 1.0 / (1.0 + x)
    }
    fn counts(&self, k: u8) -> [u64; 5] {
        let last = self.times[self.n as usize - 1];
        let views = if k + 1 == self.n {
            self.views
        } else {
            let ratio = self.g(self.times[k as usize]) / self.g(last);
            ((self.views as f64) * ratio.min(1.0)) as u64
        };
        let v = views as f64;
        [
            views,
            (v * self.rates[0]) as u64,
            (v * self.rates[1]) as u64,
            (v * self.rates[2]) as u64,
            (v * self.rates[3]) as u64,
        ]
    }
}

struct Creator {
    never: bool,
    n: u16,
    start: i64,
    span: f64,
    f0: f64,
    growth: f64,
    tie_at: u16,
    removal_after: u16,
    removal_t: i64,
    rename_at: u16,
    name_kind: u8,
    avatar_kind: u8,
}

impl Creator {
    fn steps(&self) -> u16 {
        if self.never { 0 } else { self.n + u16::from(self.removal_after != NONE16) }
    }
    fn step(&self, s: u16) -> Option<u16> {
        if self.removal_after == NONE16 || s <= self.removal_after {
            Some(s)
        } else if s == self.removal_after + 1 {
            None
        } else {
            Some(s - 1)
        }
    }
}

#[derive(Clone, Copy)]
enum Item {
    Creator(u32),
    Video(u32),
    Campaign(u32),
    Foreign(u128),
}

enum MiscBody {
    ProjectUpserted { name: String },
    ProjectDeleted,
    KeyIssued { org: u32, key: u32, expires: Option<i64> },
    KeyRevoked { key: u32, org: u32 },
    CampaignUpserted { c: u32, name: String },
    CampaignDeleted { c: u32 },
    Item { c: u32, item: Item, added: bool },
    GoalSet { g: u32, creator: u32, views: bool, target: u64, starts: NaiveDate, ends: NaiveDate },
    GoalRemoved { g: u32 },
}

struct Misc {
    t: i64,
    p: u32,
    body: MiscBody,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cur {
    t: i64,
    kind: u8,
    p: u32,
    idx: u32,
    step: u16,
}

const K_MISC: u8 = 0;
const K_CREATOR: u8 = 1;
const K_VIDEO: u8 = 2;

// ---------------------------------------------------------------------------
// Output stage: local shuffle, duplicates
// ---------------------------------------------------------------------------

trait Sink {
    fn put(&mut self, line: String) -> io::Result<()>;
}

struct VecSink(Vec<String>);
impl Sink for VecSink {
    fn put(&mut self, line: String) -> io::Result<()> {
        self.0.push(line);
        Ok(())
    }
}

struct WriteSink<W: Write>(io::BufWriter<W>);
impl<W: Write> Sink for WriteSink<W> {
    fn put(&mut self, line: String) -> io::Result<()> {
        self.0.write_all(line.as_bytes())?;
        self.0.write_all(b"\n")
    }
}

struct Pending {
    key: u64,
    ins: u64,
    line: String,
}
impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.ins) == (o.key, o.ins)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.key, self.ins).cmp(&(o.key, o.ins))
    }
}

struct Emitter<'a, S: Sink> {
    sink: &'a mut S,
    rng: Rng,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    ins: u64,
    window: u64,
    dup_window: u64,
    dup_rate: f64,
    lines: u64,
    dups: u64,
}

impl<S: Sink> Emitter<'_, S> {
    fn push(&mut self, key: u64, line: String) {
        self.ins += 1;
        self.heap.push(Reverse(Pending { key, ins: self.ins, line }));
    }
    /// One logical line (event, invalid or blank); may be duplicated if `dupable`.
    fn emit(&mut self, line: String, dupable: bool) -> io::Result<()> {
        self.seq += 1;
        if dupable && self.dup_rate > 0.0 && self.rng.chance(self.dup_rate) {
            let k = self.seq + 1 + self.rng.below(self.dup_window.max(1));
            self.push(k, line.clone());
            self.dups += 1;
        }
        let k = self.seq + self.rng.below(self.window + 1);
        self.push(k, line);
        while self.heap.peek().is_some_and(|p| p.0.key <= self.seq) {
            let Reverse(p) = self.heap.pop().expect("peeked");
            self.lines += 1;
            self.sink.put(p.line)?;
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        while let Some(Reverse(p)) = self.heap.pop() {
            self.lines += 1;
            self.sink.put(p.line)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

struct Gen {
    seed: u64,
    now: i64,
    messy: bool,
    projects: Vec<Proj>,
    n_orgs: u32,
    key_only_orgs: u32,
    rng: Rng,
    obj: Obj,
    type_counts: [u64; 14],
    /// Orgs' keys: (org, key index, text, expired/revoked?).
    keys: Vec<(u32, u32, String, bool)>,
}

fn run<S: Sink>(cfg: &GenConfig, sink: &mut S) -> io::Result<GenStats> {
    let lay = layout(cfg.scale);
    let mut g = Gen::new(cfg, &lay);
    let misc = g.build_misc();
    let est = g.estimate_lines(misc.len() as u64);
    let window = cfg.shuffle_window.unwrap_or(lay.window) as u64;
    let mut em = Emitter {
        sink,
        rng: Rng::new(hash4(cfg.seed, T_EMIT, 0, 0)),
        heap: BinaryHeap::new(),
        seq: 0,
        ins: 0,
        window,
        dup_window: lay.dup_window.min(est.max(1)),
        dup_rate: cfg.duplicate_rate.max(0.0),
        lines: 0,
        dups: 0,
    };
    let (invalid_every, blank_every) = if cfg.invalid_lines {
        let target = lay.min_invalid.max(est / 1000).max(1);
        let blanks = lay.blank_min.max(est / 20_000);
        (est.div_ceil(target + 1).max(1), if blanks == 0 { 0 } else { est.div_ceil(blanks + 1).max(1) })
    } else {
        (0, 0)
    };

    // Cursor heap over all entity sequences, ordered by time.
    let mut curs: Vec<Reverse<Cur>> = Vec::new();
    if !misc.is_empty() {
        curs.push(Reverse(Cur { t: misc[0].t, kind: K_MISC, p: 0, idx: 0, step: 0 }));
    }
    for p in &g.projects {
        for c in 0..p.spec.creators {
            let cr = g.creator(p, c);
            if cr.steps() > 0 {
                let t = g.creator_step_time(p, c, &cr, 0);
                curs.push(Reverse(Cur { t, kind: K_CREATOR, p: p.pi, idx: c, step: 0 }));
            }
        }
        for v in 0..p.spec.videos {
            let vd = g.video(p, v);
            curs.push(Reverse(Cur { t: vd.step_time(0), kind: K_VIDEO, p: p.pi, idx: v, step: 0 }));
        }
    }
    let mut heap = BinaryHeap::from(curs);
    let mut invalid = 0u64;
    let mut blank = 0u64;
    let mut logical = 0u64;
    let mut last_p = 0u32;
    while let Some(Reverse(cur)) = heap.pop() {
        let line = match cur.kind {
            K_MISC => {
                let i = cur.idx as usize;
                if let Some(next) = misc.get(i + 1) {
                    heap.push(Reverse(Cur { t: next.t, kind: K_MISC, p: 0, idx: cur.idx + 1, step: 0 }));
                }
                g.render_misc(&misc[i])
            }
            K_CREATOR => {
                let p = &g.projects[cur.p as usize];
                let cr = g.creator(p, cur.idx);
                if cur.step + 1 < cr.steps() {
                    let t = g.creator_step_time(p, cur.idx, &cr, cur.step + 1);
                    heap.push(Reverse(Cur { t, step: cur.step + 1, ..cur }));
                }
                last_p = cur.p;
                g.render_creator(cur.p, cur.idx, &cr, cur.step)
            }
            _ => {
                let p = &g.projects[cur.p as usize];
                let vd = g.video(p, cur.idx);
                if cur.step + 1 < vd.steps() {
                    heap.push(Reverse(Cur { t: vd.step_time(cur.step + 1), step: cur.step + 1, ..cur }));
                }
                last_p = cur.p;
                g.render_video(cur.p, cur.idx, &vd, cur.step)
            }
        };
        em.emit(line, true)?;
        logical += 1;
        if invalid_every > 0 && logical % invalid_every == invalid_every / 2 {
            let kind = (invalid % INVALID_KINDS.len() as u64) as usize;
            let line = g.invalid_line(kind, last_p);
            em.emit(line, false)?;
            invalid += 1;
        }
        if blank_every > 0 && logical % blank_every == blank_every / 3 {
            let line = if blank.is_multiple_of(2) { String::new() } else { " \t ".to_string() };
            em.emit(line, false)?;
            blank += 1;
        }
    }
    em.finish()?;

    let mut by_type = BTreeMap::new();
    for (i, n) in g.type_counts.iter().enumerate() {
        if *n > 0 {
            by_type.insert(EVENT_TYPES[i], *n);
        }
    }
    Ok(GenStats {
        lines: em.lines,
        events: logical,
        duplicates: em.dups,
        invalid,
        blank,
        by_type,
        api_keys: g.demo_keys(),
        projects: g.project_infos(),
    })
}

impl Gen {
    fn new(cfg: &GenConfig, lay: &Layout) -> Gen {
        let seed = cfg.seed;
        let now = cfg.now.timestamp_millis();
        let mut projects = Vec::new();
        let mut tz_cache: HashMap<&'static str, Vec<NaiveDate>> = HashMap::new();
        for (i, spec) in lay.specs.iter().enumerate() {
            let pi = i as u32;
            let tz: Tz = spec.tz.parse().expect("known zone");
            let mut r = Rng::new(hash4(seed, T_PROJPLAN, pi as u64, 0));
            let base = PROJECT_NAMES[i % PROJECT_NAMES.len()];
            let name = if i < PROJECT_NAMES.len() { base.to_string() } else { format!("{base} {}", i + 1) };
            let final_name = match spec.role {
                Role::Renamed => format!("{name} (renamed)"),
                Role::DeletedThenRestored => format!("{name} restored"),
                _ => name.clone(),
            };
            let mut cum = Vec::with_capacity(spec.creators as usize);
            let mut acc = 0.0;
            for c in 0..spec.creators {
                acc += 1.0 / (c as f64 + 3.0);
                cum.push(acc);
            }
            let today = local_date(&tz, now);
            let created = now - (OLD_DAYS + 5 + r.between(0, 30)) * DAY - r.between(0, DAY);
            let mut p = Proj {
                pi,
                id: v4(hash4(seed, T_PROJECT, pi as u64, 1), hash4(seed, T_PROJECT, pi as u64, 2)),
                org: spec.org,
                tz,
                tz_name: spec.tz,
                name,
                final_name,
                spec: *spec,
                cum,
                specials: Vec::new(),
                today,
                created,
                v_removed_good: u32::MAX,
                v_removed_back: u32::MAX,
                v_moved: u32::MAX,
                v_reposted: u32::MAX,
                v_late_creator: u32::MAX,
                v_extreme: u32::MAX,
                v_twin: u32::MAX,
                c_late: u32::MAX,
                c_removed_good: u32::MAX,
                c_removed_back: u32::MAX,
                c_never: u32::MAX,
                c_tie: u32::MAX,
            };
            if spec.rich {
                let dates =
                    tz_cache.entry(spec.tz).or_insert_with(|| transition_dates(&tz, now - OLD_DAYS * DAY, now)).clone();
                p.specials = special_posts(&p, &dates, now);
                let cap = (spec.videos / 3) as usize;
                p.specials.truncate(cap);
                let n = spec.videos;
                if n >= 20 {
                    p.v_twin = p.specials.len() as u32 + 3;
                    p.v_removed_good = n - 1;
                    p.v_removed_back = n - 2;
                    p.v_moved = n - 3;
                    p.v_reposted = n - 4;
                    if spec.creators >= 6 {
                        p.v_late_creator = n - 5;
                    }
                    if spec.extreme {
                        p.v_extreme = n - 6;
                    }
                }
                if spec.creators >= 6 {
                    p.c_tie = 0;
                    p.c_late = 2;
                    p.c_removed_good = 3;
                    p.c_removed_back = 4;
                    p.c_never = spec.creators - 1;
                }
            }
            projects.push(p);
        }
        let n_orgs = lay.specs.iter().map(|s| s.org).max().unwrap_or(0) + 1 + lay.key_only_orgs;
        Gen {
            seed,
            now,
            messy: cfg.messy,
            projects,
            n_orgs,
            key_only_orgs: lay.key_only_orgs,
            rng: Rng::new(hash4(seed, T_STREAM, 0, 0)),
            obj: Obj::default(),
            type_counts: [0; 14],
            keys: Vec::new(),
        }
    }

    fn org_id(&self, o: u32) -> u128 {
        v4(hash4(self.seed, T_ORG, o as u64, 1), hash4(self.seed, T_ORG, o as u64, 2))
    }
    fn creator_id(&self, pi: u32, c: u32) -> u128 {
        v4(hash4(self.seed, T_CREATOR, pi as u64, c as u64), hash4(self.seed, T_CREATOR ^ 0x80, pi as u64, c as u64))
    }
    fn video_id(&self, pi: u32, v: u32) -> u128 {
        v4(hash4(self.seed, T_VIDEO, pi as u64, v as u64), hash4(self.seed, T_VIDEO ^ 0x80, pi as u64, v as u64))
    }
    fn campaign_id(&self, pi: u32, c: u32) -> u128 {
        v4(hash4(self.seed, T_CAMPAIGN, pi as u64, c as u64), hash4(self.seed, T_CAMPAIGN ^ 0x80, pi as u64, c as u64))
    }
    fn goal_id(&self, pi: u32, g: u32) -> u128 {
        v4(hash4(self.seed, T_GOAL, pi as u64, g as u64), hash4(self.seed, T_GOAL ^ 0x80, pi as u64, g as u64))
    }
    fn key_id(&self, o: u32, k: u32) -> u128 {
        v4(hash4(self.seed, T_KEY, o as u64, k as u64), hash4(self.seed, T_KEY ^ 0x80, o as u64, k as u64))
    }
    fn key_text(&self, o: u32, k: u32) -> String {
        format!(
            "gv_{:016x}{:016x}",
            hash4(self.seed, T_KEYTEXT, o as u64, k as u64),
            hash4(self.seed, T_KEYTEXT ^ 0x80, o as u64, k as u64)
        )
    }

    // -- videos -------------------------------------------------------------

    fn is_twin(&self, p: &Proj, v: u32) -> bool {
        let marked = |v: u32| v > 0 && hash4(self.seed, T_TWIN, p.pi as u64, v as u64).is_multiple_of(100);
        if v == p.v_twin {
            return true;
        }
        v >= 2
            && v < p.spec.videos
            && marked(v)
            && !marked(v - 1)
            && v - 1 != p.v_twin
            && Some(v) != p.v_twin.checked_add(1)
            && !p.forced_video(v)
            && !p.forced_video(v - 1)
    }

    fn sample_posted(&self, p: &Proj, creator: u32, r: &mut Rng) -> i64 {
        let pref = (hash4(self.seed, T_CPLAN, p.pi as u64, creator as u64) % 17 + 7) as i64;
        let hour_total: f64 = HOUR_W.iter().sum();
        loop {
            let d =
                if r.chance(0.88) { r.below(RECENT_DAYS as u64) } else { r.between(RECENT_DAYS, OLD_DAYS - 1) as u64 };
            let date = p.today - TimeDelta::days(d as i64);
            let dow = date.weekday().num_days_from_sunday() as usize;
            if r.f64() * 1.15 > DOW_W[dow] {
                continue;
            }
            let hour = if r.chance(0.4) {
                (pref + r.between(-1, 1)).rem_euclid(24)
            } else {
                let mut u = r.f64() * hour_total;
                let mut h = 23;
                for (i, w) in HOUR_W.iter().enumerate() {
                    if u < *w {
                        h = i;
                        break;
                    }
                    u -= w;
                }
                h as i64
            };
            let exact = r.chance(0.05);
            let (m, s) = if exact { (0, 0) } else { (r.below(60), r.below(60)) };
            let frac = if r.chance(0.05) { r.between(1, 999) } else { 0 };
            let local = date.and_time(NaiveTime::MIN) + TimeDelta::seconds(hour * 3600 + m as i64 * 60 + s as i64);
            let t = match p.tz.from_local_datetime(&local) {
                LocalResult::Single(x) => x.timestamp_millis(),
                LocalResult::Ambiguous(a, b) => {
                    if r.chance(0.5) {
                        a.timestamp_millis()
                    } else {
                        b.timestamp_millis()
                    }
                }
                LocalResult::None => continue,
            } + frac;
            if t > self.now - 2 * HOUR {
                continue;
            }
            return t;
        }
    }

    fn video(&self, p: &Proj, v: u32) -> Video {
        let twin = self.is_twin(p, v);
        let base = if twin { v - 1 } else { v };
        let mut r = Rng::new(hash4(self.seed, T_VPLAN, p.pi as u64, base as u64));
        let mut creator = p.pick_creator(&mut r);
        let posted = if base >= 1 && (base as usize) <= p.specials.len() {
            p.specials[base as usize - 1]
        } else {
            self.sample_posted(p, creator, &mut r)
        };
        let u = 1.0 - r.f64();
        let pareto = 1.0 / (u.sqrt() * u.sqrt().sqrt());
        let zero = r.chance(0.02);
        let mut views = if zero { 0 } else { (150.0 * p.size(creator) * pareto).min(3.0e9) as u64 };
        let tau = (2 * HOUR + r.below((70 * HOUR) as u64) as i64) as f64;
        let (lo, hi) = p.spec.scrapes;
        let mut n = r.between(lo as i64, hi as i64).clamp(1, MAX_SCRAPES as i64) as u8;
        let mut f = Rng::new(hash4(self.seed, T_VFLAGS, p.pi as u64, v as u64));
        let plain = twin || self.is_twin(p, v + 1);
        if !plain && n < 2 && (v == p.v_removed_back || v == p.v_moved || v == p.v_reposted) {
            n = 2;
        }
        let end = self.now - MIN;
        let track_end = end.min(posted + TRACK_DAYS * DAY);
        let span = (track_end - posted) as f64;
        let mut times = [0i64; MAX_SCRAPES];
        let mut prev = posted;
        for (k, slot) in times.iter_mut().enumerate().take(n as usize) {
            let j = r.f64() * 2.0 - 1.0;
            let x = (k as f64 + 0.5 + 0.4 * j) / n as f64;
            let mut t = posted + (span * x * x) as i64;
            if !r.chance(0.1) {
                t -= t.rem_euclid(1000);
            }
            t = t.max(prev + 1000);
            *slot = t;
            prev = t;
        }
        let rates = [
            0.02 + 0.12 * r.f64() * r.f64(),
            0.0005 + 0.01 * r.f64(),
            0.0002 + 0.02 * r.f64() * r.f64() * r.f64(),
            0.001 + 0.03 * r.f64(),
        ];
        if v == p.v_extreme {
            views = (1u64 << 53) + 1;
        }
        // Per-video flags (own stream so twins share only the core).
        let mut vd = Video {
            creator,
            creator2: creator,
            switch_at: NONE8,
            posted,
            posted2: posted,
            repost_at: NONE8,
            views,
            tau,
            n,
            times,
            removal_after: NONE8,
            removal_t: 0,
            rates,
            title: 0,
            retitle_at: NONE8,
            thumb: 0,
            url_null: false,
            vseed: hash4(self.seed, T_VNUM, p.pi as u64, v as u64),
        };
        let tr = f.f64();
        vd.title = if tr < 0.07 {
            1
        } else if tr < 0.10 {
            2
        } else {
            0
        };
        let th = f.f64();
        vd.thumb = if th < 0.05 {
            1
        } else if th < 0.07 {
            2
        } else {
            0
        };
        vd.url_null = f.chance(0.03);
        if twin && f.chance(0.5) {
            creator = p.pick_creator(&mut f);
            vd.creator = creator;
            vd.creator2 = creator;
        }
        if v == p.v_late_creator {
            vd.creator = p.c_late;
            vd.creator2 = p.c_late;
        }
        if plain {
            return vd;
        }
        let nn = vd.n;
        let roll = f.f64();
        if n >= 2 && f.chance(0.03) {
            vd.retitle_at = f.between(1, nn as i64 - 1) as u8;
        }
        // Removal: after scrape r (r < n-1: comes back with scrape r+1).
        let removal = if v == p.v_removed_good {
            Some(nn - 1)
        } else if v == p.v_removed_back {
            Some(0)
        } else if roll < 0.02 {
            Some(f.below(nn as u64) as u8)
        } else {
            None
        };
        if let Some(ra) = removal {
            let a = vd.times[ra as usize];
            let b = if ra + 1 < nn { vd.times[ra as usize + 1] } else { self.now - 1000 };
            if b - a > 4 {
                let t = a + 1 + ((b - a - 2) as f64 * (0.2 + 0.6 * f.f64())) as i64;
                vd.removal_after = ra;
                vd.removal_t = if f.chance(0.8) && (t - t.rem_euclid(1000)) > a { t - t.rem_euclid(1000) } else { t };
            }
        }
        if nn >= 2 && (v == p.v_moved || (0.02..0.03).contains(&roll)) {
            vd.switch_at = f.between(1, nn as i64 - 1) as u8;
            let mut c2 = p.pick_creator(&mut f);
            if c2 == vd.creator {
                c2 = (c2 + 1) % p.spec.creators;
            }
            vd.creator2 = c2;
        }
        if nn >= 2 && (v == p.v_reposted || (0.03..0.035).contains(&roll)) {
            vd.repost_at = f.between(1, nn as i64 - 1) as u8;
            vd.posted2 = posted - f.between(HOUR, 3 * DAY);
            if f.chance(0.7) {
                vd.posted2 -= vd.posted2.rem_euclid(1000);
            }
        }
        vd
    }

    // -- creators -------------------------------------------------------------

    fn creator(&self, p: &Proj, c: u32) -> Creator {
        let mut r = Rng::new(hash4(self.seed, T_CPLAN, p.pi as u64, c as u64 | (1 << 40)));
        let n_creators = p.spec.creators;
        let never = c == p.c_never || (n_creators >= 20 && c > 5 && r.chance(0.015));
        let (lo, hi) = p.spec.snaps;
        let mut n = r.between(lo as i64, hi as i64).max(1) as u16;
        let late = c == p.c_late || (c > 5 && r.chance(0.03));
        let start = if late {
            self.now - r.between(DAY, 4 * DAY)
        } else {
            p.created + HOUR + (((self.now - p.created) as f64) * 0.3 * r.f64()) as i64
        };
        let span = (self.now - 1000 - start) as f64;
        let f0 = if r.chance(0.01) {
            0.0
        } else {
            3_000_000.0 / (c as f64 + 1.0) * (0.3 + r.f64()) + 200.0 + r.below(5000) as f64
        };
        let growth = if r.chance(0.85) { 3.0 * r.f64() * r.f64() } else { -0.15 * r.f64() };
        let forced_good = c == p.c_removed_good;
        let forced_back = c == p.c_removed_back;
        let tie = !forced_back && (c == p.c_tie || r.chance(0.03));
        if tie && n < 2 {
            n = 2;
        }
        if forced_back && n < 2 {
            n = 2;
        }
        let mut cr = Creator {
            never,
            n,
            start,
            span,
            f0,
            growth,
            tie_at: NONE16,
            removal_after: NONE16,
            removal_t: 0,
            rename_at: NONE16,
            name_kind: 0,
            avatar_kind: 0,
        };
        if tie {
            cr.tie_at = r.below(n as u64 - 1) as u16;
        }
        let roll = r.f64();
        let removal = if forced_good {
            Some(n - 1)
        } else if forced_back {
            Some(0)
        } else if roll < 0.01 {
            Some(n - 1)
        } else if roll < 0.02 && n >= 2 {
            Some(r.below(n as u64 - 1) as u16)
        } else {
            None
        };
        if let Some(ra) = removal
            && ra != cr.tie_at
        {
            let a = self.snap_time(p, c, &cr, ra);
            let b = if ra + 1 < n { self.snap_time(p, c, &cr, ra + 1) } else { self.now - 1000 };
            if b - a > 4 {
                let t = a + 1 + ((b - a - 2) as f64 * (0.2 + 0.6 * r.f64())) as i64;
                cr.removal_after = ra;
                cr.removal_t = if (t - t.rem_euclid(1000)) > a { t - t.rem_euclid(1000) } else { t };
            }
        }
        if n >= 4 && r.chance(0.03) {
            cr.rename_at = r.between(n as i64 / 2, n as i64 - 1) as u16;
        }
        let nk = r.f64();
        cr.name_kind = if nk < 0.08 {
            1
        } else if nk < 0.1 {
            2
        } else {
            0
        };
        let ak = r.f64();
        cr.avatar_kind = if ak < 0.05 {
            1
        } else if ak < 0.07 {
            2
        } else {
            0
        };
        cr
    }

    fn snap_time_raw(&self, p: &Proj, c: u32, cr: &Creator, k: u16) -> i64 {
        let h = hash4(self.seed, T_SNAPJ, ((p.pi as u64) << 32) | c as u64, k as u64);
        let j = unit(h) * 2.0 - 1.0;
        let f = (k as f64 + 0.5 + 0.4 * j) / cr.n as f64;
        // Denser towards `now`: recent follower history has more points.
        let x = 1.0 - (1.0 - f) * (1.0 - f);
        let mut t = cr.start + (cr.span * x) as i64;
        if h & 0xF != 0 {
            t -= t.rem_euclid(1000);
        }
        t.min(self.now - 1000)
    }

    fn snap_time(&self, p: &Proj, c: u32, cr: &Creator, k: u16) -> i64 {
        if cr.tie_at != NONE16 && k == cr.tie_at + 1 {
            self.snap_time_raw(p, c, cr, cr.tie_at)
        } else {
            self.snap_time_raw(p, c, cr, k)
        }
    }

    fn creator_step_time(&self, p: &Proj, c: u32, cr: &Creator, s: u16) -> i64 {
        match cr.step(s) {
            Some(k) => self.snap_time(p, c, cr, k),
            None => cr.removal_t,
        }
    }

    fn followers(&self, p: &Proj, c: u32, cr: &Creator, k: u16) -> u64 {
        if cr.tie_at != NONE16 && k == cr.tie_at + 1 {
            let h = hash4(self.seed, T_SNAPJ ^ 0x40, ((p.pi as u64) << 32) | c as u64, k as u64);
            return self.followers(p, c, cr, cr.tie_at) + 1 + h % 50;
        }
        let t = self.snap_time(p, c, cr, k);
        if cr.f0 == 0.0 {
            return k as u64 * 37;
        }
        let x = ((t - cr.start) as f64 / cr.span).clamp(0.0, 1.0);
        let h = hash4(self.seed, T_SNAPJ ^ 0x20, ((p.pi as u64) << 32) | c as u64, k as u64);
        let noise = 1.0 + 0.003 * (unit(h) * 2.0 - 1.0);
        (cr.f0 * (1.0 + cr.growth * x) * noise).max(0.0) as u64
    }

    // -- misc (projects, keys, campaigns, goals) ------------------------------

    fn build_misc(&mut self) -> Vec<Misc> {
        let now = self.now;
        let mut out: Vec<Misc> = Vec::new();
        let seed = self.seed;
        let mut r = Rng::new(hash4(seed, T_MISC, 0, 0));

        // Projects.
        for p in &self.projects {
            let pi = p.pi;
            match p.spec.role {
                Role::NeverUpserted => {}
                role => {
                    out.push(Misc { t: p.created, p: pi, body: MiscBody::ProjectUpserted { name: p.name.clone() } });
                    match role {
                        Role::Renamed => out.push(Misc {
                            t: now - 40 * DAY + r.between(0, DAY),
                            p: pi,
                            body: MiscBody::ProjectUpserted { name: p.final_name.clone() },
                        }),
                        Role::DeletedThenRestored => {
                            out.push(Misc { t: now - 50 * DAY, p: pi, body: MiscBody::ProjectDeleted });
                            out.push(Misc {
                                t: now - 20 * DAY + 1500,
                                p: pi,
                                body: MiscBody::ProjectUpserted { name: p.final_name.clone() },
                            });
                        }
                        Role::DeletedForGood => {
                            out.push(Misc { t: now - 10 * DAY, p: pi, body: MiscBody::ProjectDeleted })
                        }
                        _ => {}
                    }
                }
            }
        }

        // API keys: every org gets a plain valid key; org 0 (and key-only orgs) the
        // full set: future expiry, expired, revoked.
        let mut keys = Vec::new();
        for o in 0..self.n_orgs {
            let full = o == 0 || o >= self.n_orgs - self.key_only_orgs;
            let issued0 = now - r.between(100 * DAY, 300 * DAY);
            out.push(Misc {
                t: sec(issued0, &mut r),
                p: u32::MAX,
                body: MiscBody::KeyIssued { org: o, key: 0, expires: None },
            });
            keys.push((o, 0, self.key_text(o, 0), false));
            if full {
                let exp_future = now + 90 * DAY + r.between(0, DAY);
                out.push(Misc {
                    t: now - r.between(10 * DAY, 60 * DAY),
                    p: u32::MAX,
                    body: MiscBody::KeyIssued { org: o, key: 1, expires: Some(exp_future) },
                });
                keys.push((o, 1, self.key_text(o, 1), false));
                let exp_past = now - 2 * DAY - r.between(0, DAY);
                out.push(Misc {
                    t: now - 90 * DAY,
                    p: u32::MAX,
                    body: MiscBody::KeyIssued { org: o, key: 2, expires: Some(exp_past) },
                });
                keys.push((o, 2, self.key_text(o, 2), true));
                out.push(Misc {
                    t: now - 30 * DAY,
                    p: u32::MAX,
                    body: MiscBody::KeyIssued { org: o, key: 3, expires: None },
                });
                out.push(Misc { t: now - 5 * DAY, p: u32::MAX, body: MiscBody::KeyRevoked { org: o, key: 3 } });
                keys.push((o, 3, self.key_text(o, 3), true));
            }
        }
        self.keys = keys;

        // Campaigns and goals per project.
        for p in &self.projects {
            self.campaign_events(p, &mut out, &mut r);
            self.goal_events(p, &mut out, &mut r);
        }
        out.sort_by_key(|m| m.t);
        out
    }

    fn campaign_events(&self, p: &Proj, out: &mut Vec<Misc>, r: &mut Rng) {
        let n = p.spec.campaigns;
        if n == 0 {
            return;
        }
        let now = self.now;
        let pi = p.pi;
        let lo = p.created + DAY;
        let hi = now - 7 * DAY;
        let mut created: Vec<i64> = (0..n).map(|_| r.between(lo, hi)).collect();
        let names: Vec<String> = (0..n)
            .map(|c| {
                let base = CAMPAIGN_NAMES[(c as usize + pi as usize) % CAMPAIGN_NAMES.len()];
                if (c as usize) < CAMPAIGN_NAMES.len() { base.to_string() } else { format!("{base} #{c}") }
            })
            .collect();
        let rich = p.spec.rich && n >= 10;
        if rich {
            created[3] = now - r.between(DAY, 3 * DAY);
        }
        let item = |c: u32, item: Item, added: bool, t: i64| Misc { t, p: pi, body: MiscBody::Item { c, item, added } };
        for c in 0..n {
            let mut name = names[c as usize].clone();
            if rich && c == 9 {
                name = names[8].clone(); // two campaigns with one name
            }
            if rich && c == 6 {
                out.push(Misc {
                    t: created[6],
                    p: pi,
                    body: MiscBody::CampaignUpserted { c, name: "Working title".into() },
                });
                out.push(Misc {
                    t: r.between(created[6] + HOUR, now - HOUR),
                    p: pi,
                    body: MiscBody::CampaignUpserted { c, name },
                });
                continue;
            }
            out.push(Misc { t: created[c as usize], p: pi, body: MiscBody::CampaignUpserted { c, name } });
        }
        if rich {
            let after = |a: i64, b: i64, r: &mut Rng| r.between(a.max(b) + MIN, now - HOUR);
            // Depth 3: 0 ⊃ 1 ⊃ 2 ⊃ 3; 2 ⊃ 3 is added before 3 exists.
            out.push(item(0, Item::Campaign(1), true, after(created[0], created[1], r)));
            out.push(item(1, Item::Campaign(2), true, after(created[1], created[2], r)));
            out.push(item(2, Item::Campaign(3), true, created[3] - r.between(HOUR, 2 * DAY)));
            // Cycle 4 ⊃ 5 ⊃ 4 and a self-loop on 5.
            out.push(item(4, Item::Campaign(5), true, after(created[4], created[5], r)));
            out.push(item(5, Item::Campaign(4), true, after(created[4], created[5], r)));
            out.push(item(5, Item::Campaign(5), true, after(created[5], created[5], r)));
            // 7 is deleted; 0 contains it. 0 also contains a campaign never created.
            out.push(item(0, Item::Campaign(7), true, after(created[0], created[7], r)));
            out.push(Misc { t: now - r.between(DAY, 5 * DAY), p: pi, body: MiscBody::CampaignDeleted { c: 7 } });
            out.push(item(0, Item::Campaign(n + 7), true, after(created[0], created[0], r)));
            // Items of 3 arrive before 3 is created.
            for _ in 0..3 {
                let v = r.below(p.spec.videos as u64) as u32;
                out.push(item(3, Item::Video(v), true, created[3] - r.between(MIN, 3 * DAY)));
            }
            out.push(item(2, Item::Creator(0), true, after(created[2], created[2], r)));
            // A foreign video id, and an add/remove pair at the same instant.
            let foreign = r.uuid();
            out.push(item(1, Item::Foreign(foreign), true, after(created[1], created[1], r)));
            let t = after(created[0], created[0], r) / 1000 * 1000;
            let v = r.below(p.spec.videos as u64) as u32;
            out.push(item(0, Item::Video(v), true, t));
            out.push(item(0, Item::Video(v), false, t));
            // Forced: the first regular item of 0 is removed later.
            let v = r.below(p.spec.videos as u64) as u32;
            let t1 = after(created[0], created[0], r);
            out.push(item(0, Item::Video(v), true, t1));
            out.push(item(0, Item::Video(v), false, r.between(t1 + 1000, now - 1000)));
        }
        for _ in 0..p.spec.memberships {
            let c = r.below(n as u64) as u32;
            let it = if r.chance(0.25) {
                Item::Creator(p.pick_creator(r))
            } else {
                Item::Video(r.below(p.spec.videos as u64) as u32)
            };
            let mut t0 = created[c as usize] + MIN;
            if let Item::Video(v) = it {
                // Realistic: a video joins a campaign once it has been seen.
                t0 = t0.max(self.video(p, v).times[0]);
            }
            let t = sec(r.between(t0, now - HOUR), r).max(t0.min(now - HOUR));
            out.push(item(c, it, true, t));
            if r.chance(0.06) {
                let t2 = sec(r.between(t + 1000, now - MIN), r).max(t + 1);
                out.push(item(c, it, false, t2));
                if r.chance(0.2) {
                    out.push(item(c, it, true, r.between(t2 + 1, now - 1)));
                }
            }
        }
    }

    fn goal_events(&self, p: &Proj, out: &mut Vec<Misc>, r: &mut Rng) {
        let now = self.now;
        let pi = p.pi;
        let total_w = *p.cum.last().expect("creators");
        let today = p.today;
        let mk = |c: u32, r: &mut Rng| -> (bool, u64, NaiveDate, NaiveDate) {
            let kind = r.f64();
            let (starts, ends) = if kind < 0.35 {
                let ends = today - TimeDelta::days(r.between(1, 60));
                (ends - TimeDelta::days(r.between(0, 45)), ends)
            } else if kind < 0.75 {
                (today - TimeDelta::days(r.between(0, 30)), today + TimeDelta::days(r.between(0, 30)))
            } else {
                let s = today + TimeDelta::days(r.between(1, 30));
                (s, s + TimeDelta::days(r.between(0, 30)))
            };
            let days = (ends - starts).num_days() as f64 + 1.0;
            let w = (1.0 / (c as f64 + 3.0)) / total_w;
            let per_day = p.spec.videos as f64 * w * 0.88 / RECENT_DAYS as f64;
            let f = 0.2 + 2.3 * r.f64();
            let views = r.chance(0.4);
            let target = if views {
                (per_day * days * 300.0 * p.size(c) * f).max(1.0) as u64
            } else {
                (per_day * days * f + 0.5).max(1.0) as u64
            };
            (views, target, starts, ends)
        };
        let set_time = |starts: NaiveDate, r: &mut Rng| {
            let s = start_of_day(&p.tz, starts);
            let t = s - r.between(HOUR, 10 * DAY);
            let t = t.clamp(p.created + HOUR, now - MIN);
            if r.chance(0.9) { t - t.rem_euclid(1000) } else { t }
        };
        for g in 0..p.spec.goals {
            let c = if p.spec.rich && g == 3 && p.c_removed_good != u32::MAX {
                p.c_removed_good
            } else {
                r.below(p.spec.creators as u64) as u32
            };
            let (views, target, mut starts, mut ends) = mk(c, r);
            if p.spec.rich && g == 2 {
                starts = today;
                ends = today;
            }
            let t = set_time(starts, r);
            out.push(Misc { t, p: pi, body: MiscBody::GoalSet { g, creator: c, views, target, starts, ends } });
            if p.spec.rich && g == 0 {
                // Replaced: same goal_id set again later with other values.
                let (views2, target2, s2, e2) = mk(c, r);
                let t2 = r.between(t + 1000, now - MIN);
                out.push(Misc {
                    t: t2,
                    p: pi,
                    body: MiscBody::GoalSet { g, creator: c, views: views2, target: target2, starts: s2, ends: e2 },
                });
            }
            if p.spec.rich && g == 1 {
                out.push(Misc { t: r.between(t + 1000, now - MIN), p: pi, body: MiscBody::GoalRemoved { g } });
            }
        }
    }

    fn estimate_lines(&self, misc: u64) -> u64 {
        let mut n = misc;
        for p in &self.projects {
            let s = &p.spec;
            n += s.videos as u64 * (s.scrapes.0 as u64 + s.scrapes.1 as u64) / 2;
            n += s.creators as u64 * (s.snaps.0 as u64 + s.snaps.1 as u64) / 2;
        }
        n
    }

    // -- rendering --------------------------------------------------------------

    /// Starts an event object with `type` and `event_id`; returns the field order style.
    fn begin(&mut self, ty: usize) -> u8 {
        let messy = self.messy;
        let py = messy && self.rng.chance(0.08);
        let order = if messy && self.rng.chance(0.05) { 1 + self.rng.below(2) as u8 } else { 0 };
        let upper = messy && self.rng.chance(0.03);
        let eid = self.rng.uuid();
        self.obj.start(py);
        self.obj.str("type", EVENT_TYPES[ty]);
        self.obj.id("event_id", eid, upper);
        self.type_counts[ty] += 1;
        order
    }

    fn style(&mut self, ms: i64, local: Option<&Tz>) -> TsStyle {
        if !self.messy {
            return clean_ts(ms);
        }
        let frac = if ms % 1000 != 0 {
            let x = self.rng.f64();
            Frac::Digits(if x < 0.7 {
                3
            } else if x < 0.9 {
                6
            } else {
                9
            })
        } else {
            let x = self.rng.f64();
            if x < 0.97 {
                Frac::None
            } else if x < 0.99 {
                Frac::Digits(3)
            } else {
                Frac::Digits(1)
            }
        };
        let x = self.rng.f64();
        let (offset, z) = match local {
            _ if x < 0.78 => (0, true),
            _ if x < 0.82 => (0, false),
            Some(tz) if x < 0.90 => (offset_secs(tz, ms), false),
            _ => (self.rng.pick(&EXTRA_OFFSETS), false),
        };
        TsStyle { offset, z, frac }
    }

    fn ts_field(&mut self, k: &str, ms: i64, local: Option<&Tz>) {
        let st = self.style(ms, local);
        self.obj.ts(k, ms, st);
    }

    fn id_field(&mut self, k: &str, id: u128) {
        let upper = self.messy && self.rng.chance(0.01);
        self.obj.id(k, id, upper);
    }

    fn project_head(&mut self, ty: usize, pi: u32, t: i64) -> u8 {
        let order = self.begin(ty);
        let pid = self.projects[pi as usize].id;
        self.id_field("project_id", pid);
        let tz = self.projects[pi as usize].tz;
        self.ts_field("occurred_at", t, Some(&tz));
        order
    }

    fn extras(&mut self, ty: usize) {
        if !self.messy || !self.rng.chance(0.04) {
            return;
        }
        match (ty, self.rng.below(4)) {
            (0, 0) => self.obj.raw("scraper", "{\"name\":\"apify-tiktok\",\"version\":\"2.3.1\",\"attempt\":2}"),
            (0, 1) => self.obj.raw("raw_tags", "[\"fyp\",\"viral\",12,null]"),
            (2, 0) => self.obj.u64("following_count", self.rng.below(3000)),
            (2, 1) => self.obj.raw("verified", if self.rng.chance(0.5) { "true" } else { "false" }),
            (_, 2) => self.obj.str("region", ["US", "DE", "IN", "NP", "AU"][self.rng.below(5) as usize]),
            _ => {
                let t = self.now - self.rng.between(0, DAY);
                self.obj.ts("ingested_at", t, clean_ts(t));
            }
        }
    }

    fn render_video(&mut self, pi: u32, v: u32, vd: &Video, step: u16) -> String {
        let t = vd.step_time(step);
        let vid = self.video_id(pi, v);
        let Some(k) = vd.step(step) else {
            let order = self.project_head(1, pi, t);
            self.id_field("video_id", vid);
            if self.messy && self.rng.chance(0.1) {
                self.obj.str("reason", "deleted_by_owner");
            }
            self.extras(1);
            return self.obj.finish(order);
        };
        let order = self.project_head(0, pi, t);
        let creator = if vd.switch_at != NONE8 && k >= vd.switch_at { vd.creator2 } else { vd.creator };
        let posted = if vd.repost_at != NONE8 && k >= vd.repost_at { vd.posted2 } else { vd.posted };
        self.id_field("video_id", vid);
        let cid = self.creator_id(pi, creator);
        self.id_field("creator_id", cid);
        let tz = self.projects[pi as usize].tz;
        self.ts_field("posted_at", posted, Some(&tz));
        match vd.title {
            1 => self.obj.null("title"),
            2 => {}
            _ => {
                let h = if vd.retitle_at != NONE8 && k >= vd.retitle_at { vd.vseed ^ 1 } else { vd.vseed };
                let title = title_text(self.seed, h);
                self.obj.str("title", &title);
            }
        }
        match vd.thumb {
            1 => self.obj.null("thumbnail_url"),
            2 => {}
            _ => {
                let url = format!(
                    "https://p16-sign.tiktokcdn-us.com/obj/{}{}.jpeg",
                    hex_of(vd.vseed, 16),
                    hex_of(vd.vseed.rotate_left(17), 16)
                );
                self.obj.str("thumbnail_url", &url);
            }
        }
        if vd.url_null {
            self.obj.null("url");
        } else {
            let handle = handle_text(self.seed, pi, creator, 0);
            let url = format!("https://www.tiktok.com/@{handle}/video/7{:018}", vd.vseed % 1_000_000_000_000_000_000);
            self.obj.str("url", &url);
        }
        let [views, likes, comments, shares, saves] = vd.counts(k);
        self.obj.u64("view_count", views);
        self.obj.u64("like_count", likes);
        self.obj.u64("comment_count", comments);
        self.obj.u64("share_count", shares);
        self.obj.u64("save_count", saves);
        self.extras(0);
        self.obj.finish(order)
    }

    fn render_creator(&mut self, pi: u32, c: u32, cr: &Creator, step: u16) -> String {
        let p = &self.projects[pi as usize];
        let cid = self.creator_id(pi, c);
        let Some(k) = cr.step(step) else {
            let t = cr.removal_t;
            let order = self.project_head(3, pi, t);
            self.id_field("creator_id", cid);
            self.extras(3);
            return self.obj.finish(order);
        };
        let t = self.snap_time(p, c, cr, k);
        let followers = self.followers(p, c, cr, k);
        let order = self.project_head(2, pi, t);
        self.id_field("creator_id", cid);
        let variant = u64::from(cr.rename_at != NONE16 && k >= cr.rename_at);
        let handle = handle_text(self.seed, pi, c, variant);
        self.obj.str("tiktok_handle", &handle);
        match cr.name_kind {
            1 => self.obj.null("display_name"),
            2 => {}
            _ => {
                let name = display_name(self.seed, pi, c);
                self.obj.str("display_name", &name);
            }
        }
        match cr.avatar_kind {
            1 => self.obj.null("avatar_url"),
            2 => {}
            _ => {
                let h = hash4(self.seed, T_TEXT, ((pi as u64) << 32) | c as u64, 400);
                let url = format!("https://p16-sign-va.tiktokcdn.com/tos-maliva-avt-0068/{h:016x}~c5_100x100.jpeg");
                self.obj.str("avatar_url", &url);
            }
        }
        self.obj.u64("follower_count", followers);
        self.extras(2);
        self.obj.finish(order)
    }

    fn render_misc(&mut self, m: &Misc) -> String {
        let pi = m.p;
        let order;
        match &m.body {
            MiscBody::ProjectUpserted { name } => {
                order = self.project_head(10, pi, m.t);
                let p = &self.projects[pi as usize];
                let (org, tz) = (self.org_id(p.org), p.tz_name);
                self.id_field("org_id", org);
                let name = name.clone();
                self.obj.str("name", &name);
                self.obj.str("timezone", tz);
            }
            MiscBody::ProjectDeleted => order = self.project_head(11, pi, m.t),
            MiscBody::KeyIssued { org, key, expires } => {
                order = self.begin(12);
                self.ts_field("occurred_at", m.t, None);
                let kid = self.key_id(*org, *key);
                self.id_field("key_id", kid);
                let oid = self.org_id(*org);
                self.id_field("org_id", oid);
                let sha = Sha256::digest(self.key_text(*org, *key).as_bytes());
                let mut hex = String::with_capacity(64);
                for b in sha {
                    let _ = write!(hex, "{b:02x}");
                }
                self.obj.str("key_sha256", &hex);
                match expires {
                    Some(e) => self.ts_field("expires_at", *e, None),
                    None => {
                        if !(self.messy && *org % 2 == 1) {
                            self.obj.null("expires_at");
                        }
                    }
                }
            }
            MiscBody::KeyRevoked { key, org } => {
                order = self.begin(T_KEY_REVOKED);
                self.ts_field("occurred_at", m.t, None);
                let kid = self.key_id(*org, *key);
                self.id_field("key_id", kid);
            }
            MiscBody::CampaignUpserted { c, name } => {
                order = self.project_head(6, pi, m.t);
                let id = self.campaign_id(pi, *c);
                self.id_field("campaign_id", id);
                self.obj.str("name", name);
            }
            MiscBody::CampaignDeleted { c } => {
                order = self.project_head(7, pi, m.t);
                let id = self.campaign_id(pi, *c);
                self.id_field("campaign_id", id);
            }
            MiscBody::Item { c, item, added } => {
                order = self.project_head(if *added { 8 } else { 9 }, pi, m.t);
                let id = self.campaign_id(pi, *c);
                self.id_field("campaign_id", id);
                let (ty, iid) = match *item {
                    Item::Creator(x) => ("creator", self.creator_id(pi, x)),
                    Item::Video(x) => ("video", self.video_id(pi, x)),
                    Item::Campaign(x) => ("campaign", self.campaign_id(pi, x)),
                    Item::Foreign(id) => ("video", id),
                };
                self.obj.str("item_type", ty);
                self.id_field("item_id", iid);
            }
            MiscBody::GoalSet { g, creator, views, target, starts, ends } => {
                order = self.project_head(4, pi, m.t);
                let gid = self.goal_id(pi, *g);
                self.id_field("goal_id", gid);
                let cid = self.creator_id(pi, *creator);
                self.id_field("creator_id", cid);
                self.obj.str("metric", if *views { "views" } else { "posts" });
                self.obj.u64("target", *target);
                self.obj.str("starts_on", &starts.format("%Y-%m-%d").to_string());
                self.obj.str("ends_on", &ends.format("%Y-%m-%d").to_string());
            }
            MiscBody::GoalRemoved { g } => {
                order = self.project_head(5, pi, m.t);
                let gid = self.goal_id(pi, *g);
                self.id_field("goal_id", gid);
            }
        }
        self.obj.finish(order)
    }

    // -- invalid lines -----------------------------------------------------------

    fn invalid_line(&mut self, kind: usize, pi: u32) -> String {
        let p = &self.projects[pi as usize];
        let t = self.now - self.rng.between(0, HOUR);
        let eid = uuid_text(self.rng.uuid(), false);
        let pid = uuid_text(p.id, false);
        let v = self.rng.below(p.spec.videos as u64) as u32;
        let c = self.rng.below(p.spec.creators as u64) as u32;
        let vid = uuid_text(self.video_id(pi, v), false);
        let cid = uuid_text(self.creator_id(pi, c), false);
        let ts = ts_string(t);
        let posted = ts_string(t - 5 * DAY);
        let q = |s: &str| format!("\"{s}\"");
        let mut f: Vec<(&str, String)> = vec![
            ("type", q("video.scraped")),
            ("event_id", q(&eid)),
            ("project_id", q(&pid)),
            ("occurred_at", q(&ts)),
            ("video_id", q(&vid)),
            ("creator_id", q(&cid)),
            ("posted_at", q(&posted)),
            ("title", q("this line is a dead letter")),
            ("thumbnail_url", "null".into()),
            ("url", "null".into()),
            ("view_count", "999999999".into()),
            ("like_count", "1".into()),
            ("comment_count", "1".into()),
            ("share_count", "1".into()),
            ("save_count", "1".into()),
        ];
        let set = |f: &mut Vec<(&str, String)>, k: &str, v: String| {
            if let Some(e) = f.iter_mut().find(|e| e.0 == k) {
                e.1 = v;
            }
        };
        let snapshot = |f: &mut Vec<(&'static str, String)>| {
            f.truncate(4);
            f[0].1 = q("creator.snapshot");
            f.push(("creator_id", q(&cid)));
            f.push(("tiktok_handle", q("dead_letter_handle")));
            f.push(("display_name", "null".into()));
            f.push(("follower_count", "123456789".into()));
        };
        let goal = |f: &mut Vec<(&'static str, String)>, gid: String| {
            f.truncate(4);
            f[0].1 = q("creator.goal_set");
            f.push(("goal_id", q(&gid)));
            f.push(("creator_id", q(&cid)));
            f.push(("metric", q("posts")));
            f.push(("target", "5".into()));
            f.push(("starts_on", q("2026-01-01")));
            f.push(("ends_on", q("2026-01-31")));
        };
        let gid = uuid_text(self.goal_id(pi, 0), false);
        match INVALID_KINDS[kind] {
            "not_json_truncated" | "trailing_garbage" | "top_level_array" => {}
            "unknown_type" => set(&mut f, "type", q("video.deleted")),
            "missing_video_id" => f.retain(|e| e.0 != "video_id"),
            "count_as_string" => set(&mut f, "view_count", q("123456")),
            "negative_count" => set(&mut f, "like_count", "-5".into()),
            "fractional_count" => set(&mut f, "view_count", "1234.5".into()),
            "exponent_count" => set(&mut f, "view_count", "1e6".into()),
            "unknown_timezone" => {
                f.truncate(4);
                f[0].1 = q("project.upserted");
                f.push(("org_id", q(&uuid_text(self.org_id(p.org), false))));
                f.push(("name", q("Dead letter project")));
                f.push(("timezone", q("Mars/Olympus_Mons")));
            }
            "empty_handle" => {
                snapshot(&mut f);
                set(&mut f, "tiktok_handle", q(""));
            }
            "malformed_uuid" => set(&mut f, "video_id", q("vid-123")),
            "timestamp_without_offset" => set(&mut f, "occurred_at", q(&ts[..19])),
            "goal_ends_before_start" => {
                goal(&mut f, gid);
                set(&mut f, "ends_on", q("2025-12-31"));
            }
            "count_overflow" => set(&mut f, "view_count", "9223372036854775808".into()),
            "unknown_item_type" => {
                f.truncate(4);
                f[0].1 = q("campaign.item_added");
                f.push(("campaign_id", q(&uuid_text(self.campaign_id(pi, 0), false))));
                f.push(("item_type", q("playlist")));
                f.push(("item_id", q(&vid)));
            }
            "type_not_string" => set(&mut f, "type", "42".into()),
            "null_required_field" => {
                snapshot(&mut f);
                set(&mut f, "creator_id", "null".into());
            }
            "goal_bad_metric" => {
                goal(&mut f, gid);
                set(&mut f, "metric", q("likes"));
            }
            "goal_zero_target" => {
                goal(&mut f, gid);
                set(&mut f, "target", "0".into());
            }
            "bad_key_sha256" => {
                f.truncate(4);
                f.retain(|e| e.0 != "project_id");
                f[0].1 = q("api_key.issued");
                f.push(("key_id", q(&uuid_text(self.rng.uuid(), false))));
                f.push(("org_id", q(&uuid_text(self.org_id(p.org), false))));
                f.push(("key_sha256", q("ABCDEF0123")));
                f.push(("expires_at", "null".into()));
            }
            "missing_event_id" => f.retain(|e| e.0 != "event_id"),
            "impossible_date" => {
                goal(&mut f, gid);
                set(&mut f, "ends_on", q("2026-02-30"));
            }
            "bool_count" => {
                snapshot(&mut f);
                set(&mut f, "follower_count", "true".into());
            }
            other => unreachable!("invalid kind {other}"),
        }
        let mut s = String::from("{");
        for (i, (k, v)) in f.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{k}\":{v}");
        }
        s.push('}');
        match INVALID_KINDS[kind] {
            "not_json_truncated" => {
                let mut cut = s.len() / 2;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s
            }
            "trailing_garbage" => s + " trailing",
            "top_level_array" => format!("[{s}]"),
            _ => s,
        }
    }

    // -- summaries ---------------------------------------------------------------

    fn visible(&self, p: &Proj) -> bool {
        matches!(p.spec.role, Role::Normal | Role::Renamed | Role::DeletedThenRestored)
    }

    fn demo_keys(&self) -> Vec<DemoKey> {
        self.keys
            .iter()
            .filter(|k| !k.3)
            .map(|(o, k, text, _)| DemoKey {
                key: text.clone(),
                key_id: uuid_text(self.key_id(*o, *k), false),
                org_id: uuid_text(self.org_id(*o), false),
                project_ids: self
                    .projects
                    .iter()
                    .filter(|p| p.org == *o && self.visible(p))
                    .map(|p| uuid_text(p.id, false))
                    .collect(),
            })
            .collect()
    }

    fn project_infos(&self) -> Vec<ProjectInfo> {
        self.projects
            .iter()
            .map(|p| {
                let mut lm = BTreeMap::new();
                if p.spec.rich {
                    let pi = p.pi;
                    let mut put = |k: &'static str, id: u128| {
                        lm.insert(k, uuid_text(id, false));
                    };
                    for (k, v) in [
                        ("video.removed_for_good", p.v_removed_good),
                        ("video.removed_then_rescraped", p.v_removed_back),
                        ("video.moved_creator", p.v_moved),
                        ("video.posted_at_changed", p.v_reposted),
                        ("video.of_late_creator", p.v_late_creator),
                        ("video.views_2pow53_plus_1", p.v_extreme),
                        ("video.twin_base", if p.v_twin == u32::MAX { u32::MAX } else { p.v_twin - 1 }),
                        ("video.twin_of_base", p.v_twin),
                    ] {
                        if v != u32::MAX {
                            put(k, self.video_id(pi, v));
                        }
                    }
                    for (k, c) in [
                        ("creator.tied_snapshots", p.c_tie),
                        ("creator.late_first_snapshot", p.c_late),
                        ("creator.removed_for_good", p.c_removed_good),
                        ("creator.removed_then_resnapshotted", p.c_removed_back),
                        ("creator.never_snapshotted", p.c_never),
                    ] {
                        if c != u32::MAX {
                            put(k, self.creator_id(pi, c));
                        }
                    }
                    if p.spec.campaigns >= 10 {
                        let n = p.spec.campaigns;
                        for (k, c) in [
                            ("campaign.nest_depth0", 0),
                            ("campaign.nest_depth1", 1),
                            ("campaign.nest_depth2", 2),
                            ("campaign.nest_depth3_created_late", 3),
                            ("campaign.cycle_a", 4),
                            ("campaign.cycle_b_selfloop", 5),
                            ("campaign.renamed", 6),
                            ("campaign.deleted", 7),
                            ("campaign.same_name_a", 8),
                            ("campaign.same_name_b", 9),
                            ("campaign.never_created", n + 7),
                        ] {
                            put(k, self.campaign_id(pi, c));
                        }
                    }
                    if p.spec.goals >= 4 {
                        put("goal.replaced", self.goal_id(pi, 0));
                        put("goal.removed", self.goal_id(pi, 1));
                        put("goal.single_day_today", self.goal_id(pi, 2));
                        put("goal.of_removed_creator", self.goal_id(pi, 3));
                    }
                }
                ProjectInfo {
                    project_id: uuid_text(p.id, false),
                    org_id: uuid_text(self.org_id(p.org), false),
                    name: p.final_name.clone(),
                    timezone: p.tz_name.to_string(),
                    status: match p.spec.role {
                        Role::DeletedForGood => ProjectStatus::Deleted,
                        Role::NeverUpserted => ProjectStatus::NeverUpserted,
                        _ => ProjectStatus::Visible,
                    },
                    creators: p.spec.creators,
                    videos: p.spec.videos,
                    landmarks: lm,
                }
            })
            .collect()
    }
}

/// Posting instants around DST changes and midnights, interleaved group by group.
fn special_posts(p: &Proj, dst_dates: &[NaiveDate], now: i64) -> Vec<i64> {
    let tz = &p.tz;
    let mut groups: Vec<Vec<i64>> = Vec::new();
    for date in dst_dates.iter().rev() {
        let mut g = Vec::new();
        for (h, m, s) in [
            (1, 30, 0),
            (2, 30, 0),
            (1, 0, 0),
            (3, 0, 0),
            (1, 59, 59),
            (2, 0, 0),
            (2, 15, 0),
            (0, 30, 0),
            (3, 30, 0),
            (2, 45, 0),
        ] {
            let local = date.and_time(NaiveTime::from_hms_opt(h, m, s).expect("valid time"));
            match tz.from_local_datetime(&local) {
                LocalResult::Single(x) => g.push(x.timestamp_millis()),
                LocalResult::Ambiguous(a, b) => {
                    g.push(a.timestamp_millis());
                    g.push(b.timestamp_millis());
                }
                LocalResult::None => {}
            }
        }
        groups.push(g);
    }
    let mut mid = Vec::new();
    for back in [2, 9, 30] {
        let d = p.today - TimeDelta::days(back);
        let s = start_of_day(tz, d);
        mid.extend([s, s - 1000, s, s - 1, s + 1000]);
    }
    let utc_mid = (now - 5 * DAY).div_euclid(DAY) * DAY;
    mid.extend([utc_mid, utc_mid - 1]);
    groups.insert(0, mid);
    let mut out = Vec::new();
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for g in &groups {
            if let Some(&t) = g.get(i)
                && t < now - 2 * HOUR
            {
                out.push(t);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};
    use std::sync::OnceLock;

    fn test_gen() -> &'static Generated {
        static G: OnceLock<Generated> = OnceLock::new();
        G.get_or_init(|| generate(&GenConfig::new(7, Scale::Test)))
    }

    /// Each line of [`test_gen`] with its parsed value when it is a valid event.
    fn test_lines() -> &'static [(&'static str, Option<Value>)] {
        static P: OnceLock<Vec<(&'static str, Option<Value>)>> = OnceLock::new();
        P.get_or_init(|| test_gen().lines.iter().map(|l| (l.as_str(), valid(l))).collect())
    }

    fn parse_ts(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        if b.len() < 20 || b[10] != b'T' {
            return None;
        }
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
    }

    fn is_uuid(v: &Value) -> bool {
        v.as_str().is_some_and(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok())
    }

    fn count(v: &Value) -> bool {
        v.as_u64().is_some_and(|n| n <= i64::MAX as u64)
    }

    fn opt_str(o: &serde_json::Map<String, Value>, k: &str) -> bool {
        o.get(k).is_none_or(|v| v.is_null() || v.is_string())
    }

    fn date(v: &Value) -> Option<NaiveDate> {
        let s = v.as_str()?;
        if s.len() != 10 {
            return None;
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    }

    /// A small, independent implementation of contract §2 validity.
    fn valid(line: &str) -> Option<Value> {
        let v: Value = serde_json::from_str(line).ok()?;
        let o = v.as_object()?;
        let ty = o.get("type")?.as_str()?;
        if !is_uuid(o.get("event_id")?) || parse_ts(o.get("occurred_at")?.as_str()?).is_none() {
            return None;
        }
        let api = ty.starts_with("api_key.");
        if !api && !is_uuid(o.get("project_id")?) {
            return None;
        }
        let ok = match ty {
            "video.scraped" => {
                is_uuid(o.get("video_id")?)
                    && is_uuid(o.get("creator_id")?)
                    && parse_ts(o.get("posted_at")?.as_str()?).is_some()
                    && ["title", "thumbnail_url", "url"].iter().all(|k| opt_str(o, k))
                    && ["view_count", "like_count", "comment_count", "share_count", "save_count"]
                        .iter()
                        .all(|k| o.get(*k).is_some_and(count))
            }
            "video.removed" => is_uuid(o.get("video_id")?),
            "creator.snapshot" => {
                is_uuid(o.get("creator_id")?)
                    && o.get("tiktok_handle")?.as_str().is_some_and(|s| !s.is_empty())
                    && opt_str(o, "display_name")
                    && opt_str(o, "avatar_url")
                    && count(o.get("follower_count")?)
            }
            "creator.removed" => is_uuid(o.get("creator_id")?),
            "creator.goal_set" => {
                let s = date(o.get("starts_on")?)?;
                let e = date(o.get("ends_on")?)?;
                is_uuid(o.get("goal_id")?)
                    && is_uuid(o.get("creator_id")?)
                    && matches!(o.get("metric")?.as_str()?, "posts" | "views")
                    && o.get("target")?.as_u64().is_some_and(|t| t >= 1 && t <= i64::MAX as u64)
                    && e >= s
            }
            "creator.goal_removed" => is_uuid(o.get("goal_id")?),
            "campaign.upserted" => {
                is_uuid(o.get("campaign_id")?) && o.get("name")?.as_str().is_some_and(|s| !s.is_empty())
            }
            "campaign.deleted" => is_uuid(o.get("campaign_id")?),
            "campaign.item_added" | "campaign.item_removed" => {
                is_uuid(o.get("campaign_id")?)
                    && matches!(o.get("item_type")?.as_str()?, "creator" | "video" | "campaign")
                    && is_uuid(o.get("item_id")?)
            }
            "project.upserted" => {
                is_uuid(o.get("org_id")?)
                    && o.get("name")?.is_string()
                    && o.get("timezone")?.as_str()?.parse::<Tz>().is_ok()
            }
            "project.deleted" => true,
            "api_key.issued" => {
                let sha = o.get("key_sha256")?.as_str()?;
                is_uuid(o.get("key_id")?)
                    && is_uuid(o.get("org_id")?)
                    && sha.len() == 64
                    && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    && o.get("expires_at").is_none_or(|e| e.is_null() || e.as_str().and_then(parse_ts).is_some())
            }
            "api_key.revoked" => is_uuid(o.get("key_id")?),
            _ => false,
        };
        ok.then_some(v)
    }

    fn s(v: &Value, k: &str) -> String {
        v[k].as_str().unwrap_or_default().to_ascii_lowercase()
    }

    #[test]
    fn deterministic_per_seed() {
        let a = generate(&GenConfig::new(1, Scale::Tiny));
        let b = generate(&GenConfig::new(1, Scale::Tiny));
        let c = generate(&GenConfig::new(2, Scale::Tiny));
        assert_eq!(a.lines, b.lines);
        assert_ne!(a.lines, c.lines);
        assert_eq!(a.api_keys, b.api_keys);
        // Streaming gives the same bytes.
        let mut buf = Vec::new();
        let st = generate_to(&GenConfig::new(1, Scale::Tiny), &mut buf).unwrap();
        let joined: String = a.lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(String::from_utf8(buf).unwrap(), joined);
        assert_eq!(st.lines as usize, a.lines.len());
        // Golden: these bytes must never change. If a deliberate change to the
        // generator breaks this, update the hash and say so in the commit message.
        let digest = Sha256::digest(joined.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "c0d1e433f1b3e47955065603ad87e54a0590615ea633c5f4df10cac0517e2e33");
    }

    #[test]
    fn tiny_is_small_and_valid() {
        let g = generate(&GenConfig::new(3, Scale::Tiny));
        assert!((120..=350).contains(&g.lines.len()), "{} lines", g.lines.len());
        let bad = g.lines.iter().filter(|l| !l.trim().is_empty() && valid(l).is_none()).count();
        assert_eq!(bad as u64, g.stats.invalid);
        assert!(g.stats.invalid >= 3);
        assert_eq!(g.projects.iter().filter(|p| p.status == ProjectStatus::Visible).count(), 2);
    }

    #[test]
    fn every_valid_line_parses_and_invalid_ones_are_counted() {
        let g = test_gen();
        assert!((5_000..=20_000).contains(&g.lines.len()), "{} lines", g.lines.len());
        let mut bad = 0;
        let mut blank = 0;
        for (l, v) in test_lines() {
            if l.trim().is_empty() {
                blank += 1;
                continue;
            }
            match v {
                Some(v) => assert!(v["type"].is_string()),
                None => bad += 1,
            }
        }
        assert_eq!(bad, g.stats.invalid);
        assert_eq!(blank, g.stats.blank);
        assert!(bad >= INVALID_KINDS.len() as u64, "{bad} invalid lines");
        assert!(blank >= 1);
        assert_eq!(g.stats.lines as usize, g.lines.len());
        assert_eq!(g.stats.events + g.stats.duplicates + g.stats.invalid + g.stats.blank, g.stats.lines);
        let dup_share = g.stats.duplicates as f64 / g.stats.events as f64;
        assert!((0.01..0.03).contains(&dup_share), "{dup_share}");
    }

    #[test]
    fn event_ids_unique_except_exact_duplicates() {
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut upper = 0;
        for (l, v) in test_lines() {
            if let Some(v) = v {
                let raw = v["event_id"].as_str().unwrap();
                if raw.chars().any(|c| c.is_ascii_uppercase()) {
                    upper += 1;
                }
                if let Some(prev) = seen.insert(raw.to_ascii_lowercase(), l) {
                    assert_eq!(prev, *l, "event_id reused by a different line");
                }
            }
        }
        assert!(upper > 0);
    }

    #[test]
    fn counts_grow_across_scrapes() {
        type Scrape = (i64, String, [u64; 5], String);
        let mut by_video: HashMap<(String, String), Vec<Scrape>> = HashMap::new();
        let mut creators_of: HashMap<(String, String), HashSet<String>> = HashMap::new();
        let mut zero = 0;
        for (l, v) in test_lines() {
            let Some(v) = v else { continue };
            if v["type"] != "video.scraped" {
                continue;
            }
            let t = parse_ts(v["occurred_at"].as_str().unwrap()).unwrap();
            let posted = parse_ts(v["posted_at"].as_str().unwrap()).unwrap();
            assert!(posted < t, "posted_at after scrape: {l}");
            let c = ["view_count", "like_count", "comment_count", "share_count", "save_count"]
                .map(|k| v[k].as_u64().unwrap());
            if c[0] == 0 {
                zero += 1;
            }
            let key = (s(v, "project_id"), s(v, "video_id"));
            creators_of.entry(key.clone()).or_default().insert(s(v, "creator_id"));
            by_video.entry(key).or_default().push((t, s(v, "event_id"), c, v["posted_at"].to_string()));
        }
        assert!(zero > 0);
        let mut multi = 0;
        for (_, mut xs) in by_video {
            xs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            xs.dedup_by(|a, b| a.1 == b.1);
            if xs.len() > 1 {
                multi += 1;
            }
            for w in xs.windows(2) {
                assert!(w[1].0 > w[0].0, "scrapes of a video share an instant");
                for i in 0..5 {
                    assert!(w[1].2[i] >= w[0].2[i], "count {i} shrank: {:?} -> {:?}", w[0].2, w[1].2);
                }
            }
            let first = xs.first().unwrap().2[0];
            let last = xs.last().unwrap().2[0];
            assert!(last >= first);
        }
        assert!(multi > 1000);
        assert!(creators_of.values().any(|s| s.len() > 1), "no video moved creator");
    }

    #[test]
    fn test_scale_covers_zones_types_and_special_cases() {
        let g = test_gen();
        let mut types: HashSet<String> = HashSet::new();
        let mut zones: HashSet<String> = HashSet::new();
        let mut offsets = HashSet::new();
        let mut fractions = 0;
        let mut upserted: HashSet<String> = HashSet::new();
        let mut deleted: HashSet<String> = HashSet::new();
        let mut with_data: HashSet<String> = HashSet::new();
        let mut snap_times: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        let mut first_video_line: HashMap<String, usize> = HashMap::new();
        let mut first_snap_line: HashMap<String, usize> = HashMap::new();
        let mut goal_sets: HashMap<String, usize> = HashMap::new();
        let mut campaign_names: HashMap<String, HashSet<String>> = HashMap::new();
        let mut nest: HashSet<(String, String)> = HashSet::new();
        let mut keys: HashMap<String, Value> = HashMap::new();
        let mut null_titles = 0;
        for (i, (_, v)) in test_lines().iter().enumerate() {
            let Some(v) = v else { continue };
            let ty = v["type"].as_str().unwrap().to_string();
            let occurred = v["occurred_at"].as_str().unwrap();
            if !occurred.ends_with('Z') {
                offsets.insert(occurred[occurred.len() - 6..].to_string());
            }
            if occurred.len() > 20 && occurred.as_bytes()[19] == b'.' {
                fractions += 1;
            }
            let pid = s(v, "project_id");
            match ty.as_str() {
                "project.upserted" => {
                    zones.insert(v["timezone"].as_str().unwrap().to_string());
                    upserted.insert(pid.clone());
                }
                "project.deleted" => {
                    deleted.insert(pid.clone());
                }
                "video.scraped" => {
                    with_data.insert(pid.clone());
                    first_video_line.entry(s(v, "creator_id")).or_insert(i);
                    if v.get("title").is_none_or(Value::is_null) {
                        null_titles += 1;
                    }
                }
                "creator.snapshot" => {
                    first_snap_line.entry(s(v, "creator_id")).or_insert(i);
                    let t = parse_ts(occurred).unwrap();
                    snap_times.entry(s(v, "creator_id")).or_default().push((t, s(v, "event_id")));
                }
                "creator.goal_set" => *goal_sets.entry(s(v, "goal_id")).or_default() += 1,
                "campaign.upserted" => {
                    campaign_names.entry(s(v, "campaign_id")).or_default().insert(s(v, "name"));
                }
                "campaign.item_added" if v["item_type"] == "campaign" => {
                    nest.insert((s(v, "campaign_id"), s(v, "item_id")));
                }
                "api_key.issued" => {
                    keys.insert(s(v, "key_id"), v.clone());
                }
                _ => {}
            }
            types.insert(ty);
        }
        for t in EVENT_TYPES {
            assert!(types.contains(t), "missing type {t}");
        }
        for z in ZONES {
            assert!(zones.contains(z), "missing zone {z}");
        }
        assert!(offsets.contains("+05:45") && offsets.len() >= 5, "{offsets:?}");
        assert!(fractions > 0);
        assert!(null_titles > 0);
        // Project lifecycle.
        let never = g.projects.iter().find(|p| p.status == ProjectStatus::NeverUpserted).unwrap();
        assert!(!upserted.contains(&never.project_id) && with_data.contains(&never.project_id));
        let gone = g.projects.iter().find(|p| p.status == ProjectStatus::Deleted).unwrap();
        assert!(deleted.contains(&gone.project_id));
        assert!(g.projects.iter().any(|p| p.status == ProjectStatus::Visible && deleted.contains(&p.project_id)));
        // Tied snapshots, late first snapshots.
        let mut ties = 0;
        for xs in snap_times.values_mut() {
            xs.sort();
            xs.dedup();
            if xs.windows(2).any(|w| w[0].0 == w[1].0) {
                ties += 1;
            }
        }
        assert!(ties >= 6, "{ties} creators with tied snapshots");
        let late = first_snap_line.iter().filter(|(c, l)| first_video_line.get(*c).is_some_and(|v| v < l)).count();
        assert!(late >= 6, "{late} creators first seen after their videos");
        // Goals replaced; campaigns renamed, nested, cyclic.
        assert!(goal_sets.values().any(|n| *n >= 2));
        assert!(campaign_names.values().any(|n| n.len() >= 2));
        assert!(nest.iter().any(|(a, b)| nest.contains(&(b.clone(), a.clone())) && a != b));
        let lm = &g.projects[0].landmarks;
        let (d0, d1, d2, d3) = (
            &lm["campaign.nest_depth0"],
            &lm["campaign.nest_depth1"],
            &lm["campaign.nest_depth2"],
            &lm["campaign.nest_depth3_created_late"],
        );
        assert!(nest.contains(&(d0.clone(), d1.clone())));
        assert!(nest.contains(&(d1.clone(), d2.clone())));
        assert!(nest.contains(&(d2.clone(), d3.clone())));
        // Keys: the returned ones hash to issued, unexpired, unrevoked keys.
        assert!(!g.api_keys.is_empty());
        for k in &g.api_keys {
            assert!(k.key.starts_with("gv_") && k.key.len() == 35);
            let ev = &keys[&k.key_id];
            let sha: String = Sha256::digest(k.key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(ev["key_sha256"], sha.as_str());
            if let Some(e) = ev.get("expires_at").and_then(Value::as_str) {
                assert!(parse_ts(e).unwrap() > default_now().timestamp_millis());
            }
        }
        let expired = keys
            .values()
            .filter(|v| {
                v["expires_at"].as_str().is_some_and(|e| parse_ts(e).unwrap() < default_now().timestamp_millis())
            })
            .count();
        assert!(expired >= 1);
        assert!(g.api_keys.iter().any(|k| k.project_ids.is_empty()), "key-only org");
        assert!(g.api_keys.iter().any(|k| k.project_ids.len() >= 2));
    }

    #[test]
    fn posts_around_dst_and_midnight() {
        let g = test_gen();
        let ny: Tz = "America/New_York".parse().unwrap();
        let ny_pid = &g.projects[0].project_id;
        let mut dst_days = HashSet::new();
        let mut ambiguous_hour = 0;
        let mut posted_counts: HashMap<i64, usize> = HashMap::new();
        let mut latest: HashMap<String, (i64, i64)> = HashMap::new();
        for (_, v) in test_lines() {
            let Some(v) = v else { continue };
            if v["type"] != "video.scraped" || &s(v, "project_id") != ny_pid {
                continue;
            }
            let t = parse_ts(v["posted_at"].as_str().unwrap()).unwrap();
            let local = utc_ms(t).with_timezone(&ny);
            let day = local.date_naive();
            let h = chrono::Timelike::hour(&local);
            if (1..=3).contains(&h) && (day.to_string() == "2026-03-08" || day.to_string() == "2026-11-01") {
                dst_days.insert(day);
                if day.to_string() == "2026-11-01" && h == 1 {
                    ambiguous_hour += 1;
                }
            }
            let occ = parse_ts(v["occurred_at"].as_str().unwrap()).unwrap();
            let e = latest.entry(s(v, "video_id")).or_insert((occ, t));
            if occ >= e.0 {
                *e = (occ, t);
            }
        }
        for (_, (_, t)) in latest {
            *posted_counts.entry(t).or_default() += 1;
        }
        assert_eq!(dst_days.len(), 2);
        assert!(ambiguous_hour >= 2);
        assert!(posted_counts.values().any(|n| *n >= 2), "no equal posted_at");
        let today = utc_ms(default_now().timestamp_millis()).with_timezone(&ny).date_naive();
        let midnight = start_of_day(&ny, today - TimeDelta::days(2));
        assert!(posted_counts.contains_key(&midnight));
    }

    #[test]
    fn scale_parse() {
        for s in ["tiny", "test", "demo", "s", "m", "l", "TEST"] {
            let sc: Scale = s.parse().unwrap();
            assert_eq!(sc.name(), s.to_ascii_lowercase());
        }
        assert!("xl".parse::<Scale>().is_err());
    }

    #[test]
    fn prng_is_stable() {
        let mut r = Rng::new(0);
        let xs: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r2 = Rng::new(0);
        assert_eq!(xs, (0..3).map(|_| r2.next_u64()).collect::<Vec<_>>());
        assert_ne!(xs[0], xs[1]);
        let u = uuid::Uuid::from_u128(Rng::new(5).uuid());
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn clean_mode_is_chronological() {
        let cfg = GenConfig {
            seed: 9,
            scale: Scale::Tiny,
            shuffle_window: Some(0),
            duplicate_rate: 0.0,
            invalid_lines: false,
            messy: false,
            ..Default::default()
        };
        let g = generate(&cfg);
        let mut prev = i64::MIN;
        for l in &g.lines {
            let v = valid(l).expect("clean lines are valid");
            let t = parse_ts(v["occurred_at"].as_str().unwrap()).unwrap();
            assert!(v["occurred_at"].as_str().unwrap().ends_with('Z'));
            assert!(t >= prev);
            prev = t;
        }
        assert_eq!(g.stats.duplicates + g.stats.invalid + g.stats.blank, 0);
    }
}
