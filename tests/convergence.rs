//! Convergence: any order and any duplication of the same events gives the same state,
//! and every endpoint then answers exactly what the independent reference model computes
//! from scratch over the same events.

mod common;

use common::reference::Reference;
use common::{TestStore, compare, get, pairs, period_views, uri};
use goatview::api::ENDPOINTS;
use goatview::ingest::log::{Batching, replay_file};
use goatview::store::EVENTS_APPLIED;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

const PROJECT: &str = "0e000000-0000-4000-8000-000000000001";
const ORG: &str = "0a000000-0000-4000-8000-000000000001";
const KEY: &str = "gv_test_key";
const ZONES: [&str; 4] = ["UTC", "Asia/Kathmandu", "America/New_York", "Asia/Kolkata"];

fn id(prefix: char, n: u8) -> String {
    format!("{prefix}0000000-0000-4000-8000-0000000000{n:02x}")
}

/// Occurred-at instants: few, so that equal timestamps (ties on event_id) are common.
fn occurred(k: u8) -> String {
    format!("2026-03-0{}T0{}:00:00Z", 1 + k / 4, k % 4)
}

/// Posted-at instants around the New York spring-forward and local midnights.
const POSTED: [&str; 8] = [
    "2026-03-07T04:30:00Z",
    "2026-03-08T06:59:59Z",
    "2026-03-08T07:00:00Z",
    "2026-03-08T18:15:00.5Z",
    "2026-03-09T04:00:00Z",
    "2026-03-10T23:50:00+05:45",
    "2026-03-11T12:00:00Z",
    "2026-03-14T18:14:00Z",
];

#[derive(Debug, Clone)]
enum Spec {
    Scrape { video: u8, creator: u8, posted: usize, views: u64, likes: u64 },
    RemoveVideo { video: u8 },
    Snapshot { creator: u8, followers: u64, handle: u8 },
    RemoveCreator { creator: u8 },
    Campaign { campaign: u8, name: u8 },
    DeleteCampaign { campaign: u8 },
    Item { campaign: u8, kind: u8, item: u8, added: bool },
    Goal { goal: u8, creator: u8, views: bool, target: u64, start: u8, len: u8 },
    RemoveGoal { goal: u8 },
    Project { zone: usize },
    DeleteProject,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (0..6u8, 0..3u8, 0..POSTED.len(), prop_oneof![0..3u64, 0..2000u64, 0..3_000_000u64], 0..500u64)
            .prop_map(|(video, creator, posted, views, likes)| Spec::Scrape { video, creator, posted, views, likes }),
        1 => (0..6u8).prop_map(|video| Spec::RemoveVideo { video }),
        3 => (0..3u8, 0..1000u64, 0..2u8).prop_map(|(creator, followers, handle)| Spec::Snapshot { creator, followers, handle }),
        1 => (0..3u8).prop_map(|creator| Spec::RemoveCreator { creator }),
        2 => (0..3u8, 0..3u8).prop_map(|(campaign, name)| Spec::Campaign { campaign, name }),
        1 => (0..3u8).prop_map(|campaign| Spec::DeleteCampaign { campaign }),
        4 => (0..3u8, 0..3u8, 0..6u8, any::<bool>()).prop_map(|(campaign, kind, item, added)| Spec::Item { campaign, kind, item, added }),
        1 => (0..2u8, 0..3u8, any::<bool>(), 1..5u64, 0..14u8, 0..10u8)
            .prop_map(|(goal, creator, views, target, start, len)| Spec::Goal { goal, creator, views, target, start, len }),
        1 => (0..2u8).prop_map(|goal| Spec::RemoveGoal { goal }),
        1 => (0..ZONES.len()).prop_map(|zone| Spec::Project { zone }),
        1 => Just(Spec::DeleteProject),
    ]
}

/// One event line from a spec, an occurred-at slot and an event id.
fn render(s: &Spec, at: u8, event_id: u128) -> String {
    let eid = uuid::Uuid::from_u128(event_id).hyphenated().to_string();
    let base = json!({"event_id": eid, "project_id": PROJECT, "occurred_at": occurred(at)});
    let mut v = base.as_object().unwrap().clone();
    let body = match *s {
        Spec::Scrape { video, creator, posted, views, likes } => json!({
            "type": "video.scraped", "video_id": id('d', video), "creator_id": id('c', creator),
            "posted_at": POSTED[posted], "title": format!("video {video}"),
            "thumbnail_url": if video % 2 == 0 { json!(format!("https://t/{video}")) } else { json!(null) },
            "view_count": views, "like_count": likes, "comment_count": likes / 3, "share_count": likes / 7, "save_count": likes / 2,
        }),
        Spec::RemoveVideo { video } => json!({"type": "video.removed", "video_id": id('d', video)}),
        Spec::Snapshot { creator, followers, handle } => json!({
            "type": "creator.snapshot", "creator_id": id('c', creator), "tiktok_handle": format!("h{creator}_{handle}"),
            "display_name": null, "avatar_url": format!("https://a/{creator}"), "follower_count": followers,
        }),
        Spec::RemoveCreator { creator } => json!({"type": "creator.removed", "creator_id": id('c', creator)}),
        Spec::Campaign { campaign, name } => {
            json!({"type": "campaign.upserted", "campaign_id": id('a', campaign), "name": format!("camp {name}")})
        }
        Spec::DeleteCampaign { campaign } => json!({"type": "campaign.deleted", "campaign_id": id('a', campaign)}),
        Spec::Item { campaign, kind, item, added } => {
            let (kind, item) = match kind {
                0 => ("creator", id('c', item % 3)),
                1 => ("video", id('d', item)),
                _ => ("campaign", id('a', item % 3)),
            };
            json!({"type": if added { "campaign.item_added" } else { "campaign.item_removed" },
                   "campaign_id": id('a', campaign), "item_type": kind, "item_id": item})
        }
        Spec::Goal { goal, creator, views, target, start, len } => {
            let starts = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(start.into());
            json!({"type": "creator.goal_set", "goal_id": id('9', goal), "creator_id": id('c', creator),
                   "metric": if views { "views" } else { "posts" }, "target": if views { target * 1000 } else { target },
                   "starts_on": starts.to_string(), "ends_on": (starts + chrono::Days::new(len.into())).to_string()})
        }
        Spec::RemoveGoal { goal } => json!({"type": "creator.goal_removed", "goal_id": id('9', goal)}),
        Spec::Project { zone } => {
            json!({"type": "project.upserted", "org_id": ORG, "name": "p", "timezone": ZONES[zone]})
        }
        Spec::DeleteProject => json!({"type": "project.deleted"}),
    };
    v.extend(body.as_object().unwrap().clone());
    serde_json::Value::Object(v).to_string()
}

fn key_line() -> String {
    use sha2::Digest;
    let hash = hex(&sha2::Sha256::digest(KEY.as_bytes()));
    json!({"type": "api_key.issued", "event_id": "ee000000-0000-4000-8000-000000000001", "occurred_at": "2026-01-01T00:00:00Z",
           "key_id": "ee000000-0000-4000-8000-000000000002", "org_id": ORG, "key_sha256": hash, "expires_at": null})
    .to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The queries compared in every case.
fn queries() -> Vec<(&'static str, Vec<(String, String)>)> {
    let p = ("project_id", PROJECT);
    let mut q = Vec::new();
    for order in ["view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at"] {
        q.push(("video-leaderboard", pairs(&[p, ("order", order), ("limit", "3"), ("offset", "1")])));
    }
    q.push(("video-leaderboard", pairs(&[p, ("from", "2026-03-08"), ("to", "2026-03-10")])));
    for tz in ["America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"] {
        q.push(("posting-heatmap", pairs(&[p, ("from", "2026-03-01"), ("to", "2026-03-31"), ("tz", tz)])));
        q.push(("posting-consistency", pairs(&[p, ("from", "2026-03-07"), ("to", "2026-03-12"), ("tz", tz)])));
    }
    q.push(("posting-heatmap", pairs(&[p, ("from", "2026-03-08"), ("to", "2026-03-08")])));
    q.push(("view-distribution", pairs(&[p, ("from", "2026-03-01"), ("to", "2026-03-31"), ("bin_count", "5")])));
    q.push(("view-distribution", pairs(&[p, ("from", "2026-03-08"), ("to", "2026-03-09"), ("bin_count", "50")])));
    q.push(("outliers", pairs(&[p])));
    q.push(("outliers", pairs(&[p, ("min_x_multiple", "0.5"), ("from", "2026-03-08")])));
    q.push(("creator-leaderboard", pairs(&[p])));
    q.push(("creator-leaderboard", pairs(&[p, ("from", "2026-03-01"), ("to", "2026-03-09"), ("limit", "2")])));
    q.push(("creator-scatter", pairs(&[p, ("to", "2026-03-09")])));
    q.push(("goal-compliance", pairs(&[p])));
    q.push(("campaign-leaderboard", pairs(&[p, ("from", "2026-03-08"), ("to", "2026-03-14")])));
    q.push(("member-overlap", pairs(&[p])));
    q.push(("member-overlap", pairs(&[p, ("dimension", "video")])));
    q
}

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-03-09T15:00:00Z".parse().unwrap()
}

/// Events (always with the project and the key), then two delivery orders with duplicates.
fn case() -> impl Strategy<Value = (Vec<String>, Vec<String>, Vec<String>)> {
    (prop::collection::vec((spec(), 0..12u8, any::<u128>()), 1..40), 0..ZONES.len()).prop_flat_map(|(specs, zone)| {
        let mut lines: Vec<String> = specs.iter().map(|(s, at, eid)| render(s, *at, *eid)).collect();
        lines.push(render(&Spec::Project { zone }, 0, 1));
        lines.push(key_line());
        let n = lines.len();
        let order = |lines: Vec<String>| {
            (Just(lines.clone()), prop::collection::vec(0..n, 0..n))
                .prop_map(|(mut l, dups)| {
                    let extra: Vec<String> = dups.iter().map(|&i| l[i].clone()).collect();
                    l.extend(extra);
                    l
                })
                .prop_shuffle()
        };
        (Just(lines.clone()), order(lines.clone()), order(lines))
    })
}

/// Applies two delivery orders (`a` in transactions of `batch` lines, `b` as one), checks
/// that they leave the same state, then that every query answers what the reference model
/// computes from scratch over `events`, `last_event_at` included. Returns how many answers
/// were compared with the reference's (the others are errors both sides agree on).
fn converges(
    events: &[String],
    (a, b): (&[String], &[String]),
    batch: usize,
    queries: Vec<(&str, Vec<(String, String)>)>,
) -> Result<usize, TestCaseError> {
    let (sa, sb, sc) = (TestStore::new(), TestStore::new(), TestStore::new());
    sa.apply_lines(a, batch);
    // One transaction for the whole log: every event sees the batch's own writes.
    sb.apply_lines(b, b.len());
    prop_assert_eq!(sa.dump(), sb.dump(), "state differs between two delivery orders");
    // `b` replayed from a file in windows, superseded scrapes dropped, each window one
    // transaction whose rows are written every `batch` events.
    let log = sc.dir.path().join("b.ndjson");
    std::fs::write(&log, b.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let batching = Batching { batch_size: batch, window: 3 * batch };
    replay_file(&sc.store, &log, batching, goatview::events::Instant { secs: 0, nanos: 0 }, |_| {}).unwrap();
    prop_assert_eq!(sa.dump(), sc.dump(), "state differs when replayed in windows");
    prop_assert_eq!(sc.store.counter(EVENTS_APPLIED).unwrap(), b.len() as u64, "every event counted once");

    let reference = Reference::from_lines(events);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let app = sa.app(now());
    let mut compared = 0;
    for (endpoint, query) in queries {
        let (status, body) = rt.block_on(get(&app, &uri(endpoint, &query), Some(KEY)));
        match reference.answer(endpoint, &query, now()) {
            Ok(expected) => {
                prop_assert_eq!(status.as_u16(), 200, "{} {:?}: {}", endpoint, query, body);
                let views = period_views(&reference, PROJECT, &query);
                if let Err(e) = compare(endpoint, &body["data"], &expected, &views) {
                    prop_assert!(false, "{} {:?}: {}\nevents:\n{}", endpoint, query, e, events.join("\n"));
                }
                prop_assert_eq!(&body["meta"]["last_event_at"], &json!(reference.last_event_at(PROJECT)));
                compared += 1;
            }
            Err((code, _)) => prop_assert_eq!(status.as_u16(), code, "{} {:?}: {}", endpoint, query, body),
        }
    }
    Ok(compared)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_duplication_converge_to_the_reference((events, a, b) in case(), batch in 1..8usize) {
        converges(&events, (&a, &b), batch, queries())?;
    }
}

#[test]
fn every_endpoint_is_covered() {
    let covered: std::collections::BTreeSet<_> = queries().into_iter().map(|q| q.0).collect();
    assert_eq!(covered.len(), ENDPOINTS.len());
}

/// Many videos of tracked creators in nested campaigns, posted around two UTC days: first
/// scraped with many views, then, later and in random order, with few, with removals and
/// re-scrapes in between. Campaign units hold more videos than their top lists keep, so
/// the lists lose every entry and are rebuilt.
fn churn_case() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let video = (0..2u8, 0..3usize, 10..1000u64);
    let noise = prop_oneof![
        (0..30u8, 0..1000u64).prop_map(|(video, views)| (video, Some(views))),
        (0..30u8).prop_map(|video| (video, None)),
    ];
    (
        prop::collection::vec(video, 12..30),
        Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        prop::collection::vec((noise, any::<u128>()), 0..20),
        0..ZONES.len(),
    )
        .prop_flat_map(|(videos, seed, noise, zone)| {
            let mut lines: Vec<String> = vec![render(&Spec::Project { zone }, 0, 1), key_line()];
            let setup = [
                Spec::Snapshot { creator: 0, followers: 5, handle: 0 },
                Spec::Snapshot { creator: 1, followers: 5, handle: 0 },
                Spec::Campaign { campaign: 0, name: 0 },
                Spec::Campaign { campaign: 1, name: 1 },
                Spec::Item { campaign: 0, kind: 0, item: 0, added: true },
                Spec::Item { campaign: 1, kind: 2, item: 0, added: true },
                Spec::Item { campaign: 1, kind: 1, item: 7, added: true },
            ];
            lines.extend(setup.iter().enumerate().map(|(i, s)| render(s, 0, 2 + i as u128)));
            let scrape = |v: usize, views: u64| {
                let (creator, posted) = (videos[v].0, videos[v].1);
                Spec::Scrape { video: v as u8, creator, posted, views, likes: views % 7 }
            };
            for (v, &(_, _, views)) in videos.iter().enumerate() {
                lines.push(render(&scrape(v, views), (v % 6) as u8, 100 + v as u128));
            }
            // Later, every video falls to a few views, in an order drawn from the seed.
            let mut order: Vec<usize> = (0..videos.len()).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            for (i, v) in order.into_iter().enumerate() {
                lines.push(render(&scrape(v, (v % 5) as u64), 6 + (i % 6) as u8, 200 + v as u128));
            }
            for ((v, views), eid) in noise {
                let v = usize::from(v) % videos.len();
                let s = match views {
                    Some(views) => scrape(v, views),
                    None => Spec::RemoveVideo { video: v as u8 },
                };
                lines.push(render(&s, (eid % 12) as u8, eid));
            }
            (Just(lines.clone()), Just(lines).prop_shuffle())
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn campaign_top_lists_survive_churn((events, shuffled) in churn_case(), batch in 1..4usize) {
        let p = ("project_id", PROJECT);
        let periods = [("2026-03-07", "2026-03-07"), ("2026-03-08", "2026-03-08"), ("2026-03-07", "2026-03-09"), ("2026-03-01", "2026-03-31")];
        let queries: Vec<_> = periods.iter().map(|&(from, to)| ("campaign-leaderboard", pairs(&[p, ("from", from), ("to", to)]))).collect();
        let n = queries.len();
        prop_assert_eq!(converges(&events, (&events, &shuffled), batch, queries)?, n, "every query is a valid one");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// campaign-leaderboard asked between transactions, on one server: every answer must
    /// be the reference's over the events applied so far, whatever the project's zone was
    /// when each video's rollups were written.
    #[test]
    fn campaign_answers_follow_every_transaction((_, a, _) in case(), batch in 1..6usize) {
        let store = TestStore::new();
        let app = store.app(now());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let p = ("project_id", PROJECT);
        let queries = [
            pairs(&[p, ("from", "2026-03-08"), ("to", "2026-03-14")]),
            pairs(&[p, ("from", "2026-03-01"), ("to", "2026-03-31")]),
        ];
        // The key first: without it every request is refused, whatever the state.
        let mut seen = vec![key_line()];
        store.apply_lines(&seen, 1);
        let mut applied = 0;
        while applied < a.len() {
            let next = (applied + batch).min(a.len());
            store.apply_lines(&a[applied..next], batch);
            seen.extend_from_slice(&a[applied..next]);
            applied = next;
            let reference = Reference::from_lines(&seen);
            for query in &queries {
                let (status, body) = rt.block_on(get(&app, &uri("campaign-leaderboard", query), Some(KEY)));
                match reference.answer("campaign-leaderboard", query, now()) {
                    Ok(expected) => {
                        prop_assert_eq!(status.as_u16(), 200, "{:?}: {}", query, body);
                        prop_assert_eq!(&body["data"], &expected, "after {} of {} events: {:?}", applied, a.len(), query);
                    }
                    Err((code, _)) => prop_assert_eq!(status.as_u16(), code, "{:?}: {}", query, body),
                }
            }
        }
    }
}
