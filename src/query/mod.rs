//! Queries: the answer of every endpoint of contract §4, read from precomputed state.
//!
//! Each function takes a redb read transaction (a consistent snapshot that never waits
//! for ingestion), a visible [`ProjectView`] and typed, already validated parameters.
//! Its cost follows the time buckets and rows it reads for the answer, not the number of
//! videos or events in the project. HTTP, auth and parameter parsing live in `api`.

mod campaigns;
mod creators;
mod videos;

pub use campaigns::{campaign_leaderboard, member_overlap};
pub use creators::{creator_leaderboard, creator_scatter, goal_compliance, posting_consistency};
pub use videos::{
    outliers, outliers_by_merge, outliers_in_period, posting_heatmap, video_leaderboard, view_distribution,
};

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;
use chrono_tz::Tz;
use redb::{ReadTransaction, ReadableTable};
use serde::Serialize;

use crate::events::{Id, Instant};
use crate::state::tables::{FollowerPoint, IdKey, creator_sums_entries};
use crate::state::{KeyInfo, ProjectInfo, Result, defs, get_present};

/// A visible project, as a request sees it.
#[derive(Clone, Debug)]
pub struct ProjectView {
    pub id: Id,
    pub org_id: Id,
    pub name: String,
    pub tz: Tz,
    /// Greatest `occurred_at` applied for the project.
    pub last_event_at: Option<Instant>,
}

/// Queries in progress in this process (the API holds an [`InProgress`] per answer).
static IN_PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// Held while a query runs, so that others know whether the cores are busy.
pub struct InProgress(());

impl InProgress {
    pub fn start() -> InProgress {
        IN_PROGRESS.fetch_add(1, Ordering::Relaxed);
        InProgress(())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        IN_PROGRESS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `first` and `second` (two independent reads of one snapshot): on two threads when
/// no other query is in progress, so an idle second core shortens the answer; one after
/// the other otherwise, when the cores are busy anyway and a second thread would only take
/// time from the other queries.
pub(crate) fn both<A: Send, B>(first: impl FnOnce() -> A + Send, second: impl FnOnce() -> B) -> (A, B) {
    if IN_PROGRESS.load(Ordering::Relaxed) > 1 {
        return (first(), second());
    }
    std::thread::scope(|s| {
        let first = s.spawn(first);
        let second = second();
        (crate::join(first), second)
    })
}

/// The project if it is visible (present register); `None` otherwise.
pub fn project(rtxn: &ReadTransaction, id: Id) -> Result<Option<ProjectView>> {
    let projects = rtxn.open_table(defs::projects)?;
    let Some(info) = get_present::<_, ProjectInfo>(&projects, id)? else {
        return Ok(None);
    };
    let meta = rtxn.open_table(defs::project_meta)?;
    let last_event_at = meta.get(id)?.map(|g| {
        let (secs, nanos) = g.value();
        Instant { secs, nanos }
    });
    let tz = info.timezone.parse().unwrap_or(Tz::UTC);
    Ok(Some(ProjectView { id, org_id: info.org_id, name: info.name, tz, last_event_at }))
}

/// The org of a visible API key whose SHA-256 is `hash`, if any (revoked and expired keys
/// are not visible).
pub fn api_key_org(rtxn: &ReadTransaction, hash: [u8; 32], now: Instant) -> Result<Option<Id>> {
    let hashes = rtxn.open_table(defs::key_hashes)?;
    let keys = rtxn.open_table(defs::api_keys)?;
    for e in hashes.range((hash, ID_MIN)..=(hash, ID_MAX))? {
        let key_id = e?.0.value().1;
        if let Some(k) = get_present::<_, KeyInfo>(&keys, key_id)?
            && k.expires_at.is_none_or(|x| x > now)
        {
            return Ok(Some(k.org_id));
        }
    }
    Ok(None)
}

/// `from`/`to` of a request: inclusive local dates, either side open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DateRange {
    /// The days from `from` to `to`, both included; `None` when a side is open.
    pub fn days(&self) -> Option<u32> {
        Some(((self.to? - self.from?).num_days() + 1).max(0) as u32)
    }
}

/// Sort column of `video-leaderboard`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoOrder {
    #[default]
    ViewCount,
    LikeCount,
    CommentCount,
    ShareCount,
    SaveCount,
    PostedAt,
}

#[derive(Clone, Debug)]
pub struct VideoLeaderboardParams {
    pub range: DateRange,
    pub order: VideoOrder,
    pub limit: u64,
    pub offset: u64,
}

#[derive(Clone, Debug)]
pub struct HeatmapParams {
    pub range: DateRange,
    /// `tz` if given, else the project's zone.
    pub tz: Tz,
}

#[derive(Clone, Debug)]
pub struct ViewDistributionParams {
    pub range: DateRange,
    pub bin_count: u32,
}

#[derive(Clone, Debug)]
pub struct OutliersParams {
    pub range: DateRange,
    pub min_x_multiple: f64,
    pub limit: u64,
}

#[derive(Clone, Debug)]
pub struct CreatorLeaderboardParams {
    pub range: DateRange,
    pub limit: u64,
    pub offset: u64,
}

#[derive(Clone, Debug)]
pub struct ConsistencyParams {
    pub range: DateRange,
    pub tz: Tz,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dimension {
    #[default]
    Creator,
    Video,
}

/// One item of `video-leaderboard`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VideoRow {
    pub video_id: String,
    pub title: Option<String>,
    pub thumbnail_url: Option<String>,
    pub url: Option<String>,
    pub view_count: u64,
    pub like_count: u64,
    pub comment_count: u64,
    pub share_count: u64,
    pub save_count: u64,
    pub posted_at: String,
    pub creator_id: String,
    pub tiktok_handle: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub total_count: u64,
}

/// One cell of `posting-heatmap`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatmapCell {
    pub dow: u32,
    pub hour: u32,
    pub post_count: u64,
    pub avg_views: f64,
}

/// The answer of `view-distribution`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewDistribution {
    pub total: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub p50: Option<u64>,
    pub p75: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub bins: Vec<Bin>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bin {
    pub bin_index: u32,
    pub bin_lower: u64,
    pub bin_upper: u64,
    pub video_count: u64,
}

/// One item of `outliers`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutlierRow {
    pub video_id: String,
    pub creator_id: String,
    pub view_count: u64,
    pub median_views: f64,
    pub x_multiple: f64,
    pub posted_at: String,
    pub title: Option<String>,
    pub thumbnail_url: Option<String>,
    pub url: Option<String>,
    pub tiktok_handle: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// One item of `creator-leaderboard`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreatorRow {
    pub creator_id: String,
    pub tiktok_handle: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub current_followers: u64,
    pub follower_delta: i64,
    pub total_views: u128,
    pub posts_in_period: u64,
    pub posts_per_week: f64,
    pub engagement_rate: f64,
    pub growth_rate: f64,
    pub total_count: u64,
}

/// One item of `posting-consistency`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsistencyRow {
    pub creator_id: uuid::Uuid,
    pub day: NaiveDate,
    pub post_count: u64,
}

/// One item of `creator-scatter`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScatterRow {
    pub creator_id: uuid::Uuid,
    pub tiktok_handle: String,
    pub follower_delta: i64,
    pub engagement_rate: f64,
    pub posts_count: u64,
}

/// The answer of `goal-compliance`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalCompliance {
    pub on_track: u64,
    pub at_risk: u64,
    pub missed: u64,
    pub total_goals: u64,
    pub creators_with_goals: u64,
}

/// One item of `campaign-leaderboard`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CampaignRow {
    pub campaign_id: String,
    pub name: String,
    pub total_views: u128,
    pub total_likes: u128,
    pub video_count: u64,
    pub creator_count: u64,
    pub preview_thumbnail_url: Option<String>,
    pub prior_views: u128,
    pub views_delta: i128,
    pub views_delta_pct: Option<i64>,
}

/// One item of `member-overlap`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverlapRow {
    pub entity_id: String,
    pub entity_label: Option<String>,
    pub entity_avatar: Option<String>,
    /// Shared by the rows of one answer.
    pub campaign_ids: Vec<std::sync::Arc<str>>,
    pub campaign_names: Vec<std::sync::Arc<str>>,
    pub campaign_count: u64,
}

/// round2 of contract §4.2: 2 decimals, half away from zero.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Engagement rate of a set of videos (contract §4.2).
pub fn engagement_rate(likes: u128, comments: u128, shares: u128, views: u128) -> f64 {
    if views == 0 { 0.0 } else { round2((likes + comments + shares) as f64 / views as f64 * 100.0) }
}

// ---- Shared read helpers ---------------------------------------------------------------

use crate::events::{CreatorSnapshot, VideoSnapshot};
use crate::state::videos::Sums;
use crate::time::{Level, Period, decompose, quarter_of, runs, unit_of};

pub(crate) use crate::state::{ID_MAX, ID_MIN};

pub(crate) type PostedKey = (Id, i64, u32, Id);

/// Key bounds `lo..hi` of `by_posted` for a period.
pub(crate) fn posted_range(p: Id, period: &Period) -> (PostedKey, PostedKey) {
    let lo = period.start.map_or((p, i64::MIN, 0, ID_MIN), |s| (p, s.secs, s.nanos, ID_MIN));
    let hi = period.end.map_or((p, i64::MAX, u32::MAX, ID_MAX), |e| (p, e.secs, e.nanos, ID_MIN));
    (lo, hi)
}

/// The earliest and latest `posted_at` of the project's visible videos.
pub(crate) fn posted_span(rtxn: &ReadTransaction, p: Id) -> Result<Option<(Instant, Instant)>> {
    let t = rtxn.open_table(defs::by_posted)?;
    let (lo, hi) = posted_range(p, &Period::ALL);
    let mut r = t.range(lo..hi)?;
    let at = |k: PostedKey| Instant { secs: k.1, nanos: k.2 };
    let Some((first, _)) = r.next().transpose()? else { return Ok(None) };
    let first = at(first.value());
    let last = r.next_back().transpose()?.map_or(first, |(k, _)| at(k.value()));
    Ok(Some((first, last)))
}

/// The quarter range `[lo, hi)` holding every visible video's `posted_at`, or `None` when
/// the project has none. Open period sides are clamped to it.
pub(crate) fn posted_quarters(rtxn: &ReadTransaction, p: Id) -> Result<Option<(i64, i64)>> {
    Ok(posted_span(rtxn, p)?.map(|(first, last)| (quarter_of(first), quarter_of(last) + 1)))
}

/// The aligned bucket units covering a period (empty if the project has no videos).
pub(crate) fn period_units(rtxn: &ReadTransaction, p: Id, period: &Period) -> Result<Vec<(Level, i64)>> {
    Ok(units_within(posted_quarters(rtxn, p)?, period))
}

/// [`period_units`] given the project's [`posted_quarters`], for callers that cover many
/// periods.
pub(crate) fn units_within(posted: Option<(i64, i64)>, period: &Period) -> Vec<(Level, i64)> {
    let Some((lo, hi)) = posted else { return Vec::new() };
    let (s, e) = period.quarters(lo, hi);
    decompose(s, e)
}

/// Project-wide sums over a period.
pub(crate) fn project_sums(rtxn: &ReadTransaction, p: Id, period: &Period) -> Result<Sums> {
    let t = rtxn.open_table(defs::project_buckets)?;
    let mut s = Sums::default();
    for (l, a, b) in runs(&period_units(rtxn, p, period)?) {
        for e in t.range((p, l as u8, a)..(p, l as u8, b))? {
            s.add(&Sums::from_row(e?.1.value()));
        }
    }
    Ok(s)
}

/// Per-creator sums over a period, for creators with at least one visible video in it.
pub(crate) fn creator_sums(rtxn: &ReadTransaction, p: Id, period: &Period) -> Result<rustc_hash::FxHashMap<Id, Sums>> {
    let coarse = rtxn.open_table(defs::creator_buckets)?;
    let fine = rtxn.open_table(defs::creator_rows)?;
    let mut out: rustc_hash::FxHashMap<Id, Sums> = Default::default();
    for (level, a, b) in runs(&period_units(rtxn, p, period)?) {
        let l = level as u8;
        if level.is_fine() {
            for e in fine.range((p, l, a)..(p, l, b))? {
                for (creator, sums) in creator_sums_entries(e?.1.value()) {
                    out.entry(creator).or_default().add(&sums);
                }
            }
        } else {
            for e in coarse.range((p, l, a, ID_MIN)..=(p, l, b - 1, ID_MAX))? {
                let (k, v) = e?;
                out.entry(k.value().3).or_default().add(&Sums::from_row(v.value()));
            }
        }
    }
    Ok(out)
}

/// Present video record.
pub(crate) fn video_record(
    t: &impl ReadableTable<(IdKey, IdKey), &'static [u8]>,
    p: Id,
    v: Id,
) -> Result<Option<VideoSnapshot>> {
    get_present(t, (p, v))
}

/// Present creator profile.
pub(crate) fn creator_profile(
    t: &impl ReadableTable<(IdKey, IdKey), &'static [u8]>,
    p: Id,
    c: Id,
) -> Result<Option<CreatorSnapshot>> {
    get_present(t, (p, c))
}

/// Rows of a table in id order worth walking past per creator asked about, rather than
/// seeking: a range lookup per creator costs about as much as walking twenty.
const SCAN_ROWS_PER_CREATOR: u64 = 16;

/// Points of the follower history worth scanning per creator asked about. A point in a
/// `follower_quarters` row is 30 bytes to decode, where a lookup per creator makes two
/// B-tree descents and two bincode decodes. At scale L, creator-scatter over 90 days took
/// 10–11 ms with 128 and 19–21 ms with 16 (one lookup per creator); 512 was no faster.
const SCAN_POINTS_PER_CREATOR: u64 = 128;

/// Follower deltas of `creators` creators over a period: from one scan in time order when
/// the period holds few enough points ([`follower_scan`]), else a lookup per creator.
pub(crate) enum FollowerDeltas<'a> {
    Scanned(rustc_hash::FxHashMap<Id, (u64, u64)>),
    PerCreator(redb::ReadOnlyTable<(IdKey, IdKey, i64, u32), &'static [u8]>, &'a Period),
}

impl<'a> FollowerDeltas<'a> {
    pub(crate) fn new(rtxn: &ReadTransaction, p: Id, period: &'a Period, creators: usize) -> Result<Self> {
        let budget = SCAN_POINTS_PER_CREATOR * creators as u64;
        let days = rtxn.open_table(defs::follower_days)?;
        let (first, last) = utc_days(period);
        let mut points = 0;
        for e in days.range((p, first)..=(p, last))? {
            points += e?.1.value();
            if points > budget {
                return Ok(FollowerDeltas::PerCreator(rtxn.open_table(defs::followers)?, period));
            }
        }
        Ok(FollowerDeltas::Scanned(follower_scan(rtxn, p, period)?))
    }

    pub(crate) fn of(&self, p: Id, c: Id) -> Result<i64> {
        match self {
            FollowerDeltas::Scanned(m) => Ok(m.get(&c).map_or(0, |&(first, last)| last as i64 - first as i64)),
            FollowerDeltas::PerCreator(t, period) => Ok(follower_change(t, p, c, period)?.0),
        }
    }
}

/// The UTC days a period touches (open sides: as far as can be).
fn utc_days(period: &Period) -> (i64, i64) {
    let day = |t: Instant| unit_of(Level::Day, quarter_of(t));
    let first = period.start.map_or(i64::MIN, day);
    let last = period.end.map_or(i64::MAX, day);
    (first, last)
}

/// First and last follower count in the period of every creator with a point in it, read
/// with one scan of the history in time order.
pub fn follower_scan(rtxn: &ReadTransaction, p: Id, period: &Period) -> Result<rustc_hash::FxHashMap<Id, (u64, u64)>> {
    let t = rtxn.open_table(defs::follower_quarters)?;
    let (first, end) = period.quarters(i64::MIN, i64::MAX);
    let mut out: rustc_hash::FxHashMap<Id, (u64, u64)> = Default::default();
    for e in t.range((p, first)..(p, end))? {
        let (k, v) = e?;
        // Only a quarter at an edge can hold points outside the period.
        for point in FollowerPoint::decode_row(k.value().1, v.value()).filter(|x| period.contains(x.at)) {
            let n = point.follower_count;
            out.entry(point.creator).and_modify(|(_, last)| *last = n).or_insert((n, n));
        }
    }
    Ok(out)
}

/// Handles of tracked creators asked for in id order, from `creator_handles`. While the
/// ids asked are dense among the project's creators, it walks them in one pass; past a gap
/// of more than [`SCAN_ROWS_PER_CREATOR`] rows it seeks. (A lookup per creator descends
/// the tree each time: for creator-scatter's 4,000 rows that was a quarter of the answer's
/// time.)
pub(crate) struct HandlesInOrder<'t> {
    table: &'t redb::ReadOnlyTable<(IdKey, IdKey), &'static str>,
    p: Id,
    rows: redb::Range<'t, (IdKey, IdKey), &'static str>,
    /// The first row the walk has not passed yet.
    next: Option<(Id, redb::AccessGuard<'t, &'static str>)>,
}

impl<'t> HandlesInOrder<'t> {
    pub(crate) fn new(table: &'t redb::ReadOnlyTable<(IdKey, IdKey), &'static str>, p: Id) -> Result<Self> {
        Ok(HandlesInOrder { table, p, rows: table.range((p, ID_MIN)..=(p, ID_MAX))?, next: None })
    }

    /// The handle of creator `c`, if it is tracked. `c` comes after every id asked before.
    pub(crate) fn get(&mut self, c: Id) -> Result<Option<String>> {
        let mut passed = 0;
        loop {
            match &self.next {
                Some((id, _)) if *id == c => {
                    let (_, handle) = self.next.take().expect("matched above");
                    return Ok(Some(handle.value().to_owned()));
                }
                Some((id, _)) if *id > c => return Ok(None),
                _ if passed > SCAN_ROWS_PER_CREATOR => {
                    self.rows = self.table.range((self.p, c)..=(self.p, ID_MAX))?;
                    passed = 0;
                }
                _ => passed += 1,
            }
            self.next = match self.rows.next() {
                Some(e) => {
                    let (k, v) = e?;
                    Some((k.value().1, v))
                }
                None => return Ok(None),
            };
        }
    }
}

/// Follower delta and growth rate of a creator over a period (contract §4.4).
pub fn follower_change(
    t: &impl ReadableTable<(IdKey, IdKey, i64, u32), &'static [u8]>,
    p: Id,
    c: Id,
    period: &Period,
) -> Result<(i64, f64)> {
    let start = period.start.map_or((i64::MIN, 0), |s| (s.secs, s.nanos));
    let mut r = match period.end {
        Some(e) => t.range((p, c, start.0, start.1)..(p, c, e.secs, e.nanos))?,
        None => t.range((p, c, start.0, start.1)..=(p, c, i64::MAX, u32::MAX))?,
    };
    let count = |g: redb::AccessGuard<'_, &'static [u8]>| -> Result<u64> {
        Ok(crate::state::decode::<crate::state::Reg<u64>>(g.value())?.value.unwrap_or(0))
    };
    let Some((_, first)) = r.next().transpose()? else { return Ok((0, 0.0)) };
    let first = count(first)?;
    let Some((_, last)) = r.next_back().transpose()? else { return Ok((0, 0.0)) };
    let delta = count(last)? as i64 - first as i64;
    let growth = if first == 0 { 0.0 } else { round2(delta as f64 / first as f64 * 100.0) };
    Ok((delta, growth))
}

/// The ids of a project's tracked creators, in id order.
pub(crate) fn tracked_creator_ids(rtxn: &ReadTransaction, p: Id) -> Result<Vec<Id>> {
    let t = rtxn.open_table(defs::creators)?;
    let mut out = Vec::new();
    for e in t.range((p, ID_MIN)..=(p, ID_MAX))? {
        let (k, v) = e?;
        if is_present(v.value())? {
            out.push(k.value().1);
        }
    }
    Ok(out)
}

/// Whether a stored register holds a value. A `Reg<()>` reads the stamp and the presence
/// flag and leaves the value's bytes unread (bincode allows trailing bytes): no strings
/// decoded.
pub(crate) fn is_present(reg: &[u8]) -> Result<bool> {
    Ok(crate::state::decode::<crate::state::Reg<()>>(reg)?.value.is_some())
}

/// Today in the project's zone.
pub(crate) fn today(p: &ProjectView, now: Instant) -> NaiveDate {
    crate::time::local_date(p.tz, now)
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::events::{CreatorSnapshot, Stamp};
    use crate::state::{Reg, encode};

    /// With other queries in progress, both halves run on the caller's thread, in order.
    #[test]
    fn both_stays_on_one_thread_when_the_cores_are_busy() {
        let (_a, _b) = (InProgress::start(), InProgress::start());
        let here = std::thread::current().id();
        let order = std::sync::Mutex::new(Vec::new());
        let (first, second) = both(
            || {
                order.lock().unwrap().push(1);
                std::thread::current().id()
            },
            || {
                order.lock().unwrap().push(2);
                std::thread::current().id()
            },
        );
        assert_eq!((first, second), (here, here));
        assert_eq!(*order.lock().unwrap(), [1, 2]);
    }

    /// Every id asked, dense or past gaps longer than the walk goes, gets the handle a
    /// lookup gets; removed and unknown creators get none.
    #[test]
    fn handles_in_order_agree_with_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("h.redb")).unwrap();
        let (p, other) = ([1u8; 16], [2u8; 16]);
        let id = |raw: u16| -> Id {
            let mut c = [0u8; 16];
            c[..2].copy_from_slice(&raw.to_be_bytes());
            c
        };
        let profile = |c: Id, handle: String| CreatorSnapshot {
            creator_id: c,
            tiktok_handle: handle,
            display_name: None,
            avatar_url: None,
            follower_count: 0,
        };
        let txn = db.begin_write().unwrap();
        {
            // As ingestion writes them: a handle for each present profile.
            let mut t = txn.open_table(defs::creators).unwrap();
            let mut h = txn.open_table(defs::creator_handles).unwrap();
            let stamp = Stamp { at: Instant { secs: 0, nanos: 0 }, event_id: [0; 16] };
            // Even ids only (odd ones stay unknown); every seventh profile removed.
            for i in 0..300u16 {
                let value = (i % 7 != 3).then(|| profile(id(2 * i), format!("h{i}")));
                if let Some(v) = &value {
                    h.insert((p, id(2 * i)), v.tiktok_handle.as_str()).unwrap();
                }
                t.insert((p, id(2 * i)), encode(&Reg { stamp, value }).as_slice()).unwrap();
            }
            let far = Some(profile(ID_MIN, "other project".into()));
            t.insert((other, ID_MIN), encode(&Reg { stamp, value: far }).as_slice()).unwrap();
            h.insert((other, ID_MIN), "other project").unwrap();
        }
        txn.commit().unwrap();
        let rtxn = db.begin_read().unwrap();
        let t = rtxn.open_table(defs::creators).unwrap();
        let h = rtxn.open_table(defs::creator_handles).unwrap();
        for step in [1usize, 2, 3, 17, 40, 299] {
            let mut handles = HandlesInOrder::new(&h, p).unwrap();
            let mut found = 0;
            for raw in (0..620u16).step_by(step) {
                let want = get_present::<_, CreatorSnapshot>(&t, (p, id(raw))).unwrap().map(|s| s.tiktok_handle);
                assert_eq!(handles.get(id(raw)).unwrap(), want, "step {step}, id {raw}");
                found += usize::from(want.is_some());
            }
            assert!(found > 0, "step {step} found some");
        }
    }

    /// The two ways of reading follower deltas (one scan of the period's points, or a
    /// lookup per creator) give every creator the same delta, over periods of every length,
    /// on a generated log with reordered and duplicated snapshots.
    #[test]
    fn follower_deltas_scanned_and_per_creator_agree() {
        let sample = crate::r#gen::generate(&crate::r#gen::GenConfig::new(5, crate::r#gen::Scale::Test));
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = crate::state::Tables::open(&txn).unwrap();
            for line in &sample.lines {
                if let Ok(ev) = crate::events::decode(line.as_bytes()) {
                    crate::state::apply(&mut t, &ev).unwrap();
                }
            }
            t.flush().unwrap();
        }
        txn.commit().unwrap();
        let rtxn = db.begin_read().unwrap();
        let today = crate::r#gen::default_now().date_naive();
        let (mut compared, mut moved) = (0, 0);
        for project in &sample.projects {
            let p = *uuid::Uuid::parse_str(&project.project_id).unwrap().as_bytes();
            let tz: chrono_tz::Tz = project.timezone.parse().unwrap_or(chrono_tz::UTC);
            let creators = tracked_creator_ids(&rtxn, p).unwrap();
            for days in [1u64, 7, 30, 90, 400] {
                let period = Period::days(tz, Some(today - chrono::Days::new(days - 1)), Some(today));
                let scanned = FollowerDeltas::Scanned(follower_scan(&rtxn, p, &period).unwrap());
                let looked_up = FollowerDeltas::PerCreator(rtxn.open_table(defs::followers).unwrap(), &period);
                for &c in &creators {
                    let delta = scanned.of(p, c).unwrap();
                    assert_eq!(delta, looked_up.of(p, c).unwrap(), "{days} days, creator {c:?}");
                    compared += 1;
                    moved += usize::from(delta != 0);
                }
            }
        }
        assert!(compared > 1_000 && moved > 100, "{compared} deltas compared, {moved} not zero");
    }

    /// Each creator's first and last count of the points in a period, whatever its bounds:
    /// a quarter at an edge holds points on both sides of it.
    #[test]
    fn follower_scan_keeps_the_points_inside_the_period() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("f.redb")).unwrap();
        let (p, other) = ([1u8; 16], [2u8; 16]);
        // Points every 7 minutes and 3 ns for 10 hours, cycling through 5 creators.
        let points: Vec<FollowerPoint> = (0..86i64)
            .map(|i| FollowerPoint {
                at: Instant { secs: 1_700_000_100 + i * 420, nanos: (i * 3) as u32 },
                creator: [i as u8 % 5; 16],
                follower_count: 1000 + (i as u64 * 37) % 101,
            })
            .collect();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(defs::follower_quarters).unwrap();
            for chunk in points.chunk_by(|a, b| quarter_of(a.at) == quarter_of(b.at)) {
                t.insert((p, quarter_of(chunk[0].at)), FollowerPoint::encode_row(chunk).as_slice()).unwrap();
                t.insert((other, quarter_of(chunk[0].at)), FollowerPoint::encode_row(&chunk[..1]).as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        let rtxn = db.begin_read().unwrap();
        let at = |secs, nanos| Some(Instant { secs, nanos });
        let t0 = 1_700_000_100;
        let periods = [
            Period::ALL,
            Period { start: at(t0 + 421, 0), end: at(t0 + 8000, 0) },
            Period { start: at(t0 + 420, 3), end: at(t0 + 7980, 57) },
            Period { start: at(t0 + 420, 4), end: at(t0 + 7980, 58) },
            Period { start: None, end: at(t0 + 900, 1) },
            Period { start: at(t0 + 30_000, 0), end: None },
            Period { start: at(t0, 0), end: at(t0 + 1, 0) },
        ];
        for period in periods {
            let mut want: rustc_hash::FxHashMap<Id, (u64, u64)> = Default::default();
            for x in points.iter().filter(|x| period.contains(x.at)) {
                want.entry(x.creator)
                    .and_modify(|e| e.1 = x.follower_count)
                    .or_insert((x.follower_count, x.follower_count));
            }
            assert_eq!(follower_scan(&rtxn, p, &period).unwrap(), want, "{period:?}");
        }
    }
}
