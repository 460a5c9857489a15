//! `goatview dead-letters`: print every dead letter as one JSON object per line.

use std::io::Write;

use anyhow::Context;

use crate::cli::DbArgs;
use crate::store::Store;

pub fn run(args: DbArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
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
