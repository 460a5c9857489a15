//! `goatview replay`: apply recorded logs through the same path as Kafka ingestion.

use std::time::Instant as WallClock;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReplayArgs;
use crate::events::Instant;
use crate::ingest::log::{Batching, FileSummary, Progress, REPLAY_CACHE_MIB, replay_file};

pub fn run(args: ReplayArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let mut store = args.db.open_with_default_cache(Some(REPLAY_CACHE_MIB))?;
    let started = WallClock::now();
    let mut total = FileSummary::default();
    for file in &args.files {
        let len = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
        // indicatif draws only on a terminal; redirected output stays clean.
        let bar = ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(file.display().to_string());
        // Redraws while a window is applied, when no bytes are read for a while.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        let batching = Batching { batch_size: args.batch_size as usize, window: args.window as usize };
        // The bar follows reading; applying a window comes after its last line is read.
        let s = replay_file(&store, file, batching, super::now(now), |p| match p {
            Progress::Read(p) => bar.set_position(p.byte),
            Progress::Applying(p) => bar.set_message(format!("{}: applying to line {}", file.display(), p.line)),
            Progress::Committed(p) => bar.set_message(format!("{}: applied to line {}", file.display(), p.line)),
        })
        .with_context(|| format!("replaying {}", file.display()))?;
        bar.finish_and_clear();
        if s.resumed_from_line > 0 {
            println!("{}: resumed after line {} (already applied)", file.display(), s.resumed_from_line);
        }
        total.events += s.events;
        total.superseded += s.superseded;
        total.dead_letters += s.dead_letters;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {} file(s): {} events applied ({} superseded in their window), {} dead letters, {:.2}s, {:.0} events/s",
        args.files.len(),
        total.events,
        total.superseded,
        total.dead_letters,
        secs,
        (total.events + total.dead_letters) as f64 / secs.max(1e-9)
    );
    if !args.no_compact {
        let before = file_size(&args.db.db);
        let started = WallClock::now();
        store.compact().context("compacting the state file")?;
        println!(
            "compacted {}: {:.1} MiB -> {:.1} MiB in {:.2}s",
            args.db.db.display(),
            super::mib(before),
            super::mib(file_size(&args.db.db)),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
