//! `bench ingest`: replay a generated (or given) log into a fresh state file.

use std::io::BufWriter;
use std::path::Path;
use std::time::Instant as WallClock;

use anyhow::Context;

use super::{
    IngestArgs, Machine, Scratch, command_line, fresh_db, kept_at, load_average, mib, peak_rss_kib, print_peak_rss,
    reset_peak_rss,
};
use crate::events::Instant;
use crate::r#gen::{GenConfig, GenStats, ProjectStatus, generate_to};
use crate::ingest::log::{Batching, FilePosition, Progress, REPLAY_CACHE_MIB, replay_file};
use crate::state::tables::table_stats;
use crate::store::Store;

pub(super) fn ingest(args: IngestArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let cfg = args.source.gen_config(now)?;
    println!("machine: {}; load average {}", Machine::detect(), load_average());
    println!("command: {}", command_line());
    let tmp = Scratch::new("ingest")?;
    ingest_in(&args, &cfg, &tmp.0)
}

fn ingest_in(args: &IngestArgs, cfg: &GenConfig, tmp: &Path) -> anyhow::Result<()> {
    let (log, stats) = match &args.source.log_file {
        Some(log) => {
            // The keys are a function of the seed and scale: generate them without the log.
            let stats = args.print_key.then(|| generate_to(cfg, std::io::sink())).transpose()?;
            (log.clone(), stats)
        }
        None => {
            let log = tmp.join("events.ndjson");
            let stats = generate_log(cfg, &log)?;
            (log, Some(stats))
        }
    };
    let db = fresh_db(&args.db, tmp, "ingest")?;
    let log_bytes = std::fs::metadata(&log).with_context(|| format!("reading {}", log.display()))?.len();
    let peak_reset = reset_peak_rss();

    let cache_mib = Some(args.cache_mib.unwrap_or(REPLAY_CACHE_MIB));
    let mut store = Store::open_with_cache(&db, cache_mib).with_context(|| format!("opening {}", db.display()))?;
    let mut points: Vec<(f64, FilePosition)> = Vec::new();
    let started = WallClock::now();
    // The generator's instant (`--now` when given) stamps the dead letters.
    let stamp = Instant::from_chrono(cfg.now);
    let batching = Batching { batch_size: args.batch_size as usize, window: args.window as usize };
    let summary = replay_file(&store, &log, batching, stamp, |p| {
        if let Progress::Committed(p) = p {
            points.push((started.elapsed().as_secs_f64(), p.clone()))
        }
    })
    .with_context(|| format!("replaying {}", log.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    let db_bytes = std::fs::metadata(&db)?.len();
    let compacting = WallClock::now();
    store.compact().context("compacting the state file")?;
    let compact_secs = compacting.elapsed().as_secs_f64();
    let tables = table_stats(&store.read()?)?;
    drop(store);
    let compact_bytes = std::fs::metadata(&db)?.len();

    let messages = summary.events + summary.dead_letters;
    println!("log:       {} ({:.1} MiB)", log.display(), mib(log_bytes));
    println!(
        "events:    {} applied ({} of them superseded in their window), {} dead letters",
        summary.events, summary.superseded, summary.dead_letters
    );
    println!("time:      {secs:.2}s");
    println!(
        "rate:      {:.0} events/s (applied + dead letters, as `replay` counts)",
        messages as f64 / secs.max(1e-9)
    );
    match steady_rate(&points, log_bytes) {
        Some(rate) => println!("steady:    {rate:.0} lines/s over the last half of the log"),
        None => println!("steady:    n/a (too few windows)"),
    }
    print_peak_rss(peak, peak_reset, "replay only", "including generation");
    println!(
        "state:     {:.1} MiB after ingest; {:.1} MiB = {:.2}x the log ({:.1} MiB) after compaction ({:.1}s){}",
        mib(db_bytes),
        mib(compact_bytes),
        compact_bytes as f64 / log_bytes.max(1) as f64,
        mib(log_bytes),
        compact_secs,
        kept_at(&args.db, &db)
    );
    println!("tables:    {:<18} {:>12} {:>12}", "name", "rows", "MiB (pages)");
    for t in tables.iter().filter(|t| t.rows > 0) {
        println!("           {:<18} {:>12} {:>12.1}", t.name, t.rows, mib(t.page_bytes));
    }
    if let Some(stats) = stats.filter(|_| args.print_key) {
        let (key, project) = largest_project_key(&stats).context("the generated log has no usable key")?;
        let now = cfg.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        println!("key:       {key}\nproject:   {project}");
        println!(
            "query:     goatview --now {now} serve --db {db}\n           goatview --now {now} bench query --key {key} --project {project}",
            db = db.display()
        );
    }
    Ok(())
}

/// Writes the log of `cfg` to `log` and prints what it holds and how long it took.
pub(super) fn generate_log(cfg: &GenConfig, log: &Path) -> anyhow::Result<GenStats> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let started = WallClock::now();
    let stats = generate_to(cfg, BufWriter::with_capacity(1 << 20, file))?;
    println!(
        "generated: scale {} seed {} now {}: {} lines ({} events, {} duplicates, {} invalid) in {:.1}s",
        cfg.scale,
        cfg.seed,
        cfg.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        stats.lines,
        stats.events,
        stats.duplicates,
        stats.invalid,
        started.elapsed().as_secs_f64()
    );
    Ok(stats)
}

/// Lines/s over the last half of the log, from the `(seconds, position)` after each window.
pub fn steady_rate(points: &[(f64, FilePosition)], log_bytes: u64) -> Option<f64> {
    let mid = points.iter().position(|(_, p)| p.byte >= log_bytes / 2)?;
    let (t_mid, p_mid) = &points[mid];
    let (t_end, p_end) = points.last()?;
    let after = p_end.line - p_mid.line;
    (after > 0 && t_end > t_mid).then(|| after as f64 / (t_end - t_mid))
}

/// The key of the org owning the visible project with the most videos, and that project.
pub fn largest_project_key(stats: &GenStats) -> Option<(String, String)> {
    let mut projects: Vec<_> = stats.projects.iter().filter(|p| p.status == ProjectStatus::Visible).collect();
    projects.sort_by_key(|p| std::cmp::Reverse((p.videos, p.creators)));
    projects.iter().find_map(|p| {
        let key = stats.api_keys.iter().find(|k| k.project_ids.contains(&p.project_id))?;
        Some((key.key.clone(), p.project_id.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_counts_the_last_half() {
        // Windows of 10 lines of 10 bytes, and a last one of 5; half the bytes after the 2nd.
        let at = |line: u64| FilePosition { line, byte: line * 10, prefix_sha256: [0; 32] };
        let points = [(1.0, at(10)), (2.0, at(20)), (3.0, at(30)), (4.0, at(40)), (4.5, at(45))];
        assert_eq!(steady_rate(&points, 450), Some(25.0 / 2.5));
        assert_eq!(steady_rate(&points[..1], 100), None);
    }
}
