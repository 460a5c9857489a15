//! One module per subcommand, each with a `run`.

pub mod bench;
pub mod dead_letters;
pub mod demo;
pub mod generate;
pub mod produce;
pub mod replay;
pub mod serve;

use crate::events::Instant;

/// A size in MiB, for printing.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The clock of contract §3: `GOATVIEW_NOW` when set, else the system clock.
pub fn now(fixed: Option<Instant>) -> Instant {
    fixed.unwrap_or_else(|| Instant::from_chrono(chrono::Utc::now()))
}
