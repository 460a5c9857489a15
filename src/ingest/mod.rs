//! Ingestion: moving bytes from a source into batches for the store. Sources know bytes
//! and positions; `events::decode` knows JSON; `state` knows neither.

pub mod kafka;
pub mod log;

use crate::events::{Instant, decode};
use crate::store::{Batch, DeadLetter};

/// Decodes one message into the batch: an event, or a dead letter with its reason.
pub fn push_message(batch: &mut Batch, source: &str, position: u64, bytes: &[u8], now: Instant) {
    match decode(bytes) {
        Ok(ev) => batch.events.push(ev),
        Err(e) => {
            tracing::warn!(source, position, reason = %e, "Dead letter recorded.");
            batch.dead_letters.push(DeadLetter {
                source: source.to_owned(),
                position,
                raw: bytes.to_vec(),
                reason: e.to_string(),
                recorded_at: now,
            });
        }
    }
}
