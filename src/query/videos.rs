//! Video endpoints: video-leaderboard, posting-heatmap, view-distribution, outliers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use redb::{ReadTransaction, ReadableTable};

use super::*;
use crate::state::tables::{CreatorMedian, hist_entries};
use crate::state::videos::{HIST_CELLS, Metric, hist_cell_high, hist_index_cell};
use crate::time::{Period, local_dow_hour, local_hour_spans, runs, unit_start};

fn period(p: &ProjectView, r: &DateRange) -> Period {
    Period::days(p.tz, r.from, r.to)
}

/// Visible videos posted in the period, sorted by `order`.
///
/// Two plans, chosen by cost: walk the period's slice of the posted_at index and sort it,
/// or walk the global index of the sort column and skip videos outside the period. The
/// second wins when the period holds a large share of the project's videos.
pub fn video_leaderboard(rtxn: &ReadTransaction, p: &ProjectView, q: &VideoLeaderboardParams) -> Result<Vec<VideoRow>> {
    let period = period(p, &q.range);
    let total = project_sums(rtxn, p.id, &period)?.posts;
    let need = q.offset.saturating_add(q.limit);
    if total == 0 || q.offset >= total {
        return Ok(Vec::new());
    }
    let by_posted = rtxn.open_table(defs::by_posted)?;
    let (lo, hi) = posted_range(p.id, &period);
    // (video, posted_at, counts) in answer order, `offset + limit` of them at most.
    let mut picked: Vec<(Id, Instant)> = Vec::new();
    match q.order {
        VideoOrder::PostedAt => {
            // Newest first; equal instants go to the smaller id, so sort each run.
            let mut run: Vec<(Id, Instant)> = Vec::new();
            for e in by_posted.range(lo..hi)?.rev() {
                let (_, s, n, v) = e?.0.value();
                let at = Instant { secs: s, nanos: n };
                if run.last().is_some_and(|r| r.1 != at) {
                    if picked.len() as u64 >= need {
                        break;
                    }
                    run.sort();
                    picked.append(&mut run);
                }
                run.push((v, at));
            }
            run.sort();
            picked.append(&mut run);
        }
        order => {
            let metric = match order {
                VideoOrder::LikeCount => Metric::Likes,
                VideoOrder::CommentCount => Metric::Comments,
                VideoOrder::ShareCount => Metric::Shares,
                VideoOrder::SaveCount => Metric::Saves,
                _ => Metric::Views,
            };
            let all = project_sums(rtxn, p.id, &Period::ALL)?.posts;
            // Expected entries read by the index walk vs the period slice.
            let index_cost = (need as u128) * (all as u128) / (total as u128);
            if index_cost <= total as u128 {
                let by_metric = rtxn.open_table(defs::by_metric)?;
                let m = metric as u8;
                for e in by_metric.range((p.id, m, 0, ID_MIN)..=(p.id, m, u64::MAX, ID_MAX))? {
                    let (k, v) = e?;
                    let (s, n) = v.value();
                    let at = Instant { secs: s, nanos: n };
                    if period.contains(at) {
                        picked.push((k.value().3, at));
                        if picked.len() as u64 >= need {
                            break;
                        }
                    }
                }
            } else {
                let mut all_rows = Vec::new();
                for e in by_posted.range(lo..hi)? {
                    let (k, v) = e?;
                    let (_, s, n, id) = k.value();
                    let c = v.value();
                    let value = [c.1, c.2, c.3, c.4, c.5][metric as usize];
                    all_rows.push((Reverse(value), id, Instant { secs: s, nanos: n }));
                }
                all_rows.sort_unstable();
                picked = all_rows.into_iter().take(need as usize).map(|(_, id, at)| (id, at)).collect();
            }
        }
    }
    let videos = rtxn.open_table(defs::videos)?;
    let creators = rtxn.open_table(defs::creators)?;
    let mut rows = Vec::new();
    for (id, _) in picked.into_iter().skip(q.offset as usize).take(q.limit as usize) {
        let v = video_record(&videos, p.id, id)?.ok_or_else(missing)?;
        let c = creator_profile(&creators, p.id, v.creator_id)?.ok_or_else(missing)?;
        rows.push(VideoRow {
            video_id: crate::events::id_to_string(&id),
            title: v.texts.title().map(str::to_owned),
            thumbnail_url: v.texts.thumbnail_url().map(str::to_owned),
            url: v.texts.url().map(str::to_owned),
            view_count: v.counts.views,
            like_count: v.counts.likes,
            comment_count: v.counts.comments,
            share_count: v.counts.shares,
            save_count: v.counts.saves,
            posted_at: v.posted_at.to_rfc3339(),
            creator_id: crate::events::id_to_string(&v.creator_id),
            tiktok_handle: Some(c.tiktok_handle),
            display_name: c.display_name,
            avatar_url: c.avatar_url,
            total_count: total,
        });
    }
    Ok(rows)
}

/// An index row without its record: the aggregates and registers disagree.
pub(crate) fn missing() -> crate::state::StateError {
    crate::state::StateError::Corrupt("aggregate row without a visible record".into())
}

/// Post counts and mean views by local (day of week, hour), from hour and quarter-hour
/// buckets that each lie in one local hour.
pub fn posting_heatmap(rtxn: &ReadTransaction, p: &ProjectView, q: &HeatmapParams) -> Result<Vec<HeatmapCell>> {
    let period = Period::days(q.tz, q.range.from, q.range.to);
    let Some((lo, hi)) = posted_quarters(rtxn, p.id)? else { return Ok(Vec::new()) };
    let (s, e) = period.quarters(lo, hi);
    let t = rtxn.open_table(defs::project_buckets)?;
    let mut cells: BTreeMap<(u32, u32), (u64, u128)> = BTreeMap::new();
    for (level, a, b) in local_hour_spans(q.tz, s, e) {
        let l = level as u8;
        for entry in t.range((p.id, l, a)..(p.id, l, b))? {
            let (k, v) = entry?;
            let at = unit_start(level, k.value().2);
            let sums = crate::state::videos::Sums::from_row(v.value());
            let cell = cells.entry(local_dow_hour(q.tz, at)).or_default();
            cell.0 += sums.posts;
            cell.1 += sums.views;
        }
    }
    Ok(cells
        .into_iter()
        .map(|((dow, hour), (n, views))| HeatmapCell {
            dow,
            hour,
            post_count: n,
            avg_views: round2(views as f64 / n as f64),
        })
        .collect())
}

/// Percentiles from the merged HDR cells of the period's buckets; total, min and max exact.
pub fn view_distribution(
    rtxn: &ReadTransaction,
    p: &ProjectView,
    q: &ViewDistributionParams,
) -> Result<ViewDistribution> {
    let period = period(p, &q.range);
    let t = rtxn.open_table(defs::hist_cells)?;
    // Units repeat the same few thousand cells: they add up in an array with a slot per
    // cell, which is already in value order.
    let mut merged = vec![0u64; HIST_CELLS];
    for (l, a, b) in runs(&period_units(rtxn, p.id, &period)?) {
        for e in t.range((p.id, l as u8, a)..(p.id, l as u8, b))? {
            for (at, n) in hist_entries(e?.1.value()) {
                merged[usize::from(at)] += u64::from(n);
            }
        }
    }
    let cells: Vec<(u64, u64)> =
        merged.iter().enumerate().filter(|&(_, &n)| n > 0).map(|(i, &n)| (hist_index_cell(i), n)).collect();
    let total: u64 = cells.iter().map(|&(_, n)| n).sum();
    let (Some(&(low_cell, _)), Some(&(high_cell, _))) = (cells.first(), cells.last()) else {
        return Ok(ViewDistribution {
            total: 0,
            min: None,
            max: None,
            p50: None,
            p75: None,
            p90: None,
            p99: None,
            bins: Vec::new(),
        });
    };
    let min = exact_extreme(rtxn, p.id, &period, low_cell, true)?;
    let max = exact_extreme(rtxn, p.id, &period, high_cell, false)?;
    let percentile = |pct: u64| -> u64 {
        let rank = (pct * total).div_ceil(100).max(1);
        let mut seen = 0;
        for &(cell, n) in &cells {
            seen += n;
            if seen >= rank {
                return hist_cell_high(cell).clamp(min, max);
            }
        }
        max
    };
    let bc = u64::from(q.bin_count);
    let w = (max - min) as f64 / bc as f64;
    let mut bins: Vec<Bin> = (0..q.bin_count)
        .map(|i| Bin {
            bin_index: i,
            bin_lower: min + (f64::from(i) * w).round() as u64,
            bin_upper: min + (f64::from(i + 1) * w).round() as u64,
            video_count: 0,
        })
        .collect();
    for &(cell, n) in &cells {
        // A cell spans at most 0.1% of its values, so placing it by one representative
        // misplaces only values within 0.1% of a bin edge (contract §4.3).
        let v = cell.clamp(min, max);
        let i = if w == 0.0 { 0 } else { (((v - min) as f64 / w).floor() as u64).min(bc - 1) };
        bins[i as usize].video_count += n;
    }
    Ok(ViewDistribution {
        total,
        min: Some(min),
        max: Some(max),
        p50: Some(percentile(50)),
        p75: Some(percentile(75)),
        p90: Some(percentile(90)),
        p99: Some(percentile(99)),
        bins,
    })
}

type MetricEntry<'a> = (redb::AccessGuard<'a, (IdKey, u8, u64, IdKey)>, redb::AccessGuard<'a, (i64, u32)>);

/// The exact smallest (or largest) view count in the period, knowing the HDR cell it is
/// in: only the videos of that one cell (0.1% wide) are read.
fn exact_extreme(rtxn: &ReadTransaction, p: Id, period: &Period, cell: u64, smallest: bool) -> Result<u64> {
    let high = hist_cell_high(cell);
    if high == cell {
        return Ok(cell);
    }
    let t = rtxn.open_table(defs::by_metric)?;
    let m = Metric::Views as u8;
    // Keys hold !views: ascending keys are descending views.
    let range = t.range((p, m, !high, ID_MIN)..=(p, m, !cell, ID_MAX))?;
    let pick = |e: redb::Result<MetricEntry<'_>>| {
        e.map(|(k, v)| {
            let (s, n) = v.value();
            period.contains(Instant { secs: s, nanos: n }).then_some(!k.value().2)
        })
    };
    let found = if smallest {
        range.rev().map(pick).find_map(|r| r.transpose())
    } else {
        range.map(pick).find_map(|r| r.transpose())
    };
    Ok(found.transpose()?.unwrap_or(cell))
}

/// Videos that beat their creator's median views by `min_x_multiple`, best first.
///
/// Each creator's videos are stored by views descending, so per creator the ratio only
/// falls along the index; a heap merges the creators and stops at `limit` or at the
/// first ratio below the threshold.
pub fn outliers(rtxn: &ReadTransaction, p: &ProjectView, q: &OutliersParams) -> Result<Vec<OutlierRow>> {
    let period = period(p, &q.range);
    // The merge below walks about `limit × total / in_period` candidates before it has
    // `limit` in the period; reading the period's own videos costs `in_period`. Take the
    // cheaper, so a short or quiet period does not walk the whole project.
    let in_period = u128::from(project_sums(rtxn, p.id, &period)?.posts);
    let total = u128::from(project_sums(rtxn, p.id, &Period::ALL)?.posts);
    if in_period * in_period < u128::from(q.limit) * total {
        outliers_in_period(rtxn, p, q)
    } else {
        outliers_by_merge(rtxn, p, q)
    }
}

/// Outliers by merging every creator's videos in view order (a heap of one stream per
/// creator), skipping those posted outside the period: cheap when most are inside it.
/// A creator's first candidate comes from its `creator_median` row; its stream of videos
/// is opened only when that candidate reaches the top of the heap, so an answer costs a
/// scan of the creators' rows and a descent per creator it reaches, not one per creator.
pub fn outliers_by_merge(rtxn: &ReadTransaction, p: &ProjectView, q: &OutliersParams) -> Result<Vec<OutlierRow>> {
    let period = period(p, &q.range);
    let medians = rtxn.open_table(defs::creator_median)?;
    let views = rtxn.open_table(defs::creator_views)?;
    let mut streams: Vec<ViewsRange<'_>> = Vec::new();
    let mut heap = BinaryHeap::new();
    for e in medians.range((p.id, ID_MIN)..=(p.id, ID_MAX))? {
        let (k, v) = e?;
        let creator = k.value().1;
        let row = CreatorMedian::from_row(v.value());
        let median = row.median();
        if median <= 0.0 {
            continue;
        }
        let (top, video) = row.top;
        let most = !top;
        heap.push(Candidate { ratio: most as f64 / median, views: most, video, median, creator, opened: None });
    }
    let mut rows = Vec::new();
    let videos = rtxn.open_table(defs::videos)?;
    let creators = rtxn.open_table(defs::creators)?;
    while let Some(c) = heap.pop() {
        if c.ratio < q.min_x_multiple {
            break;
        }
        let Some((posted, stream)) = c.opened else {
            // The creator's first video: open its stream there, and put the same
            // candidate back with its posting time.
            let from = (p.id, c.creator, !c.views, c.video);
            let mut range = views.range(from..=(p.id, c.creator, u64::MAX, ID_MAX))?;
            let first = next_candidate(&mut range, &c, streams.len())?.ok_or_else(missing)?;
            if first.video != c.video {
                return Err(missing());
            }
            heap.push(first);
            streams.push(range);
            continue;
        };
        if period.contains(posted) {
            let v = video_record(&videos, p.id, c.video)?.ok_or_else(missing)?;
            rows.push(outlier_row(&creators, p.id, &c, posted, v)?);
            if rows.len() as u64 >= q.limit {
                break;
            }
        }
        if let Some(next) = next_candidate(&mut streams[stream], &c, stream)? {
            heap.push(next);
        }
    }
    Ok(rows)
}

/// Outliers from the videos posted in the period, each against its creator's median:
/// cheap when the period holds few videos.
pub fn outliers_in_period(rtxn: &ReadTransaction, p: &ProjectView, q: &OutliersParams) -> Result<Vec<OutlierRow>> {
    let period = &period(p, &q.range);
    let by_posted = rtxn.open_table(defs::by_posted)?;
    let medians = rtxn.open_table(defs::creator_median)?;
    let videos = rtxn.open_table(defs::videos)?;
    let creators = rtxn.open_table(defs::creators)?;
    let mut median_by_creator: std::collections::HashMap<Id, f64> = std::collections::HashMap::new();
    let mut found = Vec::new();
    let (lo, hi) = posted_range(p.id, period);
    for e in by_posted.range(lo..hi)? {
        let (k, v) = e?;
        let (_, secs, nanos, video) = k.value();
        let posted = Instant { secs, nanos };
        let (creator, views, ..) = v.value();
        let median = match median_by_creator.get(&creator) {
            Some(&m) => m,
            None => {
                let row = medians.get((p.id, creator))?.ok_or_else(missing)?.value();
                let m = CreatorMedian::from_row(row).median();
                median_by_creator.insert(creator, m);
                m
            }
        };
        if median <= 0.0 {
            continue;
        }
        let c = Candidate { ratio: views as f64 / median, views, video, median, creator, opened: None };
        if c.ratio >= q.min_x_multiple {
            found.push((c, posted));
        }
    }
    // Answer order: ratio desc, then view_count desc, then video_id asc.
    found.sort_by(|(a, _), (b, _)| b.cmp(a));
    // Records are read for the returned rows only.
    found
        .into_iter()
        .take(q.limit as usize)
        .map(|(c, posted)| {
            let record = video_record(&videos, p.id, c.video)?.ok_or_else(missing)?;
            outlier_row(&creators, p.id, &c, posted, record)
        })
        .collect()
}

fn outlier_row(
    creators: &impl ReadableTable<(IdKey, IdKey), &'static [u8]>,
    p: Id,
    c: &Candidate,
    posted: Instant,
    v: VideoSnapshot,
) -> Result<OutlierRow> {
    let profile = creator_profile(creators, p, c.creator)?.ok_or_else(missing)?;
    Ok(OutlierRow {
        video_id: crate::events::id_to_string(&c.video),
        creator_id: crate::events::id_to_string(&c.creator),
        view_count: c.views,
        median_views: c.median,
        x_multiple: round2(c.ratio),
        posted_at: posted.to_rfc3339(),
        title: v.texts.title().map(str::to_owned),
        thumbnail_url: v.texts.thumbnail_url().map(str::to_owned),
        url: v.texts.url().map(str::to_owned),
        tiktok_handle: Some(profile.tiktok_handle),
        display_name: profile.display_name,
        avatar_url: profile.avatar_url,
    })
}

type ViewsRange<'a> = redb::Range<'a, (IdKey, IdKey, u64, IdKey), (i64, u32)>;

/// A video that may be an outlier: the next of its creator's videos in view order.
struct Candidate {
    ratio: f64,
    views: u64,
    video: Id,
    median: f64,
    creator: Id,
    /// Its posting time and the index of its creator's stream, once that stream is open.
    opened: Option<(Instant, usize)>,
}

/// The next video of a creator's stream (`stream` its index), as a candidate.
fn next_candidate(range: &mut ViewsRange<'_>, of: &Candidate, stream: usize) -> Result<Option<Candidate>> {
    Ok(range.next().transpose()?.map(|(k, v)| {
        let (_, _, nv, video) = k.value();
        let (secs, nanos) = v.value();
        let views = !nv;
        Candidate {
            ratio: views as f64 / of.median,
            views,
            video,
            median: of.median,
            creator: of.creator,
            opened: Some((Instant { secs, nanos }, stream)),
        }
    }))
}

// Max-heap order: ratio desc, then view_count desc, then video_id asc.
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.ratio.total_cmp(&o.ratio).then(self.views.cmp(&o.views)).then(o.video.cmp(&self.video))
    }
}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Candidate {}
