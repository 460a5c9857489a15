//! Time: local days in any zone, and the zone-free buckets aggregates are kept in.
//!
//! Aggregates are bucketed by UTC quarter-hours (and aligned multiples of them), not by a
//! local calendar: every zone offset in use today is a multiple of 15 minutes, so any local
//! day or hour, in any zone asked at read time, is an exact union of quarters (contract §3).
//! Campaign rollups are the exception: only the project's zone reads them, so they are
//! kept per local day of it ([`local_day`]) and rebuilt when the zone changes.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::events::Instant;

/// Seconds in one quarter-hour bucket.
pub const QUARTER_SECS: i64 = 900;

/// Bucket levels; each unit is an aligned multiple of the next finer one. The number is
/// the level's id in stored keys, so it never changes; `ALL` gives the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    Quarter = 0,
    Day = 1,
    Block = 2,
    /// Added after the others: it halves the units at the edges of a period in a zone
    /// whose days start off a UTC day (up to 2 × 95 quarters become 2 × (3 + 23)).
    Hour = 3,
    /// 8 UTC days, a quarter of a block: a 30- or 90-day period reads about a third as
    /// many units as with days alone.
    Week = 4,
}

impl Level {
    /// Finest first.
    pub const ALL: [Level; 5] = [Level::Quarter, Level::Hour, Level::Day, Level::Week, Level::Block];

    /// The levels campaign rollups are kept at: local days of the project's zone and
    /// 32-day blocks of them ([`local_day`]). A video in ~14 campaigns would otherwise cost
    /// 14 rows per fine level.
    pub const CAMPAIGN: [Level; 2] = [Level::Day, Level::Block];

    /// The levels whose units hold a few dozen videos at most (at scale L), where
    /// creators' posts and sums are packed one row per unit.
    pub const FINE: [Level; 2] = [Level::Quarter, Level::Hour];

    pub fn is_fine(self) -> bool {
        Self::FINE.contains(&self)
    }

    /// Width of one unit, in quarters (an hour; a UTC day; 8 and 32 UTC days).
    pub const fn quarters(self) -> i64 {
        match self {
            Level::Quarter => 1,
            Level::Hour => 4,
            Level::Day => 96,
            Level::Week => 96 * 8,
            Level::Block => 96 * 32,
        }
    }
}

/// The quarter an instant falls in.
pub fn quarter_of(t: Instant) -> i64 {
    t.secs.div_euclid(QUARTER_SECS)
}

/// The unit at `level` containing quarter `q`.
pub fn unit_of(level: Level, q: i64) -> i64 {
    q.div_euclid(level.quarters())
}

/// The first instant of unit `u` at `level`.
pub fn unit_start(level: Level, u: i64) -> Instant {
    Instant { secs: u * level.quarters() * QUARTER_SECS, nanos: 0 }
}

/// Splits the quarter range `[start, end)` into the fewest aligned units: coarse units
/// in the middle, finer ones at the edges. Reads then cost O(units), not O(events).
pub fn decompose(start: i64, end: i64) -> Vec<(Level, i64)> {
    decompose_in(&Level::ALL, start, end)
}

/// [`decompose`] into units of the given levels (finest first) only.
fn decompose_in(levels: &[Level], mut start: i64, end: i64) -> Vec<(Level, i64)> {
    let mut out = Vec::new();
    while start < end {
        let level = levels
            .iter()
            .copied()
            .rev()
            .find(|l| start.rem_euclid(l.quarters()) == 0 && start + l.quarters() <= end)
            .unwrap_or(Level::Quarter);
        out.push((level, start / level.quarters()));
        start += level.quarters();
    }
    out
}

/// Aligned bucket units `(level, unit)`.
pub type Units = Vec<(Level, i64)>;

/// Consecutive units of one level as runs `(level, first, end)`, each read with one range
/// scan instead of a lookup per unit.
pub fn runs(units: &[(Level, i64)]) -> Vec<(Level, i64, i64)> {
    let mut out: Vec<(Level, i64, i64)> = Vec::new();
    for &(l, u) in units {
        match out.last_mut() {
            Some((rl, _, end)) if *rl == l && *end == u => *end = u + 1,
            _ => out.push((l, u, u + 1)),
        }
    }
    out
}

/// The local day of `t` in `tz`, counted from 1970-01-01: campaign rollups are kept per
/// local day (and 32-day block) of the project's zone, since campaign-leaderboard asks for
/// no other zone. A day `d` is stored as the day unit `d` (its quarters numbered as if the
/// zone were UTC), so [`unit_of`] gives its block as for any other day.
pub fn local_day(tz: Tz, t: Instant) -> i64 {
    i64::from(local_date(tz, t).to_epoch_days())
}

/// The local days `[from, to]` as aligned campaign units (day and 32-day units of
/// [`local_day`] numbers).
pub fn local_day_units(from: NaiveDate, to: NaiveDate) -> Units {
    let day = |d: NaiveDate| i64::from(d.to_epoch_days()) * Level::Day.quarters();
    decompose_in(&Level::CAMPAIGN, day(from), day(to) + Level::Day.quarters())
}

/// The local days of a campaign unit (`level`, `u`) in `tz`, as an instant range.
pub fn local_unit_period(tz: Tz, level: Level, u: i64) -> Period {
    let days = level.quarters() / Level::Day.quarters();
    let date = |n: i64| i32::try_from(n).ok().and_then(NaiveDate::from_epoch_days).unwrap_or(NaiveDate::MAX);
    Period::days(tz, Some(date(u * days)), Some(date((u + 1) * days - 1)))
}

/// How to read the quarters `[start, end)` so that every row read lies in one local hour
/// of `tz`: runs `(level, first unit, end unit)` of hour units where the zone is on a
/// whole-hour offset for the whole hour, of quarters elsewhere (the edges, and zones such
/// as Asia/Kolkata). In time order; each run is one range scan.
pub fn local_hour_spans(tz: Tz, start: i64, end: i64) -> Vec<(Level, i64, i64)> {
    let mut out: Vec<(Level, i64, i64)> = Vec::new();
    let mut push = |level: Level, a: i64, b: i64| {
        if a >= b {
            return;
        }
        match out.last_mut() {
            Some((l, _, e)) if *l == level && *e == a => *e = b,
            _ => out.push((level, a, b)),
        }
    };
    let (h0, h1) = ((start + 3).div_euclid(4), end.div_euclid(4));
    if h0 >= h1 {
        push(Level::Quarter, start, end);
        return out;
    }
    push(Level::Quarter, start, h0 * 4);
    for h in h0..h1 {
        if whole_hour(tz, h * 4) {
            push(Level::Hour, h, h + 1);
        } else {
            push(Level::Quarter, h * 4, h * 4 + 4);
        }
    }
    push(Level::Quarter, h1 * 4, end);
    out
}

/// Whether the UTC hour starting at quarter `q` is one local hour of `tz`: the offset is a
/// whole number of hours at its first and its last quarter (a change between them would
/// need two within 45 minutes).
fn whole_hour(tz: Tz, q: i64) -> bool {
    use chrono::Offset;
    let offset = |q: i64| {
        DateTime::from_timestamp(q * QUARTER_SECS, 0)
            .map(|t| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc())
    };
    match (offset(q), offset(q + 3)) {
        (Some(a), Some(b)) => a == b && a % 3600 == 0,
        _ => false,
    }
}

/// The first instant of local day `d` in `tz`: local midnight, or on a day whose midnight
/// falls in a DST gap, the first local time that exists.
pub fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let mut local = d.and_time(NaiveTime::MIN);
    loop {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.to_utc();
        }
        local += chrono::Duration::minutes(1);
    }
}

/// The local calendar date of an instant.
pub fn local_date(tz: Tz, t: Instant) -> NaiveDate {
    t.to_chrono().with_timezone(&tz).date_naive()
}

/// Local (day of week with 0 = Sunday, hour) of an instant.
pub fn local_dow_hour(tz: Tz, t: Instant) -> (u32, u32) {
    let local = t.to_chrono().with_timezone(&tz);
    (local.weekday().num_days_from_sunday(), local.hour())
}

/// "Posted in `[from, to]`" as an instant range `[start, end)`; `None` is an open side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: Option<Instant>,
    pub end: Option<Instant>,
}

impl Period {
    pub const ALL: Period = Period { start: None, end: None };

    pub fn days(tz: Tz, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Period {
        let start = from.map(|d| Instant::from_chrono(day_start(tz, d)));
        let end = to.map(|d| Instant::from_chrono(day_start(tz, d + chrono::Days::new(1))));
        Period { start, end }
    }

    pub fn contains(&self, t: Instant) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t < e)
    }

    /// The quarter range covering the period, with open sides clamped to `[lo, hi)`.
    pub fn quarters(&self, lo: i64, hi: i64) -> (i64, i64) {
        let start = self.start.map_or(lo, |s| quarter_of(s).max(lo));
        let end = self.end.map_or(hi, |e| ceil_quarter(e).min(hi));
        (start, end)
    }
}

/// The first quarter starting at or after `t`.
fn ceil_quarter(t: Instant) -> i64 {
    let q = quarter_of(t);
    if t.secs.rem_euclid(QUARTER_SECS) == 0 && t.nanos == 0 { q } else { q + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_the_same_units() {
        for (s, e) in [(0, 1), (5, 20000), (-3000, 7000), (96, 192), (95, 97), (10, 10)] {
            let units = decompose(s, e);
            let again: Vec<(Level, i64)> =
                runs(&units).into_iter().flat_map(|(l, a, b)| (a..b).map(move |u| (l, u))).collect();
            assert_eq!(again, units);
            assert!(runs(&units).len() <= 7);
        }
    }

    #[test]
    fn local_day_units_cover_the_days_and_their_instants() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        for (from, to) in [("2026-11-14", "2026-11-20"), ("1969-12-01", "1970-02-11"), ("2025-03-01", "2026-11-20")] {
            let (from, to) = (d(from), d(to));
            let units = local_day_units(from, to);
            assert!(units.iter().all(|(l, _)| Level::CAMPAIGN.contains(l)));
            // The units' periods, end to end, are the period of the days.
            let periods: Vec<Period> = units.iter().map(|&(l, u)| local_unit_period(ny, l, u)).collect();
            assert_eq!(periods[0].start, Period::days(ny, Some(from), None).start);
            assert_eq!(periods.last().unwrap().end, Period::days(ny, None, Some(to)).end);
            assert!(periods.windows(2).all(|w| w[0].end == w[1].start));
            // Every instant's local day falls in the unit whose period holds it.
            for &(l, u) in &units {
                let p = local_unit_period(ny, l, u);
                for t in [p.start.unwrap(), Instant { secs: p.end.unwrap().secs - 1, nanos: 0 }] {
                    assert_eq!(unit_of(l, local_day(ny, t) * Level::Day.quarters()), u);
                }
            }
        }
    }

    #[test]
    fn decompose_covers_exactly_with_few_units() {
        for (s, e) in [(0, 1), (5, 20000), (-3000, 7000), (96, 192), (95, 97), (10, 10)] {
            let parts = decompose(s, e);
            let mut covered = s;
            for (l, u) in &parts {
                assert_eq!(u * l.quarters(), covered);
                covered += l.quarters();
            }
            assert_eq!(covered, e.max(s));
            assert!(parts.len() <= 2 * (3 + 23 + 31) + ((e - s) / Level::Block.quarters()) as usize + 2);
        }
    }

    #[test]
    fn local_hour_spans_cover_exactly_in_local_hours() {
        let start = quarter_of(Instant { secs: 1_772_000_000, nanos: 0 }) + 2; // off an hour
        for zone in ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"] {
            let tz: Tz = zone.parse().unwrap();
            // 400 days: through both DST changes of every zone above.
            let end = start + 96 * 400 + 1;
            let spans = local_hour_spans(tz, start, end);
            let mut covered = start;
            let mut hours = 0;
            for &(l, a, b) in &spans {
                assert_eq!(a * l.quarters(), covered, "{zone}: contiguous");
                for u in a..b {
                    let first = Instant { secs: u * l.quarters() * QUARTER_SECS, nanos: 0 };
                    let last = Instant { secs: ((u + 1) * l.quarters() - 1) * QUARTER_SECS, nanos: 0 };
                    assert_eq!(local_dow_hour(tz, first), local_dow_hour(tz, last), "{zone}: one local hour");
                    assert_eq!(local_date(tz, first), local_date(tz, last), "{zone}: one local day");
                }
                hours += if l == Level::Hour { b - a } else { 0 };
                covered = b * l.quarters();
            }
            assert_eq!(covered, end, "{zone}");
            assert!(spans.len() <= 12, "{zone}: {} spans", spans.len());
            match zone {
                "Asia/Kolkata" | "Asia/Kathmandu" => assert_eq!(hours, 0, "{zone}"),
                // +10:30 in its winter, +11 in its summer.
                "Australia/Lord_Howe" => assert!((24 * 150..24 * 250).contains(&hours), "{zone}: {hours}"),
                _ => assert!(hours > 24 * 390, "{zone}: {hours} hour units"),
            }
        }
    }

    #[test]
    fn day_starts_in_awkward_zones() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        assert_eq!(day_start(tz, d("2026-04-01")).to_rfc3339(), "2026-03-31T18:15:00+00:00");
        // America/Havana springs forward at midnight: the day starts at 01:00 local.
        let tz: Tz = "America/Havana".parse().unwrap();
        assert_eq!(day_start(tz, d("2026-03-08")).to_rfc3339(), "2026-03-08T05:00:00+00:00");
        let ny: Tz = "America/New_York".parse().unwrap();
        let p = Period::days(ny, Some(d("2026-11-01")), Some(d("2026-11-01")));
        let len = p.end.unwrap().secs - p.start.unwrap().secs;
        assert_eq!(len, 25 * 3600);
    }
}
