//! Every redb table, in one place, with its key layout.
//!
//! Ids are 16-byte arrays (`P` a project, `Id` anything else). Orders that read
//! "descending" are stored ascending on the complement (`!value`), so a forward scan yields
//! them in answer order with ties going to the smaller id.

use std::cmp::Ordering;

use redb::{TableDefinition, TypeName, WriteTransaction};

use super::videos::Sums;

type P = IdKey;
type Id = IdKey;
type KeyHash = HashKey;
type Bytes = &'static [u8];
/// (posts, views, likes, comments, shares) of some set of visible videos.
pub type SumsRow = (u64, u128, u128, u128, u128);
/// A posted_at instant as (seconds, nanoseconds).
pub type At = (i64, u32);
/// A [`CreatorMedian`] as stored: (n, lower, lower id, upper, upper id, top, top id).
pub type MedianRow = (u64, u64, Id, u64, Id, u64, Id);
/// A [`MedianRow`] as read and written.
pub type MedianValue = (u64, u64, crate::events::Id, u64, crate::events::Id, u64, crate::events::Id);

/// Where a creator's median and best video sit in its `creator_views` keys `(!views,
/// video)`, kept by ingestion so that outliers reads a creator's median and first
/// candidate from one row instead of two B-tree descents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatorMedian {
    /// Visible videos of the creator.
    pub n: u64,
    /// The lower-middle key.
    pub lower: (u64, crate::events::Id),
    /// The key right after `lower` (the upper middle when `n` is even); `lower` when `n` is 1.
    pub upper: (u64, crate::events::Id),
    /// The first key: the video with most views.
    pub top: (u64, crate::events::Id),
}

impl CreatorMedian {
    /// The median view count: the mean of the two middle ones for an even count.
    pub fn median(&self) -> f64 {
        let a = !self.lower.0;
        if self.n % 2 == 1 {
            return a as f64;
        }
        (u128::from(a) + u128::from(!self.upper.0)) as f64 / 2.0
    }

    pub fn from_row((n, l, li, u, ui, t, ti): MedianValue) -> CreatorMedian {
        CreatorMedian { n, lower: (l, li), upper: (u, ui), top: (t, ti) }
    }

    pub fn row(&self) -> MedianValue {
        (self.n, self.lower.0, self.lower.1, self.upper.0, self.upper.1, self.top.0, self.top.1)
    }
}

/// Fixed-size byte strings as redb keys and values: compared with one `memcmp` and
/// encoded without allocating. (redb's own `[u8; N]` compares byte by byte through the
/// generic element path and allocates a `Vec` per encoding, which dominated ingest.)
macro_rules! byte_key {
    ($(#[$doc:meta])* $name:ident, $n:literal, $type_name:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}

        impl redb::Value for $name {
            type SelfType<'a> = [u8; $n];
            type AsBytes<'a> = [u8; $n];

            fn fixed_width() -> Option<usize> {
                Some($n)
            }

            fn from_bytes<'a>(data: &'a [u8]) -> [u8; $n]
            where
                Self: 'a,
            {
                data.try_into().expect(concat!($n, "-byte key"))
            }

            fn as_bytes<'a, 'b: 'a>(value: &'a [u8; $n]) -> [u8; $n]
            where
                Self: 'b,
            {
                *value
            }

            fn type_name() -> TypeName {
                TypeName::new($type_name)
            }
        }

        impl redb::Key for $name {
            fn compare(a: &[u8], b: &[u8]) -> Ordering {
                a.cmp(b)
            }
        }
    };
}

byte_key!(
    /// A UUID's 16 bytes (`events::Id`); byte order is the order of its lowercase text.
    IdKey, 16, "goatview::Id"
);
byte_key!(
    /// A SHA-256 digest (`events::KeyHash`).
    HashKey, 32, "goatview::KeyHash"
);

/// A fixed-size part of an entry of a packed row ([`entries`]), little-endian.
pub trait Packed: Sized {
    /// Bytes it takes in a row.
    const LEN: usize;
    fn put(&self, row: &mut Vec<u8>);
    /// Reads it from exactly [`Self::LEN`] bytes.
    fn get(bytes: &[u8]) -> Self;
}

impl Packed for crate::events::Id {
    const LEN: usize = 16;
    fn put(&self, row: &mut Vec<u8>) {
        row.extend_from_slice(self);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes.try_into().expect("16 bytes")
    }
}

/// Counts and positions, little-endian.
macro_rules! packed_int {
    ($($t:ty),*) => {$(
        impl Packed for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            fn put(&self, row: &mut Vec<u8>) {
                row.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("LEN bytes"))
            }
        }
    )*};
}
packed_int!(u16, u32);

/// Posts as a `u64`, then views, likes, comments and shares as `u128`s.
impl Packed for Sums {
    const LEN: usize = 8 + 4 * 16;
    fn put(&self, row: &mut Vec<u8>) {
        row.extend_from_slice(&self.posts.to_le_bytes());
        for n in [self.views, self.likes, self.comments, self.shares] {
            row.extend_from_slice(&n.to_le_bytes());
        }
    }
    fn get(bytes: &[u8]) -> Self {
        let wide = |i: usize| u128::from_le_bytes(bytes[8 + 16 * i..24 + 16 * i].try_into().expect("16 bytes"));
        Sums {
            posts: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            views: wide(0),
            likes: wide(1),
            comments: wide(2),
            shares: wide(3),
        }
    }
}

/// The (key, value) entries of a packed row, in key order: one row per unit in place of a
/// B-tree row per key, for units that hold a few keys each.
pub fn entries<K: Packed, V: Packed>(row: &[u8]) -> impl Iterator<Item = (K, V)> + '_ {
    row.chunks_exact(K::LEN + V::LEN).map(|e| {
        let (k, v) = e.split_at(K::LEN);
        (K::get(k), V::get(v))
    })
}

/// The (creator, videos) entries of a [`defs::creator_posts`] or [`defs::campaign_creators`]
/// row, in creator id order: 20 bytes each.
pub fn creator_count_entries(row: &[u8]) -> impl Iterator<Item = (crate::events::Id, u32)> + '_ {
    entries(row)
}

/// The (HDR cell position, videos) entries of a [`defs::hist_cells`] row, in cell order: a
/// cell's position in value order (`hist_cell_index`, under 2^16), 6 bytes each.
pub fn hist_entries(row: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    entries(row)
}

/// The (creator, sums) entries of a [`defs::creator_rows`] row, in creator id order: 88
/// bytes each.
pub fn creator_sums_entries(row: &[u8]) -> impl Iterator<Item = (crate::events::Id, Sums)> + '_ {
    entries(row)
}

/// The campaign ids of an [`defs::overlap_campaigns`] (or `overlap_rank`) row.
pub fn overlap_entries(row: &[u8]) -> impl Iterator<Item = crate::events::Id> + '_ {
    row.chunks_exact(crate::events::Id::LEN).map(crate::events::Id::get)
}

/// One point of the follower history, as kept in a [`defs::follower_quarters`] row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerPoint {
    pub at: crate::events::Instant,
    pub creator: crate::events::Id,
    pub follower_count: u64,
}

/// Bytes of a point in a row: seconds into the quarter (`u16`), nanoseconds (`u32`), the
/// creator's id and the count (`u64`), little-endian.
const FOLLOWER_POINT: usize = 30;

impl FollowerPoint {
    /// Order in a row: time, then creator.
    pub fn key(&self) -> (crate::events::Instant, crate::events::Id) {
        (self.at, self.creator)
    }

    /// The points of the row of quarter `q`, in time order.
    pub fn decode_row(q: i64, row: &[u8]) -> impl Iterator<Item = FollowerPoint> + '_ {
        let start = q * crate::time::QUARTER_SECS;
        row.chunks_exact(FOLLOWER_POINT).map(move |e| {
            let secs = start + i64::from(u16::from_le_bytes([e[0], e[1]]));
            let nanos = u32::from_le_bytes(e[2..6].try_into().expect("4 bytes"));
            FollowerPoint {
                at: crate::events::Instant { secs, nanos },
                creator: e[6..22].try_into().expect("16 bytes"),
                follower_count: u64::from_le_bytes(e[22..30].try_into().expect("8 bytes")),
            }
        })
    }

    /// The row of points all in one quarter, given in time order.
    pub fn encode_row(points: &[FollowerPoint]) -> Vec<u8> {
        let mut row = Vec::with_capacity(points.len() * FOLLOWER_POINT);
        for p in points {
            let into_quarter = p.at.secs.rem_euclid(crate::time::QUARTER_SECS) as u16;
            row.extend_from_slice(&into_quarter.to_le_bytes());
            row.extend_from_slice(&p.at.nanos.to_le_bytes());
            row.extend_from_slice(&p.creator);
            row.extend_from_slice(&p.follower_count.to_le_bytes());
        }
        row
    }
}

macro_rules! tables {
    (
        $($(#[$doc:meta])* $field:ident: $K:ty => $V:ty;)*
        @moves {
            $($(#[$wdoc:meta])* $wfield:ident: $WK:ty => $WV:ty;)*
        }
        @campaign {
            $($(#[$cdoc:meta])* $cfield:ident: $CK:ty => $CV:ty;)*
        }
    ) => {
        /// Table definitions, named after their field in [`Tables`], [`MoveTables`] or
        /// [`CampaignTables`].
        pub mod defs {
            use super::*;
            $($(#[$doc])* #[allow(non_upper_case_globals)]
            pub const $field: TableDefinition<'static, $K, $V> = TableDefinition::new(stringify!($field));)*
            $($(#[$wdoc])* #[allow(non_upper_case_globals)]
            pub const $wfield: TableDefinition<'static, $WK, $WV> = TableDefinition::new(stringify!($wfield));)*
            $($(#[$cdoc])* #[allow(non_upper_case_globals)]
            pub const $cfield: TableDefinition<'static, $CK, $CV> = TableDefinition::new(stringify!($cfield));)*
        }

        /// All tables, opened once per write transaction.
        pub struct Tables<'txn> {
            $(pub $field: redb::Table<'txn, $K, $V>,)*
            /// Taken out while other threads write them (`Store::write`).
            pub write_only: Option<WriteOnlyTables<'txn>>,
            /// Aggregate rows changed by this transaction, written by [`Tables::flush`].
            pub pending: super::videos::Pending,
        }

        /// The tables that applying events writes and never reads: a stage's rows of them
        /// can be written while the next stage is applied, and the two parts side by side.
        pub struct WriteOnlyTables<'txn> {
            pub moves: MoveTables<'txn>,
            pub campaign: CampaignTables<'txn>,
        }

        /// The write-only tables that `Move`s add up into: all but the campaign units'.
        pub struct MoveTables<'txn> {
            $(pub $wfield: redb::Table<'txn, $WK, $WV>,)*
        }

        /// The campaign units' tables.
        pub struct CampaignTables<'txn> {
            $(pub $cfield: redb::Table<'txn, $CK, $CV>,)*
            /// Units whose top list emptied while they held videos, rebuilt once the
            /// transaction's rows are all written (`Tables::rebuild_top_lists`).
            pub emptied_lists: super::videos::EmptiedLists,
        }

        impl<'txn> Tables<'txn> {
            pub fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::TableError> {
                Ok(Tables {
                    $($field: txn.open_table(defs::$field)?,)*
                    write_only: Some(WriteOnlyTables {
                        moves: MoveTables { $($wfield: txn.open_table(defs::$wfield)?,)* },
                        campaign: CampaignTables {
                            $($cfield: txn.open_table(defs::$cfield)?,)*
                            emptied_lists: Default::default(),
                        },
                    }),
                    pending: Default::default(),
                })
            }
        }

        /// Every row of every state table (not ingestion bookkeeping), as text: two stores
        /// hold the same state exactly when their dumps are equal.
        pub fn dump_state(rtxn: &redb::ReadTransaction) -> Result<Vec<String>, super::StateError> {
            use redb::ReadableTable;
            let mut out = Vec::new();
            $(dump_rows(rtxn, stringify!($wfield), defs::$wfield, &mut out)?;)*
            $(
                if stringify!($cfield) != "campaign_best" {
                    dump_rows(rtxn, stringify!($cfield), defs::$cfield, &mut out)?;
                }
            )*
            $(
                if !BOOKKEEPING.contains(&stringify!($field)) {
                    dump_rows(rtxn, stringify!($field), defs::$field, &mut out)?;
                }
            )*
            // A top list's length depends on the order events came in; its head does not.
            for e in rtxn.open_table(defs::campaign_best)?.iter()? {
                let (k, v) = e?;
                let head = super::top::TopList::decode(v.value()).and_then(|l| l.first());
                out.push(format!("campaign_best {:?} {:?}", k.value(), head));
            }
            Ok(out)
        }

        /// Size of every table: what the state file is made of.
        pub fn table_stats(rtxn: &redb::ReadTransaction) -> Result<Vec<TableSize>, super::StateError> {
            Ok(vec![
                $(table_size(rtxn, stringify!($field), defs::$field)?,)*
                $(table_size(rtxn, stringify!($wfield), defs::$wfield)?,)*
                $(table_size(rtxn, stringify!($cfield), defs::$cfield)?,)*
            ])
        }
    };
}

/// Every row of one table as text, a line `name key value` each.
fn dump_rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    rtxn: &redb::ReadTransaction,
    name: &str,
    def: TableDefinition<K, V>,
    out: &mut Vec<String>,
) -> Result<(), super::StateError> {
    use redb::ReadableTable;
    for e in rtxn.open_table(def)?.iter()? {
        let (k, v) = e?;
        out.push(format!("{name} {:?} {:?}", k.value(), v.value()));
    }
    Ok(())
}

fn table_size<K: redb::Key + 'static, V: redb::Value + 'static>(
    rtxn: &redb::ReadTransaction,
    name: &'static str,
    def: TableDefinition<K, V>,
) -> Result<TableSize, super::StateError> {
    use redb::ReadableTableMetadata;
    let t = rtxn.open_table(def)?;
    let s = t.stats()?;
    Ok(TableSize {
        name,
        rows: t.len()?,
        stored_bytes: s.stored_bytes(),
        // Whatever the page size: what the pages hold, used or not.
        page_bytes: s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes(),
    })
}

/// One table's share of the state file.
#[derive(Clone, Debug)]
pub struct TableSize {
    pub name: &'static str,
    pub rows: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of the pages holding them.
    pub page_bytes: u64,
}

/// Tables that record how state was ingested rather than what it is.
const BOOKKEEPING: [&str; 3] = ["positions", "dead_letters", "counters"];

tables! {
    // ---- Registers (contract §2.3): bincode `Reg<T>` values -------------------------
    /// (project, video) → Reg<VideoSnapshot>
    videos: (P, Id) => Bytes;
    /// (project, creator) → Reg<CreatorSnapshot>
    creators: (P, Id) => Bytes;
    /// (project, creator, occurred_at) → Reg<u64 follower_count>
    followers: (P, Id, i64, u32) => Bytes;
    /// (project, goal) → Reg<Goal>
    goals: (P, Id) => Bytes;
    /// (project, campaign) → Reg<String name>
    campaigns: (P, Id) => Bytes;
    /// (project, campaign, item_type, item) → Reg<()> (present = member)
    memberships: (P, Id, u8, Id) => Bytes;
    /// project → Reg<ProjectInfo>
    projects: P => Bytes;
    /// key_id → Reg<KeyInfo>
    api_keys: Id => Bytes;

    // ---- Indexes over registers -----------------------------------------------------
    /// (sha256, key_id) of every present API key.
    key_hashes: (KeyHash, Id) => ();
    /// (project, creator) → `tiktok_handle` of every tracked creator: handles listed in id
    /// order without decoding whole profiles.
    creator_handles: (P, Id) => &'static str;
    /// (project, creator, video) of every present video record, tracked creator or not.
    videos_by_creator: (P, Id, Id) => ();
    /// (project, item_type, item, campaign) for every membership that is currently in.
    members_by_item: (P, u8, Id, Id) => ();
    /// (project, UTC quarter) → the follower history points in it, in time order
    /// ([`FollowerPoint`]): for reading every creator's change over a short period in one
    /// scan, of a row per quarter rather than one per point.
    follower_quarters: (P, i64) => Bytes;
    /// (project, UTC day unit) → follower history points in it: how long that scan would be.
    follower_days: (P, i64) => u64;
    /// project → greatest occurred_at applied.
    project_meta: P => At;

    // ---- Aggregates over visible videos ---------------------------------------------
    /// (project, posted_at, video) of visible videos → their (creator, views, likes,
    /// comments, shares, saves).
    by_posted: (P, i64, u32, Id) => (Id, u64, u64, u64, u64, u64);
    /// (project, creator, !views, video) of visible videos → posted_at.
    creator_views: (P, Id, u64, Id) => At;
    /// (project, creator) → a [`CreatorMedian`]: the number of visible videos and three
    /// `creator_views` keys (!views, video): the lower middle, the one after it, the first.
    creator_median: (P, Id) => MedianRow;
    /// (project, creator, goal) of every present goal → bincode `GoalProgress`: its
    /// definition, window and progress over the creator's visible videos.
    goal_progress: (P, Id, Id) => Bytes;
    /// (project, item_type, entity) → the visible campaigns it is a direct member of, 16-byte
    /// ids in id order ([`overlap_entries`]); no row for none.
    overlap_campaigns: (P, u8, Id) => Bytes;
    /// (project, item_type, !count, entity) for visible entities with count > 0 → their
    /// `overlap_campaigns` row: member-overlap reads each entity's campaigns with its rank.
    overlap_rank: (P, u8, u64, Id) => Bytes;

    // ---- Ingestion bookkeeping --------------------------------------------------------
    /// source → position (bincode `SourcePosition`), written with the state it produced.
    positions: &'static str => Bytes;
    /// (source, position) → bincode `DeadLetter`.
    dead_letters: (&'static str, u64) => Bytes;
    /// counter name → value.
    counters: &'static str => u64;

    // ---- Aggregates that applying events never reads --------------------------------
    @moves {
        /// (project, level, unit) → sums.
        project_buckets: (P, u8, i64) => SumsRow;
        /// (project, level, unit, creator) → sums; day, week and block levels only.
        creator_buckets: (P, u8, i64, Id) => SumsRow;
        /// (project, level, unit) → every creator with visible videos in the unit and their
        /// sums ([`creator_sums_entries`]); quarter and hour levels only, where a creator
        /// rarely has two videos in a unit: a row per unit instead of one per creator.
        creator_rows: (P, u8, i64) => Bytes;
        /// (project, level, unit) → every creator with posts in the unit and their count
        /// ([`creator_count_entries`]); quarter and hour levels only. The posts of
        /// `creator_rows` without the other sums: posting-consistency reads a creator-day per
        /// entry of 20 bytes instead of 88.
        creator_posts: (P, u8, i64) => Bytes;
        /// (project, metric, !value, video) of visible videos → posted_at.
        by_metric: (P, u8, u64, Id) => At;
        /// (project, level, unit) → the HDR cells of its visible videos and how many
        /// ([`hist_entries`], 6 bytes a cell). One row per unit: a fine unit holds a few dozen
        /// videos, nearly each in a cell of its own, and a coarse one thousands of cells, which
        /// a batch of scrapes would otherwise change all over the table's pages.
        hist_cells: (P, u8, i64) => Bytes;
    }
    @campaign {
        /// (project, root campaign, level, unit) → sums over its resolved videos; day and
        /// 32-day levels only (`Level::CAMPAIGN`), as are the two tables below. Read and
        /// written where the campaign units are added up, never while applying.
        campaign_buckets: (P, Id, u8, i64) => SumsRow;
        /// (project, root campaign, level, unit) → every creator of its resolved videos and
        /// how many ([`creator_count_entries`]): a campaign's distinct creators over a period
        /// from a row per unit (11 creators on average at scale L) rather than a B-tree row
        /// each.
        campaign_creators: (P, Id, u8, i64) => Bytes;
        /// (project, root campaign, level, unit) → the first few of its resolved videos by
        /// views (a `TopList`): enough to know the one with most views.
        campaign_best: (P, Id, u8, i64) => Bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed row reads back the entries written into it, the widest values included.
    #[test]
    fn packed_entries_read_back_what_was_put() {
        let sums = [
            Sums { posts: 1, views: 7, likes: 0, comments: 3, shares: 2 },
            Sums { posts: u64::MAX, views: u128::MAX, likes: u128::MAX - 1, comments: 1 << 64, shares: 0 },
        ];
        let ids = [[0u8; 16], [0xff; 16]];
        let mut row = Vec::new();
        for (id, s) in ids.iter().zip(&sums) {
            id.put(&mut row);
            s.put(&mut row);
        }
        assert_eq!(row.len(), 2 * 88);
        let back: Vec<_> = creator_sums_entries(&row).collect();
        assert_eq!(back, vec![(ids[0], sums[0]), (ids[1], sums[1])]);

        let mut row = Vec::new();
        for (cell, n) in [(0u16, 1u32), (513, 70_000), (u16::MAX, u32::MAX)] {
            cell.put(&mut row);
            n.put(&mut row);
        }
        let back: Vec<_> = hist_entries(&row).collect();
        assert_eq!(back, vec![(0, 1), (513, 70_000), (u16::MAX, u32::MAX)]);
    }
}
