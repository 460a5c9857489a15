//! Campaigns: nested resolution and direct-membership overlap.
//!
//! A root campaign's resolved videos are the visible videos that are direct members, or
//! whose creator is, of the root or of any visible campaign reachable from it through
//! campaign items (contract §4.5). Aggregates are kept per root; a video knows its roots
//! by walking *up* from its direct memberships, which visits each campaign once, so
//! cycles end there.

use std::collections::{BTreeSet, VecDeque};

use redb::ReadableTable;

use super::tables::{IdKey, Tables, overlap_entries};
use super::{ID_MAX, ID_MIN, Reg, Result, StateError, encode, get_present, get_reg, item_dim, videos};
use crate::events::{Id, ItemType, Stamp};

pub fn campaign_visible(t: &impl ReadableTable<(IdKey, IdKey), &'static [u8]>, p: Id, c: Id) -> Result<bool> {
    Ok(get_present::<_, String>(t, (p, c))?.is_some())
}

/// Campaigns that directly contain `item` (membership currently in).
fn containing(
    t: &impl ReadableTable<(IdKey, u8, IdKey, IdKey), ()>,
    p: Id,
    kind: ItemType,
    item: Id,
) -> Result<Vec<Id>> {
    let k = kind as u8;
    t.range((p, k, item, ID_MIN)..=(p, k, item, ID_MAX))?.map(|e| Ok(e?.0.value().3)).collect()
}

/// Items of one type that are currently direct members of campaign `c`.
pub fn members(
    t: &impl ReadableTable<(IdKey, IdKey, u8, IdKey), &'static [u8]>,
    p: Id,
    c: Id,
    kind: ItemType,
) -> Result<Vec<Id>> {
    let k = kind as u8;
    let mut out = Vec::new();
    for e in t.range((p, c, k, ID_MIN)..=(p, c, k, ID_MAX))? {
        let (key, val) = e?;
        if super::decode::<Reg<()>>(val.value())?.value.is_some() {
            out.push(key.value().3);
        }
    }
    Ok(out)
}

/// Root campaigns whose resolved videos would include a visible `video` of `creator`.
pub fn roots_of_video(t: &Tables, p: Id, video: Id, creator: Id) -> Result<BTreeSet<Id>> {
    // Reaching up from the union of two sets reaches the union of what each reaches, so
    // the creator's part, shared by all its videos, is walked once per transaction.
    let direct = containing(&t.members_by_item, p, ItemType::Video, video)?;
    let cached = t.pending.creator_roots.borrow().get(&(p, creator)).cloned();
    let of_creator = match cached {
        Some(r) => r,
        None => {
            let r = reach_up(t, p, containing(&t.members_by_item, p, ItemType::Creator, creator)?)?;
            t.pending.creator_roots.borrow_mut().insert((p, creator), r.clone());
            r
        }
    };
    // Most videos are members of no campaign themselves: their roots are their creator's.
    if direct.is_empty() {
        return Ok(of_creator);
    }
    let mut roots = reach_up(t, p, direct)?;
    roots.extend(of_creator);
    Ok(roots)
}

/// The campaigns in `start` and every campaign reachable up from a visible one of them.
fn reach_up(t: &Tables, p: Id, start: Vec<Id>) -> Result<BTreeSet<Id>> {
    let mut seen: BTreeSet<Id> = start.into_iter().collect();
    let mut queue: VecDeque<Id> = seen.iter().copied().collect();
    while let Some(c) = queue.pop_front() {
        // A nested campaign passes its videos up only while it is visible.
        if !campaign_visible(&t.campaigns, p, c)? {
            continue;
        }
        for parent in containing(&t.members_by_item, p, ItemType::Campaign, c)? {
            if seen.insert(parent) {
                queue.push_back(parent);
            }
        }
    }
    Ok(seen)
}

/// Present videos under campaign `c` (direct, through creators, through visible nested
/// campaigns): every video whose roots can change when `c`'s visibility or an edge into
/// `c` changes.
fn videos_under(t: &Tables, p: Id, c: Id) -> Result<BTreeSet<Id>> {
    let mut seen = BTreeSet::from([c]);
    let mut queue = VecDeque::from([c]);
    let mut out = BTreeSet::new();
    while let Some(x) = queue.pop_front() {
        out.extend(members(&t.memberships, p, x, ItemType::Video)?);
        for creator in members(&t.memberships, p, x, ItemType::Creator)? {
            out.extend(videos::videos_of_creator(t, p, creator)?);
        }
        for child in members(&t.memberships, p, x, ItemType::Campaign)? {
            if campaign_visible(&t.campaigns, p, child)? && seen.insert(child) {
                queue.push_back(child);
            }
        }
    }
    Ok(out)
}

/// Writes a campaign register (upsert or delete).
pub fn set_campaign(t: &mut Tables, p: Id, stamp: Stamp, c: Id, name: Option<String>) -> Result<()> {
    let old = get_reg::<_, String>(&t.campaigns, (p, c))?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    let was = old.is_some_and(|r| r.value.is_some());
    let now = name.is_some();
    let write = |t: &mut Tables| -> Result<()> {
        t.campaigns.insert((p, c), encode(&Reg { stamp, value: name }).as_slice())?;
        t.pending.forget_roots();
        Ok(())
    };
    if was == now {
        return write(t); // a rename: names are read at request time
    }
    let affected = videos_under(t, p, c)?;
    videos::refresh_roots(t, p, &affected, write)?;
    for kind in [ItemType::Creator, ItemType::Video] {
        for item in members(&t.memberships, p, c, kind)? {
            overlap_change(t, p, kind, item, c, now)?;
        }
    }
    Ok(())
}

/// Writes a membership register (item added or removed).
pub fn set_member(t: &mut Tables, p: Id, stamp: Stamp, c: Id, kind: ItemType, item: Id, member: bool) -> Result<()> {
    let key = (p, c, kind as u8, item);
    let old = get_reg::<_, ()>(&t.memberships, key)?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    let was = old.is_some_and(|r| r.value.is_some());
    let write = |t: &mut Tables| -> Result<()> {
        t.memberships.insert(key, encode(&Reg { stamp, value: member.then_some(()) }).as_slice())?;
        if member {
            t.members_by_item.insert((p, kind as u8, item, c), ())?;
        } else {
            t.members_by_item.remove((p, kind as u8, item, c))?;
        }
        t.pending.forget_roots();
        Ok(())
    };
    if was == member {
        return write(t);
    }
    let affected = match kind {
        ItemType::Video => BTreeSet::from([item]),
        ItemType::Creator => videos::videos_of_creator(t, p, item)?,
        ItemType::Campaign => videos_under(t, p, item)?,
    };
    videos::refresh_roots(t, p, &affected, write)?;
    if kind != ItemType::Campaign && campaign_visible(&t.campaigns, p, c)? {
        overlap_change(t, p, kind, item, c, member)?;
    }
    Ok(())
}

/// Whether an entity counts in member-overlap: a tracked creator or a visible video.
fn entity_visible(t: &Tables, p: Id, kind: ItemType, id: Id) -> Result<bool> {
    match kind {
        ItemType::Creator => videos::creator_tracked(t, p, id),
        _ => Ok(videos::observe(t, p, id)?.is_some()),
    }
}

/// Adds (or removes) visible campaign `c` to the campaigns directly containing an entity,
/// and moves the entity's rank row to its new count.
fn overlap_change(t: &mut Tables, p: Id, kind: ItemType, id: Id, c: Id, add: bool) -> Result<()> {
    let d = item_dim(kind);
    let mut list: Vec<Id> = match t.overlap_campaigns.get((p, d, id))? {
        Some(row) => overlap_entries(row.value()).collect(),
        None => Vec::new(),
    };
    let old = list.len() as u64;
    match (list.binary_search(&c), add) {
        (Err(at), true) => list.insert(at, c),
        (Ok(at), false) => {
            list.remove(at);
        }
        _ => return Err(StateError::Corrupt("member-overlap campaigns out of step".into())),
    }
    let row: Vec<u8> = list.concat();
    if row.is_empty() {
        t.overlap_campaigns.remove((p, d, id))?;
    } else {
        t.overlap_campaigns.insert((p, d, id), row.as_slice())?;
    }
    if entity_visible(t, p, kind, id)? {
        if old > 0 {
            t.overlap_rank.remove((p, d, !old, id))?;
        }
        if !row.is_empty() {
            t.overlap_rank.insert((p, d, !(list.len() as u64), id), row.as_slice())?;
        }
    }
    Ok(())
}

/// An entity became visible or hidden: show or hide its overlap row.
pub fn overlap_visibility(t: &mut Tables, p: Id, kind: ItemType, id: Id, visible: bool) -> Result<()> {
    let d = item_dim(kind);
    let Some(row) = t.overlap_campaigns.get((p, d, id))?.map(|g| g.value().to_vec()) else {
        return Ok(());
    };
    let count = overlap_entries(&row).count() as u64;
    if visible {
        t.overlap_rank.insert((p, d, !count, id), row.as_slice())?;
    } else {
        t.overlap_rank.remove((p, d, !count, id))?;
    }
    Ok(())
}
