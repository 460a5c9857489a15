//! Every endpoint against the independent reference model, over HTTP, on a generated log
//! with several projects and zones (Asia/Kolkata, Asia/Kathmandu, America/New_York around
//! both DST changes, Australia/Lord_Howe), removals and re-adds, nested and cyclic
//! campaigns, goals before/inside/after their windows, ties, duplicates and reordering.

mod common;

use common::reference::Reference;
use common::{TestStore, compare, get, pairs, period_views, uri};
use goatview::r#gen::{GenConfig, Generated, Scale, default_now, generate};

#[tokio::test]
async fn generated_log_answers_match_the_reference() {
    let (sample, ts) = generated_store(11);
    let now = default_now();
    let reference = Reference::from_lines(&sample.lines);
    let app = ts.app(now);

    let today = now.date_naive();
    let d = |days: u64| (today - chrono::Days::new(days)).to_string();
    let ranges: Vec<(Option<String>, Option<String>)> = vec![
        (None, None),
        (Some(d(7)), Some(d(0))),
        (Some(d(30)), Some(d(0))),
        (Some(d(90)), None),
        (None, Some(d(60))),
        (Some("2026-03-07".into()), Some("2026-03-09".into())),
        (Some("2026-10-31".into()), Some("2026-11-02".into())),
        (Some("2025-11-01".into()), Some("2025-11-03".into())),
        (Some(d(0)), Some(d(0))),
    ];
    let mut checked = 0;
    for key in &sample.api_keys {
        for project in &key.project_ids {
            let p = ("project_id", project.as_str());
            let mut queries: Vec<(&str, Vec<(String, String)>)> = Vec::new();
            queries.push(("goal-compliance", pairs(&[p])));
            queries.push(("member-overlap", pairs(&[p])));
            queries.push(("member-overlap", pairs(&[p, ("dimension", "video")])));
            for (i, (from, to)) in ranges.iter().enumerate() {
                let mut base = vec![p];
                if let Some(f) = from {
                    base.push(("from", f));
                }
                if let Some(t) = to {
                    base.push(("to", t));
                }
                let with = |extra: &[(&'static str, &'static str)]| {
                    let mut q = base.clone();
                    q.extend_from_slice(extra);
                    pairs(&q)
                };
                let order =
                    ["view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at"][i % 6];
                queries.push(("video-leaderboard", with(&[("order", order)])));
                queries.push(("video-leaderboard", with(&[("order", "view_count"), ("limit", "7"), ("offset", "3")])));
                queries.push(("outliers", with(&[])));
                queries.push(("outliers", with(&[("min_x_multiple", "3.25"), ("limit", "100")])));
                queries.push(("creator-leaderboard", with(&[])));
                queries.push(("creator-leaderboard", with(&[("limit", "5"), ("offset", "2")])));
                queries.push(("creator-scatter", with(&[])));
                if from.is_some() && to.is_some() {
                    queries.push(("posting-heatmap", with(&[])));
                    queries.push(("posting-heatmap", with(&[("tz", "Asia/Kathmandu")])));
                    queries.push(("posting-consistency", with(&[("tz", "America/New_York")])));
                    queries.push(("view-distribution", with(&[("bin_count", "5")])));
                    queries.push(("view-distribution", with(&[("bin_count", "50")])));
                    queries.push(("view-distribution", with(&[])));
                    queries.push(("campaign-leaderboard", with(&[])));
                }
            }
            for (endpoint, query) in queries {
                let expected = reference.answer(endpoint, &query, now);
                let (status, body) = get(&app, &uri(endpoint, &query), Some(&key.key)).await;
                match expected {
                    Ok(expected) => {
                        assert_eq!(status, 200, "{endpoint} {query:?}: {body}");
                        let views = period_views(&reference, project, &query);
                        if let Err(e) = compare(endpoint, &body["data"], &expected, &views) {
                            panic!("{endpoint} {query:?}: {e}");
                        }
                        checked += 1;
                    }
                    Err((code, _)) => assert_eq!(status.as_u16(), code, "{endpoint} {query:?}: {body}"),
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} answers compared");
}

/// A generated log (scale Test) applied to a new store, 2,000 lines per transaction.
fn generated_store(seed: u64) -> (Generated, TestStore) {
    let sample = generate(&GenConfig::new(seed, Scale::Test));
    let ts = TestStore::new();
    ts.apply_lines(&sample.lines, 2_000);
    (sample, ts)
}

/// The visible projects of the sample's API keys, key by key (a project two keys can read
/// comes twice).
fn key_projects(sample: &Generated, rtxn: &redb::ReadTransaction) -> Vec<goatview::query::ProjectView> {
    let ids = sample.api_keys.iter().flat_map(|k| &k.project_ids);
    ids.filter_map(|id| goatview::query::project(rtxn, goatview::events::parse_id(id).unwrap()).unwrap()).collect()
}

/// `outliers` answers from whichever of two strategies is cheaper for the period; both
/// must give the same answer everywhere, whichever one the HTTP test above happened to use.
#[test]
fn both_outlier_strategies_agree() {
    use goatview::query::{DateRange, OutliersParams, outliers_by_merge, outliers_in_period};

    let (sample, ts) = generated_store(11);
    let rtxn = ts.store.read().unwrap();
    let today = default_now().date_naive();
    let d = |days: u64| Some(today - chrono::Days::new(days));
    let date = |s: &str| Some(s.parse().unwrap());
    let ranges = [
        (None, None),
        (d(7), d(0)),
        (d(90), None),
        (None, d(60)),
        (date("2026-03-07"), date("2026-03-09")),
        (date("2026-10-31"), date("2026-11-02")),
    ];
    let mut rows = 0;
    for p in key_projects(&sample, &rtxn) {
        for (from, to) in ranges {
            for (min_x_multiple, limit) in [(1.0, 100), (1.5, 50), (1.5, 3), (3.0, 1), (0.5, 100)] {
                let q = OutliersParams { range: DateRange { from, to }, min_x_multiple, limit };
                let merged = outliers_by_merge(&rtxn, &p, &q).unwrap();
                assert_eq!(merged, outliers_in_period(&rtxn, &p, &q).unwrap(), "{from:?}..{to:?} {q:?}");
                rows += merged.len();
            }
        }
    }
    assert!(rows > 500, "the cases must find outliers: {rows} rows");
}

/// creator-scatter reads follower deltas with one scan of the history in time order when
/// the period holds few points, else a lookup per creator; both must agree for every
/// creator, whichever one the HTTP tests happened to use.
#[test]
fn both_follower_strategies_agree() {
    use goatview::query::{follower_change, follower_scan};
    use goatview::state::{ID_MAX, ID_MIN};
    use goatview::time::Period;

    let (sample, ts) = generated_store(12);
    let rtxn = ts.store.read().unwrap();
    let followers = rtxn.open_table(goatview::state::defs::followers).unwrap();
    let today = default_now().date_naive();
    let d = |days: u64| Some(today - chrono::Days::new(days));
    let ranges = [(None, None), (d(7), d(0)), (d(30), d(0)), (d(90), None), (None, d(60)), (d(3), d(3))];
    let (mut compared, mut moved) = (0, 0);
    for p in key_projects(&sample, &rtxn) {
        let id = p.id;
        let mut creators: Vec<[u8; 16]> = Vec::new();
        for e in followers.range((id, ID_MIN, i64::MIN, 0)..=(id, ID_MAX, i64::MAX, u32::MAX)).unwrap() {
            let c = e.unwrap().0.value().1;
            if creators.last() != Some(&c) {
                creators.push(c);
            }
        }
        for (from, to) in ranges {
            let period = Period::days(p.tz, from, to);
            let scanned = follower_scan(&rtxn, id, &period).unwrap();
            for &c in &creators {
                let one = follower_change(&followers, id, c, &period).unwrap().0;
                let all = scanned.get(&c).map_or(0, |&(first, last)| last as i64 - first as i64);
                assert_eq!(one, all, "{from:?}..{to:?}");
                compared += 1;
                moved += u64::from(one != 0);
            }
        }
    }
    assert!(
        compared > 1_000 && moved > 100,
        "the cases must see follower changes: {compared} compared, {moved} non-zero"
    );
}
