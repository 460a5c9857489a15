//! Recorded logs: fixture → replay → HTTP answers equal the reference; replaying again
//! changes nothing; an interrupted replay resumes without losing or double counting.

mod common;

use std::io::Write;

use common::reference::Reference;
use common::{TestStore, compare, get, pairs, period_views, uri};
use goatview::api::ENDPOINTS;
use goatview::ingest::log::{Batching, replay_file};
use goatview::store::{DEAD_LETTERS, EVENTS_APPLIED};

const GOLDEN: &str = "tests/fixtures/golden_tiny.ndjson";
const PROJECT: &str = "5eed0000-0000-4000-8000-000000000001";

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-04-20T12:00:00Z".parse().unwrap()
}

fn at0() -> goatview::events::Instant {
    goatview::events::Instant { secs: 0, nanos: 0 }
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(String::from).collect()
}

/// Valid (non-blank, decodable) lines of a log.
fn valid_count(lines: &[String]) -> u64 {
    lines.iter().filter(|l| !l.trim().is_empty() && goatview::events::decode(l.as_bytes()).is_ok()).count() as u64
}

/// The golden fixture replayed into a new store.
fn golden_replayed(batching: Batching) -> TestStore {
    let ts = TestStore::new();
    replay_file(&ts.store, std::path::Path::new(GOLDEN), batching, at0(), |_| {}).unwrap();
    ts
}

#[test]
fn replaying_twice_changes_nothing_and_counts_dead_letters() {
    let ts = TestStore::new();
    let path = std::path::Path::new(GOLDEN);
    let first = replay_file(&ts.store, path, Batching::of(7), at0(), |_| {}).unwrap();
    let all = lines(GOLDEN);
    assert_eq!(first.events, valid_count(&all));
    assert!(first.dead_letters > 0, "the fixture has invalid lines");
    // Blank lines are skipped (contract §2.1); every other line is an event or a dead letter.
    let blank = all.iter().filter(|l| l.trim().is_empty()).count() as u64;
    assert!(blank > 0, "the fixture has blank lines");
    assert_eq!(first.events + first.dead_letters + blank, all.len() as u64);
    let dump = ts.dump();
    let again = replay_file(&ts.store, path, Batching::of(7), at0(), |_| {}).unwrap();
    assert_eq!(again.resumed_from_line, all.len() as u64, "a replayed file resumes at its end");
    assert_eq!(again.events, 0);
    assert_eq!(ts.dump(), dump);
    assert_eq!(ts.store.counter(EVENTS_APPLIED).unwrap(), first.events);
    assert_eq!(ts.store.counter(DEAD_LETTERS).unwrap(), first.dead_letters);
    let dead = ts.store.dead_letters().unwrap();
    assert_eq!(dead.len() as u64, first.dead_letters);
    for d in &dead {
        assert!(d.source.starts_with("file:") && d.source.ends_with("golden_tiny.ndjson"), "{}", d.source);
        assert!(!d.reason.is_empty());
        assert_eq!(d.raw, all[d.position as usize - 1].as_bytes(), "raw bytes kept, position is the line");
    }
}

#[test]
fn an_interrupted_replay_resumes_without_loss_or_double_counting() {
    let all = lines(GOLDEN);
    let clean = golden_replayed(Batching::of(1000));

    // The first 40 lines land (as if the process died right after that commit)...
    let ts = TestStore::new();
    let log = ts.dir.path().join("growing.ndjson");
    let mut f = std::fs::File::create(&log).unwrap();
    for l in &all[..40] {
        writeln!(f, "{l}").unwrap();
    }
    replay_file(&ts.store, &log, Batching::of(9), at0(), |_| {}).unwrap();
    // ...then the file is complete and replay runs again: it resumes at line 40.
    for l in &all[40..] {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let rest = replay_file(&ts.store, &log, Batching::of(9), at0(), |_| {}).unwrap();
    assert_eq!(rest.resumed_from_line, 40);
    assert_eq!(ts.dump(), clean.dump());
    assert_eq!(ts.store.counter(EVENTS_APPLIED).unwrap(), valid_count(&all), "each event applied exactly once");

    // A different file at the same path is replayed from the top, harmlessly.
    std::fs::write(&log, all.iter().rev().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let other = replay_file(&ts.store, &log, Batching::of(9), at0(), |_| {}).unwrap();
    assert_eq!(other.resumed_from_line, 0);
    assert_eq!(ts.dump(), clean.dump());
}

/// A store may hold part of a window's events without the window's position: a build that
/// split windows into transactions left that when it died after an earlier one. The next
/// replay reads the window again (one transaction, its rows written every 4 events), and
/// the state and counts come out exactly as in one clean pass.
#[test]
fn a_window_cut_short_is_read_again_without_double_counting() {
    let all = lines(GOLDEN);
    let clean = golden_replayed(Batching::of(1));

    let ts = TestStore::new();
    let log = ts.dir.path().join("log.ndjson");
    std::fs::write(&log, all.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    // What the first of such transactions of a window over the whole file applied.
    let events: Vec<_> = all.iter().filter_map(|l| goatview::events::decode(l.as_bytes()).ok()).collect();
    ts.store.apply_part(&events[..events.len() / 2]).unwrap();
    assert_eq!(ts.store.counter(EVENTS_APPLIED).unwrap(), 0, "a part counts nothing");
    assert_ne!(ts.dump(), clean.dump());

    let s = replay_file(&ts.store, &log, Batching { batch_size: 4, window: 1000 }, at0(), |_| {}).unwrap();
    assert_eq!(s.resumed_from_line, 0);
    assert!(s.superseded > 0, "the fixture scrapes some video twice");
    assert_eq!(ts.dump(), clean.dump());
    assert_eq!(ts.store.counter(EVENTS_APPLIED).unwrap(), valid_count(&all), "each event counted once");
    assert_eq!(ts.store.counter(DEAD_LETTERS).unwrap(), clean.store.counter(DEAD_LETTERS).unwrap());
    let letters = |s: &TestStore| {
        s.store.dead_letters().unwrap().into_iter().map(|d| (d.position, d.raw, d.reason)).collect::<Vec<_>>()
    };
    assert_eq!(letters(&ts), letters(&clean), "the same dead letters, once each");
}

/// Queries over the golden fixture, each compared with the reference's answer (which
/// `reference_golden.rs` checks against hand-computed numbers).
#[tokio::test]
async fn golden_log_answers_match_the_reference_over_http() {
    let all = lines(GOLDEN);
    let reference = Reference::from_lines(&all);
    let ts = golden_replayed(Batching::of(5));
    let key = golden_key(&ts);
    let app = ts.app(now());
    let p = ("project_id", PROJECT);
    let mut queries: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    for e in ENDPOINTS {
        let mut q = vec![p];
        if matches!(e, "posting-heatmap" | "view-distribution" | "posting-consistency" | "campaign-leaderboard") {
            q.extend([("from", "2026-03-25"), ("to", "2026-04-20")]);
        }
        queries.push((e, pairs(&q)));
    }
    for (from, to) in [("2026-04-01", "2026-04-01"), ("2026-04-02", "2026-04-14"), ("2026-03-01", "2026-05-01")] {
        for order in ["view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at"] {
            queries.push(("video-leaderboard", pairs(&[p, ("from", from), ("to", to), ("order", order)])));
        }
        for tz in ["UTC", "Asia/Kathmandu", "America/New_York"] {
            queries.push(("posting-heatmap", pairs(&[p, ("from", from), ("to", to), ("tz", tz)])));
            queries.push(("posting-consistency", pairs(&[p, ("from", from), ("to", to), ("tz", tz)])));
        }
        for bins in ["5", "7", "50"] {
            queries.push(("view-distribution", pairs(&[p, ("from", from), ("to", to), ("bin_count", bins)])));
        }
        queries.push(("outliers", pairs(&[p, ("from", from), ("to", to), ("min_x_multiple", "1")])));
        queries.push(("creator-leaderboard", pairs(&[p, ("from", from), ("to", to)])));
        queries.push(("creator-scatter", pairs(&[p, ("from", from)])));
        queries.push(("campaign-leaderboard", pairs(&[p, ("from", from), ("to", to)])));
    }
    queries.push(("member-overlap", pairs(&[p, ("dimension", "video")])));
    queries.push(("video-leaderboard", pairs(&[p, ("limit", "2"), ("offset", "1")])));
    queries.push(("creator-leaderboard", pairs(&[p, ("limit", "1"), ("offset", "2")])));
    for (endpoint, query) in queries {
        let expected = reference.answer(endpoint, &query, now()).expect("valid query");
        let (status, body) = get(&app, &uri(endpoint, &query), Some(&key)).await;
        assert_eq!(status, 200, "{endpoint} {query:?}: {body}");
        let views = period_views(&reference, PROJECT, &query);
        if let Err(e) = compare(endpoint, &body["data"], &expected, &views) {
            panic!("{endpoint} {query:?}: {e}");
        }
        assert_eq!(body["meta"]["last_event_at"], serde_json::json!(reference.last_event_at(PROJECT)));
        assert_eq!(body["meta"]["project_id"], PROJECT);
    }
}

/// The golden fixture's org gets a fresh key here (the fixture holds only hashes).
fn golden_key(ts: &TestStore) -> String {
    use sha2::Digest;
    let org = Reference::from_lines(&lines(GOLDEN)).projects()[0].1.clone();
    let key = "gv_golden_test";
    let hash: String = sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    ts.apply_lines(
        &[serde_json::json!({"type": "api_key.issued", "event_id": "ee000000-0000-4000-8000-0000000000ff",
            "occurred_at": "2026-01-01T00:00:00Z", "key_id": "ee000000-0000-4000-8000-0000000000fe",
            "org_id": org, "key_sha256": hash, "expires_at": null})
        .to_string()],
        1,
    );
    key.to_owned()
}

/// Antarctica/Casey went from +11 to +08 at 2010-03-04T14:00Z, local 01:00 on 03-05 back
/// to 22:00 on 03-04: posts come in time order as days 03-04, 03-05, 03-04, 03-05, and
/// each creator-day must still be one item.
#[tokio::test]
async fn posting_consistency_meets_a_day_twice_where_clocks_go_back_across_midnight() {
    let project = "5eed0000-0000-4000-8000-00000000ca5e";
    let creator = "c0000000-0000-4000-8000-00000000ca5e";
    let mut log = vec![
        serde_json::json!({"type": "project.upserted", "event_id": "e0000000-0000-4000-8000-00000000ca00",
            "project_id": project, "occurred_at": "2010-01-01T00:00:00Z",
            "org_id": "0a000000-0000-4000-8000-000000000001", "name": "Casey", "timezone": "Antarctica/Casey"}),
        serde_json::json!({"type": "creator.snapshot", "event_id": "e0000000-0000-4000-8000-00000000ca01",
            "project_id": project, "occurred_at": "2010-01-01T00:00:00Z", "creator_id": creator,
            "tiktok_handle": "casey", "display_name": null, "avatar_url": null, "follower_count": 1}),
    ];
    // UTC posting times and their local days: 12:30Z 03-04 23:30+11, 13:30Z 03-05 00:30+11,
    // 15:30Z 03-04 23:30+08, 17:30Z 03-05 01:30+08.
    for (i, at) in ["12:30", "13:30", "15:30", "17:30"].iter().enumerate() {
        log.push(
            serde_json::json!({"type": "video.scraped", "event_id": format!("e0000000-0000-4000-8000-00000000ca1{i}"),
            "project_id": project, "occurred_at": "2010-03-06T00:00:00Z",
            "video_id": format!("d0000000-0000-4000-8000-00000000ca1{i}"), "creator_id": creator,
            "posted_at": format!("2010-03-04T{at}:00Z"), "title": null, "thumbnail_url": null, "url": null,
            "view_count": 10, "like_count": 1, "comment_count": 0, "share_count": 0, "save_count": 0}),
        );
    }
    let log: Vec<String> = log.iter().map(|e| e.to_string()).collect();
    let ts = TestStore::new();
    ts.apply_lines(&log, 100);
    let key = golden_key(&ts);
    let now: chrono::DateTime<chrono::Utc> = "2010-03-10T00:00:00Z".parse().unwrap();
    let query = pairs(&[("project_id", project), ("from", "2010-03-04"), ("to", "2010-03-05")]);
    let (status, body) = get(&ts.app(now), &uri("posting-consistency", &query), Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([
            {"creator_id": creator, "day": "2010-03-04", "post_count": 2},
            {"creator_id": creator, "day": "2010-03-05", "post_count": 2},
        ])
    );
    let expected = Reference::from_lines(&log).answer("posting-consistency", &query, now).unwrap();
    assert_eq!(body["data"], expected);
}

/// Goal progress is kept by ingestion in the project's zone, so a zone that changes after
/// the goal and its videos must move them. The video, posted 2026-04-01T23:30Z, is on
/// 04-01 in UTC (outside the goal's one day, 04-02: missed) and on 04-02 in Berlin
/// (inside it: completed, so on track). Every order and transaction size gives the answer
/// of the project register that wins.
#[tokio::test]
async fn goal_progress_follows_the_project_zone() {
    let project = "5eed0000-0000-4000-8000-0000000090a1";
    let creator = "c0000000-0000-4000-8000-0000000090a1";
    let upsert = |id: &str, at: &str, tz: &str| {
        serde_json::json!({"type": "project.upserted", "event_id": id, "project_id": project, "occurred_at": at,
            "org_id": "0a000000-0000-4000-8000-000000000001", "name": "Zones", "timezone": tz})
        .to_string()
    };
    let utc = upsert("e0000000-0000-4000-8000-0000000090a0", "2026-03-01T00:00:00Z", "Etc/UTC");
    let berlin = upsert("e0000000-0000-4000-8000-0000000090a9", "2026-04-05T00:00:00Z", "Europe/Berlin");
    let rest = [
        serde_json::json!({"type": "creator.snapshot", "event_id": "e0000000-0000-4000-8000-0000000090a2",
            "project_id": project, "occurred_at": "2026-03-01T00:00:00Z", "creator_id": creator,
            "tiktok_handle": "zones", "display_name": null, "avatar_url": null, "follower_count": 1}),
        serde_json::json!({"type": "creator.goal_set", "event_id": "e0000000-0000-4000-8000-0000000090a3",
            "project_id": project, "occurred_at": "2026-03-02T00:00:00Z", "goal_id": "90a10000-0000-4000-8000-000000000001",
            "creator_id": creator, "metric": "posts", "target": 1, "starts_on": "2026-04-02", "ends_on": "2026-04-02"}),
        serde_json::json!({"type": "video.scraped", "event_id": "e0000000-0000-4000-8000-0000000090a4",
            "project_id": project, "occurred_at": "2026-04-03T00:00:00Z",
            "video_id": "d0000000-0000-4000-8000-0000000090a4", "creator_id": creator,
            "posted_at": "2026-04-01T23:30:00Z", "title": null, "thumbnail_url": null, "url": null,
            "view_count": 10, "like_count": 1, "comment_count": 0, "share_count": 0, "save_count": 0}),
    ]
    .map(|e| e.to_string());
    let now: chrono::DateTime<chrono::Utc> = "2026-04-10T00:00:00Z".parse().unwrap();
    let query = pairs(&[("project_id", project)]);
    let missed =
        serde_json::json!({"on_track": 0, "at_risk": 0, "missed": 1, "total_goals": 1, "creators_with_goals": 1});
    let on_track =
        serde_json::json!({"on_track": 1, "at_risk": 0, "missed": 0, "total_goals": 1, "creators_with_goals": 1});
    let cases: [(Vec<&String>, &serde_json::Value); 4] = [
        // UTC alone.
        (vec![&utc, &rest[0], &rest[1], &rest[2]], &missed),
        // Berlin wins, arriving last or first.
        (vec![&utc, &rest[0], &rest[1], &rest[2], &berlin], &on_track),
        (vec![&berlin, &rest[2], &rest[1], &rest[0], &utc], &on_track),
        // The goal before any project, then UTC.
        (vec![&rest[1], &rest[2], &rest[0], &utc], &missed),
    ];
    for (log, expected) in cases {
        let log: Vec<String> = log.into_iter().cloned().collect();
        for batch in [1, 100] {
            let ts = TestStore::new();
            ts.apply_lines(&log, batch);
            let key = golden_key(&ts);
            let (status, body) = get(&ts.app(now), &uri("goal-compliance", &query), Some(&key)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(&body["data"], expected, "batch {batch}, log {log:?}");
            let reference = Reference::from_lines(&log).answer("goal-compliance", &query, now).unwrap();
            assert_eq!(body["data"], reference, "batch {batch}");
        }
    }
}
