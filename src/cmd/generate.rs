//! `goatview gen`: write a deterministic, realistic event log.

use std::io::BufWriter;
use std::time::Instant as WallClock;

use anyhow::Context;

use crate::cli::GenArgs;
use crate::events::Instant;
use crate::r#gen::{GenConfig, Scale, generate_to};

pub fn run(args: GenArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let scale: Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let mut cfg = GenConfig::new(args.seed, scale);
    if let Some(now) = now {
        cfg.now = now.to_chrono();
    }
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let started = WallClock::now();
    let stats = generate_to(&cfg, BufWriter::with_capacity(1 << 20, file))?;
    println!(
        "wrote {} lines ({} events, {} duplicates, {} invalid) to {} in {:.1}s",
        stats.lines,
        stats.events,
        stats.duplicates,
        stats.invalid,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
