//! Campaign endpoints (contract §4.5): campaign-leaderboard, member-overlap.

use redb::ReadTransaction;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::endpoint::{Endpoint, Schemas, list_of, mirror};
use super::error::ApiError;
use super::params::{FROM_REQUIRED, Kind, PROJECT_ID, Param, Params, TO_REQUIRED};
use crate::events::Instant;
use crate::query::{self, Dimension, ProjectView};

pub struct CampaignLeaderboard;

impl Endpoint for CampaignLeaderboard {
    const NAME: &'static str = "campaign-leaderboard";
    const LONG: bool = true;
    const SUMMARY: &'static str = "Campaigns ranked by views in the period, against the prior period.";
    const DESCRIPTION: &'static str = "Every visible campaign, over its resolved videos (direct video and creator members and \
         nested campaigns, each video once) posted in the period, sorted by `total_views` \
         descending. The prior period has the same number of days and ends the day before `from`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM_REQUIRED, TO_REQUIRED];
    type Data = Vec<CampaignItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<CampaignItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let (from, to) = params.closed_range()?;
        Ok(query::campaign_leaderboard(rtxn, project, from, to)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One campaign of `campaign-leaderboard`.
    pub struct CampaignItem from query::CampaignRow {
        #[schema(format = "uuid")]
        campaign_id: String,
        name: String,
        total_views: u128,
        total_likes: u128,
        video_count: u64,
        /// Distinct creators of the videos.
        creator_count: u64,
        /// Thumbnail of the most viewed video (then smallest id); null if none.
        preview_thumbnail_url: Option<String>,
        /// Views in the prior period.
        prior_views: u128,
        /// `total_views - prior_views`.
        views_delta: i128,
        /// `views_delta / prior_views × 100`, rounded to an integer; null when `prior_views` is 0.
        views_delta_pct: Option<i64>,
    }
}

/// `dimension` values and what they count.
const DIMENSIONS: [(&str, Dimension); 2] = [("creator", Dimension::Creator), ("video", Dimension::Video)];

const DIMENSION: Param = Param {
    name: "dimension",
    kind: Kind::Choice { values: &[DIMENSIONS[0].0, DIMENSIONS[1].0], default: "creator" },
    required: false,
    doc: "Which members to list: tracked creators or visible videos.",
};

pub struct MemberOverlap;

impl Endpoint for MemberOverlap {
    const NAME: &'static str = "member-overlap";
    const SUMMARY: &'static str = "Creators or videos that are direct members of several campaigns.";
    const DESCRIPTION: &'static str = "Visible entities of the dimension that are direct members of at least one visible \
         campaign (no nesting), sorted by `campaign_count` descending, then `entity_id`; at most \
         50. Campaigns are listed by name, then id.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, DIMENSION];
    type Data = Vec<OverlapItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<OverlapItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let name = params.choice(DIMENSION.name)?;
        let dimension = DIMENSIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .ok_or_else(|| ApiError::internal(format!("dimension `{name}` has no Dimension")))?;
        Ok(query::member_overlap(rtxn, project, dimension)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One entity of `member-overlap`.
    pub struct OverlapItem from query::OverlapRow {
        #[schema(format = "uuid")]
        entity_id: String,
        /// `tiktok_handle` of a creator, `title` of a video.
        entity_label: Option<String>,
        /// `avatar_url` of a creator, `thumbnail_url` of a video.
        entity_avatar: Option<String>,
        #[schema(value_type = Vec<String>)]
        campaign_ids: Vec<std::sync::Arc<str>>,
        #[schema(value_type = Vec<String>)]
        campaign_names: Vec<std::sync::Arc<str>>,
        campaign_count: u64,
    }
}
