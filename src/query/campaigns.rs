//! Campaign endpoints: campaign-leaderboard, member-overlap.

use std::collections::HashSet;

use redb::ReadTransaction;

use super::*;
use crate::events::{ItemType, id_to_string};
use crate::state::campaigns::containing;
use crate::state::videos::Sums;
use crate::state::{Reg, decode};
use crate::time::{Period, unit_of};

/// Every visible campaign over its resolved videos in `[from, to]`, against the prior
/// period of the same length.
pub fn campaign_leaderboard(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<CampaignRow>> {
    let len = chrono::Days::new(((to - from).num_days() + 1) as u64);
    let period = Period::days(p.tz, Some(from), Some(to));
    let prior = Period::days(p.tz, Some(from - len), Some(from - chrono::Days::new(1)));
    let units = period_units(rtxn, p.id, &period)?;
    let prior_units = period_units(rtxn, p.id, &prior)?;
    let campaigns = rtxn.open_table(defs::campaigns)?;
    let buckets = rtxn.open_table(defs::campaign_buckets)?;
    let creators = rtxn.open_table(defs::campaign_creators)?;
    let top = rtxn.open_table(defs::campaign_top)?;
    let videos = rtxn.open_table(defs::videos)?;
    let sums = |c: Id, units: &[(crate::time::Level, i64)]| -> Result<Sums> {
        let mut s = Sums::default();
        for &(l, u) in units {
            if let Some(v) = buckets.get((p.id, c, l as u8, u))? {
                s.add(&Sums::from_row(v.value()));
            }
        }
        Ok(s)
    };
    let mut rows = Vec::new();
    for e in campaigns.range((p.id, ID_MIN)..=(p.id, ID_MAX))? {
        let (k, v) = e?;
        let Some(name) = decode::<Reg<String>>(v.value())?.value else { continue };
        let c = k.value().1;
        let now = sums(c, &units)?;
        let before = sums(c, &prior_units)?;
        let mut distinct = HashSet::new();
        let mut best: Option<(u64, Id)> = None;
        if now.posts > 0 {
            // Finer units keep no top list: their videos are found in the day around them.
            let mut edge_days = Vec::new();
            for &(level, u) in &units {
                let l = level as u8;
                for e in creators.range((p.id, c, l, u, ID_MIN)..=(p.id, c, l, u, ID_MAX))? {
                    distinct.insert(e?.0.value().4);
                }
                if !level.keeps_top() {
                    let day = unit_of(Level::Day, u * level.quarters());
                    if edge_days.last() != Some(&day) {
                        edge_days.push(day);
                    }
                    continue;
                }
                if let Some(e) = top.range((p.id, c, l, u, 0, ID_MIN)..=(p.id, c, l, u, u64::MAX, ID_MAX))?.next() {
                    let (_, _, _, _, nv, video) = e?.0.value();
                    best = Some(best.map_or((nv, video), |b| b.min((nv, video))));
                }
            }
            // The first video of an edge day's list (most views first) posted in the period.
            let l = Level::Day as u8;
            for day in edge_days {
                for e in top.range((p.id, c, l, day, 0, ID_MIN)..=(p.id, c, l, day, u64::MAX, ID_MAX))? {
                    let (k, at) = e?;
                    let (_, _, _, _, nv, video) = k.value();
                    if best.is_some_and(|b| b < (nv, video)) {
                        break; // nothing further down this list can beat what is found
                    }
                    let (secs, nanos) = at.value();
                    if period.contains(Instant { secs, nanos }) {
                        best = Some((nv, video));
                        break;
                    }
                }
            }
        }
        let preview = match best {
            Some((_, video)) => video_record(&videos, p.id, video)?.and_then(|v| v.thumbnail_url),
            None => None,
        };
        let delta = now.views as i128 - before.views as i128;
        rows.push(CampaignRow {
            campaign_id: id_to_string(&c),
            name,
            total_views: now.views,
            total_likes: now.likes,
            video_count: now.posts,
            creator_count: distinct.len() as u64,
            preview_thumbnail_url: preview,
            prior_views: before.views,
            views_delta: delta,
            views_delta_pct: (before.views > 0).then(|| (delta as f64 / before.views as f64 * 100.0).round() as i64),
        });
    }
    rows.sort_by(|a, b| b.total_views.cmp(&a.total_views).then_with(|| a.campaign_id.cmp(&b.campaign_id)));
    Ok(rows)
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
    let rank = rtxn.open_table(defs::overlap_rank)?;
    let members = rtxn.open_table(defs::members_by_item)?;
    let campaigns = rtxn.open_table(defs::campaigns)?;
    let creators = rtxn.open_table(defs::creators)?;
    let videos = rtxn.open_table(defs::videos)?;
    let mut rows = Vec::new();
    for e in rank.range((p.id, d, 0, ID_MIN)..=(p.id, d, u64::MAX, ID_MAX))?.take(OVERLAP_ROWS) {
        let (_, _, _, entity) = e?.0.value();
        let mut held: Vec<(String, Id)> = Vec::new();
        for c in containing(&members, p.id, kind, entity)? {
            if let Some(name) = get_present::<_, String>(&campaigns, (p.id, c))? {
                held.push((name, c));
            }
        }
        held.sort();
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
            campaign_ids: held.iter().map(|(_, c)| id_to_string(c)).collect(),
            campaign_names: held.iter().map(|(n, _)| n.clone()).collect(),
            campaign_count: held.len() as u64,
        });
    }
    Ok(rows)
}
