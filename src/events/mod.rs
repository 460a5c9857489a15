//! Events: the typed form of contract §2, and their last-writer-wins order.
//!
//! `decode` turns one Kafka message value or log line into an [`Event`]; everything
//! downstream works on these typed values and never sees JSON.

mod decode;

pub use decode::{DecodeError, KNOWN_TYPES, decode};

use serde::{Deserialize, Serialize};

/// A UUID as its 16 bytes. Byte order equals the order of the lowercase hyphenated
/// text, so sorting ids sorts them "as lowercase strings" (contract §4.2).
pub type Id = [u8; 16];

/// SHA-256 of an API key's text.
pub type KeyHash = [u8; 32];

/// A point in time, UTC, with nanosecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Instant {
    pub secs: i64,
    pub nanos: u32,
}

impl Instant {
    pub fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Self {
        Instant { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() }
    }

    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.secs, self.nanos).unwrap_or_default()
    }

    /// RFC 3339 in UTC with `Z`, fraction only when non-zero (contract §2.1).
    pub fn to_rfc3339(self) -> String {
        self.to_chrono().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// The last-writer-wins order of an event: `(occurred_at, event_id)` (contract §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub at: Instant,
    pub event_id: Id,
}

/// One decoded, valid event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub stamp: Stamp,
    /// `None` only for `api_key.*` events, which belong to an org.
    pub project_id: Option<Id>,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    VideoScraped(VideoSnapshot),
    VideoRemoved {
        video_id: Id,
    },
    CreatorSnapshot(CreatorSnapshot),
    CreatorRemoved {
        creator_id: Id,
    },
    GoalSet(Goal),
    GoalRemoved {
        goal_id: Id,
    },
    CampaignUpserted {
        campaign_id: Id,
        name: String,
    },
    CampaignDeleted {
        campaign_id: Id,
    },
    /// `campaign.item_added` (`member: true`) or `campaign.item_removed`.
    CampaignItem {
        campaign_id: Id,
        item_type: ItemType,
        item_id: Id,
        member: bool,
    },
    ProjectUpserted {
        org_id: Id,
        name: String,
        timezone: String,
    },
    ProjectDeleted,
    ApiKeyIssued {
        key_id: Id,
        org_id: Id,
        key_sha256: KeyHash,
        expires_at: Option<Instant>,
    },
    ApiKeyRevoked {
        key_id: Id,
    },
}

/// The fields of one `video.scraped`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSnapshot {
    pub video_id: Id,
    pub creator_id: Id,
    pub posted_at: Instant,
    /// `title`, `thumbnail_url` and `url`.
    pub texts: VideoTexts,
    pub counts: Counts,
}

/// A video's three optional texts in one allocation instead of three: most scrapes are
/// superseded in their window, and their texts are allocated on one thread and freed on
/// another. Stored as the three `Option<String>`s in a row, as before.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct VideoTexts {
    /// The texts present, one after another.
    text: Box<str>,
    /// Where each text ends in `text`, `None` when it is absent: title, thumbnail URL, URL.
    ends: [Option<u32>; 3],
}

impl VideoTexts {
    pub fn new(title: Option<&str>, thumbnail_url: Option<&str>, url: Option<&str>) -> VideoTexts {
        let parts = [title, thumbnail_url, url];
        let mut text = String::with_capacity(parts.iter().flatten().map(|t| t.len()).sum());
        let ends = parts.map(|part| {
            part.map(|t| {
                text.push_str(t);
                u32::try_from(text.len()).expect("an event's texts fit in 4 GiB")
            })
        });
        VideoTexts { text: text.into_boxed_str(), ends }
    }

    fn part(&self, i: usize) -> Option<&str> {
        let start = self.ends[..i].iter().rev().flatten().next().copied().unwrap_or(0);
        self.ends[i].map(|end| &self.text[start as usize..end as usize])
    }

    pub fn title(&self) -> Option<&str> {
        self.part(0)
    }

    pub fn thumbnail_url(&self) -> Option<&str> {
        self.part(1)
    }

    pub fn url(&self) -> Option<&str> {
        self.part(2)
    }
}

impl std::fmt::Debug for VideoTexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (f.debug_struct("VideoTexts"))
            .field("title", &self.title())
            .field("thumbnail_url", &self.thumbnail_url())
            .field("url", &self.url())
            .finish()
    }
}

impl Serialize for VideoTexts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.title(), self.thumbnail_url(), self.url()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for VideoTexts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (title, thumbnail_url, url) = <(Option<Text>, Option<Text>, Option<Text>)>::deserialize(d)?;
        Ok(VideoTexts::new(Text::as_str(&title), Text::as_str(&thumbnail_url), Text::as_str(&url)))
    }
}

/// A stored text, borrowed from the stored bytes where the format allows: reading a
/// video's register then allocates once, for its [`VideoTexts`].
struct Text<'de>(std::borrow::Cow<'de, str>);

impl Text<'_> {
    fn as_str<'a>(t: &'a Option<Text<'_>>) -> Option<&'a str> {
        t.as_ref().map(|t| &*t.0)
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(v.to_owned().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The engagement counters of a video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub saves: u64,
}

/// The fields of one `creator.snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorSnapshot {
    pub creator_id: Id,
    pub tiktok_handle: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub follower_count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoalMetric {
    Posts,
    Views,
}

/// The fields of one `creator.goal_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    pub goal_id: Id,
    pub creator_id: Id,
    pub metric: GoalMetric,
    pub target: u64,
    pub starts_on: chrono::NaiveDate,
    pub ends_on: chrono::NaiveDate,
}

/// What a campaign item points at. The discriminants are part of the storage keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ItemType {
    Creator = 0,
    Video = 1,
    Campaign = 2,
}

impl ItemType {
    pub fn from_u8(v: u8) -> Option<ItemType> {
        match v {
            0 => Some(ItemType::Creator),
            1 => Some(ItemType::Video),
            2 => Some(ItemType::Campaign),
            _ => None,
        }
    }
}

/// Lowercase hyphenated text of an id (contract §2.1: every UUID in an answer).
pub fn id_to_string(id: &Id) -> String {
    uuid::Uuid::from_bytes(*id).hyphenated().to_string()
}

/// Parses a UUID in its hyphenated form, in any letter case.
pub fn parse_id(s: &str) -> Option<Id> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    uuid::Uuid::parse_str(s).ok().map(|u| u.into_bytes())
}

/// Parses a strict `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9];
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || digits.iter().any(|&i| !b[i].is_ascii_digit()) {
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Parses an RFC 3339 timestamp with an explicit offset.
pub fn parse_timestamp(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| Instant::from_chrono(t.to_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mix of absent, empty and present texts reads back as given, and is stored
    /// byte for byte as the three `Option<String>`s it replaced.
    #[test]
    fn video_texts_keep_each_text_and_the_stored_form() {
        let choices = [None, Some(""), Some("a ✨ title"), Some("https://x/y")];
        for title in choices {
            for thumbnail_url in choices {
                for url in choices {
                    let texts = VideoTexts::new(title, thumbnail_url, url);
                    assert_eq!((texts.title(), texts.thumbnail_url(), texts.url()), (title, thumbnail_url, url));
                    let stored = bincode::serialize(&texts).unwrap();
                    let owned = |t: Option<&str>| t.map(str::to_owned);
                    assert_eq!(stored, bincode::serialize(&(owned(title), owned(thumbnail_url), owned(url))).unwrap());
                    assert_eq!(bincode::deserialize::<VideoTexts>(&stored).unwrap(), texts);
                    let json = serde_json::to_string(&texts).unwrap();
                    assert_eq!(serde_json::from_reader::<_, VideoTexts>(json.as_bytes()).unwrap(), texts, "{json}");
                }
            }
        }
    }
}
