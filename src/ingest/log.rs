//! Recorded event logs (JSON Lines): replay into the store, resumable by line.
//!
//! The stored position of a file is the line and byte offset just past its last committed
//! window, with the SHA-256 of every byte before it. A replay resumes there only if the
//! file still starts with those bytes; a different file at the same path is replayed from
//! the top, which is harmless because applying events again changes nothing.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::push_dead_letter;
use super::window::Window;
use crate::events::{Instant, decode};
use crate::store::{Batch, Store, StoreError};

/// Errors of a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a replay of one file stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Lines consumed.
    pub line: u64,
    /// Bytes consumed.
    pub byte: u64,
    /// SHA-256 of those bytes.
    pub prefix_sha256: [u8; 32],
}

/// What replaying one file did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileSummary {
    pub events: u64,
    /// Of `events`, those a later event of the same video in their window superseded:
    /// counted, never applied.
    pub superseded: u64,
    pub dead_letters: u64,
    /// Lines skipped because an earlier replay had already committed them.
    pub resumed_from_line: u64,
}

/// The source id of a file: its canonical path.
pub fn source_id(path: &Path) -> String {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    format!("file:{}", canonical.display())
}

/// redb's page cache for a replay, in MiB: half redb's default, because a replay also
/// holds a window of events. At scale L a window of 2,000,000 events and this cache peaked
/// at 1.8 GiB, where the default cache took a window of 1,000,000 past 2 GiB.
pub const REPLAY_CACHE_MIB: u64 = 512;

/// How a replay groups what it reads into write transactions.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Events applied per write transaction, at most.
    pub batch_size: usize,
    /// Events and dead letters held before they are applied (a [`Window`]): the video
    /// events that a later one in the window supersedes are never applied. At least
    /// `batch_size`.
    pub window: usize,
}

impl Batching {
    /// One transaction per `batch_size` events, each its own window.
    pub fn of(batch_size: usize) -> Batching {
        Batching { batch_size, window: batch_size }
    }
}

/// Replays one file, calling `progress` with the position after each window.
pub fn replay_file(
    store: &Store,
    path: &Path,
    batching: Batching,
    now: Instant,
    mut progress: impl FnMut(&FilePosition),
) -> Result<FileSummary, ReplayError> {
    let io = |source| ReplayError::Io { path: path.display().to_string(), source };
    let source = source_id(path);
    let stored: Option<FilePosition> = store.position(&source)?.and_then(|b| bincode::deserialize(&b).ok());
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let mut hasher = Sha256::new();
    let mut pos = FilePosition { line: 0, byte: 0, prefix_sha256: [0; 32] };
    let mut summary = FileSummary::default();

    if let Some(s) = stored {
        // Hash the stored prefix once: on a match the hasher goes on from its end.
        if hash_prefix(&mut reader, &mut hasher, s.byte).map_err(io)? == Some(s.prefix_sha256) {
            summary.resumed_from_line = s.line;
            pos = s;
            progress(&pos);
        } else {
            tracing::warn!(file = %path.display(), "File differs from the one replayed before; replaying it from the top.");
            reader.rewind().map_err(io)?;
            hasher = Sha256::new();
        }
    }

    let batch_size = batching.batch_size.max(1);
    let window_size = batching.window.max(batch_size);
    let mut window = Window::default();
    let mut dead = Batch::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&line);
        pos.line += 1;
        pos.byte += n as u64;
        let body = trim_line_end(&line);
        if !is_blank(body) {
            match decode(body) {
                Ok(ev) => window.push(ev),
                Err(e) => push_dead_letter(&mut dead, &source, pos.line, body, e.to_string(), now),
            }
        }
        if window.held() + dead.dead_letters.len() >= window_size {
            apply_window(
                store,
                &mut window,
                &mut dead,
                batch_size,
                &source,
                &mut pos,
                &hasher,
                &mut summary,
                &mut progress,
            )?;
        }
    }
    apply_window(store, &mut window, &mut dead, batch_size, &source, &mut pos, &hasher, &mut summary, &mut progress)?;
    Ok(summary)
}

/// Applies a window in transactions of at most `batch_size` events. The last one carries
/// the dead letters, the counts and the position just past the window.
#[allow(clippy::too_many_arguments)]
fn apply_window(
    store: &Store,
    window: &mut Window,
    dead: &mut Batch,
    batch_size: usize,
    source: &str,
    pos: &mut FilePosition,
    hasher: &Sha256,
    summary: &mut FileSummary,
    progress: &mut impl FnMut(&FilePosition),
) -> Result<(), StoreError> {
    let read = window.read();
    let mut events = window.take();
    summary.superseded += read - events.len() as u64;
    let last = events.split_off(events.len().saturating_sub(batch_size));
    for part in events.chunks(batch_size) {
        store.apply_part(part)?;
    }
    summary.events += read;
    summary.dead_letters += dead.dead_letters.len() as u64;
    pos.prefix_sha256 = hasher.clone().finalize().into();
    let batch = Batch {
        other_events: read - last.len() as u64,
        events: last,
        dead_letters: std::mem::take(&mut dead.dead_letters),
        positions: vec![(source.to_owned(), bincode::serialize(&*pos).expect("serializable"))],
    };
    store.commit(&batch)?;
    progress(pos);
    Ok(())
}

/// Feeds the first `len` bytes of `reader` to `hasher` and returns the digest so far, or
/// `None` when the file is shorter than what was replayed.
fn hash_prefix(reader: &mut impl BufRead, hasher: &mut Sha256, len: u64) -> std::io::Result<Option<[u8; 32]>> {
    let mut left = len;
    while left > 0 {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let n = (buf.len() as u64).min(left) as usize;
        hasher.update(&buf[..n]);
        reader.consume(n);
        left -= n as u64;
    }
    Ok(Some(hasher.clone().finalize().into()))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line of only white space is blank (contract §2.1); invalid UTF-8 never is.
fn is_blank(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty())
}
