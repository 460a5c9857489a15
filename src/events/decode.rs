//! Bytes → [`Event`], with a precise reason for every rejection.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Body, Counts, CreatorSnapshot, Event, Goal, GoalMetric, Id, Instant, ItemType, KeyHash, Stamp, VideoSnapshot,
    VideoTexts, parse_date, parse_id, parse_timestamp,
};

/// Why a message is a dead letter. The text names the field and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// The text is not one JSON value.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// The JSON value is not an object.
    #[error("event is not a JSON object")]
    NotObject,
    /// `type` names no known event type.
    #[error("field `type`: unknown event type {0:?}")]
    UnknownType(String),
    /// A required field is absent or null.
    #[error("field `{0}`: required")]
    Missing(&'static str),
    /// A field has the wrong JSON type or an invalid value.
    #[error("field `{field}`: {problem}")]
    Invalid { field: &'static str, problem: String },
}

const MAX_COUNT: u64 = i64::MAX as u64;

/// Every `type` of contract §2.2.
pub const KNOWN_TYPES: [&str; 14] = [
    "video.scraped",
    "video.removed",
    "creator.snapshot",
    "creator.removed",
    "creator.goal_set",
    "creator.goal_removed",
    "campaign.upserted",
    "campaign.deleted",
    "campaign.item_added",
    "campaign.item_removed",
    "project.upserted",
    "project.deleted",
    "api_key.issued",
    "api_key.revoked",
];

/// Decodes one message value or log line (contract §2.1, §2.2).
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    match scrape(text) {
        Some(ev) => Ok(ev),
        None => decode_text(text),
    }
}

/// A well-formed `video.scraped`, the bulk of every log, read straight into typed fields
/// without building a JSON tree (which took most of the decoding time). It answers only
/// when sure: anything unusual (another type, a null, a float, a duplicate key, an
/// invalid id...) gives `None`, and [`decode_text`] decides, with its reason. So the two
/// accept the same lines and give the same events (checked by a differential test).
fn scrape(text: &str) -> Option<Event> {
    #[derive(Deserialize)]
    struct Scrape<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        event_id: Cow<'a, str>,
        #[serde(borrow)]
        occurred_at: Cow<'a, str>,
        #[serde(borrow)]
        project_id: Cow<'a, str>,
        #[serde(borrow)]
        video_id: Cow<'a, str>,
        #[serde(borrow)]
        creator_id: Cow<'a, str>,
        #[serde(borrow)]
        posted_at: Cow<'a, str>,
        #[serde(borrow)]
        title: Option<Cow<'a, str>>,
        #[serde(borrow)]
        thumbnail_url: Option<Cow<'a, str>>,
        #[serde(borrow)]
        url: Option<Cow<'a, str>>,
        view_count: u64,
        like_count: u64,
        comment_count: u64,
        share_count: u64,
        save_count: u64,
    }
    // A derived struct would also read a JSON array; an event is an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let l: Scrape = serde_json::from_str(text).ok()?;
    if l.kind != "video.scraped" {
        return None;
    }
    let count = |c: u64| (c <= MAX_COUNT).then_some(c);
    let counts = Counts {
        views: count(l.view_count)?,
        likes: count(l.like_count)?,
        comments: count(l.comment_count)?,
        shares: count(l.share_count)?,
        saves: count(l.save_count)?,
    };
    let stamp = Stamp { at: parse_timestamp(&l.occurred_at)?, event_id: parse_id(&l.event_id)? };
    let video = VideoSnapshot {
        video_id: parse_id(&l.video_id)?,
        creator_id: parse_id(&l.creator_id)?,
        posted_at: parse_timestamp(&l.posted_at)?,
        texts: VideoTexts::new(l.title.as_deref(), l.thumbnail_url.as_deref(), l.url.as_deref()),
        counts,
    };
    Some(Event { stamp, project_id: Some(parse_id(&l.project_id)?), body: Body::VideoScraped(video) })
}

/// [`decode`] of any event, through a JSON tree: every type, every reason.
fn decode_text(text: &str) -> Result<Event, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else { return Err(DecodeError::NotObject) };
    let f = Fields(&obj);
    let kind = f.string("type")?;
    if !KNOWN_TYPES.contains(&kind) {
        return Err(DecodeError::UnknownType(kind.to_owned()));
    }
    let event_id = f.id("event_id")?;
    let at = f.timestamp("occurred_at")?;
    let stamp = Stamp { at, event_id };
    let needs_project = !kind.starts_with("api_key.");
    let body = match kind {
        "video.scraped" => Body::VideoScraped(VideoSnapshot {
            video_id: f.id("video_id")?,
            creator_id: f.id("creator_id")?,
            posted_at: f.timestamp("posted_at")?,
            texts: VideoTexts::new(f.opt_str("title")?, f.opt_str("thumbnail_url")?, f.opt_str("url")?),
            counts: Counts {
                views: f.count("view_count")?,
                likes: f.count("like_count")?,
                comments: f.count("comment_count")?,
                shares: f.count("share_count")?,
                saves: f.count("save_count")?,
            },
        }),
        "video.removed" => Body::VideoRemoved { video_id: f.id("video_id")? },
        "creator.snapshot" => Body::CreatorSnapshot(CreatorSnapshot {
            creator_id: f.id("creator_id")?,
            tiktok_handle: f.non_empty("tiktok_handle")?,
            display_name: f.opt_string("display_name")?,
            avatar_url: f.opt_string("avatar_url")?,
            follower_count: f.count("follower_count")?,
        }),
        "creator.removed" => Body::CreatorRemoved { creator_id: f.id("creator_id")? },
        "creator.goal_set" => {
            let metric = match f.string("metric")? {
                "posts" => GoalMetric::Posts,
                "views" => GoalMetric::Views,
                other => return Err(invalid("metric", format!("must be \"posts\" or \"views\", got {other:?}"))),
            };
            let target = f.count("target")?;
            if target < 1 {
                return Err(invalid("target", "must be at least 1".into()));
            }
            let starts_on = f.date("starts_on")?;
            let ends_on = f.date("ends_on")?;
            if ends_on < starts_on {
                return Err(invalid("ends_on", "must not be before starts_on".into()));
            }
            Body::GoalSet(Goal {
                goal_id: f.id("goal_id")?,
                creator_id: f.id("creator_id")?,
                metric,
                target,
                starts_on,
                ends_on,
            })
        }
        "creator.goal_removed" => Body::GoalRemoved { goal_id: f.id("goal_id")? },
        "campaign.upserted" => Body::CampaignUpserted { campaign_id: f.id("campaign_id")?, name: f.non_empty("name")? },
        "campaign.deleted" => Body::CampaignDeleted { campaign_id: f.id("campaign_id")? },
        "campaign.item_added" | "campaign.item_removed" => {
            let item_type = match f.string("item_type")? {
                "creator" => ItemType::Creator,
                "video" => ItemType::Video,
                "campaign" => ItemType::Campaign,
                other => {
                    return Err(invalid(
                        "item_type",
                        format!("must be \"creator\", \"video\" or \"campaign\", got {other:?}"),
                    ));
                }
            };
            Body::CampaignItem {
                campaign_id: f.id("campaign_id")?,
                item_type,
                item_id: f.id("item_id")?,
                member: kind == "campaign.item_added",
            }
        }
        "project.upserted" => {
            let timezone = f.string("timezone")?;
            let tz: chrono_tz::Tz =
                timezone.parse().map_err(|_| invalid("timezone", format!("unknown IANA time zone {timezone:?}")))?;
            Body::ProjectUpserted {
                org_id: f.id("org_id")?,
                name: f.string("name")?.to_owned(),
                timezone: tz.name().to_owned(),
            }
        }
        "project.deleted" => Body::ProjectDeleted,
        "api_key.issued" => Body::ApiKeyIssued {
            key_id: f.id("key_id")?,
            org_id: f.id("org_id")?,
            key_sha256: f.sha256("key_sha256")?,
            expires_at: match f.get("expires_at") {
                None => None,
                Some(_) => Some(f.timestamp("expires_at")?),
            },
        },
        "api_key.revoked" => Body::ApiKeyRevoked { key_id: f.id("key_id")? },
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    let project_id = if needs_project { Some(f.id("project_id")?) } else { None };
    Ok(Event { stamp, project_id, body })
}

fn invalid(field: &'static str, problem: String) -> DecodeError {
    DecodeError::Invalid { field, problem }
}

/// Typed access to an event's fields; `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, field: &'static str) -> Option<&'a Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &'static str) -> Result<&'a Value, DecodeError> {
        self.get(field).ok_or(DecodeError::Missing(field))
    }

    fn string(&self, field: &'static str) -> Result<&'a str, DecodeError> {
        self.required(field)?.as_str().ok_or_else(|| invalid(field, "must be a string".into()))
    }

    fn non_empty(&self, field: &'static str) -> Result<String, DecodeError> {
        let s = self.string(field)?;
        if s.is_empty() {
            return Err(invalid(field, "must not be empty".into()));
        }
        Ok(s.to_owned())
    }

    fn opt_str(&self, field: &'static str) -> Result<Option<&'a str>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| invalid(field, "must be a string or null".into())),
        }
    }

    fn opt_string(&self, field: &'static str) -> Result<Option<String>, DecodeError> {
        Ok(self.opt_str(field)?.map(str::to_owned))
    }

    fn id(&self, field: &'static str) -> Result<Id, DecodeError> {
        let s = self.string(field)?;
        parse_id(s).ok_or_else(|| invalid(field, format!("must be a hyphenated UUID, got {s:?}")))
    }

    fn timestamp(&self, field: &'static str) -> Result<Instant, DecodeError> {
        let s = self.string(field)?;
        parse_timestamp(s)
            .ok_or_else(|| invalid(field, format!("must be an RFC 3339 timestamp with offset, got {s:?}")))
    }

    fn date(&self, field: &'static str) -> Result<chrono::NaiveDate, DecodeError> {
        let s = self.string(field)?;
        parse_date(s).ok_or_else(|| invalid(field, format!("must be a YYYY-MM-DD date, got {s:?}")))
    }

    fn count(&self, field: &'static str) -> Result<u64, DecodeError> {
        let v = self.required(field)?;
        let Value::Number(n) = v else {
            return Err(invalid(field, "must be an integer".into()));
        };
        // serde_json keeps `1.0` and `1e3` as floats, so `as_u64` rejects them.
        match n.as_u64() {
            Some(c) if c <= MAX_COUNT => Ok(c),
            _ => Err(invalid(field, format!("must be an integer from 0 to 2^63-1, got {n}"))),
        }
    }

    fn sha256(&self, field: &'static str) -> Result<KeyHash, DecodeError> {
        let s = self.string(field)?;
        let bad = || invalid(field, "must be 64 lowercase hex digits".into());
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "11111111-1111-1111-1111-111111111111";
    const E: &str = "22222222-2222-2222-2222-222222222222";

    fn scraped(extra: &str) -> String {
        format!(
            r#"{{"type":"video.scraped","event_id":"{E}","project_id":"{P}","occurred_at":"2026-04-02T10:00:00+02:00",
            "video_id":"{P}","creator_id":"{P}","posted_at":"2026-04-01T12:00:00Z",
            "view_count":1,"like_count":2,"comment_count":3,"share_count":4{extra}}}"#
        )
    }

    #[test]
    fn decodes_a_scrape_and_normalises_time() {
        let ev = decode(scraped(r#","save_count":5,"extra":true"#).as_bytes()).unwrap();
        assert_eq!(ev.stamp.at.to_rfc3339(), "2026-04-02T08:00:00Z");
        let Body::VideoScraped(v) = ev.body else { panic!() };
        assert_eq!(v.counts.saves, 5);
        assert_eq!(v.texts.title(), None);
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let err = decode(scraped("").as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "field `save_count`: required");
        let err = decode(scraped(r#","save_count":1.0"#).as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("field `save_count`: must be an integer"), "{err}");
        let err = decode(scraped(r#","save_count":9223372036854775808"#).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("save_count"));
        let err = decode(b"\xff").unwrap_err();
        assert!(matches!(err, DecodeError::NotUtf8(0)));
        let err = decode(br#"{"type":"nope","event_id":"x"}"#).unwrap_err();
        assert_eq!(err.to_string(), r#"field `type`: unknown event type "nope""#);
        let err = decode(br#"{"type":"video.removed","event_id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("event_id"), "{err}");
    }

    /// The fast path for scrapes and the general decoder agree on every line: the test
    /// fixtures, a generated log (with its invalid lines), and a valid scrape changed in
    /// every way that tends to split JSON readers.
    #[test]
    fn the_scrape_fast_path_agrees_with_the_general_decoder() {
        let general = |line: &str| match std::str::from_utf8(line.as_bytes()) {
            Ok(text) => decode_text(text),
            Err(e) => Err(DecodeError::NotUtf8(e.valid_up_to())),
        };
        let mut lines: Vec<String> = Vec::new();
        for fixture in [
            include_str!("../../tests/fixtures/events_valid.ndjson"),
            include_str!("../../tests/fixtures/events_invalid.ndjson"),
            include_str!("../../tests/fixtures/events_invalid_decoder_only.ndjson"),
            include_str!("../../tests/fixtures/golden_tiny.ndjson"),
        ] {
            for line in fixture.lines() {
                lines.push(line.to_owned());
                if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line)
                    && let Some(inner) = o.get("event")
                {
                    lines.push(inner.to_string());
                }
            }
        }
        let cfg = crate::r#gen::GenConfig::new(7, crate::r#gen::Scale::Test);
        lines.extend(crate::r#gen::generate(&cfg).lines.into_iter().take(3000));

        let base = scraped(r#","save_count":5,"title":"Hi","url":null"#);
        let mutations: &[(&str, &str)] = &[
            (r#""view_count":1"#, r#""view_count":null"#),
            (r#""view_count":1"#, r#""view_count":1.0"#),
            (r#""view_count":1"#, r#""view_count":1e3"#),
            (r#""view_count":1"#, r#""view_count":-1"#),
            (r#""view_count":1"#, r#""view_count":"1""#),
            (r#""view_count":1"#, r#""view_count":9223372036854775807"#),
            (r#""view_count":1"#, r#""view_count":9223372036854775808"#),
            (r#""view_count":1"#, r#""view_count":18446744073709551616"#),
            (r#""view_count":1,"#, ""),
            (r#""view_count":1"#, r#""view_count":1,"view_count":2"#),
            (r#""view_count":1"#, r#""vi\u0065w_count":1"#),
            (r#""title":"Hi""#, r#""title":"H\u00ef \"quoted\"""#),
            (r#""title":"Hi""#, r#""title":5"#),
            (r#""title":"Hi""#, r#""title":"""#),
            (r#""url":null"#, r#""url":"https://x/y""#),
            (r#""type":"video.scraped""#, r#""type":"video.removed""#),
            (r#""type":"video.scraped""#, r#""type":"video.scrape""#),
            (r#""type":"video.scraped""#, r#""type":null"#),
            (r#""type":"video.scraped""#, r#""type":"video.scraped","type":"video.removed""#),
            (r#""creator_id":"11111111"#, r#""creator_id":"AAAAAAAA"#),
            (r#""creator_id":"11111111-1111"#, r#""creator_id":"vid-123-1111"#),
            (r#""creator_id":"11111111"#, r#""creator_id":null,"x":"11111111"#),
            ("+02:00", ""),
            ("2026-04-01T12:00:00Z", "2026-02-30T12:00:00Z"),
            ("2026-04-01T12:00:00Z", "2026-04-01T12:00:00.123456789+05:45"),
            (r#""project_id":"11111111"#, r#""project_id":"1111111"#),
            (r#""view_count":1"#, r#""view_count":01"#),
            (r#""view_count":1"#, r#""view_count":-0"#),
            (r#""view_count":1"#, r#""view_count" :	1 "#),
            (r#""view_count":1"#, r#""view_count":1,"#),
            (r#""title":"Hi""#, "\"title\":\"H\ti\""),
            (r#""title":"Hi""#, r#""title":nul"#),
            (r#""title":"Hi""#, r#""title":"Hi","title":null"#),
            (r#""title":"Hi""#, r#""title":"a \ud83e\udd79 \/ \b\f\n\r\t \\ \"""#),
            (r#""title":"Hi""#, r#""title":"\ud83e""#),
            (r#""title":"Hi""#, r#""title":"\x41""#),
            (r#""creator_id":"11111111"#, r#""creator_id":"\u0031\u0031111111"#),
        ];
        for (from, to) in mutations {
            assert!(base.contains(from), "{from}");
            lines.push(base.replacen(from, to, 1));
        }
        lines.extend([
            base.clone(),
            // JSON's white space between every token, as Python's `json.dumps` writes it.
            base.replace("\":", "\": ").replace(",\"", ", \""),
            format!("{base}\u{a0}"),
            format!("  \t{base}  "),
            format!("{base}x"),
            format!("[{base}]"),
            format!(r#"{{"event":{base}}}"#),
            "[\"video.scraped\"]".to_owned(),
            // Every field in declaration order, as an array: not an object, so not an event.
            format!(
                r#"["video.scraped","{E}","2026-04-02T10:00:00Z","{P}","{P}","{P}","2026-04-01T12:00:00Z",null,null,null,1,2,3,4,5]"#
            ),
            String::new(),
        ]);

        let mut fast = 0;
        for line in &lines {
            fast += usize::from(scrape(line).is_some());
            assert_eq!(decode(line.as_bytes()), general(line), "{line}");
        }
        assert!(scrape(&base).is_some(), "a plain scrape takes the fast path");
        assert!(fast > 1000, "the fast path answered only {fast} of {} lines", lines.len());
    }

    #[test]
    fn ids_are_case_insensitive() {
        let upper = scraped(r#","save_count":0"#).replace("1111-1111-1111", "AAAA-AAAA-AAAA");
        let lower = scraped(r#","save_count":0"#).replace("1111-1111-1111", "aaaa-aaaa-aaaa");
        assert_eq!(decode(upper.as_bytes()).unwrap(), decode(lower.as_bytes()).unwrap());
    }
}
