//! The aggregate endpoints as types, and the one list of them.
//!
//! An [`Endpoint`] carries everything about a route: its path, its parameters, the schema
//! of its `data` and the code that answers it. [`each`] is the only list of endpoints; the
//! router and the OpenAPI document both walk it, so neither can miss a route the other has.

use std::borrow::Cow;

use redb::ReadTransaction;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

use super::error::ApiError;
use super::params::{Param, Params};
use super::{AGGREGATE_BASE, AppState, campaigns, creators, videos};
use crate::events::Instant;
use crate::query::ProjectView;

/// Named schemas the OpenAPI document must hold, as `utoipa` collects them.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// One `GET` aggregate endpoint.
pub trait Endpoint: 'static {
    /// Last path segment, under [`AGGREGATE_BASE`].
    const NAME: &'static str;
    /// One line for the OpenAPI document.
    const SUMMARY: &'static str;
    /// What the answer holds, for the OpenAPI document.
    const DESCRIPTION: &'static str;
    /// Every parameter it reads; any other is ignored.
    const PARAMS: &'static [Param];
    /// Whether answers may take tens of milliseconds (a row per creator and day, or per
    /// campaign), so that they are computed behind the short ones (`lane.rs`).
    const LONG: bool = false;
    /// The `data` of the envelope.
    type Data: Serialize + Send + 'static;

    /// The schema of [`Self::Data`], registering the named schemas it refers to.
    fn data_schema(schemas: &mut Schemas) -> RefOr<Schema>;

    /// Answers for a visible project the caller may read, with valid parameters.
    fn run(
        rtxn: &ReadTransaction,
        project: &ProjectView,
        params: &Params,
        now: Instant,
    ) -> Result<Self::Data, ApiError>;

    /// Appends [`Self::Data`] as JSON. serde's form, unless an endpoint whose answers run to
    /// hundreds of thousands of rows writes the same bytes faster.
    fn write_data(data: &Self::Data, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, data)
    }
}

/// The full path of an endpoint.
pub fn path<E: Endpoint>() -> String {
    format!("{AGGREGATE_BASE}/{}", E::NAME)
}

/// Something done once per endpoint type.
pub trait Visit {
    fn visit<E: Endpoint>(&mut self);
}

/// Visits every aggregate endpoint, in the order of contract §4.
pub fn each(v: &mut impl Visit) {
    v.visit::<videos::VideoLeaderboard>();
    v.visit::<videos::PostingHeatmap>();
    v.visit::<videos::ViewDistribution>();
    v.visit::<videos::Outliers>();
    v.visit::<creators::CreatorLeaderboard>();
    v.visit::<creators::PostingConsistency>();
    v.visit::<creators::CreatorScatter>();
    v.visit::<creators::GoalCompliance>();
    v.visit::<campaigns::CampaignLeaderboard>();
    v.visit::<campaigns::MemberOverlap>();
}

/// Adds each endpoint's route.
pub struct Routes(pub axum::Router<AppState>);

impl Visit for Routes {
    fn visit<E: Endpoint>(&mut self) {
        let router = std::mem::take(&mut self.0);
        self.0 = router.route(&path::<E>(), axum::routing::get(super::handle::<E>));
    }
}

/// Collects each endpoint's path.
pub struct Paths(pub Vec<String>);

impl Visit for Paths {
    fn visit<E: Endpoint>(&mut self) {
        self.0.push(path::<E>());
    }
}

/// A reference to `T`'s named schema, registering it (and what it refers to).
pub fn named<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    let name: Cow<'static, str> = T::name();
    schemas.push((name.to_string(), T::schema()));
    T::schemas(schemas);
    Ref::from_schema_name(name).into()
}

/// An array of `T`.
pub fn list_of<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    ArrayBuilder::new().items(named::<T>(schemas)).into()
}

/// Declares an API item type that mirrors a query row field for field, and its `From`.
///
/// The handlers serialize these types, and the OpenAPI document describes them; the
/// conversion destructures the row without `..`, so a field added to, removed from or
/// renamed in the row stops the build until the API type (and so the document) follows.
macro_rules! mirror {
    (
        $(#[$meta:meta])*
        pub struct $name:ident from $row:path {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            // Every field is always present (`null` when there is no value).
            $($(#[$field_meta])* #[schema(required = true)] pub $field: $ty),*
        }

        impl From<$row> for $name {
            fn from(row: $row) -> Self {
                let $row { $($field),* } = row;
                Self { $($field),* }
            }
        }
    };
}
pub(crate) use mirror;

/// Serialises a date as `YYYY-MM-DD` from a stack buffer: chrono's `Serialize` goes through
/// `Display`, a character at a time, which showed in answers of a few hundred thousand days.
pub fn iso_date<S: serde::Serializer>(day: &chrono::NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    match iso_date_bytes(day) {
        Some(b) => s.serialize_str(std::str::from_utf8(&b).expect("ASCII digits")),
        None => s.collect_str(day), // outside four digits: chrono's own form
    }
}

/// `YYYY-MM-DD`, for a year of four digits.
pub fn iso_date_bytes(day: &chrono::NaiveDate) -> Option<[u8; 10]> {
    use chrono::Datelike;
    let (y, m, d) = (day.year(), day.month(), day.day());
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut b = *b"0000-00-00";
    let y = y as u32;
    for (i, v) in [
        (0, y / 1000),
        (1, y / 100 % 10),
        (2, y / 10 % 10),
        (3, y % 10),
        (5, m / 10),
        (6, m % 10),
        (8, d / 10),
        (9, d % 10),
    ] {
        b[i] = b'0' + v as u8;
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    #[derive(serde::Serialize)]
    struct Day(#[serde(serialize_with = "super::iso_date")] NaiveDate);

    #[test]
    fn iso_date_writes_what_chrono_writes() {
        let days = [(2026, 11, 20), (2024, 2, 29), (5, 1, 9), (0, 12, 31), (9999, 12, 31), (10000, 1, 1), (-1, 6, 15)];
        for (y, m, d) in days {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(serde_json::to_string(&Day(day)).unwrap(), serde_json::to_string(&day).unwrap(), "{day}");
        }
    }
}
