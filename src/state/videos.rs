//! Video and creator registers, and the contribution of each visible video to aggregates.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use redb::ReadableTable;

use super::tables::{At, CampaignTables, CreatorMedian, MoveTables, Packed, SumsRow, Tables, WriteOnlyTables, entries};
use super::top::TopList;
use super::{ID_MAX, ID_MIN, Reg, Result, StateError, campaigns, encode, get_present, get_reg, goals};
use crate::events::{Counts, CreatorSnapshot, Id, Instant, ItemType, Stamp, VideoSnapshot};
use crate::time::{Level, local_day, local_unit_period, quarter_of, unit_of};

/// The sortable count columns, as stored in `by_metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Metric {
    Views = 0,
    Likes = 1,
    Comments = 2,
    Shares = 3,
    Saves = 4,
}

impl Metric {
    pub const ALL: [Metric; 5] = [Metric::Views, Metric::Likes, Metric::Comments, Metric::Shares, Metric::Saves];

    pub fn of(self, c: &Counts) -> u64 {
        match self {
            Metric::Views => c.views,
            Metric::Likes => c.likes,
            Metric::Comments => c.comments,
            Metric::Shares => c.shares,
            Metric::Saves => c.saves,
        }
    }
}

/// Sums over a set of visible videos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub posts: u64,
    pub views: u128,
    pub likes: u128,
    pub comments: u128,
    pub shares: u128,
}

impl Sums {
    pub fn of(c: &Counts) -> Sums {
        Sums {
            posts: 1,
            views: c.views.into(),
            likes: c.likes.into(),
            comments: c.comments.into(),
            shares: c.shares.into(),
        }
    }

    pub fn from_row(r: SumsRow) -> Sums {
        Sums { posts: r.0, views: r.1, likes: r.2, comments: r.3, shares: r.4 }
    }

    pub fn row(&self) -> SumsRow {
        (self.posts, self.views, self.likes, self.comments, self.shares)
    }

    pub fn add(&mut self, o: &Sums) {
        self.posts += o.posts;
        self.views += o.views;
        self.likes += o.likes;
        self.comments += o.comments;
        self.shares += o.shares;
    }

    fn sub(&mut self, o: &Sums) -> Result<()> {
        let under = || StateError::Corrupt("sums underflow".into());
        self.posts = self.posts.checked_sub(o.posts).ok_or_else(under)?;
        self.views = self.views.checked_sub(o.views).ok_or_else(under)?;
        self.likes = self.likes.checked_sub(o.likes).ok_or_else(under)?;
        self.comments = self.comments.checked_sub(o.comments).ok_or_else(under)?;
        self.shares = self.shares.checked_sub(o.shares).ok_or_else(under)?;
        Ok(())
    }
}

/// What a visible video contributes: everything an aggregate reads of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub video: Id,
    pub creator: Id,
    pub posted: Instant,
    pub counts: Counts,
    /// Root campaigns whose resolved videos include this one.
    pub campaigns: BTreeSet<Id>,
}

impl Facts {
    /// Whether two observations of a video differ at most in their counts, so that every
    /// aggregate row they touch is the same.
    fn same_place(&self, o: &Facts) -> bool {
        self.video == o.video && self.creator == o.creator && self.posted == o.posted && self.campaigns == o.campaigns
    }

    /// Whether two observations differ at most in their root campaigns.
    fn same_video(&self, o: &Facts) -> bool {
        self.video == o.video && self.creator == o.creator && self.posted == o.posted && self.counts == o.counts
    }
}

/// The contribution of a video now: `None` unless it is visible (contract §2.4).
pub fn observe(t: &Tables, p: Id, video: Id) -> Result<Option<Facts>> {
    let record = video_reg(t, p, video)?.and_then(|r| r.value);
    observe_record(t, p, video, record.as_ref(), None)
}

/// [`observe`] given the video's present record. `roots` are the video's root campaigns
/// if the caller knows them for this creator (memberships unchanged since).
fn observe_record(
    t: &Tables,
    p: Id,
    video: Id,
    record: Option<&VideoSnapshot>,
    roots: Option<&Facts>,
) -> Result<Option<Facts>> {
    let Some(v) = record else { return Ok(None) };
    if !creator_tracked(t, p, v.creator_id)? {
        return Ok(None);
    }
    let campaigns = match roots {
        Some(f) if f.creator == v.creator_id => f.campaigns.clone(),
        _ => campaigns::roots_of_video(t, p, video, v.creator_id)?,
    };
    Ok(Some(Facts { video, creator: v.creator_id, posted: v.posted_at, counts: v.counts, campaigns }))
}

pub fn creator_tracked(t: &Tables, p: Id, creator: Id) -> Result<bool> {
    if let Some(&tracked) = t.pending.tracked.borrow().get(&(p, creator)) {
        return Ok(tracked);
    }
    let tracked = get_present::<_, CreatorSnapshot>(&t.creators, (p, creator))?.is_some();
    t.pending.tracked.borrow_mut().insert((p, creator), tracked);
    Ok(tracked)
}

/// Runs `mutate` (a register write), then moves the contribution of each video in
/// `affected` from what it was before to what it is after. `affected` must hold every
/// video whose contribution `mutate` can change.
pub fn refresh(
    t: &mut Tables,
    p: Id,
    affected: &BTreeSet<Id>,
    mutate: impl FnOnce(&mut Tables) -> Result<()>,
) -> Result<()> {
    let before = affected.iter().map(|&v| observe(t, p, v)).collect::<Result<Vec<_>>>()?;
    mutate(t)?;
    for (&v, old) in affected.iter().zip(before) {
        let new = observe(t, p, v)?;
        move_contribution(t, p, v, old, new)?;
    }
    Ok(())
}

/// [`refresh`] for a write that changes only which root campaigns videos resolve to (a
/// membership, or a campaign's visibility) and no register: a video stays visible or
/// hidden, so each is read once, and only its roots are looked up again after the write.
pub fn refresh_roots(
    t: &mut Tables,
    p: Id,
    affected: &BTreeSet<Id>,
    mutate: impl FnOnce(&mut Tables) -> Result<()>,
) -> Result<()> {
    let before = affected.iter().map(|&v| observe(t, p, v)).collect::<Result<Vec<_>>>()?;
    mutate(t)?;
    for (&v, old) in affected.iter().zip(before) {
        let Some(old) = old else { continue };
        let campaigns = campaigns::roots_of_video(t, p, v, old.creator)?;
        if campaigns != old.campaigns {
            let new = Facts { campaigns, ..old.clone() };
            move_contribution(t, p, v, Some(old), Some(new))?;
        }
    }
    Ok(())
}

/// Moves one video's contribution from what it was (`old`) to what it is (`new`).
fn move_contribution(t: &mut Tables, p: Id, v: Id, old: Option<Facts>, new: Option<Facts>) -> Result<()> {
    if new == old {
        return Ok(());
    }
    match (&old, &new) {
        (Some(o), Some(n)) if o.same_place(n) => recount(t, p, o, n)?,
        // Only its root campaigns changed (a membership or a campaign's visibility): leave
        // every other aggregate alone.
        (Some(o), Some(n)) if o.same_video(n) => {
            contribute_to_campaigns(t, p, o, o.campaigns.difference(&n.campaigns), false)?;
            contribute_to_campaigns(t, p, n, n.campaigns.difference(&o.campaigns), true)?;
        }
        _ => {
            if let Some(old) = &old {
                contribute(t, p, old, false)?;
            }
            if let Some(new) = &new {
                contribute(t, p, new, true)?;
            }
        }
    }
    if old.is_some() != new.is_some() {
        campaigns::overlap_visibility(t, p, ItemType::Video, v, new.is_some())?;
    }
    Ok(())
}

/// Adds (`add`) or retracts a visible video's contribution to every aggregate.
fn contribute(t: &mut Tables, p: Id, f: &Facts, add: bool) -> Result<()> {
    let at = (f.posted.secs, f.posted.nanos);
    let c = &f.counts;
    let row = add.then(|| counts_row(f.creator, c));
    t.pending.by_posted.insert((p, at.0, at.1, f.video), row);
    let (old, new) = if add { (None, Some(*c)) } else { (Some(*c), None) };
    t.pending.moves.push(Move { p, video: f.video, creator: f.creator, posted: f.posted, old, new });
    median_update(t, p, f.creator, (!c.views, f.video), at, add)?;
    goals::contribute(t, p, f, add)?;
    contribute_to_campaigns(t, p, f, f.campaigns.iter(), add)
}

/// The first quarter of the campaign day unit of a video posted at `posted`: its local day
/// in the project's zone ([`local_day`]).
fn campaign_quarter(t: &Tables, p: Id, posted: Instant) -> Result<i64> {
    Ok(local_day(goals::project_zone(t, p)?, posted) * Level::Day.quarters())
}

/// Adds (`add`) or retracts a visible video's contribution to the given root campaigns.
fn contribute_to_campaigns<'a>(
    t: &mut Tables,
    p: Id,
    f: &Facts,
    roots: impl Iterator<Item = &'a Id>,
    add: bool,
) -> Result<()> {
    let (old, new) = if add { (None, Some(f.counts)) } else { (Some(f.counts), None) };
    record_campaign_move(t, p, f, roots, old, new)
}

/// Records a visible video's change in the units of root campaigns `roots`, for the
/// thread that writes the campaign tables ([`CampaignOp::Move`]).
fn record_campaign_move<'a>(
    t: &mut Tables,
    p: Id,
    f: &Facts,
    roots: impl Iterator<Item = &'a Id>,
    old: Option<Counts>,
    new: Option<Counts>,
) -> Result<()> {
    let start = t.pending.campaign_roots.len();
    t.pending.campaign_roots.extend(roots);
    let end = t.pending.campaign_roots.len();
    if start == end {
        return Ok(());
    }
    let quarter = campaign_quarter(t, p, f.posted)?;
    let (video, creator) = (f.video, f.creator);
    t.pending.campaign.push(CampaignOp::Move { p, video, creator, quarter, roots: (start, end), old, new });
    Ok(())
}

/// Recomputes project `p`'s campaign rollups from its visible videos, after its zone
/// changed: their units are local days of that zone. Runs with `by_posted` written.
pub fn rebuild_campaign_units(t: &mut Tables, p: Id) -> Result<()> {
    t.pending.campaign.push(CampaignOp::Clear(p));
    // `by_posted` holds every visible video with its counts.
    let mut visible = Vec::new();
    for e in t.by_posted.range((p, i64::MIN, 0, ID_MIN)..=(p, i64::MAX, u32::MAX, ID_MAX))? {
        let (k, v) = e?;
        let (_, secs, nanos, video) = k.value();
        let (creator, views, likes, comments, shares, saves) = v.value();
        let counts = Counts { views, likes, comments, shares, saves };
        visible.push((video, creator, Instant { secs, nanos }, counts));
    }
    for (video, creator, posted, counts) in visible {
        let campaigns = campaigns::roots_of_video(t, p, video, creator)?;
        let f = Facts { video, creator, posted, counts, campaigns };
        contribute_to_campaigns(t, p, &f, f.campaigns.iter(), true)?;
    }
    Ok(())
}

/// Moves a visible video's contribution from `old` to `new` counts, in place: the common
/// case of a later scrape. Equal to retracting `old` and adding `new`, with a single
/// read-modify-write per sums row and no index row touched whose key is unchanged.
fn recount(t: &mut Tables, p: Id, old: &Facts, new: &Facts) -> Result<()> {
    let at = (new.posted.secs, new.posted.nanos);
    let (oc, nc) = (&old.counts, &new.counts);
    let pending = &mut t.pending;
    pending.by_posted.insert((p, at.0, at.1, new.video), Some(counts_row(new.creator, nc)));
    let (video, creator, posted) = (new.video, new.creator, new.posted);
    pending.moves.push(Move { p, video, creator, posted, old: Some(*oc), new: Some(*nc) });
    let views_changed = oc.views != nc.views;
    if views_changed {
        median_move(t, p, new.creator, (!oc.views, new.video), (!nc.views, new.video), at)?;
        goals::recount(t, p, new.creator, new.posted, oc.views, nc.views)?;
    }
    record_campaign_move(t, p, new, new.campaigns.iter(), Some(*oc), Some(*nc))
}

/// Swaps one video's sums for another's in a row that keeps holding that video.
fn replace_sums(row: &mut Sums, old: &Sums, new: &Sums) -> Result<()> {
    row.sub(old)?;
    row.add(new);
    Ok(())
}

fn add_sums(row: &mut Sums, s: &Sums, add: bool) -> Result<()> {
    if add {
        row.add(s);
        Ok(())
    } else {
        row.sub(s)
    }
}

/// A change to a row of sums, added up in memory and written once per transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SumsDelta {
    posts: i64,
    views: i128,
    likes: i128,
    comments: i128,
    shares: i128,
}

impl SumsDelta {
    /// Adds `sign` (1 or -1) times one video's sums.
    fn add(&mut self, s: &Sums, sign: i64) {
        let (n, w) = (sign, i128::from(sign));
        self.posts += n * s.posts as i64;
        self.views += w * s.views as i128;
        self.likes += w * s.likes as i128;
        self.comments += w * s.comments as i128;
        self.shares += w * s.shares as i128;
    }

    /// Swaps one video's sums for another's.
    fn replace(&mut self, old: &Sums, new: &Sums) {
        self.add(old, -1);
        self.add(new, 1);
    }
}

/// Index rows to write (`Some`) or remove (`None`).
type Staged<K, V> = FxHashMap<K, Option<V>>;
/// A `by_posted` value: (creator, views, likes, comments, shares, saves).
pub type CountsRow = (Id, u64, u64, u64, u64, u64);
/// A campaign unit: (project, root campaign, level, unit).
pub type CampaignKey = (Id, Id, u8, i64);

fn counts_row(creator: Id, c: &Counts) -> CountsRow {
    (creator, c.views, c.likes, c.comments, c.shares, c.saves)
}

/// Rows a write transaction has changed, kept in memory and written back once by
/// [`Tables::flush`]. The write-back goes in key order, so it touches each B-tree page
/// once, where the events of a batch hit pages in random order; hash maps until then,
/// because ingestion touches them per event and sorts only once per batch.
///
/// - Aggregate rows: the changes to each row are added up, without reading it, and
///   added to it once per batch ([`write_deltas`]): the coarse rows (a day, 32 days, a
///   creator's day) are hit by many events of one batch, and a row read in key order is
///   read and replaced in one B-tree descent. For the [`WriteOnlyTables`] only the
///   videos' changes are kept here ([`Move`], [`CampaignOp`]), and added up by the thread
///   that writes them.
/// - Index rows that ingestion only writes, never reads (`None` = remove): the last write
///   of a key in the batch is the one that counts, so an insert and its later removal in
///   one batch cost nothing.
/// - Video registers, read through [`video_reg`] so a batch sees its own writes.
/// - Caches of creators' trackedness and of what campaign memberships resolve to, not
///   written back.
#[derive(Default)]
pub struct Pending {
    /// Visible videos' changes, in order, which the rows of the [`WriteOnlyTables`]
    /// follow from: added up where those rows are written ([`WriteOnlyRows`]).
    moves: Vec<Move>,
    /// Visible videos' changes in their root campaigns' units, in order.
    campaign: Vec<CampaignOp>,
    /// The root campaigns of the [`CampaignOp::Move`]s, one after another (a video at
    /// scale L reaches about 14): one buffer rather than a set per change.
    campaign_roots: Vec<Id>,
    by_posted: Staged<(Id, i64, u32, Id), CountsRow>,
    videos: FxHashMap<(Id, Id), Vec<u8>>,
    /// (project, creator) → root campaigns reached from the creator's memberships, valid
    /// until a membership or a campaign's visibility changes ([`Pending::forget_roots`]).
    pub(super) creator_roots: RefCell<FxHashMap<(Id, Id), BTreeSet<Id>>>,
    /// (project, creator) → whether the creator is tracked, kept in step by [`set_creator`].
    tracked: RefCell<FxHashMap<(Id, Id), bool>>,
    /// Project → its zone, which campaign units are local days of; kept in step by
    /// [`goals::set_project`].
    pub(super) zones: RefCell<FxHashMap<Id, chrono_tz::Tz>>,
    /// (project, creator) → the creator's goals with their progress, loaded when first
    /// touched ([`super::goals`]).
    pub(super) goals: FxHashMap<(Id, Id), super::goals::CreatorGoals>,
}

impl Pending {
    /// The changes of the [`WriteOnlyTables`], leaving none.
    pub fn take_write_only(&mut self) -> WriteOnlyRows {
        WriteOnlyRows {
            moves: std::mem::take(&mut self.moves),
            campaign: CampaignRows {
                ops: std::mem::take(&mut self.campaign),
                roots: std::mem::take(&mut self.campaign_roots),
            },
        }
    }

    /// Drops cached campaign reachability: memberships or campaigns changed.
    pub(super) fn forget_roots(&mut self) {
        self.creator_roots.get_mut().clear();
    }
}

/// A visible video's change in the aggregates of the [`WriteOnlyTables`]: added (`old`
/// is `None`), retracted (`new` is `None`) or its counts changed. Applying an event only
/// records it; the rows are added up where they are written, on a second thread when
/// there is one, which takes that work off the applying thread.
#[derive(Clone, Copy, Debug)]
struct Move {
    p: Id,
    video: Id,
    creator: Id,
    posted: Instant,
    old: Option<Counts>,
    new: Option<Counts>,
}

/// A change to the campaign tables ([`WriteOnlyTables`]). Applying only records it; the
/// thread that writes those tables adds the changes up in order, since a unit's top list
/// follows its count of videos.
#[derive(Clone, Copy, Debug)]
enum CampaignOp {
    /// A visible video joins (`old` is `None`), leaves (`new` is `None`) or changes its
    /// counts in the units of the root campaigns `roots` (a range of
    /// [`Pending::campaign_roots`]), which are the local day starting at quarter `quarter`
    /// and the 32-day block holding it.
    Move {
        p: Id,
        video: Id,
        creator: Id,
        quarter: i64,
        roots: (usize, usize),
        old: Option<Counts>,
        new: Option<Counts>,
    },
    /// Project `p`'s zone changed: its units go, and the joins recorded after this refill
    /// them ([`rebuild_campaign_units`]).
    Clear(Id),
}

/// The pending changes of the [`WriteOnlyTables`], taken from [`Pending`].
pub struct WriteOnlyRows {
    moves: Vec<Move>,
    campaign: CampaignRows,
}

/// The pending changes of the [`CampaignTables`].
pub struct CampaignRows {
    ops: Vec<CampaignOp>,
    roots: Vec<Id>,
}

impl WriteOnlyRows {
    /// Videos' changes: what [`SECOND_THREAD_MIN_MOVES`] counts.
    fn len(&self) -> usize {
        self.moves.len() + self.campaign.ops.len()
    }

    /// The changes of the [`MoveTables`] and of the [`CampaignTables`], to write apart.
    pub fn split(self) -> (MoveRows, CampaignRows) {
        (MoveRows(self.moves), self.campaign)
    }
}

/// The pending changes of the [`MoveTables`].
pub struct MoveRows(Vec<Move>);

/// Campaign units whose top list emptied while they still held videos: rebuilt from the
/// videos once the transaction's rows are all written ([`Tables::rebuild_top_lists`]).
pub type EmptiedLists = rustc_hash::FxHashSet<CampaignKey>;

/// The rows of the [`WriteOnlyTables`] that moves change, added up: the sums of projects
/// and creators, 5 `by_metric` rows and up to 10 HDR cells a video.
#[derive(Default)]
struct WriteOnlyDeltas {
    project: FxHashMap<(Id, u8, i64), SumsDelta>,
    /// Changes to `creator_buckets` (coarse levels).
    creator: FxHashMap<(Id, u8, i64, Id), SumsDelta>,
    /// Changes to `creator_rows` (fine levels).
    creator_rows: FxHashMap<(Id, u8, i64, Id), SumsDelta>,
    creator_posts: FxHashMap<(Id, u8, i64, Id), i64>,
    by_metric: Staged<(Id, u8, u64, Id), At>,
    /// Changes to `hist_cells`, by cell position.
    hist: FxHashMap<(Id, u8, i64, u16), i64>,
}

impl WriteOnlyDeltas {
    /// Adds up `moves`, in order: a later `by_metric` write of a key wins.
    fn of(moves: &[Move]) -> WriteOnlyDeltas {
        let mut d = WriteOnlyDeltas::default();
        for m in moves {
            match (&m.old, &m.new) {
                (Some(old), Some(new)) => d.recount(m, old, new),
                (old, new) => {
                    if let Some(old) = old {
                        d.contribute(m, old, false);
                    }
                    if let Some(new) = new {
                        d.contribute(m, new, true);
                    }
                }
            }
        }
        d
    }

    /// Adds (`add`) or retracts a video with counts `c`.
    fn contribute(&mut self, m: &Move, c: &Counts, add: bool) {
        let (p, at) = (m.p, (m.posted.secs, m.posted.nanos));
        for metric in Metric::ALL {
            self.by_metric.insert((p, metric as u8, !metric.of(c), m.video), add.then_some(at));
        }
        let sums = Sums::of(c);
        let delta = if add { 1 } else { -1 };
        let cell = hist_cell(c.views);
        let q = quarter_of(m.posted);
        for level in Level::ALL {
            let (l, u) = (level as u8, unit_of(level, q));
            self.project.entry((p, l, u)).or_default().add(&sums, delta);
            self.creator_sums(level, (p, u, m.creator)).add(&sums, delta);
            self.add_to_cell((p, l, u), cell, delta);
        }
        for level in Level::FINE {
            *self.creator_posts.entry((p, level as u8, unit_of(level, q), m.creator)).or_default() += delta;
        }
    }

    /// Moves a video from counts `oc` to `nc`: a single change per sums row, and no index
    /// row touched whose key is unchanged.
    fn recount(&mut self, m: &Move, oc: &Counts, nc: &Counts) {
        let (p, at) = (m.p, (m.posted.secs, m.posted.nanos));
        for metric in Metric::ALL {
            if metric.of(oc) != metric.of(nc) {
                self.by_metric.insert((p, metric as u8, !metric.of(oc), m.video), None);
                self.by_metric.insert((p, metric as u8, !metric.of(nc), m.video), Some(at));
            }
        }
        let (os, ns) = (Sums::of(oc), Sums::of(nc));
        let (old_cell, new_cell) = (hist_cell(oc.views), hist_cell(nc.views));
        let q = quarter_of(m.posted);
        for level in Level::ALL {
            let (l, u) = (level as u8, unit_of(level, q));
            self.project.entry((p, l, u)).or_default().replace(&os, &ns);
            self.creator_sums(level, (p, u, m.creator)).replace(&os, &ns);
            if old_cell != new_cell {
                self.add_to_cell((p, l, u), old_cell, -1);
                self.add_to_cell((p, l, u), new_cell, 1);
            }
        }
    }

    /// The pending change to creator `c`'s sums in unit `u` of project `p` at `level`.
    fn creator_sums(&mut self, level: Level, (p, u, c): (Id, i64, Id)) -> &mut SumsDelta {
        let map = if level.is_fine() { &mut self.creator_rows } else { &mut self.creator };
        map.entry((p, level as u8, u, c)).or_default()
    }

    /// Counts `delta` videos into HDR cell `cell` of unit `u` of project `p` at level `l`.
    fn add_to_cell(&mut self, (p, l, u): (Id, u8, i64), cell: u64, delta: i64) {
        let at = u16::try_from(hist_cell_index(cell)).expect("HIST_CELLS < 2^16");
        *self.hist.entry((p, l, u, at)).or_default() += delta;
    }
}

impl MoveTables<'_> {
    pub fn write(&mut self, MoveRows(moves): MoveRows) -> Result<()> {
        let mut d = WriteOnlyDeltas::of(&moves);
        drop(moves);
        write_deltas(&mut d.project, &mut self.project_buckets)?;
        write_deltas(&mut d.creator, &mut self.creator_buckets)?;
        write_packed(&mut d.creator_rows, &mut self.creator_rows, |(p, l, u, c)| ((p, l, u), c))?;
        write_packed(&mut d.creator_posts, &mut self.creator_posts, |(p, l, u, c)| ((p, l, u), c))?;
        write_staged(&mut d.by_metric, &mut self.by_metric)?;
        write_packed(&mut d.hist, &mut self.hist_cells, |(p, l, u, at)| ((p, l, u), at))
    }
}

impl CampaignTables<'_> {
    /// Adds up the campaign changes in order and writes the units they touch: their sums,
    /// creators and top lists. A project's units are written before they are cleared.
    pub fn write(&mut self, CampaignRows { ops, roots }: CampaignRows) -> Result<()> {
        // Sums and top list of each unit touched: one map, so that a change finds both with
        // one probe per unit.
        let mut units = FxHashMap::default();
        let mut creators = FxHashMap::default();
        for op in &ops {
            let (p, video, creator, quarter, (start, end), old, new) = match *op {
                CampaignOp::Move { p, video, creator, quarter, roots, old, new } => {
                    (p, video, creator, quarter, roots, old, new)
                }
                CampaignOp::Clear(p) => {
                    self.write_campaign_units(&mut units, &mut creators)?;
                    let all = (p, ID_MIN, 0, i64::MIN)..=(p, ID_MAX, u8::MAX, i64::MAX);
                    self.campaign_buckets.retain_in(all.clone(), |_, _| false)?;
                    self.campaign_best.retain_in(all.clone(), |_, _| false)?;
                    self.campaign_creators.retain_in(all, |_, _| false)?;
                    self.emptied_lists.retain(|k| k.0 != p);
                    continue;
                }
            };
            let os = old.as_ref().map(Sums::of).unwrap_or_default();
            let ns = new.as_ref().map(Sums::of).unwrap_or_default();
            for level in Level::CAMPAIGN {
                let (l, u) = (level as u8, unit_of(level, quarter));
                for &root in &roots[start..end] {
                    let key = (p, root, l, u);
                    let unit = campaign_unit(&mut units, &self.campaign_buckets, key)?;
                    let n = unit.sums.posts;
                    let joins = match (&old, &new) {
                        (Some(oc), Some(nc)) => {
                            replace_sums(&mut unit.sums, &os, &ns)?;
                            if oc.views != nc.views {
                                let best = unit.best(&self.campaign_best, key)?;
                                best.change((!oc.views, video), (!nc.views, video), n);
                            }
                            0
                        }
                        (None, Some(c)) => {
                            add_sums(&mut unit.sums, &ns, true)?;
                            unit.best(&self.campaign_best, key)?.add((!c.views, video), n);
                            1
                        }
                        (Some(c), None) => {
                            add_sums(&mut unit.sums, &os, false)?;
                            unit.best(&self.campaign_best, key)?.remove((!c.views, video));
                            -1
                        }
                        (None, None) => 0,
                    };
                    if joins != 0 {
                        *creators.entry((p, root, l, u, creator)).or_default() += joins;
                    }
                }
            }
        }
        self.write_campaign_units(&mut units, &mut creators)
    }

    /// Writes the campaign units added up, leaving the maps empty: their creators, top
    /// lists and sums. A list that emptied while its unit holds videos is written empty
    /// and rebuilt at the transaction's end ([`Tables::rebuild_top_lists`]).
    fn write_campaign_units(
        &mut self,
        units: &mut FxHashMap<CampaignKey, CampaignUnit>,
        creators: &mut FxHashMap<(Id, Id, u8, i64, Id), i64>,
    ) -> Result<()> {
        write_packed(creators, &mut self.campaign_creators, |(p, r, l, u, c)| ((p, r, l, u), c))?;
        let units = sorted(units);
        for (key, unit) in &units {
            match &unit.best {
                Some(list) if list.is_empty() => {
                    self.campaign_best.remove(*key)?;
                    if unit.sums.posts > 0 {
                        self.emptied_lists.insert(*key);
                    }
                }
                Some(list) => _ = self.campaign_best.insert(*key, list.encode().as_slice())?,
                None => {}
            }
        }
        for (key, unit) in units {
            if unit.sums.posts > 0 {
                self.campaign_buckets.insert(key, unit.sums.row())?;
            } else {
                self.campaign_buckets.remove(key)?;
            }
        }
        Ok(())
    }
}

/// A change to a stored row that [`write_deltas`] adds to it.
trait Delta: Copy + Default + PartialEq {
    type Row: for<'a> redb::Value<SelfType<'a> = Self::Value> + 'static;
    type Value;
    /// The row after this change (`None`: empty, so deleted), or an error if a count
    /// would go below zero.
    fn added_to(&self, row: Option<Self::Value>) -> Result<Option<Self::Value>>;
}

fn underflow() -> StateError {
    StateError::Corrupt("counter underflow".into())
}

impl Delta for i64 {
    type Row = u64;
    type Value = u64;
    fn added_to(&self, row: Option<u64>) -> Result<Option<u64>> {
        let new = row.unwrap_or(0).checked_add_signed(*self).ok_or_else(underflow)?;
        Ok((new > 0).then_some(new))
    }
}

impl Delta for SumsDelta {
    type Row = SumsRow;
    type Value = SumsRow;
    fn added_to(&self, row: Option<SumsRow>) -> Result<Option<SumsRow>> {
        let (posts, views, likes, comments, shares) = row.unwrap_or_default();
        let wide = |v: u128, d: i128| -> Result<u128> {
            i128::try_from(v)
                .ok()
                .and_then(|v| v.checked_add(d))
                .and_then(|n| u128::try_from(n).ok())
                .ok_or_else(underflow)
        };
        let posts = posts.checked_add_signed(self.posts).ok_or_else(underflow)?;
        let row = (
            posts,
            wide(views, self.views)?,
            wide(likes, self.likes)?,
            wide(comments, self.comments)?,
            wide(shares, self.shares)?,
        );
        Ok((posts > 0).then_some(row))
    }
}

/// A campaign unit's pending rows: its sums, and its top list once a change needs it.
struct CampaignUnit {
    sums: Sums,
    best: Option<TopList>,
}

impl CampaignUnit {
    /// The unit's top list, read from `table` the first time.
    fn best(
        &mut self,
        table: &redb::Table<'_, (super::tables::IdKey, super::tables::IdKey, u8, i64), &'static [u8]>,
        key: CampaignKey,
    ) -> Result<&mut TopList> {
        if self.best.is_none() {
            let list = match table.get(key)? {
                Some(g) => TopList::decode(g.value()).ok_or_else(|| StateError::Corrupt("campaign_best row".into()))?,
                None => TopList::default(),
            };
            self.best = Some(list);
        }
        Ok(self.best.get_or_insert_default())
    }
}

/// The pending rows of a campaign unit, its sums read the first time it is touched.
fn campaign_unit<'m>(
    pending: &'m mut FxHashMap<CampaignKey, CampaignUnit>,
    table: &redb::Table<'_, (super::tables::IdKey, super::tables::IdKey, u8, i64), SumsRow>,
    key: CampaignKey,
) -> Result<&'m mut CampaignUnit> {
    match pending.entry(key) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let sums = table.get(key)?.map_or_else(Sums::default, |g| Sums::from_row(g.value()));
            Ok(e.insert(CampaignUnit { sums, best: None }))
        }
    }
}

/// A map's entries in key order, leaving it empty.
fn sorted<K: Ord, V>(map: &mut FxHashMap<K, V>) -> Vec<(K, V)> {
    let mut rows: Vec<(K, V)> = map.drain().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Adds the pending changes to their rows, in key order: one B-tree descent per row that
/// exists (read and replaced in place), and one more for a row that is new or emptied.
fn write_deltas<K, D>(
    pending: &mut FxHashMap<K::SelfType<'static>, D>,
    table: &mut redb::Table<'_, K, D::Row>,
) -> Result<()>
where
    K: redb::Key + 'static,
    K::SelfType<'static>: Ord + Clone,
    D: Delta,
{
    for (key, delta) in sorted(pending) {
        if delta == D::default() {
            continue; // retracted and added back in the same transaction
        }
        // Some(true): the row emptied; None: there was no row.
        let emptied = match table.get_mut(key.clone())? {
            Some(mut row) => match delta.added_to(Some(row.value()))? {
                Some(new) => {
                    row.insert(new)?;
                    Some(false)
                }
                None => Some(true),
            },
            None => None,
        };
        match emptied {
            Some(false) => {}
            Some(true) => {
                table.remove(key)?;
            }
            None => {
                let new = delta.added_to(None)?.ok_or_else(underflow)?;
                table.insert(key, new)?;
            }
        }
    }
    Ok(())
}

/// A pending change to an entry of a packed row ([`super::tables::entries`]): the change
/// to a B-tree row ([`Delta`]), applied to the entry's value as the row packs it.
trait EntryDelta: Delta {
    type Entry: Packed + Copy;
    /// The entry after this change; `None` when it leaves nothing (the entry goes).
    fn added_to_entry(&self, old: Option<Self::Entry>) -> Result<Option<Self::Entry>>;
}

/// A change to a count of videos.
impl EntryDelta for i64 {
    type Entry = u32;
    fn added_to_entry(&self, old: Option<u32>) -> Result<Option<u32>> {
        let new = self.added_to(old.map(u64::from))?;
        new.map(|n| u32::try_from(n).map_err(|_| underflow())).transpose()
    }
}

impl EntryDelta for SumsDelta {
    type Entry = Sums;
    fn added_to_entry(&self, old: Option<Sums>) -> Result<Option<Sums>> {
        Ok(self.added_to(old.map(|s| s.row()))?.map(Sums::from_row))
    }
}

/// Adds the pending changes to the packed row of each unit, leaving `pending` empty:
/// `split` parts a pending key into the row's key and the entry's. Entries stay in key
/// order; one left empty goes, and so does a row left empty.
fn write_packed<M, K, R, E, D>(
    pending: &mut FxHashMap<M, D>,
    table: &mut redb::Table<'_, K, &'static [u8]>,
    split: impl Fn(M) -> (R, E),
) -> Result<()>
where
    K: for<'a> redb::Key<SelfType<'a> = R> + 'static,
    R: Copy + Ord,
    E: Packed + Copy + Ord,
    D: EntryDelta,
{
    let mut changes: Vec<(R, E, D)> = pending
        .drain()
        .filter(|(_, d)| *d != D::default())
        .map(|(k, d)| {
            let (r, e) = split(k);
            (r, e, d)
        })
        .collect();
    changes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    for unit_changes in changes.chunk_by(|a, b| a.0 == b.0) {
        let key = unit_changes[0].0;
        let old: Vec<(E, D::Entry)> = match table.get(key)? {
            Some(row) => entries(row.value()).collect(),
            None => Vec::new(),
        };
        let mut row = Vec::with_capacity((old.len() + unit_changes.len()) * (E::LEN + D::Entry::LEN));
        let mut push = |entry: &E, value: Option<D::Entry>| {
            if let Some(value) = value {
                entry.put(&mut row);
                value.put(&mut row);
            }
        };
        // Merge the two lists in key order.
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < unit_changes.len() {
            let order = match (old.get(i), unit_changes.get(j)) {
                (Some(a), Some(b)) => a.0.cmp(&b.1),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, _) => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Equal => {
                    push(&old[i].0, unit_changes[j].2.added_to_entry(Some(old[i].1))?);
                    (i, j) = (i + 1, j + 1);
                }
                std::cmp::Ordering::Less => {
                    push(&old[i].0, Some(old[i].1));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    push(&unit_changes[j].1, unit_changes[j].2.added_to_entry(None)?);
                    j += 1;
                }
            }
        }
        if row.is_empty() {
            table.remove(key)?;
        } else {
            table.insert(key, row.as_slice())?;
        }
    }
    Ok(())
}

/// Writes staged index rows: `Some` inserts, `None` removes.
fn write_staged<K, V>(
    staged: &mut Staged<K::SelfType<'static>, V::SelfType<'static>>,
    table: &mut redb::Table<'_, K, V>,
) -> Result<()>
where
    K: redb::Key + 'static,
    K::SelfType<'static>: Ord,
    V: redb::Value + 'static,
{
    for (key, v) in sorted(staged) {
        match v {
            Some(v) => table.insert(key, v)?,
            None => table.remove(key)?,
        };
    }
    Ok(())
}

/// Videos' changes from which [`Tables::flush_on_two_threads`] writes the
/// [`WriteOnlyTables`] on a second thread: a batch of several thousand events, as a
/// consumer that is behind reads, where it was measured to help. A consumer keeping up
/// with 10,000 events/s commits about 2,000 a batch, in milliseconds, where no gain was
/// shown. (Before the moves were added up on the writing thread, the threshold was 65,536
/// staged `by_metric` rows and HDR cell changes: 8 to 15 of them a move in the test log.)
const SECOND_THREAD_MIN_MOVES: usize = 4_096;

impl Tables<'_> {
    /// Writes the pending rows. Every write transaction calls this (or
    /// [`Tables::flush_on_two_threads`]) before it commits; readers never see a transaction
    /// without it.
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending(usize::MAX)
    }

    /// [`Tables::flush`], with the [`WriteOnlyTables`] (the sums of projects and creators,
    /// `by_metric`, `hist_cells` and the campaign units: most of what is written) on two
    /// more threads, the campaign units on one and the rest on the other, when enough of
    /// them are staged. A write transaction has one writer, but redb lets disjoint tables
    /// of it be written from different threads.
    ///
    /// Meant for a transaction of one stage, such as a Kafka batch, which a second thread
    /// made faster. A window of many stages writes them a stage behind instead
    /// (`Store::write`).
    pub fn flush_on_two_threads(&mut self) -> Result<()> {
        self.write_pending(SECOND_THREAD_MIN_MOVES)
    }

    /// Writes the pending rows, the two parts of the [`WriteOnlyTables`] on two more
    /// threads if `second_thread_from` or more videos' changes are pending.
    fn write_pending(&mut self, second_thread_from: usize) -> Result<()> {
        let rows = self.pending.take_write_only();
        let threads = rows.len() >= second_thread_from;
        let (moves, campaign) = rows.split();
        let mut tables = self.write_only.take().expect("the write-only tables are in place");
        let WriteOnlyTables { moves: move_tables, campaign: campaign_tables } = &mut tables;
        if threads {
            std::thread::scope(|s| {
                let moves_written = s.spawn(|| move_tables.write(moves));
                let campaign_written = s.spawn(|| campaign_tables.write(campaign));
                let here = self.flush_but_write_only();
                here.and(crate::join(moves_written)).and(crate::join(campaign_written))
            })?;
        } else {
            self.flush_but_write_only()?;
            move_tables.write(moves)?;
            campaign_tables.write(campaign)?;
        }
        self.write_only = Some(tables);
        self.rebuild_top_lists()
    }

    /// Writes the pending rows but those of the [`WriteOnlyTables`] (which
    /// [`Pending::take_write_only`] takes).
    pub fn flush_but_write_only(&mut self) -> Result<()> {
        let Tables { videos, by_posted, pending, .. } = self;
        for (key, reg) in sorted(&mut pending.videos) {
            videos.insert(key, reg.as_slice())?;
        }
        write_staged(&mut pending.by_posted, by_posted)?;
        self.flush_goals()
    }

    /// Rebuilds the top lists that emptied while their unit held videos, from the visible
    /// videos posted in the unit. Runs once every row of the transaction is written, the
    /// [`WriteOnlyTables`] back in place: a rebuild reads `by_posted` and the memberships,
    /// which may run a stage ahead of the thread writing those tables.
    pub fn rebuild_top_lists(&mut self) -> Result<()> {
        let mut tables = self.write_only.take().expect("the write-only tables are in place");
        let rebuilt = self.rebuild_emptied_lists(&mut tables.campaign);
        self.write_only = Some(tables);
        rebuilt
    }

    fn rebuild_emptied_lists(&self, w: &mut CampaignTables) -> Result<()> {
        let mut keys: Vec<CampaignKey> = w.emptied_lists.drain().collect();
        keys.sort_unstable();
        for key in keys {
            // A list refilled from nothing, or a unit emptied since, needs no rebuild.
            let holds_videos = w.campaign_buckets.get(key)?.is_some_and(|g| g.value().0 > 0);
            if !holds_videos || w.campaign_best.get(key)?.is_some() {
                continue;
            }
            let list = self.rebuild_best(key)?;
            if list.is_empty() {
                return Err(StateError::Corrupt("campaign unit without its videos".into()));
            }
            w.campaign_best.insert(key, list.encode().as_slice())?;
        }
        Ok(())
    }

    /// The top list of a campaign unit, from the visible videos posted in the unit.
    fn rebuild_best(&self, (p, root, l, u): CampaignKey) -> Result<TopList> {
        let level = Level::CAMPAIGN.into_iter().find(|x| *x as u8 == l).expect("a campaign level");
        let days = local_unit_period(goals::project_zone(self, p)?, level, u);
        let (start, end) = (days.start.expect("a closed period"), days.end.expect("a closed period"));
        let mut members = Vec::new();
        for e in self.by_posted.range((p, start.secs, start.nanos, ID_MIN)..(p, end.secs, end.nanos, ID_MIN))? {
            let (k, v) = e?;
            let video = k.value().3;
            let (creator, views, ..) = v.value();
            if campaigns::roots_of_video(self, p, video, creator)?.contains(&root) {
                members.push((!views, video));
            }
        }
        Ok(TopList::of(members))
    }
}

/// The HDR histogram with 3 significant digits over the whole count range (contract §4.3).
pub fn hdr_template() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, u64::MAX / 2, 3).expect("valid HDR bounds")
}

thread_local! {
    static HDR: hdrhistogram::Histogram<u64> = hdr_template();
}

/// The HDR cell of a view count: the lowest value it shares a bucket with.
pub fn hist_cell(views: u64) -> u64 {
    HDR.with(|h| h.lowest_equivalent(views))
}

/// The largest value in the HDR cell starting at `cell`.
pub fn hist_cell_high(cell: u64) -> u64 {
    HDR.with(|h| h.highest_equivalent(cell))
}

/// Number of distinct HDR cells (3 significant digits) over all of `u64`: cells below
/// 2,048 hold one value each; above, each power of two splits into 1,024.
pub const HIST_CELLS: usize = 2048 + 53 * 1024;

/// The position of an HDR cell (a cell's lowest value, as [`hist_cell`] gives) among all
/// cells in value order: a dense index for adding up cells in an array.
pub fn hist_cell_index(cell: u64) -> usize {
    if cell < 2048 {
        return cell as usize;
    }
    let shift = 63 - cell.leading_zeros() as usize - 10; // >= 1
    2048 + (shift - 1) * 1024 + ((cell >> shift) as usize - 1024)
}

/// The cell at a position of [`hist_cell_index`].
pub fn hist_index_cell(i: usize) -> u64 {
    if i < 2048 {
        return i as u64;
    }
    let (shift, sub) = ((i - 2048) / 1024 + 1, (i - 2048) % 1024 + 1024);
    (sub as u64) << shift
}

/// Keeps a creator's median in step: `creator_median` points at the lower-middle entry of
/// `creator_views` and moves at most one step per insert or removal, so a median costs
/// O(log n) to maintain and O(1) to read, however many videos the creator has. The row
/// also keeps the entry after the lower middle and the first entry ([`CreatorMedian`]).
fn median_update(t: &mut Tables, p: Id, creator: Id, x: (u64, Id), at: (i64, u32), add: bool) -> Result<()> {
    let cur = t.creator_median.get((p, creator))?.map(|g| CreatorMedian::from_row(g.value()));
    let (n, m) = cur.map_or((0, x), |c| (c.n, c.lower));
    let key = |k: (u64, Id)| (p, creator, k.0, k.1);
    let lo = (p, creator, 0u64, ID_MIN);
    let pred = |t: &Tables, k: (u64, Id)| -> Result<(u64, Id)> {
        let (g, _) = t.creator_views.range(lo..key(k))?.next_back().transpose()?.ok_or_else(median_lost)?;
        let (_, _, a, b) = g.value();
        Ok((a, b))
    };
    // The new lower middle and the entry after it, from the old row where it knows them: a
    // step of the median lands next to the old middle or on the old entry after it.
    let (n2, m2, upper) = if add {
        t.creator_views.insert(key(x), at)?;
        match cur {
            None => (1, x, x),
            Some(_) if n % 2 == 1 && x < m => (n + 1, pred(t, m)?, m),
            Some(c) if n % 2 == 1 => (n + 1, m, if n == 1 { x } else { c.upper.min(x) }),
            Some(c) if x > m && x < c.upper => (n + 1, x, c.upper),
            Some(c) if x > m => (n + 1, c.upper, views_after(t, p, creator, c.upper)?),
            Some(c) => (n + 1, m, c.upper),
        }
    } else {
        let Some(c) = cur else { return Err(median_lost()) };
        t.creator_views.remove(key(x))?;
        if n == 1 {
            t.creator_median.remove((p, creator))?;
            return Ok(());
        }
        if n % 2 == 1 && x >= m {
            (n - 1, pred(t, m)?, if x == m { c.upper } else { m })
        } else if n % 2 == 1 {
            (n - 1, m, c.upper)
        } else if n == 2 {
            let m2 = if x <= m { c.upper } else { m };
            (1, m2, m2)
        } else if x <= m {
            (n - 1, c.upper, views_after(t, p, creator, c.upper)?)
        } else if x == c.upper {
            (n - 1, m, views_after(t, p, creator, m)?)
        } else {
            (n - 1, m, c.upper)
        }
    };
    let top = match cur {
        None => x,
        Some(c) if add => c.top.min(x),
        Some(c) if x != c.top => c.top,
        Some(_) => first_views(t, p, creator)?,
    };
    let row = CreatorMedian { n: n2, lower: m2, upper, top };
    t.creator_median.insert((p, creator), row.row())?;
    Ok(())
}

/// Moves one video of a creator from key `x` to key `y` (its views changed). When both
/// lie on the same side of the median entry, as they mostly do, the median stays put:
/// the two `creator_views` rows change, and the median row only if its first entry (on
/// the side before the median) or the entry after the median (on the side after) does.
fn median_move(t: &mut Tables, p: Id, creator: Id, x: (u64, Id), y: (u64, Id), at: (i64, u32)) -> Result<()> {
    let cur = t.creator_median.get((p, creator))?.map(|g| CreatorMedian::from_row(g.value()));
    if let Some(c) = cur {
        let m = c.lower;
        if (x < m && y < m) || (x > m && y > m) {
            t.creator_views.remove((p, creator, x.0, x.1))?;
            t.creator_views.insert((p, creator, y.0, y.1), at)?;
            let mut next = c;
            if x < m {
                next.top = if y < c.top {
                    y
                } else if x == c.top {
                    first_views(t, p, creator)?
                } else {
                    c.top
                };
            } else {
                next.upper = if y < c.upper {
                    y
                } else if x == c.upper {
                    views_after(t, p, creator, m)?
                } else {
                    c.upper
                };
            }
            if next != c {
                t.creator_median.insert((p, creator), next.row())?;
            }
            return Ok(());
        }
    }
    median_update(t, p, creator, x, at, false)?;
    median_update(t, p, creator, y, at, true)
}

/// The creator's first `creator_views` key: its video with most views.
fn first_views(t: &Tables, p: Id, creator: Id) -> Result<(u64, Id)> {
    let (g, _) = t
        .creator_views
        .range((p, creator, 0u64, ID_MIN)..=(p, creator, u64::MAX, ID_MAX))?
        .next()
        .transpose()?
        .ok_or_else(median_lost)?;
    let (_, _, a, b) = g.value();
    Ok((a, b))
}

/// The creator's `creator_views` key right after `k` (which need not be present).
fn views_after(t: &Tables, p: Id, creator: Id, k: (u64, Id)) -> Result<(u64, Id)> {
    for e in t.creator_views.range((p, creator, k.0, k.1)..=(p, creator, u64::MAX, ID_MAX))? {
        let (_, _, a, b) = e?.0.value();
        if (a, b) > k {
            return Ok((a, b));
        }
    }
    Err(median_lost())
}

fn median_lost() -> StateError {
    StateError::Corrupt("creator median cursor lost".into())
}

/// Writes a video register (scrape or removal), keeping every derived row in step.
pub fn set_video(t: &mut Tables, p: Id, stamp: Stamp, video: Id, snap: Option<&VideoSnapshot>) -> Result<()> {
    let old = video_reg(t, p, video)?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    // Only this register changes, so the contribution before and after follows from the
    // two records, and the root campaigns carry over while the creator stays.
    let old = old.and_then(|r| r.value);
    let before = observe_record(t, p, video, old.as_ref(), None)?;
    let (old_creator, new_creator) = (old.map(|v| v.creator_id), snap.map(|v| v.creator_id));
    if old_creator != new_creator {
        if let Some(c) = old_creator {
            t.videos_by_creator.remove((p, c, video))?;
        }
        if let Some(c) = new_creator {
            t.videos_by_creator.insert((p, c, video), ())?;
        }
    }
    t.pending.videos.insert((p, video), encode(&Reg { stamp, value: snap }));
    let after = observe_record(t, p, video, snap, before.as_ref())?;
    move_contribution(t, p, video, before, after)
}

/// A video's register as this transaction sees it.
fn video_reg(t: &Tables, p: Id, video: Id) -> Result<Option<Reg<VideoSnapshot>>> {
    match t.pending.videos.get(&(p, video)) {
        Some(bytes) => Ok(Some(super::decode(bytes)?)),
        None => get_reg(&t.videos, (p, video)),
    }
}

/// Present video records of a creator, tracked or not.
pub fn videos_of_creator(t: &Tables, p: Id, creator: Id) -> Result<BTreeSet<Id>> {
    let mut out = BTreeSet::new();
    for e in t.videos_by_creator.range((p, creator, ID_MIN)..=(p, creator, ID_MAX))? {
        out.insert(e?.0.value().2);
    }
    Ok(out)
}

/// Writes a creator profile (snapshot or removal). Only a change of trackedness touches
/// the creator's videos; a new handle or avatar is read at request time.
pub fn set_creator(t: &mut Tables, p: Id, stamp: Stamp, creator: Id, snap: Option<&CreatorSnapshot>) -> Result<()> {
    let old = get_reg::<_, CreatorSnapshot>(&t.creators, (p, creator))?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    let was = old.is_some_and(|r| r.value.is_some());
    let now = snap.is_some();
    let write = |t: &mut Tables| -> Result<()> {
        t.creators.insert((p, creator), encode(&Reg { stamp, value: snap }).as_slice())?;
        match snap {
            Some(s) => t.creator_handles.insert((p, creator), s.tiktok_handle.as_str())?,
            None => t.creator_handles.remove((p, creator))?,
        };
        t.pending.tracked.get_mut().insert((p, creator), snap.is_some());
        Ok(())
    };
    if was == now {
        return write(t);
    }
    let affected = videos_of_creator(t, p, creator)?;
    refresh(t, p, &affected, write)?;
    campaigns::overlap_visibility(t, p, ItemType::Creator, creator, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change adds to its row, empties it at zero posts (the row is deleted), and is
    /// refused when a count would go below zero.
    #[test]
    fn deltas_add_to_rows_and_refuse_to_go_below_zero() {
        let video = |views| Sums::of(&Counts { views, likes: 2, comments: 3, shares: 4, saves: 5 });
        let mut d = SumsDelta::default();
        d.add(&video(10), 1);
        d.add(&video(7), 1);
        assert_eq!(d.added_to(None).unwrap(), Some((2, 17, 4, 6, 8)));
        assert_eq!(d.added_to(Some((1, 1, 1, 1, 1))).unwrap(), Some((3, 18, 5, 7, 9)));
        let mut gone = SumsDelta::default();
        gone.replace(&video(10), &video(12));
        gone.add(&video(12), -1);
        assert_eq!(gone.added_to(Some((1, 10, 2, 3, 4))).unwrap(), None, "the last video left");
        assert!(gone.added_to(Some((1, 9, 2, 3, 4))).is_err(), "views below zero");
        assert!(gone.added_to(None).is_err(), "posts below zero");
        assert_eq!(3i64.added_to(Some(4)).unwrap(), Some(7));
        assert_eq!((-4i64).added_to(Some(4)).unwrap(), None);
        assert!((-5i64).added_to(Some(4)).is_err());
    }

    /// Rows written on two threads are the rows written on one: a generated log applied in
    /// one transaction, with its rows written once on two threads, and with a flush every
    /// 16 events on one, leaves the same state.
    #[test]
    fn rows_written_on_two_threads_are_the_rows_written_on_one() {
        let sample = crate::r#gen::generate(&crate::r#gen::GenConfig::new(3, crate::r#gen::Scale::Test));
        let events: Vec<_> = sample.lines.iter().filter_map(|l| crate::events::decode(l.as_bytes()).ok()).collect();
        let applied = |stage: usize, second_thread_from: usize| {
            let dir = tempfile::tempdir().unwrap();
            let db = redb::Database::create(dir.path().join("state.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            let mut most_staged = 0;
            {
                let mut t = Tables::open(&txn).unwrap();
                for part in events.chunks(stage) {
                    for ev in part {
                        crate::state::apply(&mut t, ev).unwrap();
                    }
                    most_staged = most_staged.max(t.pending.moves.len());
                    t.write_pending(second_thread_from).unwrap();
                }
            }
            txn.commit().unwrap();
            let rtxn = redb::ReadableDatabase::begin_read(&db).unwrap();
            (most_staged, crate::state::tables::dump_state(&rtxn).unwrap())
        };
        let (staged, state) = applied(events.len(), 1);
        let (_, same) = applied(16, usize::MAX);
        assert!(staged > 5_000, "{staged} videos' changes pending");
        assert!(state.len() > 10_000, "{} rows", state.len());
        assert!(state == same, "the two states differ");
    }

    /// A creator's median row is what its `creator_views` keys say, after every insert,
    /// removal and move of a long random sequence: views going up and down, ties, and
    /// the first and middle videos moving and leaving.
    #[test]
    fn creator_median_rows_match_the_creators_views() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let mut t = Tables::open(&txn).unwrap();
        let (p, creator) = ([1u8; 16], [2u8; 16]);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        let mut views: FxHashMap<Id, u64> = FxHashMap::default();
        for step in 0..4_000 {
            let video = [next(40) as u8; 16];
            let v = next(30);
            let at = (step, 0);
            match views.get(&video).copied() {
                None => {
                    median_update(&mut t, p, creator, (!v, video), at, true).unwrap();
                    views.insert(video, v);
                }
                Some(old) if next(4) == 0 => {
                    median_update(&mut t, p, creator, (!old, video), at, false).unwrap();
                    views.remove(&video);
                }
                Some(old) if old != v => {
                    median_move(&mut t, p, creator, (!old, video), (!v, video), at).unwrap();
                    views.insert(video, v);
                }
                Some(_) => continue,
            }
            let keys: Vec<(u64, Id)> = t
                .creator_views
                .range((p, creator, 0, ID_MIN)..=(p, creator, u64::MAX, ID_MAX))
                .unwrap()
                .map(|e| {
                    let (_, _, a, b) = e.unwrap().0.value();
                    (a, b)
                })
                .collect();
            assert_eq!(keys.len(), views.len());
            let row = t.creator_median.get((p, creator)).unwrap().map(|g| CreatorMedian::from_row(g.value()));
            let n = keys.len();
            let want = (n > 0).then(|| {
                let lower = (n - 1) / 2;
                CreatorMedian { n: n as u64, lower: keys[lower], upper: keys[(lower + 1).min(n - 1)], top: keys[0] }
            });
            assert_eq!(row, want, "step {step}");
        }
        assert!(views.len() > 20, "{} videos left", views.len());
    }

    /// The dense cell positions agree with the HDR histogram itself: every cell maps to a
    /// distinct position in range, in value order, and back.
    #[test]
    fn hist_cell_positions_follow_the_hdr_cells() {
        let mut values: Vec<u64> = (0..5_000).collect();
        for b in 11..64 {
            let p = 1u64 << b;
            values.extend([p - 1, p, p + 1, p + p / 3, p + p / 2 + 7]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 40));
        }
        values.extend([u64::MAX / 2, u64::MAX - 1, u64::MAX]);
        values.sort_unstable();
        let mut last: Option<(u64, usize)> = None;
        for v in values {
            let cell = hist_cell(v);
            let i = hist_cell_index(cell);
            assert!(i < HIST_CELLS, "{v}: {i}");
            assert_eq!(hist_index_cell(i), cell, "{v}");
            if let Some((c, j)) = last {
                assert_eq!(cell == c, i == j, "{v}");
                assert!(i >= j, "{v}");
            }
            last = Some((cell, i));
        }
        assert_eq!(hist_cell_index(hist_cell(u64::MAX)), HIST_CELLS - 1);
    }
}
