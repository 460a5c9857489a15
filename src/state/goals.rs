//! Goals, and each goal's progress kept in step with its creator's visible videos, so that
//! goal-compliance reads one stored row per goal instead of summing buckets per request.
//!
//! A goal's window is `[starts_on, ends_on]` in the project's zone. The window's instants
//! are stored with the row; when the project's zone changes, every goal of the project is
//! recomputed ([`set_project`]).

use std::collections::hash_map::Entry;

use chrono::NaiveDate;
use chrono_tz::Tz;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::Tables;
use super::videos::Facts;
use super::{ID_MAX, ID_MIN, ProjectInfo, Reg, Result, decode, encode, get_present, get_reg};
use crate::events::{Goal, GoalMetric, Id, Instant, Stamp};
use crate::time::Period;

/// A present goal and its progress: the row `goal_progress` stores under
/// (project, creator, goal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalProgress {
    pub metric: GoalMetric,
    pub target: u64,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// `[starts_on, ends_on]` in the project's zone as instants `[start, end)`.
    pub start: Instant,
    pub end: Instant,
    /// Visible videos of the creator posted in the window, and their summed views.
    pub posts: u64,
    pub views: u128,
}

impl GoalProgress {
    fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end
    }
}

/// The goals of one creator as this transaction sees them, and whether they changed.
#[derive(Default)]
pub struct CreatorGoals {
    goals: Vec<(Id, GoalProgress)>,
    dirty: bool,
}

/// The project's zone, which goal windows and campaign units are in, or UTC while it has
/// none (no answer reads a project without one).
pub fn project_zone(t: &Tables, p: Id) -> Result<Tz> {
    if let Some(&tz) = t.pending.zones.borrow().get(&p) {
        return Ok(tz);
    }
    let tz = zone_of(get_present::<_, ProjectInfo>(&t.projects, p)?.as_ref());
    t.pending.zones.borrow_mut().insert(p, tz);
    Ok(tz)
}

fn zone_of(info: Option<&ProjectInfo>) -> Tz {
    info.and_then(|i| i.timezone.parse().ok()).unwrap_or(Tz::UTC)
}

/// The goals of a creator, loaded the first time this transaction touches them.
fn creator_goals<'t>(t: &'t mut Tables, p: Id, creator: Id) -> Result<&'t mut CreatorGoals> {
    match t.pending.goals.entry((p, creator)) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let mut goals = Vec::new();
            for row in t.goal_progress.range((p, creator, ID_MIN)..=(p, creator, ID_MAX))? {
                let (k, v) = row?;
                goals.push((k.value().2, decode(v.value())?));
            }
            Ok(e.insert(CreatorGoals { goals, dirty: false }))
        }
    }
}

/// Adds (`add`) or retracts a visible video's part in its creator's goals.
pub fn contribute(t: &mut Tables, p: Id, f: &Facts, add: bool) -> Result<()> {
    let list = creator_goals(t, p, f.creator)?;
    for (_, g) in &mut list.goals {
        if g.contains(f.posted) {
            if add {
                g.posts += 1;
                g.views += u128::from(f.counts.views);
            } else {
                g.posts = g.posts.checked_sub(1).ok_or_else(underflow)?;
                g.views = g.views.checked_sub(f.counts.views.into()).ok_or_else(underflow)?;
            }
            list.dirty = true;
        }
    }
    Ok(())
}

/// Moves a visible video's views in its creator's goals from `old` to `new`.
pub fn recount(t: &mut Tables, p: Id, creator: Id, posted: Instant, old: u64, new: u64) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let list = creator_goals(t, p, creator)?;
    for (_, g) in &mut list.goals {
        if g.contains(posted) {
            g.views = (g.views + u128::from(new)).checked_sub(old.into()).ok_or_else(underflow)?;
            list.dirty = true;
        }
    }
    Ok(())
}

fn underflow() -> super::StateError {
    super::StateError::Corrupt("goal progress underflow".into())
}

/// Writes a goal register, keeping its progress row in step.
pub fn set_goal(t: &mut Tables, p: Id, stamp: Stamp, goal_id: Id, goal: Option<&Goal>) -> Result<()> {
    let old = get_reg::<_, Goal>(&t.goals, (p, goal_id))?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    t.goals.insert((p, goal_id), encode(&Reg { stamp, value: goal }).as_slice())?;
    if let Some(old) = old.and_then(|r| r.value) {
        let list = creator_goals(t, p, old.creator_id)?;
        list.goals.retain(|(id, _)| *id != goal_id);
        t.goal_progress.remove((p, old.creator_id, goal_id))?;
    }
    if let Some(g) = goal {
        let row = progress(t, p, project_zone(t, p)?, g)?;
        let list = creator_goals(t, p, g.creator_id)?;
        list.goals.push((goal_id, row));
        list.dirty = true;
    }
    Ok(())
}

/// A goal's progress computed from its creator's visible videos (`creator_views`, which
/// ingestion writes directly, so it is current within the transaction).
fn progress(t: &Tables, p: Id, zone: Tz, g: &Goal) -> Result<GoalProgress> {
    let window = Period::days(zone, Some(g.starts_on), Some(g.ends_on));
    let (start, end) = (window.start.expect("a start day"), window.end.expect("an end day"));
    let mut row = GoalProgress {
        metric: g.metric,
        target: g.target,
        starts_on: g.starts_on,
        ends_on: g.ends_on,
        start,
        end,
        posts: 0,
        views: 0,
    };
    let c = g.creator_id;
    for e in t.creator_views.range((p, c, 0, ID_MIN)..=(p, c, u64::MAX, ID_MAX))? {
        let (k, at) = e?;
        let (secs, nanos) = at.value();
        if row.contains(Instant { secs, nanos }) {
            row.posts += 1;
            row.views += u128::from(!k.value().2);
        }
    }
    Ok(row)
}

/// Writes a project register; when that changes the project's zone, recomputes the
/// window and progress of every goal of the project, and its campaign rollups.
pub fn set_project(t: &mut Tables, p: Id, stamp: Stamp, info: Option<&ProjectInfo>) -> Result<()> {
    let old = get_reg::<_, ProjectInfo>(&t.projects, p)?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    let before = zone_of(old.and_then(|r| r.value).as_ref());
    t.projects.insert(p, encode(&Reg { stamp, value: info }).as_slice())?;
    let after = zone_of(info);
    if before == after {
        return Ok(());
    }
    // Rebuilding reads `by_posted`, and goals already pending were placed in the old
    // zone's days. The campaign changes already recorded were too: the rebuild clears
    // what they add up to, in the order recorded.
    t.flush_but_write_only()?;
    t.pending.zones.borrow_mut().insert(p, after);
    super::videos::rebuild_campaign_units(t, p)?;
    let mut rows = Vec::new();
    for e in t.goals.range((p, ID_MIN)..=(p, ID_MAX))? {
        if let Some(g) = decode::<Reg<Goal>>(e?.1.value())?.value {
            rows.push((g.creator_id, g.goal_id, progress(t, p, after, &g)?));
        }
    }
    for (creator, goal_id, row) in rows {
        t.goal_progress.insert((p, creator, goal_id), encode(&row).as_slice())?;
    }
    Ok(())
}

impl Tables<'_> {
    /// Writes the goals this transaction changed, and forgets the loaded ones.
    pub(super) fn flush_goals(&mut self) -> Result<()> {
        let mut lists: Vec<_> = self.pending.goals.drain().filter(|(_, l)| l.dirty).collect();
        lists.sort_unstable_by_key(|e| e.0);
        for ((p, creator), list) in lists {
            for (goal_id, row) in list.goals {
                self.goal_progress.insert((p, creator, goal_id), encode(&row).as_slice())?;
            }
        }
        Ok(())
    }
}
