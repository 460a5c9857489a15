//! Ingestion: moving bytes from a source into batches for the store. Sources know bytes
//! and positions; `events::decode` knows JSON; `state` knows neither.

pub mod decoding;
pub mod kafka;
pub mod log;
pub mod window;

use crate::events::{Instant, decode};
use crate::store::{Batch, DeadLetter};

/// Decodes one message into the batch: an event, or a dead letter with its reason.
pub fn push_message(batch: &mut Batch, source: &str, position: u64, bytes: &[u8], now: Instant) {
    match decode(bytes) {
        Ok(ev) => batch.events.push(ev),
        Err(e) => push_dead_letter(batch, source, position, bytes, e.to_string(), now),
    }
}

/// Adds a dead letter (raw bytes, where they came from, why) to the batch and logs it.
pub fn push_dead_letter(batch: &mut Batch, source: &str, position: u64, raw: &[u8], reason: String, now: Instant) {
    tracing::warn!(source, position, reason = %reason, "Dead letter recorded.");
    batch.dead_letters.push(DeadLetter {
        source: source.to_owned(),
        position,
        raw: raw.to_vec(),
        reason,
        recorded_at: now,
    });
}
