//! Creator endpoints: creator-leaderboard, posting-consistency, creator-scatter, goal-compliance.

use redb::ReadTransaction;

use super::*;
use crate::events::{GoalMetric, id_to_string};
use crate::state::decode;
use crate::state::goals::GoalProgress;
use crate::state::tables::{IdKey, creator_count_entries};
use crate::time::{Period, local_date, local_hour_spans, unit_of, unit_start};

/// Every tracked creator ranked by views in the period.
pub fn creator_leaderboard(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    q: &CreatorLeaderboardParams,
    now: Instant,
) -> Result<Vec<CreatorRow>> {
    let period = Period::days(p.tz, q.range.from, q.range.to);
    // The tracked creators and the period's sums, at once when a core is idle.
    let (ids, sums) = both(|| tracked_creator_ids(rtxn, p.id), || creator_sums(rtxn, p.id, &period));
    let (ids, sums) = (ids?, sums?);
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

/// Posts per creator and local day, from the `creator_posts` rows of hour and quarter-hour
/// units that each lie in one local day of the effective zone.
///
/// The period is read in two halves split at the local midnight nearest its median post,
/// at once when a core is idle ([`both`]): the rows are then read in about half the time.
pub fn posting_consistency(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    q: &ConsistencyParams,
) -> Result<Vec<ConsistencyRow>> {
    let period = Period::days(q.tz, q.range.from, q.range.to);
    let Some((lo, hi)) = posted_quarters(rtxn, p.id)? else { return Ok(Vec::new()) };
    let (s, e) = period.quarters(lo, hi);
    let t = rtxn.open_table(defs::creator_posts)?;
    let middle = local_date(q.tz, unit_start(Level::Quarter, median_post_quarter(rtxn, p.id, s, e)?));
    let split = Period::days(q.tz, Some(middle), None).quarters(s, e).0;
    let (later, earlier) = both(|| days_posted(&t, p.id, q.tz, split, e), || days_posted(&t, p.id, q.tz, s, split));
    let ((mut ids, mut items), later) = (earlier?, later?);
    // The later half's creators, numbered after the earlier half's. A day cut by the split
    // (a zone whose clocks went back) gives two items, added up below.
    let mut numbers: rustc_hash::FxHashMap<Id, u32> = ids.iter().enumerate().map(|(n, id)| (*id, n as u32)).collect();
    let (later_ids, later_items) = later;
    for (n, day, posts) in later_items {
        let id = later_ids[n as usize];
        let n = *numbers.entry(id).or_insert_with(|| {
            ids.push(id);
            (ids.len() - 1) as u32
        });
        items.push((n, day, posts));
    }
    // Answer order: creators by id, each creator's days in the order they were closed,
    // which a counting sort over the creators' ranks keeps.
    let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
    by_id.sort_unstable_by_key(|&n| ids[n as usize]);
    let mut count = vec![0usize; ids.len()];
    for &(n, ..) in &items {
        count[n as usize] += 1;
    }
    let mut start = vec![0usize; ids.len()];
    let mut at = 0;
    for &n in &by_id {
        start[n as usize] = at;
        at += count[n as usize];
    }
    let mut next = start.clone();
    let mut placed = vec![(NaiveDate::MIN, 0u64); items.len()];
    for (n, day, posts) in items {
        placed[next[n as usize]] = (day, posts);
        next[n as usize] += 1;
    }
    let mut rows = Vec::with_capacity(placed.len());
    for &n in &by_id {
        let creator_id = uuid::Uuid::from_bytes(ids[n as usize]);
        let days = &mut placed[start[n as usize]..start[n as usize] + count[n as usize]];
        // A zone that turns its clocks back across midnight meets a day twice.
        let mut merged: Vec<(NaiveDate, u64)>;
        let days: &[(NaiveDate, u64)] = if days.is_sorted_by(|a, b| a.0 < b.0) {
            days
        } else {
            days.sort_by_key(|&(d, _)| d);
            merged = Vec::with_capacity(days.len());
            for &(d, n) in days.iter() {
                match merged.last_mut() {
                    Some((md, mn)) if *md == d => *mn += n,
                    _ => merged.push((d, n)),
                }
            }
            &merged
        };
        rows.extend(days.iter().map(|&(day, post_count)| ConsistencyRow { creator_id, day, post_count }));
    }
    Ok(rows)
}

/// About the quarter that halves the posts in `[s, e)`, to the UTC day (by the project's
/// day sums): posts are not spread evenly over time, and each half of
/// [`posting_consistency`] should read about as many rows.
fn median_post_quarter(rtxn: &ReadTransaction, p: Id, s: i64, e: i64) -> Result<i64> {
    if e <= s {
        return Ok(s);
    }
    let t = rtxn.open_table(defs::project_buckets)?;
    let l = Level::Day as u8;
    let (first, last) = (unit_of(Level::Day, s), unit_of(Level::Day, e - 1));
    let days: Vec<(i64, u64)> = t
        .range((p, l, first)..=(p, l, last))?
        .map(|e| e.map(|(k, v)| (k.value().2, v.value().0)))
        .collect::<Result<_, _>>()?;
    let half = days.iter().map(|&(_, posts)| posts).sum::<u64>() / 2;
    let mut seen = 0;
    for (day, posts) in days {
        seen += posts;
        if seen > half {
            return Ok((day * Level::Day.quarters()).clamp(s, e - 1));
        }
    }
    Ok(s + (e - s) / 2)
}

/// The creators as numbered when met, and an item (creator number, day, posts) for each
/// creator and local day.
type DaysPosted = (Vec<Id>, Vec<(u32, NaiveDate, u64)>);

/// Posts per creator and local day over the quarters `[s, e)`, in time order: the creators
/// as numbered when met, and an item (creator number, day, posts) for each creator and day.
fn days_posted(
    t: &redb::ReadOnlyTable<(IdKey, u8, i64), &'static [u8]>,
    p: Id,
    tz: chrono_tz::Tz,
    s: i64,
    e: i64,
) -> Result<DaysPosted> {
    // Rows come unit by unit in time order, so local days come one after another. Creators
    // are numbered as met; a day's posts add up in a slot per creator, and the day, once
    // past, leaves one item per creator that posted in it.
    let mut numbers: rustc_hash::FxHashMap<Id, u32> = Default::default();
    let mut ids: Vec<Id> = Vec::new();
    let mut slots: Vec<u64> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    let mut items: Vec<(u32, NaiveDate, u64)> = Vec::new();
    let mut current: Option<NaiveDate> = None;
    let mut close_day = |day: NaiveDate, touched: &mut Vec<u32>, slots: &mut Vec<u64>| {
        for &c in touched.iter() {
            items.push((c, day, std::mem::take(&mut slots[c as usize])));
        }
        touched.clear();
    };
    for (level, a, b) in local_hour_spans(tz, s, e) {
        for entry in t.range((p, level as u8, a)..(p, level as u8, b))? {
            let (k, v) = entry?;
            let day = local_date(tz, unit_start(level, k.value().2));
            if current != Some(day) {
                if let Some(past) = current {
                    close_day(past, &mut touched, &mut slots);
                }
                current = Some(day);
            }
            for (creator, posts) in creator_count_entries(v.value()) {
                let n = *numbers.entry(creator).or_insert_with(|| {
                    ids.push(creator);
                    slots.push(0);
                    (ids.len() - 1) as u32
                });
                if slots[n as usize] == 0 {
                    touched.push(n);
                }
                slots[n as usize] += u64::from(posts);
            }
        }
    }
    if let Some(past) = current {
        close_day(past, &mut touched, &mut slots);
    }
    Ok((ids, items))
}

/// Follower change against engagement, for creators that posted in the period.
///
/// The creators' sums and handles, and their follower deltas, are read at once when a core
/// is idle ([`both`]): the answer then takes about the time of the longer of the two. Which
/// way the deltas are read is decided before the creators are known, from an upper bound
/// on them: the project's tracked creators.
pub fn creator_scatter(rtxn: &ReadTransaction, p: &ProjectView, range: &DateRange) -> Result<Vec<ScatterRow>> {
    let period = Period::days(p.tz, range.from, range.to);
    let handles = rtxn.open_table(defs::creator_handles)?;
    let (listed, deltas) = both(
        || listed_creators(rtxn, p.id, &period, &handles),
        || {
            let tracked = handles.range((p.id, ID_MIN)..=(p.id, ID_MAX))?.count();
            FollowerDeltas::new(rtxn, p.id, &period, tracked)
        },
    );
    let (listed, deltas) = (listed?, deltas?);
    let mut rows = Vec::with_capacity(listed.len());
    for (id, s, tiktok_handle) in listed {
        rows.push(ScatterRow {
            creator_id: uuid::Uuid::from_bytes(id),
            tiktok_handle,
            follower_delta: deltas.of(p.id, id)?,
            engagement_rate: engagement_rate(s.likes, s.comments, s.shares, s.views),
            posts_count: s.posts,
        });
    }
    Ok(rows)
}

/// The creators with a visible video posted in the period, in id order, with their sums
/// and handles.
fn listed_creators(
    rtxn: &ReadTransaction,
    p: Id,
    period: &Period,
    handles: &redb::ReadOnlyTable<(IdKey, IdKey), &'static str>,
) -> Result<Vec<(Id, Sums, String)>> {
    let mut listed: Vec<(Id, Sums)> = creator_sums(rtxn, p, period)?.into_iter().collect();
    listed.sort_unstable_by_key(|&(id, _)| id);
    let mut handles = HandlesInOrder::new(handles, p)?;
    listed.into_iter().map(|(id, s)| Ok((id, s, handles.get(id)?.ok_or_else(super::videos::missing)?))).collect()
}

/// Creators kept by goal-compliance (the dashboard's cap).
const GOAL_CREATORS: usize = 50;

/// Status counts over the visible goals of the first 50 creators by id. Each goal's
/// progress is kept by ingestion (`goal_progress`), so this reads one row per goal of the
/// kept creators and one profile per creator.
pub fn goal_compliance(rtxn: &ReadTransaction, p: &ProjectView, now: Instant) -> Result<GoalCompliance> {
    let goals = rtxn.open_table(defs::goal_progress)?;
    let creators = rtxn.open_table(defs::creators)?;
    let today = today(p, now);
    let mut out = GoalCompliance { on_track: 0, at_risk: 0, missed: 0, total_goals: 0, creators_with_goals: 0 };
    // The creator of the rows being read, and whether it is tracked.
    let mut current: Option<(Id, bool)> = None;
    for e in goals.range((p.id, ID_MIN, ID_MIN)..=(p.id, ID_MAX, ID_MAX))? {
        let (k, v) = e?;
        let creator = k.value().1;
        let tracked = match current {
            Some((c, tracked)) if c == creator => tracked,
            _ => {
                if out.creators_with_goals == GOAL_CREATORS as u64 {
                    break;
                }
                let tracked =
                    creators.get((p.id, creator))?.map(|r| is_present(r.value())).transpose()?.unwrap_or(false);
                out.creators_with_goals += u64::from(tracked);
                current = Some((creator, tracked));
                tracked
            }
        };
        if !tracked {
            continue;
        }
        let g: GoalProgress = decode(v.value())?;
        let progress = match g.metric {
            GoalMetric::Posts => g.posts as f64,
            GoalMetric::Views => g.views as f64,
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
    Ok(out)
}
