//! Campaign endpoints: campaign-leaderboard, member-overlap.

use std::sync::Arc;

use redb::ReadTransaction;
use rustc_hash::FxHashMap;

use super::*;
use crate::events::{ItemType, id_to_string};
use crate::state::tables::{IdKey, SumsRow, creator_count_entries, overlap_entries};
use crate::state::top;
use crate::state::videos::Sums;
use crate::state::{Reg, decode};
use crate::time::{local_day_units, runs};

/// Every visible campaign over its resolved videos in `[from, to]`, against the prior
/// period of the same length: rollups of whole local days of the project's zone.
pub fn campaign_leaderboard(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<CampaignRow>> {
    let len = chrono::Days::new(((to - from).num_days() + 1) as u64);
    let now = Tallies::read(rtxn, p.id, from, to)?;
    let before = Tallies::read(rtxn, p.id, from - len, from - chrono::Days::new(1))?;
    let videos = rtxn.open_table(defs::videos)?;
    let mut rows = Vec::new();
    for (c, name) in visible_campaigns(rtxn, p.id)? {
        let (sums, creators, best) = now.of(c)?;
        let prior_sums = before.sums_of(c)?;
        let preview = match best {
            Some((_, video)) => {
                video_record(&videos, p.id, video)?.and_then(|v| v.texts.thumbnail_url().map(str::to_owned))
            }
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

/// Campaign figures over the local days of one period, from the campaign rollups.
struct Tallies {
    p: Id,
    /// Runs of local-day units `(level, first, end)`.
    runs: Vec<(Level, i64, i64)>,
    buckets: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64), SumsRow>,
    creators: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64), &'static [u8]>,
    best: redb::ReadOnlyTable<(IdKey, IdKey, u8, i64), &'static [u8]>,
}

impl Tallies {
    fn read(rtxn: &ReadTransaction, p: Id, from: NaiveDate, to: NaiveDate) -> Result<Tallies> {
        Ok(Tallies {
            p,
            runs: runs(&local_day_units(from, to)),
            buckets: rtxn.open_table(defs::campaign_buckets)?,
            creators: rtxn.open_table(defs::campaign_creators)?,
            best: rtxn.open_table(defs::campaign_best)?,
        })
    }

    /// Campaign `c`'s sums over the period.
    fn sums_of(&self, c: Id) -> Result<Sums> {
        let mut s = Sums::default();
        for &(l, a, b) in &self.runs {
            for e in self.buckets.range((self.p, c, l as u8, a)..(self.p, c, l as u8, b))? {
                s.add(&Sums::from_row(e?.1.value()));
            }
        }
        Ok(s)
    }

    /// Campaign `c`'s sums, distinct creators and video with most views over the period.
    fn of(&self, c: Id) -> Result<(Sums, u64, Option<top::Key>)> {
        let sums = self.sums_of(c)?;
        if sums.posts == 0 {
            return Ok((sums, 0, None));
        }
        // Distinct creators by sort and dedup: cheaper than a hash set for the hundreds of
        // (unit, creator) entries a campaign has over a period. Ids sort as integers, which
        // compare faster than byte arrays; only their number matters.
        let mut creators: Vec<u128> = Vec::new();
        let mut best: Option<top::Key> = None;
        for &(l, a, b) in &self.runs {
            let (p, l) = (self.p, l as u8);
            for e in self.creators.range((p, c, l, a)..(p, c, l, b))? {
                creators.extend(creator_count_entries(e?.1.value()).map(|(id, _)| u128::from_ne_bytes(id)));
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
        let (k, v) = e?;
        let (_, _, _, entity) = k.value();
        held.clear();
        held.extend(overlap_entries(v.value()).filter_map(|c| rank.get(&c)));
        held.sort_unstable();
        let (label, avatar) = match kind {
            ItemType::Creator => {
                let c = creator_profile(&creators, p.id, entity)?.ok_or_else(super::videos::missing)?;
                (Some(c.tiktok_handle), c.avatar_url)
            }
            _ => {
                let v = video_record(&videos, p.id, entity)?.ok_or_else(super::videos::missing)?;
                (v.texts.title().map(str::to_owned), v.texts.thumbnail_url().map(str::to_owned))
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
