//! `goatview demo`: the embedded default. Generates a realistic sample, replays it into a
//! local redb file, serves the API and prints how to query it. Needs no Kafka.

use std::sync::Arc;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::events::Instant;
use crate::r#gen::{GenConfig, Scale, generate};
use crate::ingest::log::{Batching, replay_file};
use crate::store::Store;

pub async fn run(args: DemoArgs, now: Option<Instant>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let clock = super::now(now);
    let mut cfg = GenConfig::new(args.seed, Scale::Demo);
    cfg.now = clock.to_chrono();
    let sample = generate(&cfg);
    let log = args.dir.join("demo-events.ndjson");
    std::fs::write(&log, sample.lines.iter().map(|l| format!("{l}\n")).collect::<String>())
        .with_context(|| format!("writing {}", log.display()))?;

    let db = args.dir.join("goatview.redb");
    // A fresh file each run: the sample is regenerated relative to today.
    let _ = std::fs::remove_file(&db);
    let store = Arc::new(Store::open(&db)?);
    let started = std::time::Instant::now();
    let s = replay_file(&store, &log, Batching::of(10_000), clock, |_| {})?;
    println!(
        "Replayed {} sample events ({} dead letters, on purpose) from {} into {} in {:.1}s.",
        s.events,
        s.dead_letters,
        log.display(),
        db.display(),
        started.elapsed().as_secs_f64()
    );

    let key = sample.api_keys.first().context("the sample has an API key")?;
    let project = key.project_ids.first().context("the key's org has a project")?;
    let base = format!("http://{}/api/v1/analytics/aggregate", args.http.listen);
    let today = crate::time::local_date(chrono_tz::Tz::UTC, clock);
    let month_ago = today - chrono::Days::new(30);
    println!("\nAPI key: {}\nProject: {project}\n\nTry:", key.key);
    let q = |endpoint: &str, extra: &str| {
        println!("  curl -s -H 'Authorization: Bearer {}' '{base}/{endpoint}?project_id={project}{extra}'", key.key);
    };
    let range = format!("&from={month_ago}&to={today}");
    q("video-leaderboard", "&limit=5");
    q("posting-heatmap", &range);
    q("view-distribution", &format!("{range}&bin_count=10"));
    q("outliers", "&limit=5");
    q("creator-leaderboard", "&limit=5");
    q("posting-consistency", &format!("{range}&tz=Asia/Kolkata"));
    q("creator-scatter", &range);
    q("goal-compliance", "");
    q("campaign-leaderboard", &range);
    q("member-overlap", "&dimension=creator");
    println!("\nAlso: http://{0}/api/v1/openapi.json  http://{0}/healthz  http://{0}/metrics\n", args.http.listen);
    super::serve::serve_http(store, &args.http, now, None, super::serve::shutdown_signal()).await
}
