//! Independent reference model of every aggregate endpoint.
//!
//! It shares no code with the engine: it reads raw event JSON lines, keeps the
//! final last-writer-wins registers of contract §2.3 in plain maps, and answers
//! each query from scratch with plain loops over them. Clarity over speed: no
//! incremental state, no caching beyond the final registers themselves.
//!
//! Semantics chosen where the contract is silent (the engine must agree):
//! * UUIDs: only the hyphenated 8-4-4-4-12 form, any letter case.
//! * Timestamps: `chrono::DateTime::parse_from_rfc3339` with `T` or `t` between
//!   date and time (never a space); an offset is required.
//! * Dates (events and parameters): exactly `YYYY-MM-DD`, a real date.
//! * Integer parameters: ASCII digits only (leading zeros allowed), must fit
//!   in u64, then the stated range; `min_x_multiple`: `DIGITS[.DIGITS]`.
//! * `project.upserted` `name` may be the empty string.
//! * Two different events with the same `(occurred_at, event_id)`: the first
//!   one read wins (the contract makes event ids unique, so this is moot).
//! * Sums that do not fit a u64/i64 are written as JSON floats.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

type Fail = (u16, &'static str);
const BAD: Fail = (400, "invalid_parameter");
const NOT_FOUND: Fail = (404, "not_found");

// ---------------------------------------------------------------------------
// Primitive parsers
// ---------------------------------------------------------------------------

/// Hyphenated UUID, any case → lowercase.
fn parse_uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() };
        if !ok {
            return None;
        }
    }
    Some(s.to_ascii_lowercase())
}

/// The 16 bytes of a (valid, lowercase) UUID as an unsigned integer.
fn uuid_bits(s: &str) -> u128 {
    u128::from_str_radix(&s.replace('-', ""), 16).expect("validated uuid")
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    // The date and time are joined by `T` (or `t`), never by a space.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

/// Strict `YYYY-MM-DD`, a real calendar date.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    for (i, &c) in b.iter().enumerate() {
        if i != 4 && i != 7 && !c.is_ascii_digit() {
            return None;
        }
    }
    let y: i32 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn uint(x: u128) -> Value {
    match u64::try_from(x) {
        Ok(v) => Value::from(v),
        Err(_) => Value::from(x as f64),
    }
}

fn sint(x: i128) -> Value {
    match i64::try_from(x) {
        Ok(v) => Value::from(v),
        Err(_) => Value::from(x as f64),
    }
}

fn float(x: f64) -> Value {
    Value::from(x)
}

fn opt_str(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::String(s.clone()),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------------------
// Event validation (contract §2.1 / §2.2)
// ---------------------------------------------------------------------------

/// Accessors over one event object; each returns None when the field is
/// missing or invalid.
struct Obj<'a>(&'a Map<String, Value>);

impl Obj<'_> {
    fn string(&self, k: &str) -> Option<&str> {
        self.0.get(k)?.as_str()
    }
    fn nonempty(&self, k: &str) -> Option<String> {
        self.string(k).filter(|s| !s.is_empty()).map(str::to_owned)
    }
    fn uuid(&self, k: &str) -> Option<String> {
        parse_uuid(self.string(k)?)
    }
    fn ts(&self, k: &str) -> Option<DateTime<Utc>> {
        parse_ts(self.string(k)?)
    }
    fn date(&self, k: &str) -> Option<NaiveDate> {
        parse_date(self.string(k)?)
    }
    /// Non-negative JSON integer (no fraction, no exponent) <= 2^63-1.
    fn count(&self, k: &str) -> Option<u64> {
        match self.0.get(k)? {
            Value::Number(n) => n.as_u64().filter(|&v| v <= i64::MAX as u64),
            _ => None,
        }
    }
    /// `string|null`, possibly absent. Outer None = invalid.
    fn nullable(&self, k: &str) -> Option<Option<String>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    }
    /// RFC 3339 or null/absent. Outer None = invalid.
    fn nullable_ts(&self, k: &str) -> Option<Option<DateTime<Utc>>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => parse_ts(s).map(Some),
            Some(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Video {
    video_id: String,
    creator_id: String,
    posted_at: DateTime<Utc>,
    title: Option<String>,
    thumbnail_url: Option<String>,
    url: Option<String>,
    view_count: u64,
    like_count: u64,
    comment_count: u64,
    share_count: u64,
    save_count: u64,
}

#[derive(Clone, Debug)]
struct Creator {
    creator_id: String,
    tiktok_handle: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    follower_count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Posts,
    Views,
}

#[derive(Clone, Debug)]
struct Goal {
    goal_id: String,
    creator_id: String,
    metric: Metric,
    target: u64,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ItemType {
    Creator,
    Video,
    Campaign,
}

#[derive(Clone, Debug)]
struct ProjectRec {
    org_id: String,
    name: String,
    tz: Tz,
    tz_name: String,
}

#[derive(Clone, Debug)]
struct ApiKey {
    org_id: String,
    key_sha256: String,
    expires_at: Option<DateTime<Utc>>,
}

enum Kind {
    VideoScraped(Video),
    VideoRemoved(String),
    CreatorSnapshot(Creator),
    CreatorRemoved(String),
    GoalSet(Goal),
    GoalRemoved(String),
    CampaignUpserted(String, String),
    CampaignDeleted(String),
    Item(bool, String, ItemType, String),
    ProjectUpserted(ProjectRec),
    ProjectDeleted,
    KeyIssued(String, ApiKey),
    KeyRevoked(String),
}

struct Event {
    /// `(occurred_at, event_id bits)`: the LWW order.
    ord: (DateTime<Utc>, u128),
    project_id: Option<String>,
    kind: Kind,
}

/// Parse and validate one line; None = dead letter.
fn parse_event(line: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(line).ok()?;
    let o = Obj(v.as_object()?);
    let ty = o.string("type")?;
    let event_id = o.uuid("event_id")?;
    let occurred_at = o.ts("occurred_at")?;
    let is_key = matches!(ty, "api_key.issued" | "api_key.revoked");
    let project_id = if is_key { None } else { Some(o.uuid("project_id")?) };
    let kind = match ty {
        "video.scraped" => Kind::VideoScraped(Video {
            video_id: o.uuid("video_id")?,
            creator_id: o.uuid("creator_id")?,
            posted_at: o.ts("posted_at")?,
            title: o.nullable("title")?,
            thumbnail_url: o.nullable("thumbnail_url")?,
            url: o.nullable("url")?,
            view_count: o.count("view_count")?,
            like_count: o.count("like_count")?,
            comment_count: o.count("comment_count")?,
            share_count: o.count("share_count")?,
            save_count: o.count("save_count")?,
        }),
        "video.removed" => Kind::VideoRemoved(o.uuid("video_id")?),
        "creator.snapshot" => Kind::CreatorSnapshot(Creator {
            creator_id: o.uuid("creator_id")?,
            tiktok_handle: o.nonempty("tiktok_handle")?,
            display_name: o.nullable("display_name")?,
            avatar_url: o.nullable("avatar_url")?,
            follower_count: o.count("follower_count")?,
        }),
        "creator.removed" => Kind::CreatorRemoved(o.uuid("creator_id")?),
        "creator.goal_set" => {
            let metric = match o.string("metric")? {
                "posts" => Metric::Posts,
                "views" => Metric::Views,
                _ => return None,
            };
            let g = Goal {
                goal_id: o.uuid("goal_id")?,
                creator_id: o.uuid("creator_id")?,
                metric,
                target: o.count("target").filter(|&t| t >= 1)?,
                starts_on: o.date("starts_on")?,
                ends_on: o.date("ends_on")?,
            };
            if g.ends_on < g.starts_on {
                return None;
            }
            Kind::GoalSet(g)
        }
        "creator.goal_removed" => Kind::GoalRemoved(o.uuid("goal_id")?),
        "campaign.upserted" => Kind::CampaignUpserted(o.uuid("campaign_id")?, o.nonempty("name")?),
        "campaign.deleted" => Kind::CampaignDeleted(o.uuid("campaign_id")?),
        "campaign.item_added" | "campaign.item_removed" => {
            let item_type = match o.string("item_type")? {
                "creator" => ItemType::Creator,
                "video" => ItemType::Video,
                "campaign" => ItemType::Campaign,
                _ => return None,
            };
            Kind::Item(ty == "campaign.item_added", o.uuid("campaign_id")?, item_type, o.uuid("item_id")?)
        }
        "project.upserted" => {
            let tz_name = o.string("timezone")?.to_owned();
            let tz = Tz::from_str(&tz_name).ok()?;
            Kind::ProjectUpserted(ProjectRec {
                org_id: o.uuid("org_id")?,
                name: o.string("name")?.to_owned(),
                tz,
                tz_name,
            })
        }
        "project.deleted" => Kind::ProjectDeleted,
        "api_key.issued" => {
            let hash = o.string("key_sha256")?;
            if hash.len() != 64 || !hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
            Kind::KeyIssued(
                o.uuid("key_id")?,
                ApiKey {
                    org_id: o.uuid("org_id")?,
                    key_sha256: hash.to_owned(),
                    expires_at: o.nullable_ts("expires_at")?,
                },
            )
        }
        "api_key.revoked" => Kind::KeyRevoked(o.uuid("key_id")?),
        _ => return None,
    };
    Some(Event { ord: (occurred_at, uuid_bits(&event_id)), project_id, kind })
}

// ---------------------------------------------------------------------------
// Registers (contract §2.3)
// ---------------------------------------------------------------------------

struct Lww<T> {
    ord: (DateTime<Utc>, u128),
    val: Option<T>,
}

fn put<K: Eq + Hash, T>(m: &mut HashMap<K, Lww<T>>, k: K, ord: (DateTime<Utc>, u128), val: Option<T>) {
    let newer = match m.get(&k) {
        Some(cur) => ord > cur.ord,
        None => true,
    };
    if newer {
        m.insert(k, Lww { ord, val });
    }
}

/// All registers of one project.
#[derive(Default)]
struct ProjectRegs {
    project: Option<Lww<ProjectRec>>,
    videos: HashMap<String, Lww<Video>>,
    creators: HashMap<String, Lww<Creator>>,
    followers: HashMap<(String, DateTime<Utc>), Lww<u64>>,
    goals: HashMap<String, Lww<Goal>>,
    campaigns: HashMap<String, Lww<String>>,
    members: HashMap<(String, ItemType, String), Lww<()>>,
    last_event_at: Option<DateTime<Utc>>,
}

/// The visible part of one project's final state.
struct View {
    project: Option<ProjectRec>,
    /// Tracked creators by id.
    creators: BTreeMap<String, Creator>,
    /// Visible videos by id.
    videos: BTreeMap<String, Video>,
    /// Ids of the visible videos of each tracked creator (an index into `videos`).
    by_creator: HashMap<String, Vec<String>>,
    /// All follower history points by creator, sorted by instant.
    followers: HashMap<String, Vec<(DateTime<Utc>, u64)>>,
    /// Visible goals (present, creator tracked), sorted by goal_id.
    goals: Vec<Goal>,
    /// Visible campaigns: id → name.
    campaigns: BTreeMap<String, String>,
    /// Present memberships: campaign (visible or not) → (item type, item).
    members: BTreeMap<String, Vec<(ItemType, String)>>,
    last_event_at: Option<DateTime<Utc>>,
}

impl View {
    fn build(r: &ProjectRegs) -> View {
        let project = r.project.as_ref().and_then(|l| l.val.clone());
        let creators: BTreeMap<String, Creator> =
            r.creators.iter().filter_map(|(k, l)| l.val.clone().map(|c| (k.clone(), c))).collect();
        let videos: BTreeMap<String, Video> = r
            .videos
            .iter()
            .filter_map(|(k, l)| l.val.clone().map(|v| (k.clone(), v)))
            .filter(|(_, v)| creators.contains_key(&v.creator_id))
            .collect();
        let mut by_creator: HashMap<String, Vec<String>> = HashMap::new();
        for v in videos.values() {
            by_creator.entry(v.creator_id.clone()).or_default().push(v.video_id.clone());
        }
        let mut followers: HashMap<String, Vec<(DateTime<Utc>, u64)>> = HashMap::new();
        for ((c, t), l) in &r.followers {
            if let Some(n) = l.val {
                followers.entry(c.clone()).or_default().push((*t, n));
            }
        }
        for pts in followers.values_mut() {
            pts.sort();
        }
        let mut goals: Vec<Goal> =
            r.goals.values().filter_map(|l| l.val.clone()).filter(|g| creators.contains_key(&g.creator_id)).collect();
        goals.sort_by(|a, b| a.goal_id.cmp(&b.goal_id));
        let campaigns = r.campaigns.iter().filter_map(|(k, l)| l.val.clone().map(|n| (k.clone(), n))).collect();
        let mut members: BTreeMap<String, Vec<(ItemType, String)>> = BTreeMap::new();
        for ((c, t, i), l) in &r.members {
            if l.val.is_some() {
                members.entry(c.clone()).or_default().push((*t, i.clone()));
            }
        }
        for items in members.values_mut() {
            items.sort();
        }
        View {
            project,
            creators,
            videos,
            by_creator,
            followers,
            goals,
            campaigns,
            members,
            last_event_at: r.last_event_at,
        }
    }
}

impl View {
    /// The visible videos of one creator.
    fn of_creator<'a>(&'a self, creator_id: &str) -> impl Iterator<Item = &'a Video> + 'a {
        let ids = self.by_creator.get(creator_id).map(Vec::as_slice).unwrap_or(&[]);
        ids.iter().map(|id| &self.videos[id])
    }
}

// ---------------------------------------------------------------------------
// Time (contract §3)
// ---------------------------------------------------------------------------

/// First instant of local day `d` in `tz`: local midnight, or the earliest
/// existing local time after it (DST gap); the earlier one if ambiguous.
fn start_of_day(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).unwrap();
    for _ in 0..(48 * 60) {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(1);
    }
    panic!("no start of day for {d} in {tz}");
}

#[derive(Clone, Copy)]
struct Period {
    lo: Option<DateTime<Utc>>,
    hi: Option<DateTime<Utc>>,
}

impl Period {
    fn new(tz: Tz, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Period {
        Period { lo: from.map(|d| start_of_day(tz, d)), hi: to.map(|d| start_of_day(tz, d.succ_opt().unwrap())) }
    }
    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.lo.is_none_or(|lo| lo <= t) && self.hi.is_none_or(|hi| t < hi)
    }
}

// ---------------------------------------------------------------------------
// Query parameters (contract §4.1)
// ---------------------------------------------------------------------------

struct Params(HashMap<&'static str, String>);

impl Params {
    fn collect(query: &[(String, String)], known: &[&'static str]) -> Result<Params, Fail> {
        let mut m = HashMap::new();
        for (k, v) in query {
            let Some(&name) = known.iter().find(|n| **n == k.as_str()) else {
                continue;
            };
            if v.is_empty() || m.insert(name, v.clone()).is_some() {
                return Err(BAD);
            }
        }
        Ok(Params(m))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn date(&self, k: &str) -> Result<Option<NaiveDate>, Fail> {
        self.get(k).map(|s| parse_date(s).ok_or(BAD)).transpose()
    }
    fn int(&self, k: &str, lo: u64, hi: u64, default: u64) -> Result<u64, Fail> {
        let Some(s) = self.get(k) else {
            return Ok(default);
        };
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(BAD);
        }
        let n: u64 = s.parse().map_err(|_| BAD)?;
        if n < lo || n > hi {
            return Err(BAD);
        }
        Ok(n)
    }
    fn tz(&self) -> Result<Option<Tz>, Fail> {
        self.get("tz").map(|s| Tz::from_str(s).map_err(|_| BAD)).transpose()
    }
}

fn parse_decimal(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return None;
    }
    s.parse().ok().filter(|x: &f64| x.is_finite())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VideoOrder {
    Views,
    Likes,
    Comments,
    Shares,
    Saves,
    PostedAt,
}

enum Query {
    VideoLeaderboard { from: Option<NaiveDate>, to: Option<NaiveDate>, order: VideoOrder, limit: u64, offset: u64 },
    PostingHeatmap { from: NaiveDate, to: NaiveDate, tz: Option<Tz> },
    ViewDistribution { from: NaiveDate, to: NaiveDate, bin_count: u64 },
    Outliers { from: Option<NaiveDate>, to: Option<NaiveDate>, min_x: f64, limit: u64 },
    CreatorLeaderboard { from: Option<NaiveDate>, to: Option<NaiveDate>, limit: u64, offset: u64 },
    PostingConsistency { from: NaiveDate, to: NaiveDate, tz: Option<Tz> },
    CreatorScatter { from: Option<NaiveDate>, to: Option<NaiveDate> },
    GoalCompliance,
    CampaignLeaderboard { from: NaiveDate, to: NaiveDate },
    MemberOverlap { dimension: ItemType },
}

/// Validate every parameter; returns the lowercase project id and the query.
fn parse_query(endpoint: &str, query: &[(String, String)]) -> Result<(String, Query), Fail> {
    let known: &[&'static str] = match endpoint {
        "video-leaderboard" => &["project_id", "from", "to", "order", "limit", "offset"],
        "posting-heatmap" | "posting-consistency" => &["project_id", "from", "to", "tz"],
        "view-distribution" => &["project_id", "from", "to", "bin_count"],
        "outliers" => &["project_id", "from", "to", "min_x_multiple", "limit"],
        "creator-leaderboard" => &["project_id", "from", "to", "limit", "offset"],
        "creator-scatter" | "campaign-leaderboard" => &["project_id", "from", "to"],
        "goal-compliance" => &["project_id"],
        "member-overlap" => &["project_id", "dimension"],
        _ => return Err(NOT_FOUND),
    };
    let p = Params::collect(query, known)?;
    let project_id = parse_uuid(p.get("project_id").ok_or(BAD)?).ok_or(BAD)?;
    let from = p.date("from")?;
    let to = p.date("to")?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(BAD);
    }
    let required = || Ok::<_, Fail>((from.ok_or(BAD)?, to.ok_or(BAD)?));
    let q = match endpoint {
        "video-leaderboard" => {
            let order = match p.get("order").unwrap_or("view_count") {
                "view_count" => VideoOrder::Views,
                "like_count" => VideoOrder::Likes,
                "comment_count" => VideoOrder::Comments,
                "share_count" => VideoOrder::Shares,
                "save_count" => VideoOrder::Saves,
                "posted_at" => VideoOrder::PostedAt,
                _ => return Err(BAD),
            };
            Query::VideoLeaderboard {
                from,
                to,
                order,
                limit: p.int("limit", 1, 200, 100)?,
                offset: p.int("offset", 0, u64::MAX, 0)?,
            }
        }
        "posting-heatmap" => {
            let (from, to) = required()?;
            Query::PostingHeatmap { from, to, tz: p.tz()? }
        }
        "posting-consistency" => {
            let (from, to) = required()?;
            Query::PostingConsistency { from, to, tz: p.tz()? }
        }
        "view-distribution" => {
            let (from, to) = required()?;
            Query::ViewDistribution { from, to, bin_count: p.int("bin_count", 5, 50, 20)? }
        }
        "outliers" => {
            let min_x = match p.get("min_x_multiple") {
                None => 1.5,
                Some(s) => parse_decimal(s).filter(|&x| x > 0.0 && x <= 1000.0).ok_or(BAD)?,
            };
            Query::Outliers { from, to, min_x, limit: p.int("limit", 1, 100, 50)? }
        }
        "creator-leaderboard" => Query::CreatorLeaderboard {
            from,
            to,
            limit: p.int("limit", 1, 200, 100)?,
            offset: p.int("offset", 0, u64::MAX, 0)?,
        },
        "creator-scatter" => Query::CreatorScatter { from, to },
        "goal-compliance" => Query::GoalCompliance,
        "campaign-leaderboard" => {
            let (from, to) = required()?;
            Query::CampaignLeaderboard { from, to }
        }
        "member-overlap" => {
            let dimension = match p.get("dimension").unwrap_or("creator") {
                "creator" => ItemType::Creator,
                "video" => ItemType::Video,
                _ => return Err(BAD),
            };
            Query::MemberOverlap { dimension }
        }
        _ => unreachable!(),
    };
    Ok((project_id, q))
}

// ---------------------------------------------------------------------------
// Figures shared by several endpoints
// ---------------------------------------------------------------------------

/// `(likes + comments + shares) / views * 100`, round2; 0 when views are 0.
fn engagement<'a>(videos: impl IntoIterator<Item = &'a Video>) -> f64 {
    let (mut views, mut inter) = (0u128, 0u128);
    for v in videos {
        views += v.view_count as u128;
        inter += v.like_count as u128 + v.comment_count as u128 + v.share_count as u128;
    }
    if views == 0 { 0.0 } else { round2(inter as f64 / views as f64 * 100.0) }
}

/// `(follower_delta, growth_rate)` of a creator over a period.
fn follower_change(view: &View, creator_id: &str, period: Period) -> (i64, f64) {
    let pts: Vec<u64> = view
        .followers
        .get(creator_id)
        .map(|p| p.iter().filter(|(t, _)| period.contains(*t)).map(|(_, n)| *n).collect())
        .unwrap_or_default();
    let (Some(&first), Some(&last)) = (pts.first(), pts.last()) else {
        return (0, 0.0);
    };
    let delta = last as i64 - first as i64;
    let growth = if first == 0 { 0.0 } else { round2(delta as f64 / first as f64 * 100.0) };
    (delta, growth)
}

fn video_item(v: &Video, c: &Creator) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("video_id".into(), json!(v.video_id));
    m.insert("title".into(), opt_str(&v.title));
    m.insert("thumbnail_url".into(), opt_str(&v.thumbnail_url));
    m.insert("url".into(), opt_str(&v.url));
    m.insert("posted_at".into(), json!(fmt_ts(v.posted_at)));
    m.insert("creator_id".into(), json!(v.creator_id));
    m.insert("tiktok_handle".into(), json!(c.tiktok_handle));
    m.insert("display_name".into(), opt_str(&c.display_name));
    m.insert("avatar_url".into(), opt_str(&c.avatar_url));
    m
}

/// Exact nearest-rank percentile over sorted values: rank = ceil(p/100 * N).
fn nearest_rank(sorted: &[u64], p: u64) -> u64 {
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

pub struct Reference {
    views: HashMap<String, View>,
    keys: HashMap<String, Lww<ApiKey>>,
}

impl Reference {
    /// Blank lines are skipped; invalid events (contract §2.1/§2.2) are ignored.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Reference {
        let mut regs: HashMap<String, ProjectRegs> = HashMap::new();
        let mut keys = HashMap::new();
        for line in lines {
            let line = line.as_ref();
            if line.trim().is_empty() {
                continue;
            }
            let Some(ev) = parse_event(line) else {
                continue;
            };
            let ord = ev.ord;
            let Some(pid) = ev.project_id else {
                match ev.kind {
                    Kind::KeyIssued(id, k) => put(&mut keys, id, ord, Some(k)),
                    Kind::KeyRevoked(id) => put(&mut keys, id, ord, None),
                    _ => unreachable!(),
                }
                continue;
            };
            let r = regs.entry(pid).or_default();
            r.last_event_at = Some(r.last_event_at.map_or(ord.0, |t| t.max(ord.0)));
            match ev.kind {
                Kind::VideoScraped(v) => put(&mut r.videos, v.video_id.clone(), ord, Some(v)),
                Kind::VideoRemoved(id) => put(&mut r.videos, id, ord, None),
                Kind::CreatorSnapshot(c) => {
                    put(&mut r.followers, (c.creator_id.clone(), ord.0), ord, Some(c.follower_count));
                    put(&mut r.creators, c.creator_id.clone(), ord, Some(c));
                }
                Kind::CreatorRemoved(id) => put(&mut r.creators, id, ord, None),
                Kind::GoalSet(g) => put(&mut r.goals, g.goal_id.clone(), ord, Some(g)),
                Kind::GoalRemoved(id) => put(&mut r.goals, id, ord, None),
                Kind::CampaignUpserted(id, name) => put(&mut r.campaigns, id, ord, Some(name)),
                Kind::CampaignDeleted(id) => put(&mut r.campaigns, id, ord, None),
                Kind::Item(added, c, t, i) => put(&mut r.members, (c, t, i), ord, added.then_some(())),
                Kind::ProjectUpserted(p) => {
                    if r.project.as_ref().is_none_or(|cur| ord > cur.ord) {
                        r.project = Some(Lww { ord, val: Some(p) });
                    }
                }
                Kind::ProjectDeleted => {
                    if r.project.as_ref().is_none_or(|cur| ord > cur.ord) {
                        r.project = Some(Lww { ord, val: None });
                    }
                }
                Kind::KeyIssued(..) | Kind::KeyRevoked(_) => unreachable!(),
            }
        }
        let views = regs.iter().map(|(k, r)| (k.clone(), View::build(r))).collect();
        Reference { views, keys }
    }

    /// `meta.last_event_at`: greatest `occurred_at` of any valid event of the project.
    pub fn last_event_at(&self, project_id: &str) -> Option<String> {
        let pid = project_id.to_ascii_lowercase();
        self.views.get(&pid)?.last_event_at.map(fmt_ts)
    }

    /// Visible projects: (project_id, org_id, timezone), sorted by id.
    pub fn projects(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .views
            .iter()
            .filter_map(|(id, v)| v.project.as_ref().map(|p| (id.clone(), p.org_id.clone(), p.tz_name.clone())))
            .collect();
        out.sort();
        out
    }

    /// Visible API keys: (key_id, org_id, key_sha256, expires_at), sorted by id,
    /// ignoring expiry (callers compare `expires_at` with their own now).
    pub fn api_keys(&self) -> Vec<(String, String, String, Option<DateTime<Utc>>)> {
        let mut out: Vec<_> = self
            .keys
            .iter()
            .filter_map(|(id, l)| {
                l.val.as_ref().map(|k| (id.clone(), k.org_id.clone(), k.key_sha256.clone(), k.expires_at))
            })
            .collect();
        out.sort();
        out
    }

    /// Sorted `view_count`s of the visible videos posted in `[from, to]`
    /// (project zone), e.g. to check percentiles with a tolerance.
    pub fn views_in_period(&self, project_id: &str, from: &str, to: &str) -> Vec<u64> {
        let Some(view) = self.views.get(&project_id.to_ascii_lowercase()) else {
            return vec![];
        };
        let Some(p) = &view.project else {
            return vec![];
        };
        let period = Period::new(p.tz, parse_date(from), parse_date(to));
        let mut out: Vec<u64> =
            view.videos.values().filter(|v| period.contains(v.posted_at)).map(|v| v.view_count).collect();
        out.sort();
        out
    }

    /// The `data` of GET /api/v1/analytics/aggregate/<endpoint>?<query>, auth
    /// already passed. 400 (any parameter problem) comes before 404.
    pub fn answer(
        &self,
        endpoint: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Value, (u16, &'static str)> {
        let (pid, q) = parse_query(endpoint, query)?;
        let view = self.views.get(&pid).ok_or(NOT_FOUND)?;
        let project = view.project.as_ref().ok_or(NOT_FOUND)?;
        let ptz = project.tz;
        let today = now.with_timezone(&ptz).date_naive();
        Ok(match q {
            Query::VideoLeaderboard { from, to, order, limit, offset } => {
                video_leaderboard(view, Period::new(ptz, from, to), order, limit, offset)
            }
            Query::PostingHeatmap { from, to, tz } => {
                let tz = tz.unwrap_or(ptz);
                posting_heatmap(view, tz, Period::new(tz, Some(from), Some(to)))
            }
            Query::ViewDistribution { from, to, bin_count } => {
                view_distribution(view, Period::new(ptz, Some(from), Some(to)), bin_count)
            }
            Query::Outliers { from, to, min_x, limit } => outliers(view, Period::new(ptz, from, to), min_x, limit),
            Query::CreatorLeaderboard { from, to, limit, offset } => {
                creator_leaderboard(view, ptz, from, to, today, limit, offset)
            }
            Query::PostingConsistency { from, to, tz } => {
                let tz = tz.unwrap_or(ptz);
                posting_consistency(view, tz, Period::new(tz, Some(from), Some(to)))
            }
            Query::CreatorScatter { from, to } => creator_scatter(view, Period::new(ptz, from, to)),
            Query::GoalCompliance => goal_compliance(view, ptz, today),
            Query::CampaignLeaderboard { from, to } => campaign_leaderboard(view, ptz, from, to),
            Query::MemberOverlap { dimension } => member_overlap(view, dimension),
        })
    }
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

fn video_leaderboard(view: &View, period: Period, order: VideoOrder, limit: u64, offset: u64) -> Value {
    let mut rows: Vec<&Video> = view.videos.values().filter(|v| period.contains(v.posted_at)).collect();
    rows.sort_by(|a, b| {
        let by = match order {
            VideoOrder::Views => b.view_count.cmp(&a.view_count),
            VideoOrder::Likes => b.like_count.cmp(&a.like_count),
            VideoOrder::Comments => b.comment_count.cmp(&a.comment_count),
            VideoOrder::Shares => b.share_count.cmp(&a.share_count),
            VideoOrder::Saves => b.save_count.cmp(&a.save_count),
            VideoOrder::PostedAt => b.posted_at.cmp(&a.posted_at),
        };
        by.then_with(|| a.video_id.cmp(&b.video_id))
    });
    let total = rows.len() as u64;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let items: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(limit as usize)
        .map(|v| {
            let mut m = video_item(v, &view.creators[&v.creator_id]);
            m.insert("view_count".into(), json!(v.view_count));
            m.insert("like_count".into(), json!(v.like_count));
            m.insert("comment_count".into(), json!(v.comment_count));
            m.insert("share_count".into(), json!(v.share_count));
            m.insert("save_count".into(), json!(v.save_count));
            m.insert("total_count".into(), json!(total));
            Value::Object(m)
        })
        .collect();
    Value::Array(items)
}

fn posting_heatmap(view: &View, tz: Tz, period: Period) -> Value {
    let mut cells: BTreeMap<(u32, u32), (u64, u128)> = BTreeMap::new();
    for v in view.videos.values() {
        if !period.contains(v.posted_at) {
            continue;
        }
        let local = v.posted_at.with_timezone(&tz);
        let cell = cells.entry((local.weekday().num_days_from_sunday(), local.hour())).or_default();
        cell.0 += 1;
        cell.1 += v.view_count as u128;
    }
    cells
        .into_iter()
        .map(|((dow, hour), (n, sum))| {
            json!({"dow": dow, "hour": hour, "post_count": n,
                   "avg_views": float(round2(sum as f64 / n as f64))})
        })
        .collect()
}

fn view_distribution(view: &View, period: Period, bin_count: u64) -> Value {
    let mut vals: Vec<u64> =
        view.videos.values().filter(|v| period.contains(v.posted_at)).map(|v| v.view_count).collect();
    vals.sort();
    if vals.is_empty() {
        return json!({"total": 0, "min": null, "max": null, "p50": null, "p75": null,
                      "p90": null, "p99": null, "bins": []});
    }
    let (min, max) = (vals[0], vals[vals.len() - 1]);
    let w = (max - min) as f64 / bin_count as f64;
    let mut counts = vec![0u64; bin_count as usize];
    for &v in &vals {
        let i = if w == 0.0 { 0 } else { (((v - min) as f64 / w).floor() as u64).min(bin_count - 1) };
        counts[i as usize] += 1;
    }
    let bins: Vec<Value> = (0..bin_count)
        .map(|i| {
            json!({"bin_index": i,
                   "bin_lower": min + (i as f64 * w).round() as u64,
                   "bin_upper": min + ((i + 1) as f64 * w).round() as u64,
                   "video_count": counts[i as usize]})
        })
        .collect();
    json!({"total": vals.len() as u64, "min": min, "max": max,
           "p50": nearest_rank(&vals, 50), "p75": nearest_rank(&vals, 75),
           "p90": nearest_rank(&vals, 90), "p99": nearest_rank(&vals, 99), "bins": bins})
}

/// Median `view_count` of all of a creator's visible videos (any date).
fn median_views(view: &View, creator_id: &str) -> f64 {
    let mut vals: Vec<u64> = view.of_creator(creator_id).map(|v| v.view_count).collect();
    vals.sort();
    let n = vals.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        vals[n / 2] as f64
    } else {
        (vals[n / 2 - 1] as u128 + vals[n / 2] as u128) as f64 / 2.0
    }
}

fn outliers(view: &View, period: Period, min_x: f64, limit: u64) -> Value {
    let medians: HashMap<&str, f64> = view.creators.keys().map(|c| (c.as_str(), median_views(view, c))).collect();
    let mut rows: Vec<(f64, &Video, f64)> = Vec::new();
    for v in view.videos.values() {
        let median = medians[v.creator_id.as_str()];
        if !period.contains(v.posted_at) || median <= 0.0 {
            continue;
        }
        let ratio = v.view_count as f64 / median;
        if ratio >= min_x {
            rows.push((ratio, v, median));
        }
    }
    rows.sort_by(|a, b| {
        b.0.total_cmp(&a.0).then(b.1.view_count.cmp(&a.1.view_count)).then_with(|| a.1.video_id.cmp(&b.1.video_id))
    });
    rows.iter()
        .take(limit as usize)
        .map(|(ratio, v, median)| {
            let mut m = video_item(v, &view.creators[&v.creator_id]);
            m.insert("view_count".into(), json!(v.view_count));
            m.insert("median_views".into(), float(*median));
            m.insert("x_multiple".into(), float(round2(*ratio)));
            Value::Object(m)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn creator_leaderboard(
    view: &View,
    ptz: Tz,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
    limit: u64,
    offset: u64,
) -> Value {
    let period = Period::new(ptz, from, to);
    // posts_per_week days: an open `from` is the local date of the earliest
    // visible video, an open `to` is today.
    let earliest = view.videos.values().map(|v| v.posted_at).min();
    let ppw_from = from.or(earliest.map(|t| t.with_timezone(&ptz).date_naive()));
    let ppw_to = to.unwrap_or(today);
    let days = ppw_from.map(|f| (ppw_to - f).num_days() + 1);

    struct Row<'a> {
        c: &'a Creator,
        total_views: u128,
        posts: u64,
        engagement: f64,
        delta: i64,
        growth: f64,
    }
    let mut rows: Vec<Row> = view
        .creators
        .values()
        .map(|c| {
            let vids: Vec<&Video> = view.of_creator(&c.creator_id).filter(|v| period.contains(v.posted_at)).collect();
            let (delta, growth) = follower_change(view, &c.creator_id, period);
            Row {
                c,
                total_views: vids.iter().map(|v| v.view_count as u128).sum(),
                posts: vids.len() as u64,
                engagement: engagement(vids.iter().copied()),
                delta,
                growth,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.total_views.cmp(&a.total_views).then_with(|| a.c.creator_id.cmp(&b.c.creator_id)));
    let total = view.creators.len() as u64;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    rows.iter()
        .skip(skip)
        .take(limit as usize)
        .map(|r| {
            let ppw = match days {
                Some(d) if d >= 1 => round2((r.posts as u128 * 7) as f64 / d as f64),
                _ => 0.0,
            };
            json!({
                "creator_id": r.c.creator_id,
                "tiktok_handle": r.c.tiktok_handle,
                "display_name": opt_str(&r.c.display_name),
                "avatar_url": opt_str(&r.c.avatar_url),
                "current_followers": r.c.follower_count,
                "follower_delta": r.delta,
                "total_views": uint(r.total_views),
                "posts_in_period": r.posts,
                "posts_per_week": float(ppw),
                "engagement_rate": float(r.engagement),
                "growth_rate": float(r.growth),
                "total_count": total,
            })
        })
        .collect()
}

fn posting_consistency(view: &View, tz: Tz, period: Period) -> Value {
    let mut cells: BTreeMap<(&str, NaiveDate), u64> = BTreeMap::new();
    for v in view.videos.values() {
        if period.contains(v.posted_at) {
            *cells.entry((v.creator_id.as_str(), v.posted_at.with_timezone(&tz).date_naive())).or_default() += 1;
        }
    }
    cells
        .into_iter()
        .map(|((c, d), n)| json!({"creator_id": c, "day": d.format("%Y-%m-%d").to_string(), "post_count": n}))
        .collect()
}

fn creator_scatter(view: &View, period: Period) -> Value {
    let mut out = Vec::new();
    for c in view.creators.values() {
        let vids: Vec<&Video> = view.of_creator(&c.creator_id).filter(|v| period.contains(v.posted_at)).collect();
        if vids.is_empty() {
            continue;
        }
        let (delta, _) = follower_change(view, &c.creator_id, period);
        out.push(json!({
            "creator_id": c.creator_id,
            "tiktok_handle": c.tiktok_handle,
            "follower_delta": delta,
            "engagement_rate": float(engagement(vids.iter().copied())),
            "posts_count": vids.len() as u64,
        }));
    }
    Value::Array(out)
}

fn goal_compliance(view: &View, ptz: Tz, today: NaiveDate) -> Value {
    let mut by_creator: BTreeMap<&str, Vec<&Goal>> = BTreeMap::new();
    for g in &view.goals {
        by_creator.entry(g.creator_id.as_str()).or_default().push(g);
    }
    let (mut on_track, mut at_risk, mut missed, mut total, mut creators) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for (creator_id, goals) in by_creator.into_iter().take(50) {
        creators += 1;
        for g in goals {
            total += 1;
            let period = Period::new(ptz, Some(g.starts_on), Some(g.ends_on));
            let mut progress = 0u128;
            for v in view.of_creator(creator_id) {
                if period.contains(v.posted_at) {
                    progress += match g.metric {
                        Metric::Posts => 1,
                        Metric::Views => v.view_count as u128,
                    };
                }
            }
            let total_days = (g.ends_on - g.starts_on).num_days() + 1;
            let elapsed = ((today - g.starts_on).num_days() + 1).clamp(0, total_days);
            let expected = g.target as f64 * elapsed as f64 / total_days as f64;
            if progress >= g.target as u128 {
                on_track += 1; // completed
            } else if today > g.ends_on {
                missed += 1;
            } else if progress as f64 >= expected {
                on_track += 1;
            } else {
                at_risk += 1; // behind_pace or at_risk
            }
        }
    }
    json!({"on_track": on_track, "at_risk": at_risk, "missed": missed,
           "total_goals": total, "creators_with_goals": creators})
}

/// Resolved videos of a visible campaign (contract §4.5), sorted by video_id.
fn resolve<'a>(view: &'a View, root: &str) -> Vec<&'a Video> {
    let mut visited: BTreeSet<&str> = BTreeSet::from([root]);
    let mut stack = vec![root];
    let mut video_ids: BTreeSet<&str> = BTreeSet::new();
    let mut creator_ids: BTreeSet<&str> = BTreeSet::new();
    while let Some(c) = stack.pop() {
        for (ty, item) in view.members.get(c).into_iter().flatten() {
            match ty {
                ItemType::Video => {
                    video_ids.insert(item);
                }
                ItemType::Creator => {
                    creator_ids.insert(item);
                }
                ItemType::Campaign => {
                    if view.campaigns.contains_key(item) && visited.insert(item) {
                        stack.push(item);
                    }
                }
            }
        }
    }
    // Each video once: collect by id.
    let mut out: BTreeMap<&str, &Video> = BTreeMap::new();
    for id in video_ids {
        if let Some(v) = view.videos.get(id) {
            out.insert(id, v);
        }
    }
    for c in creator_ids {
        for v in view.of_creator(c) {
            out.insert(&v.video_id, v);
        }
    }
    out.into_values().collect()
}

fn campaign_leaderboard(view: &View, ptz: Tz, from: NaiveDate, to: NaiveDate) -> Value {
    let period = Period::new(ptz, Some(from), Some(to));
    let n = (to - from).num_days() + 1;
    let prior = Period::new(ptz, Some(from - chrono::Duration::days(n)), Some(from - chrono::Duration::days(1)));
    struct Row<'a> {
        id: &'a str,
        name: &'a str,
        views: u128,
        likes: u128,
        count: u64,
        creators: u64,
        preview: Value,
        prior: u128,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (id, name) in &view.campaigns {
        let resolved = resolve(view, id);
        let cur: Vec<&Video> = resolved.iter().copied().filter(|v| period.contains(v.posted_at)).collect();
        let best = cur.iter().max_by(|a, b| a.view_count.cmp(&b.view_count).then_with(|| b.video_id.cmp(&a.video_id)));
        rows.push(Row {
            id,
            name,
            views: cur.iter().map(|v| v.view_count as u128).sum(),
            likes: cur.iter().map(|v| v.like_count as u128).sum(),
            count: cur.len() as u64,
            creators: cur.iter().map(|v| v.creator_id.as_str()).collect::<BTreeSet<_>>().len() as u64,
            preview: best.map_or(Value::Null, |v| opt_str(&v.thumbnail_url)),
            prior: resolved.iter().filter(|v| prior.contains(v.posted_at)).map(|v| v.view_count as u128).sum(),
        });
    }
    rows.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.id.cmp(b.id)));
    rows.into_iter()
        .map(|r| {
            let delta = r.views as i128 - r.prior as i128;
            let pct =
                if r.prior == 0 { Value::Null } else { json!((delta as f64 / r.prior as f64 * 100.0).round() as i64) };
            json!({
                "campaign_id": r.id,
                "name": r.name,
                "total_views": uint(r.views),
                "total_likes": uint(r.likes),
                "video_count": r.count,
                "creator_count": r.creators,
                "preview_thumbnail_url": r.preview,
                "prior_views": uint(r.prior),
                "views_delta": sint(delta),
                "views_delta_pct": pct,
            })
        })
        .collect()
}

fn member_overlap(view: &View, dimension: ItemType) -> Value {
    // entity id → its visible campaigns as (name, id)
    let mut map: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for (camp, name) in &view.campaigns {
        for (ty, item) in view.members.get(camp).into_iter().flatten() {
            let visible = match ty {
                ItemType::Creator => view.creators.contains_key(item),
                ItemType::Video => view.videos.contains_key(item),
                ItemType::Campaign => false,
            };
            if *ty == dimension && visible {
                map.entry(item.as_str()).or_default().insert((name.as_str(), camp.as_str()));
            }
        }
    }
    let mut rows: Vec<(&str, BTreeSet<(&str, &str)>)> = map.into_iter().collect();
    rows.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
    rows.into_iter()
        .take(50)
        .map(|(id, camps)| {
            let (label, avatar) = match dimension {
                ItemType::Creator => {
                    let c = &view.creators[id];
                    (json!(c.tiktok_handle), opt_str(&c.avatar_url))
                }
                _ => {
                    let v = &view.videos[id];
                    (opt_str(&v.title), opt_str(&v.thumbnail_url))
                }
            };
            json!({
                "entity_id": id,
                "entity_label": label,
                "entity_avatar": avatar,
                "campaign_ids": camps.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
                "campaign_names": camps.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                "campaign_count": camps.len() as u64,
            })
        })
        .collect()
}
