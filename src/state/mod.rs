//! State: last-writer-wins registers and the aggregates derived from them.
//!
//! [`apply`] is the one synchronous, deterministic way state changes: serve, replay and
//! bench all call it inside a write transaction, and it knows neither Kafka nor JSON.
//!
//! Every register keeps the greatest `(occurred_at, event_id)` it has seen, so any order
//! and any duplication of the same events gives the same registers. Aggregates are a pure
//! function of the registers; they are kept in step by observing, for the videos an event
//! can affect, their contribution before and after the register write, and retracting the
//! old one and adding the new one. So the aggregates converge as the registers do.

pub mod campaigns;
pub mod goals;
pub mod tables;
pub mod top;
pub mod videos;

use redb::ReadableTable;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use tables::FollowerPoint;
pub use tables::{Tables, defs};

use crate::events::{Body, Event, Id, Instant, ItemType, KeyHash, Stamp};
use crate::time::{Level, quarter_of, unit_of};

/// Errors from reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// redb failed.
    #[error(transparent)]
    Storage(#[from] redb::StorageError),
    /// A table could not be opened.
    #[error(transparent)]
    Table(#[from] redb::TableError),
    /// A stored value could not be decoded: the file was written by an incompatible build.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// The smallest and the largest id: the bounds of a key range over every id.
pub const ID_MIN: Id = [0u8; 16];
pub const ID_MAX: Id = [0xffu8; 16];

/// A last-writer-wins register: the winning stamp and, unless a removal won, its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reg<T> {
    pub stamp: Stamp,
    pub value: Option<T>,
}

/// The value of a project register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub org_id: Id,
    pub name: String,
    pub timezone: String,
}

/// The value of an API key register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub org_id: Id,
    pub key_sha256: KeyHash,
    pub expires_at: Option<Instant>,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("in-memory serialization cannot fail")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| StateError::Corrupt(e.to_string()))
}

/// Reads a register stored as bincode bytes.
pub fn get_reg<'k, K, T>(table: &impl ReadableTable<K, &'static [u8]>, key: K::SelfType<'k>) -> Result<Option<Reg<T>>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// The present value of a register, if any.
pub fn get_present<'k, K, T>(table: &impl ReadableTable<K, &'static [u8]>, key: K::SelfType<'k>) -> Result<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    Ok(get_reg::<K, T>(table, key)?.and_then(|r| r.value))
}

/// Applies one valid event. Stale events (that lose to what a register holds) change nothing.
pub fn apply(t: &mut Tables, ev: &Event) -> Result<()> {
    let stamp = ev.stamp;
    let Some(p) = ev.project_id else {
        return apply_key(t, ev);
    };
    let last = t.project_meta.get(p)?.map(|g| g.value());
    if last.is_none_or(|l| (stamp.at.secs, stamp.at.nanos) > l) {
        t.project_meta.insert(p, (stamp.at.secs, stamp.at.nanos))?;
    }
    match &ev.body {
        Body::VideoScraped(v) => videos::set_video(t, p, stamp, v.video_id, Some(v)),
        Body::VideoRemoved { video_id } => videos::set_video(t, p, stamp, *video_id, None),
        Body::CreatorSnapshot(c) => {
            set_follower_point(t, p, stamp, c.creator_id, c.follower_count)?;
            videos::set_creator(t, p, stamp, c.creator_id, Some(c))
        }
        Body::CreatorRemoved { creator_id } => videos::set_creator(t, p, stamp, *creator_id, None),
        Body::GoalSet(g) => goals::set_goal(t, p, stamp, g.goal_id, Some(g)),
        Body::GoalRemoved { goal_id } => goals::set_goal(t, p, stamp, *goal_id, None),
        Body::CampaignUpserted { campaign_id, name } => {
            campaigns::set_campaign(t, p, stamp, *campaign_id, Some(name.clone()))
        }
        Body::CampaignDeleted { campaign_id } => campaigns::set_campaign(t, p, stamp, *campaign_id, None),
        Body::CampaignItem { campaign_id, item_type, item_id, member } => {
            campaigns::set_member(t, p, stamp, *campaign_id, *item_type, *item_id, *member)
        }
        Body::ProjectUpserted { org_id, name, timezone } => {
            let info = ProjectInfo { org_id: *org_id, name: name.clone(), timezone: timezone.clone() };
            goals::set_project(t, p, stamp, Some(&info))
        }
        Body::ProjectDeleted => goals::set_project(t, p, stamp, None),
        Body::ApiKeyIssued { .. } | Body::ApiKeyRevoked { .. } => Ok(()),
    }
}

/// Writes a follower history point, and its copies in time order and in the day counts.
/// A point's quarter row is rewritten whole: the busiest day at scale L averages about a
/// hundred points a quarter, and points come 50 times less often than scrapes.
fn set_follower_point(t: &mut Tables, p: Id, stamp: Stamp, creator: Id, count: u64) -> Result<()> {
    let key = (p, creator, stamp.at.secs, stamp.at.nanos);
    let old = get_reg::<_, u64>(&t.followers, key)?;
    if old.as_ref().is_some_and(|r| r.stamp >= stamp) {
        return Ok(());
    }
    t.followers.insert(key, encode(&Reg { stamp, value: Some(count) }).as_slice())?;
    let q = quarter_of(stamp.at);
    let mut points: Vec<FollowerPoint> = match t.follower_quarters.get((p, q))? {
        Some(row) => FollowerPoint::decode_row(q, row.value()).collect(),
        None => Vec::new(),
    };
    let point = FollowerPoint { at: stamp.at, creator, follower_count: count };
    match points.binary_search_by_key(&point.key(), FollowerPoint::key) {
        Ok(i) => points[i] = point,
        Err(i) => points.insert(i, point),
    }
    t.follower_quarters.insert((p, q), FollowerPoint::encode_row(&points).as_slice())?;
    if old.is_none() {
        add_count(&mut t.follower_days, (p, unit_of(Level::Day, quarter_of(stamp.at))), 1)?;
    }
    Ok(())
}

fn apply_key(t: &mut Tables, ev: &Event) -> Result<()> {
    let (key_id, info) = match &ev.body {
        Body::ApiKeyIssued { key_id, org_id, key_sha256, expires_at } => {
            (*key_id, Some(KeyInfo { org_id: *org_id, key_sha256: *key_sha256, expires_at: *expires_at }))
        }
        Body::ApiKeyRevoked { key_id } => (*key_id, None),
        _ => return Ok(()),
    };
    let old = get_reg::<_, KeyInfo>(&t.api_keys, key_id)?;
    if old.as_ref().is_some_and(|r| r.stamp >= ev.stamp) {
        return Ok(());
    }
    if let Some(KeyInfo { key_sha256, .. }) = old.and_then(|r| r.value) {
        t.key_hashes.remove((key_sha256, key_id))?;
    }
    if let Some(info) = &info {
        t.key_hashes.insert((info.key_sha256, key_id), ())?;
    }
    t.api_keys.insert(key_id, encode(&Reg { stamp: ev.stamp, value: info }).as_slice())?;
    Ok(())
}

/// Adds `delta` to a counter row, deleting it at zero so scans only meet live rows.
pub(crate) fn add_count<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<K, u64>,
    key: K::SelfType<'k>,
    delta: i64,
) -> Result<u64>
where
    K::SelfType<'k>: Clone,
{
    let old = table.get(key.clone())?.map_or(0, |g| g.value());
    let new = old.checked_add_signed(delta).ok_or_else(|| StateError::Corrupt("counter underflow".into()))?;
    if new == 0 {
        table.remove(key)?;
    } else {
        table.insert(key, new)?;
    }
    Ok(old)
}

/// The visible-ness of an id as an entity of member-overlap.
pub(crate) fn item_dim(t: ItemType) -> u8 {
    t as u8
}
