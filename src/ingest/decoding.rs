//! Decoding on other threads: messages go out in chunks, in the order read, and come back
//! decoded in that order. The thread that reads (a replayed file's lines, a Kafka
//! consumer's messages) only reads and takes events back; decoding JSON, most of what
//! reading costs, goes to the machine's cores.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::events::{Event, decode};

/// Chunks in flight before the oldest is waited for: enough to keep every decoding thread
/// busy, few enough to bound what they hold.
const CHUNKS_AHEAD: usize = 8;

/// Messages read but not decoded yet: each payload's bytes and where it came from.
pub struct Chunk<M> {
    /// The payloads, one after another.
    pub bytes: Vec<u8>,
    /// Each message: what the caller keeps of it, and its payload's range of `bytes`, or
    /// the reason it is refused undecoded.
    pub messages: Vec<(M, Range<usize>, Option<String>)>,
}

impl<M> Default for Chunk<M> {
    fn default() -> Self {
        Chunk { bytes: Vec::new(), messages: Vec::new() }
    }
}

impl<M> Chunk<M> {
    /// Adds a message to decode; `refused` is its reason when it must not be decoded (its
    /// bytes are kept all the same, for its dead letter).
    pub fn push(&mut self, meta: M, payload: &[u8], refused: Option<String>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.messages.push((meta, start..self.bytes.len(), refused));
    }

    /// Keeps other bytes of a message (such as its key) with the payloads.
    pub fn keep(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Decodes the chunk on this thread: for one too small to be worth sending.
    pub fn decode(self) -> Decoded<M> {
        let events = (self.messages.iter())
            .map(|(_, r, refused)| match refused {
                Some(reason) => Err(reason.clone()),
                None => decode(&self.bytes[r.clone()]).map_err(|e| e.to_string()),
            })
            .collect();
        Decoded { chunk: self, events }
    }
}

/// A chunk and what each of its messages decoded to: the event, or why it is a dead letter.
pub struct Decoded<M> {
    pub chunk: Chunk<M>,
    pub events: Vec<Result<Event, String>>,
}

enum Job<M> {
    /// A chunk to decode, and where its answer goes.
    Decode(Chunk<M>, SyncSender<Decoded<M>>),
    /// Events to drop ([`Decoders::discard`]).
    Discard(Vec<Event>),
}

/// Threads that decode chunks, one at a time each; they end when the pool is dropped.
pub struct Decoders<M> {
    work: SyncSender<Job<M>>,
    /// Chunks sent, oldest first, each with where its answer comes.
    ahead: VecDeque<Receiver<Decoded<M>>>,
    /// Messages sent and not yet taken back.
    in_flight: usize,
}

impl<M: Send + 'static> Decoders<M> {
    /// A pool of a decoding thread per core of the machine, what replay and the Kafka
    /// consumer both use.
    pub fn per_core() -> std::io::Result<Decoders<M>> {
        Decoders::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A pool of `threads` decoding threads.
    pub fn new(threads: usize) -> std::io::Result<Decoders<M>> {
        let (work, jobs) = mpsc::sync_channel::<Job<M>>(CHUNKS_AHEAD);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("goatview-decode-{i}")).spawn(move || {
                loop {
                    // The lock is released before decoding (not held through a `while let`).
                    let job = jobs.lock().map(|j| j.recv());
                    // Ends when the pool, which holds the sender, is dropped.
                    match job {
                        Ok(Ok(Job::Decode(chunk, done))) => {
                            let _ = done.send(chunk.decode());
                        }
                        Ok(Ok(Job::Discard(events))) => drop(events),
                        _ => break,
                    }
                }
            })?;
        }
        Ok(Decoders { work, ahead: VecDeque::new(), in_flight: 0 })
    }

    /// Sends a chunk to be decoded. When more than [`CHUNKS_AHEAD`] are out, returns the
    /// oldest, decoded (waiting for it).
    pub fn send(&mut self, chunk: Chunk<M>) -> Option<Decoded<M>> {
        let (done, decoded) = mpsc::sync_channel(1);
        self.in_flight += chunk.len();
        // With no decoding thread left, decode here instead.
        if let Err(mpsc::SendError(Job::Decode(chunk, done))) = self.work.send(Job::Decode(chunk, done)) {
            let _ = done.send(chunk.decode());
        }
        self.ahead.push_back(decoded);
        if self.ahead.len() > CHUNKS_AHEAD { self.oldest() } else { None }
    }

    /// Drops `events` on a decoding thread. The reading thread bounds reading, and most
    /// events a window reads are superseded: freeing them there (their texts allocated on
    /// a decoding thread) took a fifth of its time.
    pub fn discard(&mut self, events: Vec<Event>) {
        if !events.is_empty() {
            // With no decoding thread left, they drop here, with the error.
            let _ = self.work.send(Job::Discard(events));
        }
    }

    /// The oldest chunk sent and not taken back yet, decoded (waiting for it).
    pub fn oldest(&mut self) -> Option<Decoded<M>> {
        let decoded = self.ahead.pop_front()?.recv().expect("a decoding thread answers every chunk it takes");
        self.in_flight -= decoded.chunk.len();
        Some(decoded)
    }

    /// Messages sent and not taken back yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Body;

    fn scrape(n: u32) -> String {
        format!(
            r#"{{"type":"video.scraped","event_id":"00000000-0000-4000-8000-{n:012x}","project_id":"0e000000-0000-4000-8000-000000000001","occurred_at":"2026-03-01T00:00:00Z","video_id":"d0000000-0000-4000-8000-{n:012x}","creator_id":"c0000000-0000-4000-8000-000000000001","posted_at":"2026-03-01T00:00:00Z","title":null,"thumbnail_url":null,"url":null,"view_count":{n},"like_count":0,"comment_count":0,"share_count":0,"save_count":0}}"#
        )
    }

    #[test]
    fn chunks_come_back_decoded_in_the_order_sent() {
        let mut pool = Decoders::<u32>::new(2).unwrap();
        let mut back: Vec<Decoded<u32>> = Vec::new();
        // More chunks than may be ahead, so that `send` hands some back.
        for c in 0..(CHUNKS_AHEAD as u32 + 5) {
            let mut chunk = Chunk::default();
            for n in c * 3..c * 3 + 3 {
                match n % 3 {
                    0 => chunk.push(n, scrape(n).as_bytes(), None),
                    1 => chunk.push(n, b"{not json", None),
                    _ => chunk.push(n, scrape(n).as_bytes(), Some(format!("refused {n}"))),
                }
            }
            back.extend(pool.send(chunk));
            // Events to drop share the queue with the chunks, and leave their order alone.
            pool.discard(vec![decode(scrape(c).as_bytes()).unwrap()]);
        }
        assert!(!back.is_empty(), "send hands back the oldest chunk once too many are out");
        while let Some(d) = pool.oldest() {
            back.push(d);
        }
        assert_eq!(pool.in_flight(), 0);
        back.push(Chunk::default().decode());

        let mut seen = 0;
        for Decoded { chunk, events } in back {
            assert_eq!(chunk.len(), events.len());
            for ((n, range, _), ev) in chunk.messages.into_iter().zip(events) {
                assert_eq!(n, seen, "in the order sent");
                seen += 1;
                match (n % 3, ev) {
                    (0, Ok(ev)) => {
                        let Body::VideoScraped(v) = ev.body else { panic!("{ev:?}") };
                        assert_eq!(v.counts.views, u64::from(n));
                        assert_eq!(&chunk.bytes[range], scrape(n).as_bytes());
                    }
                    (1, Err(reason)) => assert!(reason.starts_with("not valid JSON"), "{reason}"),
                    (2, Err(reason)) => assert_eq!(reason, format!("refused {n}")),
                    (_, ev) => panic!("message {n}: {ev:?}"),
                }
            }
        }
        assert_eq!(seen, (CHUNKS_AHEAD as u32 + 5) * 3);
    }
}
