//! Creator endpoints (contract §4.4): creator-leaderboard, posting-consistency,
//! creator-scatter, goal-compliance.

use chrono::NaiveDate;
use redb::ReadTransaction;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use uuid::Uuid;

use super::endpoint::{Endpoint, Schemas, iso_date, iso_date_bytes, list_of, mirror, named};
use super::error::ApiError;
use super::params::{FROM, FROM_REQUIRED, LIMIT, OFFSET, PROJECT_ID, Param, Params, TO, TO_REQUIRED, TZ, limit};
use crate::events::Instant;
use crate::query::{self, ProjectView};

pub struct CreatorLeaderboard;

impl Endpoint for CreatorLeaderboard {
    const NAME: &'static str = "creator-leaderboard";
    const LONG: bool = true;
    const SUMMARY: &'static str = "Tracked creators ranked by views in the period.";
    const DESCRIPTION: &'static str = "All tracked creators, sorted by `total_views` over their visible videos posted in the \
         period, descending. Follower figures use the creator's history points in the period \
         (project time zone). `total_count` is the number of tracked creators.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM, TO, limit(200, 100), OFFSET];
    type Data = Vec<CreatorItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<CreatorItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let q = query::CreatorLeaderboardParams {
            range: params.range(),
            limit: params.int(LIMIT)?,
            offset: params.int(OFFSET.name)?,
        };
        Ok(query::creator_leaderboard(rtxn, project, &q, now)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One creator of `creator-leaderboard`.
    pub struct CreatorItem from query::CreatorRow {
        #[schema(format = "uuid")]
        creator_id: String,
        tiktok_handle: String,
        display_name: Option<String>,
        avatar_url: Option<String>,
        /// `follower_count` of the latest snapshot.
        current_followers: u64,
        /// Last minus first follower count in the period; 0 with fewer than two points.
        follower_delta: i64,
        total_views: u128,
        posts_in_period: u64,
        /// `posts_in_period × 7 / days`, rounded to 2 decimals.
        posts_per_week: f64,
        /// `(likes + comments + shares) / views × 100`, rounded to 2 decimals; 0 without views.
        engagement_rate: f64,
        /// `follower_delta / first count × 100`, rounded to 2 decimals.
        growth_rate: f64,
        /// Number of tracked creators (the same in every item).
        total_count: u64,
    }
}

pub struct PostingConsistency;

impl Endpoint for PostingConsistency {
    const NAME: &'static str = "posting-consistency";
    const LONG: bool = true;
    const SUMMARY: &'static str = "Posts per creator and local day.";
    const DESCRIPTION: &'static str = "One item for each creator and local day (effective zone) with at least one visible video \
         posted, sorted by `creator_id` then `day`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM_REQUIRED, TO_REQUIRED, TZ];
    type Data = Vec<ConsistencyItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<ConsistencyItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let q = query::ConsistencyParams { range: params.range(), tz: params.tz().unwrap_or(project.tz) };
        Ok(query::posting_consistency(rtxn, project, &q)?.into_iter().map(Into::into).collect())
    }

    /// serde's bytes, written directly: an answer over all time holds hundreds of thousands
    /// of items, and serde escaped every id and date a byte at a time (a third of the time).
    /// Ids and dates need no escaping, and a creator's id is formatted once for its days.
    fn write_data(items: &Self::Data, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.reserve(items.len() * 80 + 2);
        out.push(b'[');
        let mut id: Option<(Uuid, [u8; 36])> = None;
        let mut count = itoa::Buffer::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let text = match &mut id {
                Some((last, text)) if *last == item.creator_id => text,
                slot => {
                    let mut text = [0u8; 36];
                    item.creator_id.hyphenated().encode_lower(&mut text);
                    &mut slot.insert((item.creator_id, text)).1
                }
            };
            out.extend_from_slice(b"{\"creator_id\":\"");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\",\"day\":");
            match iso_date_bytes(&item.day) {
                Some(day) => {
                    out.push(b'"');
                    out.extend_from_slice(&day);
                    out.push(b'"');
                }
                None => serde_json::to_writer(&mut *out, &item.day)?,
            }
            out.extend_from_slice(b",\"post_count\":");
            out.extend_from_slice(count.format(item.post_count).as_bytes());
            out.push(b'}');
        }
        out.push(b']');
        Ok(())
    }
}

mirror! {
    /// One creator-day of `posting-consistency`.
    pub struct ConsistencyItem from query::ConsistencyRow {
        #[schema(value_type = String, format = "uuid")]
        creator_id: Uuid,
        /// Local date, `YYYY-MM-DD`.
        #[schema(value_type = String, format = Date)]
        #[serde(serialize_with = "iso_date")]
        day: NaiveDate,
        post_count: u64,
    }
}

pub struct CreatorScatter;

impl Endpoint for CreatorScatter {
    const NAME: &'static str = "creator-scatter";
    const LONG: bool = true;
    const SUMMARY: &'static str = "Follower growth against engagement, per creator.";
    const DESCRIPTION: &'static str = "Tracked creators with at least one visible video posted in the period, sorted by \
         `creator_id`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM, TO];
    type Data = Vec<ScatterItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<ScatterItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        Ok(query::creator_scatter(rtxn, project, &params.range())?.into_iter().map(Into::into).collect())
    }

    /// serde's bytes, written directly: ids need no escaping and the integers none, so
    /// only the handle and the rate go through serde (thousands of items at 7 days), and
    /// ids are formatted on the stack.
    fn write_data(items: &Self::Data, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.reserve(items.len() * 150 + 2);
        out.push(b'[');
        let mut number = itoa::Buffer::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"creator_id\":\"");
            out.extend_from_slice(item.creator_id.hyphenated().encode_lower(&mut [0u8; 36]).as_bytes());
            out.extend_from_slice(b"\",\"tiktok_handle\":");
            serde_json::to_writer(&mut *out, &item.tiktok_handle)?;
            out.extend_from_slice(b",\"follower_delta\":");
            out.extend_from_slice(number.format(item.follower_delta).as_bytes());
            out.extend_from_slice(b",\"engagement_rate\":");
            serde_json::to_writer(&mut *out, &item.engagement_rate)?;
            out.extend_from_slice(b",\"posts_count\":");
            out.extend_from_slice(number.format(item.posts_count).as_bytes());
            out.push(b'}');
        }
        out.push(b']');
        Ok(())
    }
}

mirror! {
    /// One creator of `creator-scatter`.
    pub struct ScatterItem from query::ScatterRow {
        #[schema(value_type = String, format = "uuid")]
        creator_id: Uuid,
        tiktok_handle: String,
        follower_delta: i64,
        engagement_rate: f64,
        posts_count: u64,
    }
}

pub struct GoalCompliance;

impl Endpoint for GoalCompliance {
    const NAME: &'static str = "goal-compliance";
    const SUMMARY: &'static str = "How the creators' goals are going.";
    const DESCRIPTION: &'static str = "Visible goals of the first 50 creators (by `creator_id`) that have any, counted by \
         status as of today in the project's zone. `on_track` includes completed goals, `at_risk` \
         includes goals behind pace.";
    const PARAMS: &'static [Param] = &[PROJECT_ID];
    type Data = GoalComplianceData;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        named::<GoalComplianceData>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        _params: &Params,
        now: Instant,
    ) -> Result<Self::Data, ApiError> {
        Ok(query::goal_compliance(rtxn, project, now)?.into())
    }
}

mirror! {
    /// The answer of `goal-compliance`.
    pub struct GoalComplianceData from query::GoalCompliance {
        on_track: u64,
        at_risk: u64,
        missed: u64,
        total_goals: u64,
        creators_with_goals: u64,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use uuid::Uuid;

    use super::{ConsistencyItem, CreatorScatter, PostingConsistency, ScatterItem};
    use crate::api::endpoint::Endpoint;

    #[test]
    fn posting_consistency_writes_what_serde_writes() {
        let a = Uuid::parse_str("0f8e3c1a-5b2d-4e6f-9a7b-8c9d0e1f2a3b").unwrap();
        let b = Uuid::parse_str("ffffffff-0000-4000-8000-00000000000a").unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let items = [
            ConsistencyItem { creator_id: a, day: day(2026, 11, 20), post_count: 1 },
            ConsistencyItem { creator_id: a, day: day(2026, 11, 21), post_count: u64::MAX },
            ConsistencyItem { creator_id: b, day: day(10000, 1, 1), post_count: 0 },
            ConsistencyItem { creator_id: b, day: day(-1, 6, 15), post_count: 42 },
            ConsistencyItem { creator_id: a, day: day(5, 1, 9), post_count: 7 },
        ];
        for n in 0..=items.len() {
            let mut ours = Vec::new();
            PostingConsistency::write_data(&items[..n].iter().map(copy).collect(), &mut ours).unwrap();
            let theirs = serde_json::to_vec(&items[..n]).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn creator_scatter_writes_what_serde_writes() {
        let item = |id: &str, handle: &str, follower_delta, engagement_rate, posts_count| ScatterItem {
            creator_id: Uuid::parse_str(id).unwrap(),
            tiktok_handle: handle.into(),
            follower_delta,
            engagement_rate,
            posts_count,
        };
        let items = vec![
            item("0f8e3c1a-5b2d-4e6f-9a7b-8c9d0e1f2a3b", "plain", 12, 4.25, 3),
            item("ffffffff-0000-4000-8000-00000000000a", "quote\" back\\ tab\t ctl\u{1} é 🐐", -7, 0.0, 0),
            item("ffffffff-0000-4000-8000-00000000000b", "", i64::MIN, 1e21, u64::MAX),
            item("ffffffff-0000-4000-8000-00000000000c", "x", i64::MAX, 0.1 + 0.2, 1),
        ];
        let mut ours = Vec::new();
        CreatorScatter::write_data(&items, &mut ours).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&items).unwrap());
        let mut ours = Vec::new();
        CreatorScatter::write_data(&Vec::new(), &mut ours).unwrap();
        assert_eq!(ours, b"[]");
    }

    fn copy(i: &ConsistencyItem) -> ConsistencyItem {
        ConsistencyItem { creator_id: i.creator_id, day: i.day, post_count: i.post_count }
    }
}
