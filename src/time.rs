//! Time: local days in any zone, and the zone-free buckets aggregates are kept in.
//!
//! Aggregates are bucketed by UTC quarter-hours (and aligned multiples of them), never by a
//! local calendar: every zone offset in use today is a multiple of 15 minutes, so any local
//! day or hour, in any zone asked at read time, is an exact union of quarters (contract §3).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::events::Instant;

/// Seconds in one quarter-hour bucket.
pub const QUARTER_SECS: i64 = 900;

/// Bucket levels, finest first; each unit is an aligned multiple of the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Quarter = 0,
    Day = 1,
    Block = 2,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Quarter, Level::Day, Level::Block];

    /// Width of one unit, in quarters (a UTC day; 32 UTC days).
    pub const fn quarters(self) -> i64 {
        match self {
            Level::Quarter => 1,
            Level::Day => 96,
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

/// Splits the quarter range `[start, end)` into the fewest aligned units: coarse units
/// in the middle, finer ones at the edges. Reads then cost O(units), not O(events).
pub fn decompose(mut start: i64, end: i64) -> Vec<(Level, i64)> {
    let mut out = Vec::new();
    while start < end {
        let level = Level::ALL
            .into_iter()
            .rev()
            .find(|l| start.rem_euclid(l.quarters()) == 0 && start + l.quarters() <= end)
            .unwrap_or(Level::Quarter);
        out.push((level, start / level.quarters()));
        start += level.quarters();
    }
    out
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
    fn decompose_covers_exactly_with_few_units() {
        for (s, e) in [(0, 1), (5, 20000), (-3000, 7000), (96, 192), (95, 97), (10, 10)] {
            let parts = decompose(s, e);
            let mut covered = s;
            for (l, u) in &parts {
                assert_eq!(u * l.quarters(), covered);
                covered += l.quarters();
            }
            assert_eq!(covered, e.max(s));
            assert!(parts.len() <= 2 * (95 + 31) + ((e - s) / Level::Block.quarters()) as usize + 2);
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
