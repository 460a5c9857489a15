//! Creator endpoints: creator-leaderboard, posting-consistency, creator-scatter, goal-compliance.

use std::collections::BTreeMap;

use redb::ReadTransaction;

use super::*;
use crate::events::{Goal, GoalMetric, id_to_string};
use crate::state::videos::Sums;
use crate::state::{Reg, decode};
use chrono::NaiveDate;

use crate::time::{Period, local_date, local_hour_spans, unit_start};

/// Every tracked creator ranked by views in the period.
pub fn creator_leaderboard(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    q: &CreatorLeaderboardParams,
    now: Instant,
) -> Result<Vec<CreatorRow>> {
    let period = Period::days(p.tz, q.range.from, q.range.to);
    let ids = tracked_creator_ids(rtxn, p.id)?;
    let sums = creator_sums(rtxn, p.id, &period)?;
    let profiles = rtxn.open_table(defs::creators)?;
    let followers = rtxn.open_table(defs::followers)?;
    let days = period_days(rtxn, p, &q.range, now)?;
    let total_count = ids.len() as u64;
    // Rank every tracked creator, then build only the page's rows: profiles and follower
    // history are read for at most `limit` creators, not for all of them. Ids compare as
    // lowercase text does, byte for byte.
    let mut ranked: Vec<(std::cmp::Reverse<u128>, Id)> =
        ids.into_iter().map(|id| (std::cmp::Reverse(sums.get(&id).map_or(0, |s| s.views)), id)).collect();
    let end = (q.offset.saturating_add(q.limit) as usize).min(ranked.len());
    if end > 0 && end < ranked.len() {
        ranked.select_nth_unstable(end - 1);
    }
    ranked.truncate(end);
    ranked.sort_unstable();
    let mut rows = Vec::new();
    for (_, id) in ranked.into_iter().skip(q.offset as usize) {
        let c = creator_profile(&profiles, p.id, id)?.ok_or_else(super::videos::missing)?;
        let s = sums.get(&id).copied().unwrap_or_default();
        let (follower_delta, growth_rate) = follower_change(&followers, p.id, id, &period)?;
        let posts_per_week = match days {
            Some(d) if d >= 1 => round2((s.posts * 7) as f64 / d as f64),
            _ => 0.0,
        };
        rows.push(CreatorRow {
            creator_id: id_to_string(&id),
            tiktok_handle: c.tiktok_handle,
            display_name: c.display_name,
            avatar_url: c.avatar_url,
            current_followers: c.follower_count,
            follower_delta,
            total_views: s.views,
            posts_in_period: s.posts,
            posts_per_week,
            engagement_rate: engagement_rate(s.likes, s.comments, s.shares, s.views),
            growth_rate,
            total_count,
        });
    }
    Ok(rows)
}

/// Days from `from` to `to` inclusive for posts_per_week: an open `from` is the local date
/// of the earliest visible video (None if there is none), an open `to` is today.
fn period_days(rtxn: &ReadTransaction, p: &ProjectView, r: &DateRange, now: Instant) -> Result<Option<i64>> {
    let from = match r.from {
        Some(d) => d,
        None => match posted_span(rtxn, p.id)? {
            Some((first, _)) => local_date(p.tz, first),
            None => return Ok(None),
        },
    };
    let to = r.to.unwrap_or_else(|| today(p, now));
    Ok(Some((to - from).num_days() + 1))
}

/// Posts per creator and local day, from hour and quarter-hour buckets that each lie in one
/// local day of the effective zone.
pub fn posting_consistency(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    q: &ConsistencyParams,
) -> Result<Vec<ConsistencyRow>> {
    let period = Period::days(q.tz, q.range.from, q.range.to);
    let Some((lo, hi)) = posted_quarters(rtxn, p.id)? else { return Ok(Vec::new()) };
    let (s, e) = period.quarters(lo, hi);
    let t = rtxn.open_table(defs::creator_buckets)?;
    // Each creator's local days, in the order met. Rows come unit by unit in time order,
    // so each unit's local day is worked out once and a creator's days mostly arrive
    // sorted; a zone that turns its clocks back across midnight is put right below.
    let mut days: rustc_hash::FxHashMap<Id, Vec<(NaiveDate, u64)>> = Default::default();
    for (level, a, b) in local_hour_spans(q.tz, s, e) {
        let l = level as u8;
        let mut unit_day: Option<(i64, NaiveDate)> = None;
        for entry in t.range((p.id, l, a, ID_MIN)..(p.id, l, b, ID_MIN))? {
            let (k, v) = entry?;
            let (_, _, unit, creator) = k.value();
            let day = match unit_day {
                Some((u, d)) if u == unit => d,
                _ => {
                    let d = local_date(q.tz, unit_start(level, unit));
                    unit_day = Some((unit, d));
                    d
                }
            };
            let posts = v.value().0;
            let creator_days = days.entry(creator).or_default();
            match creator_days.last_mut() {
                Some((d, n)) if *d == day => *n += posts,
                _ => creator_days.push((day, posts)),
            }
        }
    }
    let mut creators: Vec<(Id, Vec<(NaiveDate, u64)>)> = days.into_iter().collect();
    creators.sort_unstable_by_key(|&(c, _)| c);
    let mut rows = Vec::with_capacity(creators.iter().map(|(_, d)| d.len()).sum());
    for (creator, mut creator_days) in creators {
        let creator_id = uuid::Uuid::from_bytes(creator);
        if !creator_days.is_sorted_by_key(|&(d, _)| d) {
            creator_days.sort_by_key(|&(d, _)| d);
            creator_days.dedup_by(|later, kept| {
                later.0 == kept.0 && {
                    kept.1 += later.1;
                    true
                }
            });
        }
        rows.extend(creator_days.into_iter().map(|(day, post_count)| ConsistencyRow { creator_id, day, post_count }));
    }
    Ok(rows)
}

/// Follower change against engagement, for creators that posted in the period.
pub fn creator_scatter(rtxn: &ReadTransaction, p: &ProjectView, range: &DateRange) -> Result<Vec<ScatterRow>> {
    let period = Period::days(p.tz, range.from, range.to);
    let sums = creator_sums(rtxn, p.id, &period)?;
    let creators = rtxn.open_table(defs::creators)?;
    let followers = rtxn.open_table(defs::followers)?;
    let mut ids: Vec<&Id> = sums.keys().collect();
    ids.sort();
    let mut rows = Vec::new();
    for id in ids {
        let s = sums[id];
        let c = creator_profile(&creators, p.id, *id)?.ok_or_else(super::videos::missing)?;
        let (follower_delta, _) = follower_change(&followers, p.id, *id, &period)?;
        rows.push(ScatterRow {
            creator_id: id_to_string(id),
            tiktok_handle: c.tiktok_handle,
            follower_delta,
            engagement_rate: engagement_rate(s.likes, s.comments, s.shares, s.views),
            posts_count: s.posts,
        });
    }
    Ok(rows)
}

/// Creators kept by goal-compliance (the dashboard's cap).
const GOAL_CREATORS: usize = 50;

/// Status counts over the visible goals of the first 50 creators by id.
pub fn goal_compliance(rtxn: &ReadTransaction, p: &ProjectView, now: Instant) -> Result<GoalCompliance> {
    let goals = rtxn.open_table(defs::goals)?;
    let creators = rtxn.open_table(defs::creators)?;
    let buckets = rtxn.open_table(defs::creator_buckets)?;
    let mut by_creator: BTreeMap<Id, Vec<Goal>> = BTreeMap::new();
    for e in goals.range((p.id, ID_MIN)..=(p.id, ID_MAX))? {
        if let Some(g) = decode::<Reg<Goal>>(e?.1.value())?.value {
            by_creator.entry(g.creator_id).or_default().push(g);
        }
    }
    let today = today(p, now);
    let posted = posted_quarters(rtxn, p.id)?;
    let mut out = GoalCompliance { on_track: 0, at_risk: 0, missed: 0, total_goals: 0, creators_with_goals: 0 };
    let mut kept = 0;
    for (creator, goals) in by_creator {
        if kept == GOAL_CREATORS {
            break;
        }
        if creator_profile(&creators, p.id, creator)?.is_none() {
            continue;
        }
        kept += 1;
        out.creators_with_goals += 1;
        for g in goals {
            let period = Period::days(p.tz, Some(g.starts_on), Some(g.ends_on));
            let mut s = Sums::default();
            for (l, u) in units_within(posted, &period) {
                if let Some(v) = buckets.get((p.id, l as u8, u, creator))? {
                    s.add(&Sums::from_row(v.value()));
                }
            }
            let progress = match g.metric {
                GoalMetric::Posts => s.posts as f64,
                GoalMetric::Views => s.views as f64,
            };
            let total_days = (g.ends_on - g.starts_on).num_days() + 1;
            let elapsed = ((today - g.starts_on).num_days() + 1).clamp(0, total_days);
            let expected = g.target as f64 * elapsed as f64 / total_days as f64;
            out.total_goals += 1;
            if progress >= g.target as f64 {
                out.on_track += 1; // completed
            } else if today > g.ends_on {
                out.missed += 1;
            } else if progress >= expected {
                out.on_track += 1;
            } else {
                out.at_risk += 1; // behind_pace or at_risk
            }
        }
    }
    Ok(out)
}
