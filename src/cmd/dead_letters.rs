//! `goatview dead-letters`: print every dead letter as one JSON object per line.

use std::io::Write;

use crate::cli::DbArgs;

pub fn run(args: DbArgs) -> anyhow::Result<()> {
    let store = args.open()?;
    let mut out = std::io::stdout().lock();
    for dl in store.dead_letters()? {
        let line = serde_json::json!({
            "source": dl.source,
            "position": dl.position,
            "reason": dl.reason,
            "recorded_at": dl.recorded_at.to_rfc3339(),
            "raw": String::from_utf8_lossy(&dl.raw),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
