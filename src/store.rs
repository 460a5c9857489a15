//! The redb file: one write transaction per batch, source positions in the same transaction.
//!
//! A batch's state changes, its dead letters and the position just past its last message
//! commit together or not at all, so a crash at any point resumes from the stored
//! position without losing or double counting an event.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::events::{Event, Instant};
use crate::state::tables::{CampaignTables, MoveTables, WriteOnlyTables};
use crate::state::{self, StateError, Tables, defs};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database: {0}")]
    Open(#[from] redb::DatabaseError),
    /// A transaction could not be started.
    #[error(transparent)]
    Transaction(#[from] redb::TransactionError),
    /// A transaction could not be committed.
    #[error(transparent)]
    Commit(#[from] redb::CommitError),
    /// The file holds state in a layout this build does not read.
    #[error(
        "the state file was written by an incompatible goatview (state format {found}, this build reads {STATE_FORMAT}); replay the logs into a new file"
    )]
    Format { found: String },
    /// The file was written with redb pages of another size, by a build before
    /// [`PAGE_SIZE`].
    #[error(
        "the state file was written by an older goatview (redb pages of {found} bytes, this build uses {PAGE_SIZE}); replay the logs into a new file"
    )]
    PageSize { found: u32 },
    /// A transaction's durability could not be set.
    #[error("cannot set durability: {0}")]
    Durability(String),
    /// The file could not be compacted.
    #[error(transparent)]
    Compact(#[from] redb::CompactionError),
    /// Reading or writing state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        StoreError::State(e.into())
    }
}

impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        StoreError::State(e.into())
    }
}

/// A message that could not be decoded, kept with where it came from and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `file:<path>` or `kafka:<topic>/<partition>`.
    pub source: String,
    /// Line number (from 1) or Kafka offset.
    pub position: u64,
    pub raw: Vec<u8>,
    pub reason: String,
    /// When goatview recorded it.
    pub recorded_at: Instant,
}

/// What one write transaction commits.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Valid events consumed with this batch but not in `events`: superseded within its
    /// window. They count as applied.
    pub other_events: u64,
    pub dead_letters: Vec<DeadLetter>,
    /// Source id → opaque position bytes, to resume after this batch.
    pub positions: Vec<(String, Vec<u8>)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.events.len() + self.dead_letters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub const EVENTS_APPLIED: &str = "events_applied";
/// Counter holding the layout version of the state tables.
pub const FORMAT: &str = "state_format";
/// Bumped whenever stored keys or values change meaning (2: hour buckets; 3: campaign top
/// lists at day and 32-day levels, with posted_at; 4: campaign rollups at day and
/// 32-day levels only, bounded top lists, creators in `by_posted`; 5: goal progress;
/// 6: follower history in time order; 7: 8-day buckets; 8: campaign rollups per local day
/// of the project's zone; 9: creators' posts per quarter and hour in one row per unit;
/// 10: the follower history in time order as one row per quarter; 11: tracked creators'
/// handles; 12: member-overlap's campaigns of each entity kept with its rank; 13: a
/// creator's upper middle and first video in `creator_median`; 14: a campaign unit's
/// creators in one row; 15: HDR cells and creators' sums of quarters and hours in one row
/// per unit; 16: HDR cells in one row per unit at every level).
pub const STATE_FORMAT: u64 = 16;
pub const DEAD_LETTERS: &str = "dead_letters";

/// redb's page size for state files, against its default of 4 KiB. A batch rewrites every
/// page it touches (copy-on-write), and events land on pages at random, so a batch of
/// thousands touches most pages of the big tables whatever their size: fewer, larger
/// pages cost less to copy, allocate, checksum and write per batch. Measured at scale L:
/// full replay applied in 52–58 s against 71–74 s, freshness at 20,000 events/s from
/// Kafka had a p99 of 1.0–1.5 s against 1.5–1.7 s, and queries answered more requests a
/// second (BENCHMARKS.md, eighteenth session).
pub const PAGE_SIZE: u32 = 32 << 10;

/// redb's page size recorded in an existing file's header, if it is a redb file: the u32
/// after redb's 9-byte magic number, its god byte and two bytes of padding. Read only to
/// explain why a file does not open.
fn file_page_size(path: &Path) -> Option<u32> {
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    let mut head = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut head).ok()?;
    (head[..9] == MAGIC).then(|| u32::from_le_bytes([head[12], head[13], head[14], head[15]]))
}

/// The engine's state file.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the file and makes sure every table exists, so that readers
    /// never meet a missing table.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, None)
    }

    /// [`Store::open`] with redb's page cache set to `cache_mib` MiB (redb's default, 1 GiB,
    /// when `None`). Ingestion slows sharply once a transaction's pages no longer fit.
    pub fn open_with_cache(path: &Path, cache_mib: Option<u64>) -> Result<Store, StoreError> {
        let mut builder = Database::builder();
        builder.set_page_size(PAGE_SIZE as usize);
        if let Some(mib) = cache_mib {
            builder.set_cache_size((mib as usize) << 20);
        }
        let db = builder.create(path).map_err(|e| match file_page_size(path) {
            Some(found) if found != PAGE_SIZE => StoreError::PageSize { found },
            _ => e.into(),
        })?;
        let txn = db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let format = t.counters.get(FORMAT)?.map(|g| g.value());
            let used = t.counters.get(EVENTS_APPLIED)?.is_some() || t.counters.get(DEAD_LETTERS)?.is_some();
            match format {
                Some(STATE_FORMAT) => {}
                Some(found) => return Err(StoreError::Format { found: found.to_string() }),
                None if used => return Err(StoreError::Format { found: "1 or none".into() }),
                None => {
                    t.counters.insert(FORMAT, STATE_FORMAT)?;
                }
            }
        }
        txn.commit()?;
        Ok(Store { db })
    }

    /// A consistent snapshot for readers; it never blocks or is blocked by a writer.
    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// Applies a batch atomically with its positions; returns nothing until durable.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.commit_window(batch, usize::MAX, true)
    }

    /// [`Store::commit`] without waiting for the disk: readers see the batch at once, and
    /// the next durable commit (or [`Store::sync`]) makes it survive a crash. A crash
    /// before that loses the batch together with its positions, so its source is read
    /// again from where the last durable commit left it: nothing is lost or counted twice.
    pub fn commit_visible(&self, batch: &Batch) -> Result<(), StoreError> {
        self.commit_window(batch, usize::MAX, false)
    }

    /// Commits a window's batch, however large, in one transaction ([`Store::commit`] if
    /// `durable`, else [`Store::commit_visible`]), writing the rows changed by every `stage`
    /// events into it as it goes. That bounds the rows held in memory; and a page the
    /// window touches again is changed in place, where a transaction per part would copy it
    /// once a part, and commit it each time.
    pub fn commit_window(&self, batch: &Batch, stage: usize, durable: bool) -> Result<(), StoreError> {
        let durability = if durable { Durability::Immediate } else { Durability::None };
        self.write(&batch.events, stage, durability, |t| {
            for dl in &batch.dead_letters {
                t.dead_letters.insert((dl.source.as_str(), dl.position), state::encode(dl).as_slice())?;
            }
            bump(t, EVENTS_APPLIED, batch.events.len() as u64 + batch.other_events)?;
            bump(t, DEAD_LETTERS, batch.dead_letters.len() as u64)?;
            for (source, pos) in &batch.positions {
                t.positions.insert(source.as_str(), pos.as_slice())?;
            }
            Ok(())
        })
    }

    /// Makes every earlier [`Store::commit_visible`] durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.begin_write()?.commit()?;
        Ok(())
    }

    /// Applies events in a transaction of their own, without positions or counters, and
    /// without waiting for the disk: what a process that died part-way through a window
    /// could leave if windows were split into transactions. Applying the same events again
    /// changes nothing.
    pub fn apply_part(&self, events: &[Event]) -> Result<(), StoreError> {
        self.write(events, usize::MAX, Durability::None, |_| Ok(()))
    }

    /// One write transaction: applies `events`, writing their pending rows after every
    /// `stage` of them, then lets `bookkeeping` add what goes with them, and commits.
    fn write(
        &self,
        events: &[Event],
        stage: usize,
        durability: Durability,
        bookkeeping: impl FnOnce(&mut Tables) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        // Refused only for databases shared between processes, which this one is not.
        txn.set_durability(durability).map_err(|e| StoreError::Durability(e.to_string()))?;
        {
            let mut t = Tables::open(&txn)?;
            if events.len() <= stage {
                for ev in events {
                    state::apply(&mut t, ev)?;
                }
                t.flush_on_two_threads()?;
            } else {
                apply_in_stages(&mut t, events, stage)?;
            }
            bookkeeping(&mut t)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Rewrites the file without the pages earlier transactions freed, so it shrinks to
    /// the state it holds. Needs the only handle, no reader open: offline use (replay).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        // Each pass moves what it can; redb says when another pass would shrink it further.
        for _ in 0..8 {
            if !self.db.compact()? {
                break;
            }
        }
        Ok(())
    }

    /// The stored position of a source, if any.
    pub fn position(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.read()?;
        let t = r.open_table(defs::positions)?;
        Ok(t.get(source)?.map(|g| g.value().to_vec()))
    }

    /// Every stored position, by source id.
    pub fn positions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let r = self.read()?;
        let t = r.open_table(defs::positions)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let r = self.read()?;
        let t = r.open_table(defs::counters)?;
        Ok(t.get(name)?.map_or(0, |g| g.value()))
    }

    /// All dead letters, by source and position.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let r = self.read()?;
        let t = r.open_table(defs::dead_letters)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(state::decode(e?.1.value())?);
        }
        Ok(out)
    }
}

fn bump(t: &mut Tables, name: &'static str, by: u64) -> Result<(), StoreError> {
    if by > 0 {
        let old = t.counters.get(name)?.map_or(0, |g| g.value());
        t.counters.insert(name, old + by)?;
    }
    Ok(())
}

/// Applies a window's events stage by stage, writing each stage's rows once it is applied.
/// The rows of the write-only tables (the sums of projects and creators, `by_metric`, HDR
/// cells and campaign units: most of what is written) are added up from the videos'
/// changes and written on two more threads while the next stage is applied, one stage
/// behind: on one thread a window left a core idle (the decoding threads wait while it
/// applies), and on two the writing one came to bound it. Nothing that applies an event
/// reads them.
fn apply_in_stages(t: &mut Tables, events: &[Event], stage: usize) -> Result<(), StoreError> {
    let WriteOnlyTables { moves, campaign } = t.write_only.take().expect("the write-only tables are in place");
    let (moves, campaign) = std::thread::scope(|s| {
        let (mut move_writer, move_thread) = StageWriter::spawn(s, moves, |t: &mut MoveTables, rows| t.write(rows));
        let (mut campaign_writer, campaign_thread) =
            StageWriter::spawn(s, campaign, |t: &mut CampaignTables, rows| t.write(rows));
        let mut applied = || -> Result<(), StoreError> {
            for part in events.chunks(stage.max(1)) {
                for ev in part {
                    state::apply(t, ev)?;
                }
                let (moves, campaign) = t.pending.take_write_only().split();
                move_writer.send(moves)?;
                campaign_writer.send(campaign)?;
                t.flush_but_write_only()?;
            }
            move_writer.wait()?;
            campaign_writer.wait()?;
            Ok(())
        };
        let applied = applied();
        // Closing their channels ends the writing threads, which hand their tables back.
        drop((move_writer, campaign_writer));
        let tables = (crate::join(move_thread), crate::join(campaign_thread));
        applied.map(|()| tables)
    })?;
    t.write_only = Some(WriteOnlyTables { moves, campaign });
    t.rebuild_top_lists()?;
    Ok(())
}

/// A thread that writes one part of the write-only tables for a whole window, a stage's
/// rows at a time. One thread a window rather than one a stage: each new thread can take
/// another of glibc's malloc arenas, and redb's cache pages, read on one thread and freed
/// on another, then stay resident in all of them.
struct StageWriter<R> {
    rows: SyncSender<R>,
    written: Receiver<Result<(), StateError>>,
    /// Whether a stage was sent and not yet waited for.
    busy: bool,
}

impl<R: Send> StageWriter<R> {
    fn spawn<'scope, T: Send + 'scope>(
        s: &'scope std::thread::Scope<'scope, '_>,
        mut tables: T,
        write: impl Fn(&mut T, R) -> Result<(), StateError> + Send + 'scope,
    ) -> (Self, std::thread::ScopedJoinHandle<'scope, T>)
    where
        R: 'scope,
    {
        let (rows, to_write) = sync_channel::<R>(1);
        let (report, written) = channel();
        let thread = s.spawn(move || {
            for r in to_write {
                if report.send(write(&mut tables, r)).is_err() {
                    break;
                }
            }
            tables
        });
        (StageWriter { rows, written, busy: false }, thread)
    }

    /// Waits until the rows sent last, if any, are written.
    fn wait(&mut self) -> Result<(), StateError> {
        if !std::mem::take(&mut self.busy) {
            return Ok(());
        }
        // Closed: the thread panicked, which joining it passes on.
        self.written.recv().unwrap_or(Ok(()))
    }

    /// Hands a stage's rows over once the stage before is written.
    fn send(&mut self, rows: R) -> Result<(), StateError> {
        self.wait()?;
        // Closed: the thread panicked, which joining it passes on.
        self.busy = self.rows.send(rows).is_ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_another_layout_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.counter(FORMAT).unwrap(), STATE_FORMAT);
        // What an older build leaves: state written, a different (or no) format recorded.
        let txn = store.db.begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            t.counters.insert(EVENTS_APPLIED, 5).unwrap();
            t.counters.insert(FORMAT, STATE_FORMAT - 1).unwrap();
        }
        txn.commit().unwrap();
        drop(store);
        let err = Store::open(&path).err().expect("refused").to_string();
        assert!(err.contains("replay the logs into a new file"), "{err}");

        let store = Store::open(&dir.path().join("fresh.redb")).unwrap();
        drop(store);
        assert!(Store::open(&dir.path().join("fresh.redb")).is_ok(), "a fresh file reopens");
    }

    #[test]
    fn a_file_with_other_pages_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        // What builds before PAGE_SIZE left: redb's default pages.
        drop(Database::create(&path).unwrap());
        assert_eq!(file_page_size(&path), Some(4096));
        let err = Store::open(&path).err().expect("refused").to_string();
        assert!(err.contains("redb pages of 4096 bytes") && err.contains("replay the logs into a new file"), "{err}");

        drop(Store::open(&dir.path().join("new.redb")).unwrap());
        assert_eq!(file_page_size(&dir.path().join("new.redb")), Some(PAGE_SIZE));
        assert_eq!(file_page_size(&dir.path().join("missing.redb")), None);
    }

    fn campaign(n: u32) -> Event {
        let line = format!(
            r#"{{"type":"campaign.upserted","event_id":"e0000000-0000-4000-8000-{n:012}","occurred_at":"2026-04-02T08:00:00Z","project_id":"0b7e6f1a-3c2d-4e5f-8a9b-1c2d3e4f5a6b","campaign_id":"ca0f1e2d-3c4b-4a59-8687-{n:012}","name":"c{n}"}}"#
        );
        crate::events::decode(line.as_bytes()).unwrap()
    }

    /// What a reopened copy of `live`, the file of a store still open, holds: the file as
    /// a crash at this instant leaves it, since that store never closes cleanly.
    fn after_crash(live: &Path, copy: &Path) -> (u64, Option<Vec<u8>>, usize) {
        std::fs::copy(live, copy).unwrap();
        let s = Store::open(copy).unwrap();
        let campaigns =
            redb::ReadableTableMetadata::len(&s.read().unwrap().open_table(defs::campaigns).unwrap()).unwrap() as usize;
        (s.counter(EVENTS_APPLIED).unwrap(), s.position("src").unwrap(), campaigns)
    }

    /// A window written in stages (its write-only rows on two more threads, a stage behind)
    /// leaves the state that writing it as one stage leaves. Halfway through, every project
    /// moves to another zone, which clears and refills its campaign units; the test log
    /// removes videos and memberships, which can empty a unit's top list until the
    /// window's end rebuilds it.
    #[test]
    fn a_window_in_stages_leaves_the_state_of_one_stage() {
        use crate::events::{Body, Id, Instant, Stamp};
        let sample = crate::r#gen::generate(&crate::r#gen::GenConfig::new(3, crate::r#gen::Scale::Test));
        let mut events: Vec<Event> =
            sample.lines.iter().filter_map(|l| crate::events::decode(l.as_bytes()).ok()).collect();
        let moves: Vec<Event> = events
            .iter()
            .filter(|ev| matches!(ev.body, Body::ProjectUpserted { .. }))
            .map(|ev| {
                let mut moved = ev.clone();
                moved.stamp.at.secs += 1;
                if let Body::ProjectUpserted { timezone, .. } = &mut moved.body {
                    *timezone = if timezone == "Asia/Kathmandu" { "UTC" } else { "Asia/Kathmandu" }.into();
                }
                moved
            })
            .collect();
        let removals = events
            .iter()
            .filter(|ev| matches!(ev.body, Body::VideoRemoved { .. } | Body::CampaignItem { member: false, .. }))
            .count();
        assert!(!moves.is_empty() && removals > 100, "{} projects, {removals} removals", moves.len());
        // Three quarters of the videos leave, later than any scrape of them: units keep
        // videos while their top lists lose all they held.
        let last = events.iter().map(|ev| ev.stamp.at.secs).max().unwrap();
        let mut videos: Vec<(Option<Id>, Id, Stamp)> = events
            .iter()
            .filter_map(|ev| match &ev.body {
                Body::VideoScraped(v) if v.video_id[15] % 4 != 0 => Some((ev.project_id, v.video_id, ev.stamp)),
                _ => None,
            })
            .collect();
        videos.sort_by_key(|v| (v.0, v.1));
        videos.dedup_by_key(|v| (v.0, v.1));
        let leaving = videos.into_iter().map(|(project_id, video_id, stamp)| Event {
            stamp: Stamp { at: Instant { secs: last + 1, nanos: 0 }, event_id: stamp.event_id },
            project_id,
            body: Body::VideoRemoved { video_id },
        });
        let half = events.len() / 2;
        events.splice(half..half, moves);
        let three_quarters = events.len() * 3 / 4;
        events.splice(three_quarters..three_quarters, leaving);

        let state = |stage: usize| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("state.redb")).unwrap();
            let batch = Batch { events: events.clone(), ..Batch::default() };
            store.commit_window(&batch, stage, true).unwrap();
            state::tables::dump_state(&store.read().unwrap()).unwrap()
        };
        let whole = state(usize::MAX);
        assert!(whole.len() > 10_000, "{} rows", whole.len());
        assert!(whole == state(64), "64 events a stage leave another state");
    }

    /// A visible commit is read at once; a crash before the next durable commit or sync
    /// loses it whole, its position included, and a sync makes it survive.
    #[test]
    fn a_visible_commit_is_durable_only_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("state.redb");
        let store = Store::open(&live).unwrap();
        let batch = |events: Vec<Event>, pos: u8| Batch {
            events,
            positions: vec![("src".to_owned(), vec![pos])],
            ..Default::default()
        };
        store.commit(&batch(vec![campaign(1)], 1)).unwrap();
        store.commit_visible(&batch(vec![campaign(2), campaign(3)], 3)).unwrap();
        assert_eq!(store.counter(EVENTS_APPLIED).unwrap(), 3, "visible at once");
        assert_eq!(store.position("src").unwrap(), Some(vec![3]));

        assert_eq!(after_crash(&live, &dir.path().join("a.redb")), (1, Some(vec![1]), 1), "lost with its position");
        store.sync().unwrap();
        assert_eq!(after_crash(&live, &dir.path().join("b.redb")), (3, Some(vec![3]), 3), "durable after a sync");

        store.apply_part(&[campaign(4)]).unwrap();
        store.commit_visible(&batch(vec![campaign(5)], 5)).unwrap();
        assert_eq!(after_crash(&live, &dir.path().join("c.redb")), (3, Some(vec![3]), 3));
        store.commit(&batch(vec![campaign(6)], 6)).unwrap();
        assert_eq!(
            after_crash(&live, &dir.path().join("d.redb")),
            (5, Some(vec![6]), 6),
            "a durable commit takes the earlier ones"
        );
        // The store is never closed: closing would make its pending commits durable.
        std::mem::forget(store);
    }
}
