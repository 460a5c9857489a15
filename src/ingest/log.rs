//! Recorded event logs (JSON Lines): replay into the store, resumable by line.
//!
//! The stored position of a file is the line and byte offset just past its last committed
//! window, with the SHA-256 of every byte before it. A replay resumes there only if the
//! file still starts with those bytes; a different file at the same path is replayed from
//! the top, which is harmless because applying events again changes nothing.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Instant as WallClock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decoding::{Chunk, Decoded, Decoders};
use super::push_dead_letter;
use super::window::Window;
use crate::events::Instant;
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
    /// The decoding threads could not be started.
    #[error("cannot start the decoding threads: {0}")]
    Threads(std::io::Error),
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

/// How a replay groups what it reads: one write transaction per window.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Events whose changed rows are held in memory before they are written into the
    /// window's transaction ([`Store::commit_window`]).
    pub batch_size: usize,
    /// Events and dead letters held before they are applied (a [`Window`]): the video
    /// events that a later one in the window supersedes are never applied. At least
    /// `batch_size`.
    pub window: usize,
}

impl Batching {
    /// Windows of `batch_size` events.
    pub fn of(batch_size: usize) -> Batching {
        Batching { batch_size, window: batch_size }
    }
}

/// Lines per unit of decoding work (fewer when the window is smaller).
const CHUNK_LINES: usize = 4096;

/// Where a replay has got to, for a progress display.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// Lines up to here are read into the window, not yet applied.
    Read(&'a FilePosition),
    /// The window, up to here, is being applied.
    Applying(&'a FilePosition),
    /// Lines up to here are applied and committed (also where a replay resumes).
    Committed(&'a FilePosition),
}

/// Replays one file, calling `progress` as it reads and after each window commits.
///
/// This thread reads and hashes the lines in chunks; the machine's cores decode them; this
/// thread takes the decoded chunks in order into the window and applies it when full.
pub fn replay_file(
    store: &Store,
    path: &Path,
    batching: Batching,
    now: Instant,
    mut progress: impl FnMut(Progress),
) -> Result<FileSummary, ReplayError> {
    let io = |source| ReplayError::Io { path: path.display().to_string(), source };
    let source = source_id(path);
    let stored: Option<FilePosition> = store.position(&source)?.and_then(|b| bincode::deserialize(&b).ok());
    let mut file = File::open(path).map_err(io)?;
    let batch_size = batching.batch_size.max(1);
    let mut cur = Cursor {
        source,
        now,
        batch_size,
        window_size: batching.window.max(batch_size),
        pos: FilePosition { line: 0, byte: 0, prefix_sha256: [0; 32] },
        hasher: Sha256::new(),
        window: Window::default(),
        dead: Batch::default(),
        since: WallClock::now(),
    };
    let mut summary = FileSummary::default();

    if let Some(s) = stored {
        // Hash the stored prefix once: on a match the hasher goes on from its end.
        if hash_prefix(&mut file, &mut cur.hasher, s.byte).map_err(io)? == Some(s.prefix_sha256) {
            summary.resumed_from_line = s.line;
            cur.pos = s;
            progress(Progress::Committed(&cur.pos));
        } else {
            tracing::warn!(file = %path.display(), "File differs from the one replayed before; replaying it from the top.");
            file.rewind().map_err(io)?;
            cur.hasher = Sha256::new();
        }
    }

    let chunk_lines = CHUNK_LINES.min(cur.window_size);
    let mut decoders = Decoders::<u64>::per_core().map_err(ReplayError::Threads)?;
    // Read position and hasher run ahead of `cur`, which moves chunk by chunk: where the
    // file stands after each chunk out to be decoded, oldest first.
    let (mut pos, mut hasher) = (cur.pos.clone(), cur.hasher.clone());
    let mut ends: VecDeque<(FilePosition, Sha256)> = VecDeque::new();
    let mut lines = LineReader::new(file);
    while let Some(chunk) = lines.read_chunk(&mut pos, &mut hasher, chunk_lines).map_err(io)? {
        ends.push_back((pos.clone(), hasher.clone()));
        if let Some(decoded) = decoders.send(chunk) {
            let end = ends.pop_front().expect("an end for each chunk");
            take_chunk(store, &mut cur, &mut decoders, decoded, end, &mut summary, &mut progress)?;
        }
    }
    while let Some(decoded) = decoders.oldest() {
        let end = ends.pop_front().expect("an end for each chunk");
        take_chunk(store, &mut cur, &mut decoders, decoded, end, &mut summary, &mut progress)?;
    }
    apply_window(store, &mut cur, &mut summary, &mut progress)?;
    Ok(summary)
}

/// Reads a file's lines in chunks, each block read straight into a chunk's bytes: only
/// the start of a line cut at the block's end is copied, into the next chunk.
struct LineReader<R> {
    inner: R,
    /// The start of a line cut at the end of the last block read.
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    fn new(inner: R) -> LineReader<R> {
        LineReader { inner, carry: Vec::new(), eof: false }
    }

    /// Reads up to `max_lines` lines, moving `pos` past them and feeding them to `hasher`.
    /// Each line, without its line end, is a message numbered by its line.
    fn read_chunk(
        &mut self,
        pos: &mut FilePosition,
        hasher: &mut Sha256,
        max_lines: usize,
    ) -> std::io::Result<Option<Chunk<u64>>> {
        let mut chunk = Chunk { bytes: std::mem::take(&mut self.carry), messages: Vec::new() };
        // Where the next line starts in `chunk.bytes`.
        let mut start = 0;
        while chunk.len() < max_lines {
            let end = match memchr::memchr(b'\n', &chunk.bytes[start..]) {
                Some(i) => start + i + 1,
                // The last line may lack its line end.
                None if self.eof && start < chunk.bytes.len() => chunk.bytes.len(),
                None if self.eof => break,
                None => {
                    // The lines still wanted, at the mean length so far, and a little more.
                    let mean = if pos.line == 0 { 1024 } else { pos.byte.div_ceil(pos.line) };
                    let want = (max_lines - chunk.len()) as u64 * mean;
                    let want = want + want / 32 + mean;
                    chunk.bytes.reserve(want as usize);
                    let n = (&mut self.inner).take(want).read_to_end(&mut chunk.bytes)?;
                    self.eof = (n as u64) < want;
                    continue;
                }
            };
            pos.line += 1;
            pos.byte += (end - start) as u64;
            let len = trim_line_end(&chunk.bytes[start..end]).len();
            chunk.messages.push((pos.line, start..start + len, None));
            start = end;
        }
        self.carry = chunk.bytes[start..].to_vec();
        chunk.bytes.truncate(start);
        hasher.update(&chunk.bytes);
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Takes the next decoded chunk into the window, then applies the window if it is full.
/// The events superseded go back to `decoders` to be dropped.
fn take_chunk(
    store: &Store,
    cur: &mut Cursor,
    decoders: &mut Decoders<u64>,
    Decoded { chunk, events }: Decoded<u64>,
    (pos, hasher): (FilePosition, Sha256),
    summary: &mut FileSummary,
    progress: &mut impl FnMut(Progress),
) -> Result<(), StoreError> {
    let mut superseded = Vec::new();
    for ((line, range, _), event) in chunk.messages.into_iter().zip(events) {
        let raw = &chunk.bytes[range];
        match event {
            Ok(ev) => superseded.extend(cur.window.push(ev)),
            // A blank line is skipped, not a dead letter (contract §2.1).
            Err(_) if is_blank(raw) => {}
            Err(reason) => push_dead_letter(&mut cur.dead, &cur.source, line, raw, reason, cur.now),
        }
    }
    decoders.discard(superseded);
    (cur.pos, cur.hasher) = (pos, hasher);
    progress(Progress::Read(&cur.pos));
    if cur.window.held() + cur.dead.dead_letters.len() >= cur.window_size {
        apply_window(store, cur, summary, progress)?;
    }
    Ok(())
}

/// A replay's settings, what it has read and not yet applied, and where it stands in the file.
struct Cursor {
    source: String,
    /// When dead letters are recorded.
    now: Instant,
    /// Events whose rows are written together within a window's transaction.
    batch_size: usize,
    /// Events and dead letters held before the window is applied.
    window_size: usize,
    /// Just past the last line taken into the window; `prefix_sha256` is brought up to
    /// date on commit.
    pos: FilePosition,
    /// SHA-256 of every byte up to `pos`.
    hasher: Sha256,
    window: Window,
    /// The window's dead letters.
    dead: Batch,
    /// When the window's first line was read.
    since: WallClock,
}

/// Applies the window in one durable transaction, with its dead letters, its counts and
/// the position just past it: a window cut short by a crash is read again whole.
fn apply_window(
    store: &Store,
    cur: &mut Cursor,
    summary: &mut FileSummary,
    progress: &mut impl FnMut(Progress),
) -> Result<(), StoreError> {
    let applying = WallClock::now();
    progress(Progress::Applying(&cur.pos));
    let (read, held) = (cur.window.read(), cur.window.held() as u64);
    let (applied, superseded) = (held, read - held);
    let dead_letters = std::mem::take(&mut cur.dead.dead_letters);
    summary.events += read;
    summary.superseded += superseded;
    summary.dead_letters += dead_letters.len() as u64;
    cur.pos.prefix_sha256 = cur.hasher.clone().finalize().into();
    let mut batch = Batch {
        dead_letters,
        positions: vec![(cur.source.clone(), bincode::serialize(&cur.pos).expect("serializable"))],
        ..Default::default()
    };
    cur.window.take_into(&mut batch);
    store.commit_window(&batch, cur.batch_size, true)?;
    tracing::debug!(
        line = cur.pos.line,
        events = read,
        superseded,
        applied,
        read_secs = (applying - cur.since).as_secs_f64(),
        apply_secs = applying.elapsed().as_secs_f64(),
        "Replay window committed."
    );
    cur.since = WallClock::now();
    progress(Progress::Committed(&cur.pos));
    Ok(())
}

/// Feeds the first `len` bytes of `reader` to `hasher` and returns the digest so far, or
/// `None` when the file is shorter than what was replayed.
fn hash_prefix(reader: &mut impl Read, hasher: &mut Sha256, len: u64) -> std::io::Result<Option<[u8; 32]>> {
    let hashed = std::io::copy(&mut reader.take(len), hasher)?;
    Ok((hashed == len).then(|| hasher.clone().finalize().into()))
}

/// A log line without its line end (`\n` or `\r\n`).
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line of only white space is blank (contract §2.1); invalid UTF-8 never is.
pub fn is_blank(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes a read, to cut lines anywhere.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Chunks hold every line once, in order, without its line end; positions and hashes
    /// after each chunk are those of the bytes before it. Whatever the reads' sizes and
    /// the chunks' lines, and with or without a line end at the end of the file.
    #[test]
    fn line_reader_splits_any_file_into_its_lines() {
        let mut file = Vec::new();
        for i in 0..300 {
            file.extend_from_slice(&vec![b'x'; (i * 37) % 150]);
            file.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
        }
        for tail in [&b""[..], b"last line, no line end"] {
            let file = [&file[..], tail].concat();
            let expected: Vec<&[u8]> = file.split_inclusive(|&b| b == b'\n').collect();
            for (step, max_lines) in [(1, 1), (7, 3), (100, 4096), (5000, 10), (1 << 20, 64)] {
                let mut lines = LineReader::new(Trickle(&file, step));
                let mut pos = FilePosition { line: 0, byte: 0, prefix_sha256: [0; 32] };
                let mut hasher = Sha256::new();
                let mut seen = 0;
                while let Some(chunk) = lines.read_chunk(&mut pos, &mut hasher, max_lines).unwrap() {
                    assert!(chunk.len() <= max_lines);
                    for (line, range, refused) in &chunk.messages {
                        seen += 1;
                        assert_eq!((*line, refused), (seen as u64, &None));
                        assert_eq!(&chunk.bytes[range.clone()], trim_line_end(expected[seen - 1]));
                    }
                    let before: usize = expected[..seen].iter().map(|l| l.len()).sum();
                    assert_eq!((pos.line, pos.byte), (seen as u64, before as u64));
                    assert_eq!(
                        <[u8; 32]>::from(hasher.clone().finalize()),
                        <[u8; 32]>::from(Sha256::digest(&file[..before]))
                    );
                }
                assert_eq!(seen, expected.len(), "step {step}, {max_lines} lines a chunk");
            }
        }
    }
}
