//! Campaign endpoints: campaign-leaderboard, member-overlap.

use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use redb::ReadTransaction;
use rustc_hash::FxHashMap;

use super::*;
use crate::events::{ItemType, id_to_string};
use crate::state::campaigns::{containing, reach_up_in};
use crate::state::tables::{IdKey, SumsRow};
use crate::state::top;
use crate::state::videos::Sums;
use crate::state::{Reg, decode};
use crate::time::{Period, runs, split_days, unit_start};

/// Every visible campaign over its resolved videos in `[from, to]`, against the prior
/// period of the same length.
pub fn campaign_leaderboard(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    from: NaiveDate,
    to: NaiveDate,
    memos: &Memos,
) -> Result<Vec<CampaignRow>> {
    let len = chrono::Days::new(((to - from).num_days() + 1) as u64);
    let period = Period::days(p.tz, Some(from), Some(to));
    let prior = Period::days(p.tz, Some(from - len), Some(from - chrono::Days::new(1)));
    let roots = memos.campaign_roots(rtxn, p.id)?;
    let now = Tallies::read(rtxn, p.id, &period, &roots, true)?;
    let before = Tallies::read(rtxn, p.id, &prior, &roots, false)?;
    let videos = rtxn.open_table(defs::videos)?;
    let mut rows = Vec::new();
    for (c, name) in visible_campaigns(rtxn, p.id)? {
        let (sums, creators, best) = now.of(c)?;
        let (prior_sums, ..) = before.sums_of(c)?;
        let preview = match best {
            Some((_, video)) => video_record(&videos, p.id, video)?.and_then(|v| v.thumbnail_url),
            None => None,
        };
        let delta = sums.views as i128 - prior_sums.views as i128;
        rows.push(CampaignRow {
            campaign_id: id_to_string(&c),
            name,
            total_views: sums.views,
            total_likes: sums.likes,
            video_count: sums.posts,
            creator_count: creators,
            preview_thumbnail_url: preview,
            prior_views: prior_sums.views,
            views_delta: delta,
            views_delta_pct: (prior_sums.views > 0)
                .then(|| (delta as f64 / prior_sums.views as f64 * 100.0).round() as i64),
        });
    }
    rows.sort_by(|a, b| b.total_views.cmp(&a.total_views).then_with(|| a.campaign_id.cmp(&b.campaign_id)));
    Ok(rows)
}

/// The project's visible campaigns and their names, in id order.
fn visible_campaigns(rtxn: &ReadTransaction, p: Id) -> Result<Vec<(Id, String)>> {
    let t = rtxn.open_table(defs::campaigns)?;
    let mut out = Vec::new();
    for e in t.range((p, ID_MIN)..=(p, ID_MAX))? {
        let (k, v) = e?;
        if let Some(name) = decode::<Reg<String>>(v.value())?.value {
            out.push((k.value().1, name));
        }
    }
    Ok(out)
}

/// Which root campaigns a video counts in, as ingestion resolves it: through its creator
/// and through its own direct memberships. Built from every membership of the project
/// with one scan of each kind, once per version of its campaigns and memberships, and
/// shared by the requests that read that version ([`Memos::campaign_roots`]).
pub struct CampaignRoots {
    /// Creator → the campaigns reached up from those it is a direct member of, in id order.
    of_creator: FxHashMap<Id, Box<[Id]>>,
    /// Video → the campaigns reached up from its own direct memberships, in id order.
    of_video: FxHashMap<Id, Box<[Id]>>,
}

impl CampaignRoots {
    pub(super) fn build(rtxn: &ReadTransaction, p: Id) -> Result<CampaignRoots> {
        let members = rtxn.open_table(defs::members_by_item)?;
        let campaigns = rtxn.open_table(defs::campaigns)?;
        // Campaign → the campaigns reached up from it: an item's roots are the union over
        // the campaigns it is a direct member of.
        let mut up: FxHashMap<Id, BTreeSet<Id>> = FxHashMap::default();
        let mut of_kind = |kind: ItemType| -> Result<FxHashMap<Id, Box<[Id]>>> {
            let k = kind as u8;
            let mut out = FxHashMap::default();
            let mut rows = members.range((p, k, ID_MIN, ID_MIN)..=(p, k, ID_MAX, ID_MAX))?.peekable();
            let mut roots = Vec::new();
            while let Some(e) = rows.next() {
                let (_, _, item, c) = e?.0.value();
                let reached = match up.entry(c) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(reach_up_in(&members, &campaigns, p, vec![c])?),
                };
                roots.extend(reached.iter());
                // Rows are in (item, campaign) order: the item's last row closes its roots.
                let next_item = match rows.peek() {
                    Some(Ok(next)) => Some(next.0.value().2),
                    _ => None,
                };
                if next_item != Some(item) {
                    roots.sort_unstable();
                    roots.dedup();
                    out.insert(item, std::mem::take(&mut roots).into_boxed_slice());
                }
            }
            Ok(out)
        };
        Ok(CampaignRoots { of_creator: of_kind(ItemType::Creator)?, of_video: of_kind(ItemType::Video)? })
    }

    fn of_creator(&self, creator: Id) -> &[Id] {
        self.of_creator.get(&creator).map_or(&[], |r| r)
    }

    /// Campaigns a video counts in through its direct memberships but not through its
    /// creator.
    fn only_direct(&self, video: Id, creator: Id) -> impl Iterator<Item = Id> + '_ {
        let via_creator = self.of_creator(creator);
        let direct = self.of_video.get(&video).map_or(&[][..], |r| r);
        direct.iter().copied().filter(move |r| via_creator.binary_search(r).is_err())
    }
}

/// Campaign figures over one period: the whole UTC days in it come from the campaign
/// rollups, the partial days at its edges from the videos posted in them.
struct Tallies {
    p: Id,
    /// Runs of whole-day units `(level, first, end)`.
    runs: Vec<(Level, i64, i64)>,
    buckets: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64), SumsRow>,
    creators: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64, IdKey), u64>,
    best: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64), &'static [u8]>,
    edges: FxHashMap<Id, Edge>,
}

/// One campaign's videos in a period's partial days.
#[derive(Default)]
struct Edge {
    sums: Sums,
    /// With repeats; counted once in [`Tallies::of`].
    creators: Vec<Id>,
    best: Option<top::Key>,
}

impl Edge {
    fn add(&mut self, creator: Id, sums: &Sums, best: top::Key, detail: bool) {
        self.sums.add(sums);
        if detail {
            self.creators.push(creator);
            self.best = Some(self.best.map_or(best, |b| b.min(best)));
        }
    }
}

impl Tallies {
    /// `detail`: whether [`Tallies::of`] will be asked (distinct creators and the video with
    /// most views), or only [`Tallies::sums_of`].
    fn read(rtxn: &ReadTransaction, p: Id, period: &Period, roots: &CampaignRoots, detail: bool) -> Result<Tallies> {
        let (units, edge_quarters) = match posted_quarters(rtxn, p)? {
            Some((lo, hi)) => {
                let (s, e) = period.quarters(lo, hi);
                split_days(s, e)
            }
            None => (Vec::new(), Vec::new()),
        };
        let by_posted = rtxn.open_table(defs::by_posted)?;
        let mut edges: FxHashMap<Id, Edge> = FxHashMap::default();
        // Videos are summed per creator first, then each creator's total goes to the
        // campaigns reached through it: creators × campaigns, not videos × campaigns.
        let mut by_creator: FxHashMap<Id, (Sums, top::Key)> = FxHashMap::default();
        for (a, b) in edge_quarters {
            let (qa, qb) = (unit_start(Level::Quarter, a), unit_start(Level::Quarter, b));
            let clip = Period {
                start: Some(period.start.map_or(qa, |s| s.max(qa))),
                end: Some(period.end.map_or(qb, |e| e.min(qb))),
            };
            let (lo, hi) = posted_range(p, &clip);
            for e in by_posted.range(lo..hi)? {
                let (k, v) = e?;
                let video = k.value().3;
                let (creator, views, likes, comments, shares, _) = v.value();
                let sums = Sums::of(&crate::events::Counts { views, likes, comments, shares, saves: 0 });
                let rank = (!views, video);
                let (total, best) = by_creator.entry(creator).or_insert((Sums::default(), rank));
                total.add(&sums);
                *best = (*best).min(rank);
                for root in roots.only_direct(video, creator) {
                    edges.entry(root).or_default().add(creator, &sums, rank, detail);
                }
            }
        }
        for (creator, (sums, best)) in by_creator {
            for &root in roots.of_creator(creator) {
                edges.entry(root).or_default().add(creator, &sums, best, detail);
            }
        }
        Ok(Tallies {
            p,
            runs: runs(&units),
            buckets: rtxn.open_table(defs::campaign_buckets)?,
            creators: rtxn.open_table(defs::campaign_creators)?,
            best: rtxn.open_table(defs::campaign_best)?,
            edges,
        })
    }

    /// Campaign `c`'s sums over the period.
    fn sums_of(&self, c: Id) -> Result<(Sums, Option<&Edge>)> {
        let edge = self.edges.get(&c);
        let mut s = edge.map_or_else(Sums::default, |e| e.sums);
        for &(l, a, b) in &self.runs {
            for e in self.buckets.range((self.p, c, l as u8, a)..(self.p, c, l as u8, b))? {
                s.add(&Sums::from_row(e?.1.value()));
            }
        }
        Ok((s, edge))
    }

    /// Campaign `c`'s sums, distinct creators and video with most views over the period.
    fn of(&self, c: Id) -> Result<(Sums, u64, Option<top::Key>)> {
        let (sums, edge) = self.sums_of(c)?;
        if sums.posts == 0 {
            return Ok((sums, 0, None));
        }
        // Distinct creators by sort and dedup: cheaper than a hash set for the thousands
        // of (unit, creator) rows a campaign has over a period.
        let mut creators: Vec<Id> = edge.map(|e| e.creators.clone()).unwrap_or_default();
        let mut best = edge.and_then(|e| e.best);
        for &(l, a, b) in &self.runs {
            let (p, l) = (self.p, l as u8);
            for e in self.creators.range((p, c, l, a, ID_MIN)..=(p, c, l, b - 1, ID_MAX))? {
                creators.push(e?.0.value().4);
            }
            for e in self.best.range((p, c, l, a)..(p, c, l, b))? {
                let head = top::TopList::decode(e?.1.value()).and_then(|t| t.first());
                let head = head.ok_or_else(|| crate::state::StateError::Corrupt("campaign_best row".into()))?;
                best = Some(best.map_or(head, |b| b.min(head)));
            }
        }
        creators.sort_unstable();
        creators.dedup();
        Ok((sums, creators.len() as u64, best))
    }
}

/// Rows member-overlap returns at most.
const OVERLAP_ROWS: usize = 50;

/// Visible entities by how many visible campaigns hold them directly.
pub fn member_overlap(rtxn: &ReadTransaction, p: &ProjectView, dim: Dimension) -> Result<Vec<OverlapRow>> {
    let kind = match dim {
        Dimension::Creator => ItemType::Creator,
        Dimension::Video => ItemType::Video,
    };
    let d = kind as u8;
    let rank_t = rtxn.open_table(defs::overlap_rank)?;
    let members = rtxn.open_table(defs::members_by_item)?;
    let creators = rtxn.open_table(defs::creators)?;
    let videos = rtxn.open_table(defs::videos)?;
    // The visible campaigns in answer order (name, then id), read with one scan: the 50
    // rows hold many more memberships than the project has campaigns. Each id and name is
    // made a string once and shared by the rows; a row sorts campaign ranks.
    let mut campaigns = visible_campaigns(rtxn, p.id)?;
    campaigns.sort_unstable_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    let rank: FxHashMap<Id, usize> = campaigns.iter().enumerate().map(|(i, (c, _))| (*c, i)).collect();
    let shared: Vec<(Arc<str>, Arc<str>)> =
        campaigns.iter().map(|(c, name)| (id_to_string(c).into(), name.as_str().into())).collect();
    let mut rows = Vec::new();
    let mut held: Vec<usize> = Vec::new();
    for e in rank_t.range((p.id, d, 0, ID_MIN)..=(p.id, d, u64::MAX, ID_MAX))?.take(OVERLAP_ROWS) {
        let (_, _, _, entity) = e?.0.value();
        held.clear();
        held.extend(containing(&members, p.id, kind, entity)?.iter().filter_map(|c| rank.get(c)));
        held.sort_unstable();
        let (label, avatar) = match kind {
            ItemType::Creator => {
                let c = creator_profile(&creators, p.id, entity)?.ok_or_else(super::videos::missing)?;
                (Some(c.tiktok_handle), c.avatar_url)
            }
            _ => {
                let v = video_record(&videos, p.id, entity)?.ok_or_else(super::videos::missing)?;
                (v.title, v.thumbnail_url)
            }
        };
        rows.push(OverlapRow {
            entity_id: id_to_string(&entity),
            entity_label: label,
            entity_avatar: avatar,
            campaign_ids: held.iter().map(|&i| shared[i].0.clone()).collect(),
            campaign_names: held.iter().map(|&i| shared[i].1.clone()).collect(),
            campaign_count: held.len() as u64,
        });
    }
    Ok(rows)
}
