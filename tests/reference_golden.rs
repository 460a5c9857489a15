//! Golden tests of the reference model (`tests/common/reference.rs`) against
//! answers computed by hand from `tests/fixtures/golden_tiny.ndjson`.
//!
//! The fixture, in words (project P in America/New_York, EDT = UTC-4 in April
//! 2026; `now` = 2026-04-20T12:00:00Z, so today = Monday 2026-04-20):
//!
//! Creators (latest snapshot wins the profile; follower points by instant):
//! * c1 `c1_new` "Creator One", avatar c1.png. Points: 03-30 1000, 04-02 1100,
//!   04-10 1250, 04-18T12:00:00.250Z 1300 (written with a +02:00 offset).
//! * c2 `c2` "Creator Two", no avatar. Points: 04-01T10Z 5000, 04-12T00Z 4800.
//!   Another snapshot at the same instant (written `2026-04-12T02:00:00+02:00`)
//!   has a smaller event_id, so it loses both the point (4700) and the profile.
//! * c3 `c3` "Creator Three": snapshot 04-03 (0), removed 04-04, snapshot 04-06
//!   (50) brings it back.
//! * c4: snapshot then removed: untracked, so its video v8 (99999 views) and
//!   goal g4 never count.
//!
//! Visible videos (views/likes/comments/shares/saves; posted UTC → NY local):
//! * v1 c1 1000/100/10/5/7   04-01T14:00Z → Wed 04-01 10:00
//! * v2 c1 3000/157/21/11/2  04-03T03:30Z → Thu 04-02 23:30
//! * v3 c1 700/5/0/0/0       04-01T03:59:59Z → Tue 03-31 23:59:59
//! * v4 c2 8000/400/40/20/10 04-05T16:00Z → Sun 04-05 12:00 (a stale scrape
//!   with 6000 views, written with upper-case ids, arrives later and loses)
//! * v5 c3 2500/50/5/5/0     04-10T12:00Z → Fri 04-10 08:00 (first scraped
//!   under c2 with 200 views; a later scrape moved it to c3; no thumbnail)
//! * v7 c3 400/40/4/4/2      04-15T03:59Z → Tue 04-14 23:59 (removed, then
//!   re-added by a later scrape)
//! * v9 c3 100/1/0/0/0       04-15T04:00Z → Wed 04-15 00:00
//! * v10 c3 1235/35/3/2/0    04-08T14:30Z → Wed 04-08 10:30 (no url)
//! * not visible: v6 (removed), v8 (creator c4 untracked).
//!
//! Campaigns: k1 "Spring Launch" = {creator c1, creator c2, video v4,
//! campaign k2, campaign k3; video v9 added then removed}; k2 "Alpha Nested"
//! (renamed from "Beta") = {video v5, video v6, video v4, campaign k4,
//! creator c4}; k4 "beta cycle" = {campaign k2 (cycle), video v7, creator c2};
//! k3 "Zeta Deleted" (deleted) = {video v1, creator c1}.
//!
//! Goals: g1 c1 posts 4 in 04-01..04-30; g2 c2 views 5000 in 04-01..04-10;
//! g3 c3 views 10000 in 03-01..03-31; g6 c3 posts 3 in 05-01..05-31;
//! g4 (creator c4 untracked) and g5 (removed) do not count.
//!
//! The last lines are dead letters (fraction/exponent/negative counts, no
//! offset, bad uuid, empty handle, unknown zone, ends_on < starts_on, missing
//! project_id, unknown type, broken JSON) that would otherwise change the
//! answers; there are also a duplicated line and a white-space-only line.

#[path = "common/reference.rs"]
mod reference;

use chrono::{DateTime, Utc};
use reference::Reference;
use serde_json::{Value, json};

const P: &str = "5eed0000-0000-4000-8000-000000000001";
const P2: &str = "5eed0000-0000-4000-8000-000000000002";
const ORG: &str = "0a000000-0000-4000-8000-000000000001";
const C1: &str = "c0000000-0000-4000-8000-000000000001";
const C2: &str = "c0000000-0000-4000-8000-000000000002";
const C3: &str = "c0000000-0000-4000-8000-000000000003";
const V1: &str = "d0000000-0000-4000-8000-000000000001";
const V2: &str = "d0000000-0000-4000-8000-000000000002";
const V3: &str = "d0000000-0000-4000-8000-000000000003";
const V4: &str = "d0000000-0000-4000-8000-000000000004";
const V5: &str = "d0000000-0000-4000-8000-000000000005";
const V7: &str = "d0000000-0000-4000-8000-000000000007";
const V9: &str = "d0000000-0000-4000-8000-000000000009";
const V10: &str = "d0000000-0000-4000-8000-000000000010";
const K1: &str = "ca000000-0000-4000-8000-000000000001";
const K2: &str = "ca000000-0000-4000-8000-000000000002";
const K4: &str = "ca000000-0000-4000-8000-000000000004";

fn model() -> Reference {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_tiny.ndjson")).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    Reference::from_lines(&lines)
}

fn now() -> DateTime<Utc> {
    "2026-04-20T12:00:00Z".parse().unwrap()
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ask(endpoint: &str, pairs: &[(&str, &str)]) -> Value {
    model().answer(endpoint, &q(pairs), now()).unwrap_or_else(|e| panic!("{endpoint}: {e:?}"))
}

fn err(endpoint: &str, pairs: &[(&str, &str)]) -> (u16, &'static str) {
    model().answer(endpoint, &q(pairs), now()).expect_err(endpoint)
}

/// The values of one field of every item.
fn column(v: &Value, field: &str) -> Value {
    v.as_array().unwrap().iter().map(|i| i[field].clone()).collect()
}

#[test]
fn state_meta() {
    let m = model();
    // Greatest valid occurred_at: c1's snapshot 2026-04-18T14:00:00.250+02:00.
    // The dead letters dated 2026-05-01 do not count.
    assert_eq!(m.last_event_at(P).as_deref(), Some("2026-04-18T12:00:00.250Z"));
    assert_eq!(m.last_event_at(&P.to_uppercase()).as_deref(), Some("2026-04-18T12:00:00.250Z"));
    assert_eq!(m.last_event_at(P2).as_deref(), Some("2026-03-05T00:00:00Z"));
    assert_eq!(m.last_event_at("5eed0000-0000-4000-8000-00000000dead"), None);
    // P2 is deleted; P's later upsert (New York) beats the Berlin one, and the
    // "Mars/Olympus" upsert is a dead letter.
    assert_eq!(m.projects(), vec![(P.to_string(), ORG.to_string(), "America/New_York".to_string())]);
    // In the period, in New York: v1 1000, v2 3000, v4 8000, v5 2500, v7 400,
    // v10 1235; v3 (03-31 local) and v9 (04-15 local) are outside.
    assert_eq!(m.views_in_period(P, "2026-04-01", "2026-04-14"), vec![400, 1000, 1235, 2500, 3000, 8000]);
}

#[test]
fn video_leaderboard_items() {
    // Period 04-01..04-14 in New York = [2026-04-01T04:00Z, 2026-04-15T04:00Z):
    // v1, v2, v4, v5, v7, v10 → total_count 6. By views: v4 8000, v2 3000, v5 2500.
    let got =
        ask("video-leaderboard", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14"), ("limit", "3")]);
    let want = json!([
        {"video_id": V4, "title": "V4", "thumbnail_url": "https://img/v4.jpg", "url": "https://tt/v4",
         "view_count": 8000, "like_count": 400, "comment_count": 40, "share_count": 20, "save_count": 10,
         "posted_at": "2026-04-05T16:00:00Z", "creator_id": C2, "tiktok_handle": "c2",
         "display_name": "Creator Two", "avatar_url": null, "total_count": 6},
        {"video_id": V2, "title": "V2", "thumbnail_url": "https://img/v2.jpg", "url": "https://tt/v2",
         "view_count": 3000, "like_count": 157, "comment_count": 21, "share_count": 11, "save_count": 2,
         "posted_at": "2026-04-03T03:30:00Z", "creator_id": C1, "tiktok_handle": "c1_new",
         "display_name": "Creator One", "avatar_url": "https://img/c1.png", "total_count": 6},
        {"video_id": V5, "title": "V5 (moved)", "thumbnail_url": null, "url": "https://tt/v5",
         "view_count": 2500, "like_count": 50, "comment_count": 5, "share_count": 5, "save_count": 0,
         "posted_at": "2026-04-10T12:00:00Z", "creator_id": C3, "tiktok_handle": "c3",
         "display_name": "Creator Three", "avatar_url": null, "total_count": 6},
    ]);
    assert_eq!(got, want);
}

#[test]
fn video_leaderboard_orders() {
    let period = [("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")];
    // save_count: v4 10, v1 7, then the tie v2 2 / v7 2 (smaller id first),
    // then the tie v5 0 / v10 0.
    let mut p = period.to_vec();
    p.push(("order", "save_count"));
    assert_eq!(column(&ask("video-leaderboard", &p), "video_id"), json!([V4, V1, V2, V7, V5, V10]));
    // posted_at desc: v7 04-15T03:59Z, v5 04-10T12Z, v10 04-08T14:30Z, v4, v2, v1;
    // offset 1, limit 2 → v5, v10, still total_count 6.
    let mut p = period.to_vec();
    p.extend([("order", "posted_at"), ("offset", "1"), ("limit", "2")]);
    let got = ask("video-leaderboard", &p);
    assert_eq!(column(&got, "video_id"), json!([V5, V10]));
    assert_eq!(column(&got, "total_count"), json!([6, 6]));
    // Open period: all 8 visible videos (v3 and v9 too; never v6 or v8).
    let got = ask("video-leaderboard", &[("project_id", &P.to_uppercase())]);
    assert_eq!(column(&got, "video_id"), json!([V4, V2, V5, V10, V1, V3, V7, V9]));
    assert_eq!(column(&got, "view_count"), json!([8000, 3000, 2500, 1235, 1000, 700, 400, 100]));
    // Offset past the end: no items.
    assert_eq!(ask("video-leaderboard", &[("project_id", P), ("offset", "8")]), json!([]));
}

#[test]
fn posting_heatmap() {
    // New York (dow 0 = Sunday):
    //   v4 Sun 12:00 → (0,12) 8000;  v7 Tue 23:59 → (2,23) 400;
    //   v1 Wed 04-01 10:00 + v10 Wed 04-08 10:30 → (3,10) 2 posts, (1000+1235)/2 = 1117.5;
    //   v2 Thu 23:30 → (4,23) 3000;  v5 Fri 08:00 → (5,8) 2500.
    let got = ask("posting-heatmap", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]);
    assert_eq!(
        got,
        json!([
            {"dow": 0, "hour": 12, "post_count": 1, "avg_views": 8000.0},
            {"dow": 2, "hour": 23, "post_count": 1, "avg_views": 400.0},
            {"dow": 3, "hour": 10, "post_count": 2, "avg_views": 1117.5},
            {"dow": 4, "hour": 23, "post_count": 1, "avg_views": 3000.0},
            {"dow": 5, "hour": 8, "post_count": 1, "avg_views": 2500.0},
        ])
    );
    // tz=UTC moves both the period ([04-01T00Z, 04-15T00Z): v3 in, v7 out) and the cells:
    //   v4 Sun 16 → (0,16); v3 Wed 03:59:59 → (3,3) 700; v1 + v10 Wed 14 → (3,14) 1117.5;
    //   v2 Fri 04-03 03:30 → (5,3); v5 Fri 12:00 → (5,12).
    let got = ask("posting-heatmap", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14"), ("tz", "UTC")]);
    assert_eq!(
        got,
        json!([
            {"dow": 0, "hour": 16, "post_count": 1, "avg_views": 8000.0},
            {"dow": 3, "hour": 3, "post_count": 1, "avg_views": 700.0},
            {"dow": 3, "hour": 14, "post_count": 2, "avg_views": 1117.5},
            {"dow": 5, "hour": 3, "post_count": 1, "avg_views": 3000.0},
            {"dow": 5, "hour": 12, "post_count": 1, "avg_views": 2500.0},
        ])
    );
}

#[test]
fn view_distribution() {
    // Sorted values: 400, 1000, 1235, 2500, 3000, 8000 (N = 6).
    // Nearest rank ceil(p/100 * 6): p50 → 3rd = 1235, p75 → ceil(4.5) = 5th = 3000,
    // p90 → ceil(5.4) = 6th = 8000, p99 → ceil(5.94) = 6th = 8000.
    // w = (8000 - 400) / 7 = 1085.714…; edges 400 + round(i*w):
    //   400, 1486, 2571 (2171.43), 3657 (3257.14), 4743 (4342.86), 5829 (5428.57), 6914 (6514.29), 8000.
    // Bins: 400, 1000 (0.55), 1235 (0.77) → 0; 2500 (1.93) → 1; 3000 (2.39) → 2; 8000 (7) → 6.
    let got = ask(
        "view-distribution",
        &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14"), ("bin_count", "7")],
    );
    assert_eq!(
        got,
        json!({
            "total": 6, "min": 400, "max": 8000, "p50": 1235, "p75": 3000, "p90": 8000, "p99": 8000,
            "bins": [
                {"bin_index": 0, "bin_lower": 400, "bin_upper": 1486, "video_count": 3},
                {"bin_index": 1, "bin_lower": 1486, "bin_upper": 2571, "video_count": 1},
                {"bin_index": 2, "bin_lower": 2571, "bin_upper": 3657, "video_count": 1},
                {"bin_index": 3, "bin_lower": 3657, "bin_upper": 4743, "video_count": 0},
                {"bin_index": 4, "bin_lower": 4743, "bin_upper": 5829, "video_count": 0},
                {"bin_index": 5, "bin_lower": 5829, "bin_upper": 6914, "video_count": 0},
                {"bin_index": 6, "bin_lower": 6914, "bin_upper": 8000, "video_count": 1},
            ]
        })
    );
    // One video (v9 on 04-15 local): w = 0, everything in bin 0; default 20 bins.
    let got = ask("view-distribution", &[("project_id", P), ("from", "2026-04-15"), ("to", "2026-04-15")]);
    assert_eq!(got["total"], json!(1));
    assert_eq!((got["min"].clone(), got["p50"].clone(), got["p99"].clone()), (json!(100), json!(100), json!(100)));
    let bins = got["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 20);
    assert_eq!(bins[0], json!({"bin_index": 0, "bin_lower": 100, "bin_upper": 100, "video_count": 1}));
    assert_eq!(bins[19], json!({"bin_index": 19, "bin_lower": 100, "bin_upper": 100, "video_count": 0}));
    // Empty period.
    assert_eq!(
        ask("view-distribution", &[("project_id", P), ("from", "2025-01-01"), ("to", "2025-01-31")]),
        json!({"total": 0, "min": null, "max": null, "p50": null, "p75": null, "p90": null, "p99": null, "bins": []})
    );
}

#[test]
fn outliers() {
    // Medians over all visible videos of each creator, any date:
    //   c1: 700, 1000, 3000 → 1000;  c2: 8000 → 8000;
    //   c3: 100, 400, 1235, 2500 → (400 + 1235) / 2 = 817.5.
    // Ratios: v5 2500/817.5 = 3.0581 → 3.06; v2 3000/1000 = 3.0;
    //   v10 1235/817.5 = 1.5107 → 1.51; all others < 1.5 (v1 1.0, v4 1.0, v3 0.7, v7 0.49, v9 0.12).
    let got = ask("outliers", &[("project_id", P)]);
    assert_eq!(
        got,
        json!([
            {"video_id": V5, "creator_id": C3, "view_count": 2500, "median_views": 817.5, "x_multiple": 3.06,
             "posted_at": "2026-04-10T12:00:00Z", "title": "V5 (moved)", "thumbnail_url": null, "url": "https://tt/v5",
             "tiktok_handle": "c3", "display_name": "Creator Three", "avatar_url": null},
            {"video_id": V2, "creator_id": C1, "view_count": 3000, "median_views": 1000.0, "x_multiple": 3.0,
             "posted_at": "2026-04-03T03:30:00Z", "title": "V2", "thumbnail_url": "https://img/v2.jpg", "url": "https://tt/v2",
             "tiktok_handle": "c1_new", "display_name": "Creator One", "avatar_url": "https://img/c1.png"},
            {"video_id": V10, "creator_id": C3, "view_count": 1235, "median_views": 817.5, "x_multiple": 1.51,
             "posted_at": "2026-04-08T14:30:00Z", "title": "V10", "thumbnail_url": "https://img/v10.jpg", "url": null,
             "tiktok_handle": "c3", "display_name": "Creator Three", "avatar_url": null},
        ])
    );
    // min_x_multiple=3: v2's ratio is exactly 3.0 and is kept.
    let got = ask("outliers", &[("project_id", P), ("min_x_multiple", "3")]);
    assert_eq!(column(&got, "video_id"), json!([V5, V2]));
    // Period 04-01..04-09 drops v5 (04-10) but the medians stay the same.
    let got = ask("outliers", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-09"), ("limit", "1")]);
    assert_eq!(column(&got, "video_id"), json!([V2]));
}

#[test]
fn creator_leaderboard_period() {
    // Period 04-01..04-14 (14 days):
    // c2: v4 → 8000 views, 1 post, (400+40+20)/8000 = 5.75%, 7/14 = 0.5/week;
    //     points 5000 (04-01T10Z), 4800 (04-12) → -200, -200/5000 = -4.0%.
    // c3: v5 2500 + v10 1235 + v7 400 = 4135, 3 posts, (60+40+48)/4135 = 3.5792% → 3.58,
    //     21/14 = 1.5/week; points 0 (04-03), 50 (04-06) → 50, growth 0 (first is 0).
    // c1: v1 1000 + v2 3000 = 4000, 2 posts, (115+189)/4000 = 7.6%, 14/14 = 1.0/week;
    //     points 1100 (04-02), 1250 (04-10) → 150, 150/1100 = 13.636% → 13.64.
    let got = ask("creator-leaderboard", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]);
    assert_eq!(
        got,
        json!([
            {"creator_id": C2, "tiktok_handle": "c2", "display_name": "Creator Two", "avatar_url": null,
             "current_followers": 4800, "follower_delta": -200, "total_views": 8000, "posts_in_period": 1,
             "posts_per_week": 0.5, "engagement_rate": 5.75, "growth_rate": -4.0, "total_count": 3},
            {"creator_id": C3, "tiktok_handle": "c3", "display_name": "Creator Three", "avatar_url": null,
             "current_followers": 50, "follower_delta": 50, "total_views": 4135, "posts_in_period": 3,
             "posts_per_week": 1.5, "engagement_rate": 3.58, "growth_rate": 0.0, "total_count": 3},
            {"creator_id": C1, "tiktok_handle": "c1_new", "display_name": "Creator One", "avatar_url": "https://img/c1.png",
             "current_followers": 1300, "follower_delta": 150, "total_views": 4000, "posts_in_period": 2,
             "posts_per_week": 1.0, "engagement_rate": 7.6, "growth_rate": 13.64, "total_count": 3},
        ])
    );
}

#[test]
fn creator_leaderboard_open_period() {
    // Open period: every video and follower point counts. posts_per_week days:
    // from = local date of the earliest visible video (v3, 04-01T03:59:59Z =
    // 03-31 in New York), to = today 04-20 → 21 days.
    // c2: 8000, 1 post, 7/21 = 0.33, 5.75%, -200, -4.0%.
    // c1: 1000 + 3000 + 700 = 4700, 3 posts, 21/21 = 1.0, (115+189+5)/4700 = 6.5745% → 6.57,
    //     points 1000 … 1300 → 300, 300/1000 = 30.0%.
    // c3: 2500 + 400 + 100 + 1235 = 4235, 4 posts, 28/21 = 1.33, (148+1)/4235 = 3.518% → 3.52, 50, 0.0.
    // Sorted c2, c1, c3; offset 1, limit 2 → c1, c3.
    let got = ask("creator-leaderboard", &[("project_id", P), ("offset", "1"), ("limit", "2")]);
    assert_eq!(
        got,
        json!([
            {"creator_id": C1, "tiktok_handle": "c1_new", "display_name": "Creator One", "avatar_url": "https://img/c1.png",
             "current_followers": 1300, "follower_delta": 300, "total_views": 4700, "posts_in_period": 3,
             "posts_per_week": 1.0, "engagement_rate": 6.57, "growth_rate": 30.0, "total_count": 3},
            {"creator_id": C3, "tiktok_handle": "c3", "display_name": "Creator Three", "avatar_url": null,
             "current_followers": 50, "follower_delta": 50, "total_views": 4235, "posts_in_period": 4,
             "posts_per_week": 1.33, "engagement_rate": 3.52, "growth_rate": 0.0, "total_count": 3},
        ])
    );
    let got = ask("creator-leaderboard", &[("project_id", P), ("limit", "1")]);
    assert_eq!(got[0]["posts_per_week"], json!(0.33));
    // `to` before the earliest video's date: days < 1 → 0; no points → 0.
    let got = ask("creator-leaderboard", &[("project_id", P), ("to", "2026-03-01")]);
    assert_eq!(column(&got, "posts_per_week"), json!([0.0, 0.0, 0.0]));
    assert_eq!(column(&got, "total_views"), json!([0, 0, 0]));
    // All tie at 0 views → by creator_id.
    assert_eq!(column(&got, "creator_id"), json!([C1, C2, C3]));
}

#[test]
fn posting_consistency() {
    // New York days: c1 04-01 (v1), 04-02 (v2 at 23:30); c2 04-05 (v4);
    // c3 04-08 (v10), 04-10 (v5), 04-14 (v7 at 23:59).
    let got = ask("posting-consistency", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]);
    assert_eq!(
        got,
        json!([
            {"creator_id": C1, "day": "2026-04-01", "post_count": 1},
            {"creator_id": C1, "day": "2026-04-02", "post_count": 1},
            {"creator_id": C2, "day": "2026-04-05", "post_count": 1},
            {"creator_id": C3, "day": "2026-04-08", "post_count": 1},
            {"creator_id": C3, "day": "2026-04-10", "post_count": 1},
            {"creator_id": C3, "day": "2026-04-14", "post_count": 1},
        ])
    );
    // UTC days: v3 (03:59:59Z) and v1 share 04-01; v2 is 04-03; v7 (04-15T03:59Z) is out.
    let got = ask(
        "posting-consistency",
        &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14"), ("tz", "Etc/UTC")],
    );
    assert_eq!(
        got,
        json!([
            {"creator_id": C1, "day": "2026-04-01", "post_count": 2},
            {"creator_id": C1, "day": "2026-04-03", "post_count": 1},
            {"creator_id": C2, "day": "2026-04-05", "post_count": 1},
            {"creator_id": C3, "day": "2026-04-08", "post_count": 1},
            {"creator_id": C3, "day": "2026-04-10", "post_count": 1},
        ])
    );
}

#[test]
fn creator_scatter() {
    // Same figures as creator_leaderboard_period, sorted by creator_id.
    let got = ask("creator-scatter", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]);
    assert_eq!(
        got,
        json!([
            {"creator_id": C1, "tiktok_handle": "c1_new", "follower_delta": 150, "engagement_rate": 7.6, "posts_count": 2},
            {"creator_id": C2, "tiktok_handle": "c2", "follower_delta": -200, "engagement_rate": 5.75, "posts_count": 1},
            {"creator_id": C3, "tiktok_handle": "c3", "follower_delta": 50, "engagement_rate": 3.58, "posts_count": 3},
        ])
    );
    // 04-15..04-30: only v9 (c3, 04-15 00:00 local): (1+0+0)/100 = 1.0%; c3 has no
    // follower point then → 0. c1 has a point (04-18) but no video → not listed.
    let got = ask("creator-scatter", &[("project_id", P), ("from", "2026-04-15"), ("to", "2026-04-30")]);
    assert_eq!(
        got,
        json!([{"creator_id": C3, "tiktok_handle": "c3", "follower_delta": 0, "engagement_rate": 1.0, "posts_count": 1}])
    );
}

#[test]
fn goal_compliance() {
    // today = 2026-04-20.
    // g1 c1 posts 4, 04-01..04-30: progress v1, v2 = 2; total 30 days, elapsed 20,
    //    expected 4*20/30 = 2.67; 2 < 2.67 but 2 >= 0.75*2.67 = 2.0 → behind_pace → at_risk.
    // g2 c2 views 5000, 04-01..04-10: v4 8000 >= 5000 → completed → on_track.
    // g3 c3 views 10000, 03-01..03-31: 0, today > ends_on → missed.
    // g6 c3 posts 3, 05-01..05-31: elapsed clamp(-10) = 0, expected 0, 0 >= 0 → on_track.
    let got = ask("goal-compliance", &[("project_id", P)]);
    assert_eq!(got, json!({"on_track": 2, "at_risk": 1, "missed": 1, "total_goals": 4, "creators_with_goals": 3}));
}

#[test]
fn campaign_leaderboard() {
    // Resolved videos: k2 = {v5, v4} ∪ k4 {v7, c2 → v4} = {v4, v5, v7} (v6 removed,
    // c4 untracked); k4 = the same set through the cycle; k1 = c1 {v1, v2, v3} ∪
    // c2 {v4} ∪ {v4} ∪ k2 = {v1, v2, v3, v4, v5, v7} (k3 is deleted; v9 was removed).
    // Period 04-01..04-14, prior 03-18..03-31 (14 days each):
    // k1: v1 1000 + v2 3000 + v4 8000 + v5 2500 + v7 400 = 14900; likes 100+157+400+50+40 = 747;
    //     creators c1, c2, c3; preview v4; prior v3 700; delta 14200; 14200/700 = 2028.57% → 2029.
    // k2, k4: 8000 + 2500 + 400 = 10900; likes 490; creators c2, c3; prior 0 → pct null.
    //     Tie on views → k2 before k4.
    let got = ask("campaign-leaderboard", &[("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]);
    assert_eq!(
        got,
        json!([
            {"campaign_id": K1, "name": "Spring Launch", "total_views": 14900, "total_likes": 747, "video_count": 5,
             "creator_count": 3, "preview_thumbnail_url": "https://img/v4.jpg", "prior_views": 700,
             "views_delta": 14200, "views_delta_pct": 2029},
            {"campaign_id": K2, "name": "Alpha Nested", "total_views": 10900, "total_likes": 490, "video_count": 3,
             "creator_count": 2, "preview_thumbnail_url": "https://img/v4.jpg", "prior_views": 0,
             "views_delta": 10900, "views_delta_pct": null},
            {"campaign_id": K4, "name": "beta cycle", "total_views": 10900, "total_likes": 490, "video_count": 3,
             "creator_count": 2, "preview_thumbnail_url": "https://img/v4.jpg", "prior_views": 0,
             "views_delta": 10900, "views_delta_pct": null},
        ])
    );
    // 04-15..04-28 (prior = 04-01..04-14): no resolved video posted (v9 is not a
    // member); -14900/14900 = -100%, preview null; all at 0 → by id.
    let got = ask("campaign-leaderboard", &[("project_id", P), ("from", "2026-04-15"), ("to", "2026-04-28")]);
    assert_eq!(
        got,
        json!([
            {"campaign_id": K1, "name": "Spring Launch", "total_views": 0, "total_likes": 0, "video_count": 0,
             "creator_count": 0, "preview_thumbnail_url": null, "prior_views": 14900,
             "views_delta": -14900, "views_delta_pct": -100},
            {"campaign_id": K2, "name": "Alpha Nested", "total_views": 0, "total_likes": 0, "video_count": 0,
             "creator_count": 0, "preview_thumbnail_url": null, "prior_views": 10900,
             "views_delta": -10900, "views_delta_pct": -100},
            {"campaign_id": K4, "name": "beta cycle", "total_views": 0, "total_likes": 0, "video_count": 0,
             "creator_count": 0, "preview_thumbnail_url": null, "prior_views": 10900,
             "views_delta": -10900, "views_delta_pct": -100},
        ])
    );
}

#[test]
fn member_overlap() {
    // Direct creator members of visible campaigns: c1 in k1; c2 in k1 and k4
    // (c1 in deleted k3 and untracked c4 in k2 do not count). Names by code
    // point: "Spring Launch" < "beta cycle".
    let got = ask("member-overlap", &[("project_id", P)]);
    assert_eq!(
        got,
        json!([
            {"entity_id": C2, "entity_label": "c2", "entity_avatar": null,
             "campaign_ids": [K1, K4], "campaign_names": ["Spring Launch", "beta cycle"], "campaign_count": 2},
            {"entity_id": C1, "entity_label": "c1_new", "entity_avatar": "https://img/c1.png",
             "campaign_ids": [K1], "campaign_names": ["Spring Launch"], "campaign_count": 1},
        ])
    );
    // Direct video members: v4 in k1 (added with an upper-case id) and k2; v5 in
    // k2; v7 in k4. Not: v6 (removed), v1 (k3 deleted), v9 (membership removed).
    let got = ask("member-overlap", &[("project_id", P), ("dimension", "video")]);
    assert_eq!(
        got,
        json!([
            {"entity_id": V4, "entity_label": "V4", "entity_avatar": "https://img/v4.jpg",
             "campaign_ids": [K2, K1], "campaign_names": ["Alpha Nested", "Spring Launch"], "campaign_count": 2},
            {"entity_id": V5, "entity_label": "V5 (moved)", "entity_avatar": null,
             "campaign_ids": [K2], "campaign_names": ["Alpha Nested"], "campaign_count": 1},
            {"entity_id": V7, "entity_label": "V7", "entity_avatar": "https://img/v7.jpg",
             "campaign_ids": [K4], "campaign_names": ["beta cycle"], "campaign_count": 1},
        ])
    );
}

#[test]
fn parameter_errors() {
    const BAD: (u16, &str) = (400, "invalid_parameter");
    const NF: (u16, &str) = (404, "not_found");
    let period = [("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = period.to_vec();
        v.extend_from_slice(extra);
        v
    };
    // Duplicate and empty parameters.
    assert_eq!(err("video-leaderboard", &with(&[("from", "2026-04-01")])), BAD);
    assert_eq!(err("video-leaderboard", &with(&[("limit", "5"), ("limit", "5")])), BAD);
    assert_eq!(err("video-leaderboard", &[("project_id", P), ("from", "")]), BAD);
    assert_eq!(err("goal-compliance", &[("project_id", P), ("project_id", P)]), BAD);
    // from > to; malformed dates.
    assert_eq!(err("posting-heatmap", &[("project_id", P), ("from", "2026-04-15"), ("to", "2026-04-14")]), BAD);
    assert_eq!(err("video-leaderboard", &[("project_id", P), ("from", "2026-4-01")]), BAD);
    assert_eq!(err("video-leaderboard", &[("project_id", P), ("to", "2026-02-30")]), BAD);
    // Required from/to.
    assert_eq!(err("posting-heatmap", &[("project_id", P), ("from", "2026-04-01")]), BAD);
    assert_eq!(err("campaign-leaderboard", &[("project_id", P), ("to", "2026-04-01")]), BAD);
    assert_eq!(err("view-distribution", &[("project_id", P)]), BAD);
    // Integers: range and syntax.
    for bad in ["0", "201", "+5", "5.0", " 5", "-1", "99999999999999999999999"] {
        assert_eq!(err("video-leaderboard", &with(&[("limit", bad)])), BAD, "limit={bad}");
    }
    assert_eq!(err("outliers", &[("project_id", P), ("limit", "101")]), BAD);
    assert_eq!(err("creator-leaderboard", &[("project_id", P), ("offset", "-1")]), BAD);
    assert_eq!(err("view-distribution", &with(&[("bin_count", "4")])), BAD);
    assert_eq!(err("view-distribution", &with(&[("bin_count", "51")])), BAD);
    assert!(model().answer("view-distribution", &q(&with(&[("bin_count", "50")])), now()).is_ok());
    // min_x_multiple: > 0 and <= 1000.
    for bad in ["0", "0.0", "1000.5", "-1", "abc", "inf", "NaN"] {
        assert_eq!(err("outliers", &[("project_id", P), ("min_x_multiple", bad)]), BAD, "min_x={bad}");
    }
    assert!(model().answer("outliers", &q(&[("project_id", P), ("min_x_multiple", "1000")]), now()).is_ok());
    // Enums and zones.
    assert_eq!(err("video-leaderboard", &[("project_id", P), ("order", "views")]), BAD);
    assert_eq!(err("member-overlap", &[("project_id", P), ("dimension", "campaign")]), BAD);
    assert_eq!(err("posting-heatmap", &with(&[("tz", "Mars/Olympus")])), BAD);
    assert_eq!(err("posting-consistency", &with(&[("tz", "")])), BAD);
    // Unknown parameters (and parameters of other endpoints) are ignored.
    assert!(
        model()
            .answer("creator-leaderboard", &q(&[("project_id", P), ("tz", "Mars/Olympus"), ("x", "")]), now())
            .is_ok()
    );
    assert!(model().answer("goal-compliance", &q(&[("project_id", P), ("from", "nope")]), now()).is_ok());
    // project_id: missing or malformed → 400; unknown or deleted → 404.
    assert_eq!(err("goal-compliance", &[]), BAD);
    assert_eq!(err("goal-compliance", &[("project_id", "5eed0000000040008000000000000001")]), BAD);
    assert_eq!(err("goal-compliance", &[("project_id", "not-a-uuid")]), BAD);
    assert_eq!(err("goal-compliance", &[("project_id", "5eed0000-0000-4000-8000-00000000dead")]), NF);
    assert_eq!(err("goal-compliance", &[("project_id", P2)]), NF);
    // 400 comes before 404.
    assert_eq!(err("video-leaderboard", &[("project_id", P2), ("limit", "0")]), BAD);
    // Upper-case project id is the same project.
    assert!(model().answer("goal-compliance", &q(&[("project_id", &P.to_uppercase())]), now()).is_ok());
}

#[test]
fn order_and_duplicates_do_not_matter() {
    // Reversing the log and doubling every line gives the same answers.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_tiny.ndjson")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    let doubled: Vec<&str> = lines.iter().chain(lines.iter()).copied().collect();
    let a = model();
    let b = Reference::from_lines(&doubled);
    for (ep, pairs) in [
        ("video-leaderboard", vec![("project_id", P)]),
        ("creator-leaderboard", vec![("project_id", P)]),
        ("campaign-leaderboard", vec![("project_id", P), ("from", "2026-04-01"), ("to", "2026-04-14")]),
        ("member-overlap", vec![("project_id", P), ("dimension", "video")]),
        ("goal-compliance", vec![("project_id", P)]),
    ] {
        assert_eq!(a.answer(ep, &q(&pairs), now()), b.answer(ep, &q(&pairs), now()), "{ep}");
    }
    assert_eq!(a.last_event_at(P), b.last_event_at(P));
}
