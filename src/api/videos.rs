//! Video endpoints (contract §4.3): video-leaderboard, posting-heatmap, view-distribution,
//! outliers.

use redb::ReadTransaction;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::endpoint::{Endpoint, Schemas, list_of, mirror, named};
use super::error::ApiError;
use super::params::{FROM, FROM_REQUIRED, Kind, LIMIT, OFFSET, PROJECT_ID, Param, Params, TO, TO_REQUIRED, TZ, limit};
use crate::events::Instant;
use crate::query::{self, ProjectView, VideoOrder};

/// `order` values and their sort column.
const ORDERS: [(&str, VideoOrder); 6] = [
    ("view_count", VideoOrder::ViewCount),
    ("like_count", VideoOrder::LikeCount),
    ("comment_count", VideoOrder::CommentCount),
    ("share_count", VideoOrder::ShareCount),
    ("save_count", VideoOrder::SaveCount),
    ("posted_at", VideoOrder::PostedAt),
];

/// The names of [`ORDERS`], for the parameter declaration.
const ORDER_NAMES: [&str; ORDERS.len()] = {
    let mut names = [""; ORDERS.len()];
    let mut i = 0;
    while i < ORDERS.len() {
        names[i] = ORDERS[i].0;
        i += 1;
    }
    names
};

const ORDER: Param = Param {
    name: "order",
    kind: Kind::Choice { values: &ORDER_NAMES, default: "view_count" },
    required: false,
    doc: "Sort column, descending; ties go to the smaller video_id.",
};

pub struct VideoLeaderboard;

impl Endpoint for VideoLeaderboard {
    const NAME: &'static str = "video-leaderboard";
    const SUMMARY: &'static str = "Videos posted in the period, ranked by a count.";
    const DESCRIPTION: &'static str = "Visible videos posted in the period, sorted by `order` descending. `total_count` is the \
         number of matching videos before `limit`/`offset`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM, TO, ORDER, limit(200, 100), OFFSET];
    type Data = Vec<VideoItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<VideoItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let order = params.choice(ORDER.name)?;
        let order = ORDERS
            .iter()
            .find(|(name, _)| *name == order)
            .map(|(_, o)| *o)
            .ok_or_else(|| ApiError::internal(format!("order `{order}` has no VideoOrder")))?;
        let q = query::VideoLeaderboardParams {
            range: params.range(),
            order,
            limit: params.int(LIMIT)?,
            offset: params.int(OFFSET.name)?,
        };
        Ok(query::video_leaderboard(rtxn, project, &q)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One video of `video-leaderboard`.
    pub struct VideoItem from query::VideoRow {
        #[schema(format = "uuid")]
        video_id: String,
        title: Option<String>,
        thumbnail_url: Option<String>,
        url: Option<String>,
        view_count: u64,
        like_count: u64,
        comment_count: u64,
        share_count: u64,
        save_count: u64,
        #[schema(format = DateTime)]
        posted_at: String,
        #[schema(format = "uuid")]
        creator_id: String,
        tiktok_handle: Option<String>,
        display_name: Option<String>,
        avatar_url: Option<String>,
        /// Matching videos before `limit`/`offset` (the same in every item).
        total_count: u64,
    }
}

pub struct PostingHeatmap;

impl Endpoint for PostingHeatmap {
    const NAME: &'static str = "posting-heatmap";
    const SUMMARY: &'static str = "Posts and mean views by local day of week and hour.";
    const DESCRIPTION: &'static str = "Visible videos posted in the period, grouped by the day of week (0 = Sunday) and hour of \
         `posted_at` in the effective zone; only cells with posts, sorted by `dow` then `hour`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM_REQUIRED, TO_REQUIRED, TZ];
    type Data = Vec<HeatmapItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<HeatmapItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let q = query::HeatmapParams { range: params.range(), tz: params.tz().unwrap_or(project.tz) };
        Ok(query::posting_heatmap(rtxn, project, &q)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One cell of `posting-heatmap`.
    pub struct HeatmapItem from query::HeatmapCell {
        /// Day of week, 0 = Sunday.
        #[schema(minimum = 0, maximum = 6)]
        dow: u32,
        #[schema(minimum = 0, maximum = 23)]
        hour: u32,
        post_count: u64,
        /// Mean `view_count`, rounded to 2 decimals.
        avg_views: f64,
    }
}

const BIN_COUNT: Param = Param {
    name: "bin_count",
    kind: Kind::Int { min: 5, max: Some(50), default: 20 },
    required: false,
    doc: "Number of equal-width bins over [min, max].",
};

pub struct ViewDistribution;

impl Endpoint for ViewDistribution {
    const NAME: &'static str = "view-distribution";
    const SUMMARY: &'static str = "Percentiles and a histogram of view counts.";
    const DESCRIPTION: &'static str = "Over the `view_count` of visible videos posted in the period. Percentiles come from an \
         HDR histogram with 3 significant digits; `total`, `min` and `max` are exact. With no \
         videos, `total` is 0, every other field null and `bins` empty.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM_REQUIRED, TO_REQUIRED, BIN_COUNT];
    type Data = Distribution;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        named::<Distribution>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let bin_count = params.int(BIN_COUNT.name)?;
        let bin_count = u32::try_from(bin_count).map_err(ApiError::internal)?;
        let q = query::ViewDistributionParams { range: params.range(), bin_count };
        Ok(query::view_distribution(rtxn, project, &q)?.into())
    }
}

/// The answer of `view-distribution`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Distribution {
    /// Number of videos.
    pub total: u64,
    #[schema(required = true)]
    pub min: Option<u64>,
    #[schema(required = true)]
    pub max: Option<u64>,
    #[schema(required = true)]
    pub p50: Option<u64>,
    #[schema(required = true)]
    pub p75: Option<u64>,
    #[schema(required = true)]
    pub p90: Option<u64>,
    #[schema(required = true)]
    pub p99: Option<u64>,
    /// Exactly `bin_count` bins, or none when there are no videos.
    pub bins: Vec<BinItem>,
}

impl From<query::ViewDistribution> for Distribution {
    fn from(row: query::ViewDistribution) -> Self {
        let query::ViewDistribution { total, min, max, p50, p75, p90, p99, bins } = row;
        let bins = bins.into_iter().map(Into::into).collect();
        Distribution { total, min, max, p50, p75, p90, p99, bins }
    }
}

mirror! {
    /// One bin of `view-distribution`.
    pub struct BinItem from query::Bin {
        bin_index: u32,
        bin_lower: u64,
        bin_upper: u64,
        video_count: u64,
    }
}

const MIN_X_MULTIPLE: Param = Param {
    name: "min_x_multiple",
    kind: Kind::Positive { max: 1000.0, default: 1.5 },
    required: false,
    doc: "Least ratio of a video's views to its creator's median views.",
};

pub struct Outliers;

impl Endpoint for Outliers {
    const NAME: &'static str = "outliers";
    const SUMMARY: &'static str = "Videos far above their creator's median views.";
    const DESCRIPTION: &'static str = "Visible videos posted in the period whose creator's median views (over all its visible \
         videos) is above 0 and whose `view_count / median_views` is at least `min_x_multiple`; \
         sorted by that ratio, then `view_count`, descending, then `video_id`.";
    const PARAMS: &'static [Param] = &[PROJECT_ID, FROM, TO, MIN_X_MULTIPLE, limit(100, 50)];
    type Data = Vec<OutlierItem>;

    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema> {
        list_of::<OutlierItem>(schemas)
    }

    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        _now: Instant,
    ) -> Result<Self::Data, ApiError> {
        let q = query::OutliersParams {
            range: params.range(),
            min_x_multiple: params.number(MIN_X_MULTIPLE.name)?,
            limit: params.int(LIMIT)?,
        };
        Ok(query::outliers(rtxn, project, &q)?.into_iter().map(Into::into).collect())
    }
}

mirror! {
    /// One video of `outliers`.
    pub struct OutlierItem from query::OutlierRow {
        #[schema(format = "uuid")]
        video_id: String,
        #[schema(format = "uuid")]
        creator_id: String,
        view_count: u64,
        /// Median `view_count` of all the creator's visible videos.
        median_views: f64,
        /// `view_count / median_views`, rounded to 2 decimals.
        x_multiple: f64,
        #[schema(format = DateTime)]
        posted_at: String,
        title: Option<String>,
        thumbnail_url: Option<String>,
        url: Option<String>,
        tiktok_handle: Option<String>,
        display_name: Option<String>,
        avatar_url: Option<String>,
    }
}
