//! A window: events read but not yet applied (a stretch of a replayed log, or one Kafka
//! batch), without the video events that a later one of the same video in it supersedes.
//!
//! A video register keeps only its greatest stamp, and every aggregate is a function of
//! the registers (see `state`), so applying only the winner of each video among a
//! window's events leaves the same state as applying all of them, in any order. Logs
//! scrape each video many times: at scale L a window of a million events holds about half
//! as many distinct videos, and the whole log ten times fewer.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::events::{Body, Event, Id};
use crate::state::ID_MIN;
use crate::store::Batch;

/// Events held for one window.
#[derive(Default)]
pub struct Window {
    /// The events to apply, in the order read; a video's later winner takes the place of
    /// the event it supersedes.
    events: Vec<Event>,
    /// (project, video) → where that video's winner so far is in `events`.
    videos: FxHashMap<(Id, Id), usize>,
    /// Valid events read into the window, superseded ones included.
    read: u64,
}

impl Window {
    /// Takes an event in, and gives back the video event that lost, if any: the one held,
    /// when `ev` supersedes it, or else `ev`. The caller drops it where that costs least
    /// ([`Decoders::discard`]).
    ///
    /// [`Decoders::discard`]: super::decoding::Decoders::discard
    #[must_use = "the superseded event, to drop"]
    pub fn push(&mut self, ev: Event) -> Option<Event> {
        self.read += 1;
        let Some(key) = video_key(&ev) else {
            self.events.push(ev);
            return None;
        };
        match self.videos.entry(key) {
            Entry::Occupied(e) => {
                let held = &mut self.events[*e.get()];
                if ev.stamp > held.stamp { Some(std::mem::replace(held, ev)) } else { Some(ev) }
            }
            Entry::Vacant(e) => {
                e.insert(self.events.len());
                self.events.push(ev);
                None
            }
        }
    }

    /// Events held: what the window costs in memory.
    pub fn held(&self) -> usize {
        self.events.len()
    }

    /// Valid events read since the window was last taken.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The events to apply, leaving the window empty. The other events come first, in the
    /// order read, so that the videos meet their creators' profiles and campaigns already
    /// in place and each counts once; the videos follow by (project, creator, video), so
    /// that one creator's rows are touched together.
    pub fn take(&mut self) -> Vec<Event> {
        self.videos.clear();
        self.read = 0;
        let mut events = std::mem::take(&mut self.events);
        // Stable: the other events (all `None`) keep their order.
        events.sort_by_cached_key(apply_order);
        events
    }

    /// [`Window::take`] into `batch`, whose other events then count the superseded ones:
    /// every valid event read is counted once, by the batch that commits the window.
    pub fn take_into(&mut self, batch: &mut Batch) {
        let read = self.read();
        batch.events = self.take();
        batch.other_events = read - batch.events.len() as u64;
    }
}

/// The video register an event writes, if it is a video event of a project.
fn video_key(ev: &Event) -> Option<(Id, Id)> {
    let video = match &ev.body {
        Body::VideoScraped(v) => v.video_id,
        Body::VideoRemoved { video_id } => *video_id,
        _ => return None,
    };
    Some((ev.project_id?, video))
}

fn apply_order(ev: &Event) -> Option<(Id, Id, Id)> {
    let (project, video) = video_key(ev)?;
    let creator = match &ev.body {
        Body::VideoScraped(v) => v.creator_id,
        _ => ID_MIN,
    };
    Some((project, creator, video))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode;

    fn scrape(video: u8, at: &str, eid: u8, views: u64) -> Event {
        let line = format!(
            r#"{{"type":"video.scraped","event_id":"00000000-0000-4000-8000-0000000000{eid:02x}","project_id":"0e000000-0000-4000-8000-000000000001","occurred_at":"{at}","video_id":"d0000000-0000-4000-8000-0000000000{video:02x}","creator_id":"c0000000-0000-4000-8000-000000000001","posted_at":"2026-03-01T00:00:00Z","title":null,"thumbnail_url":null,"url":null,"view_count":{views},"like_count":0,"comment_count":0,"share_count":0,"save_count":0}}"#
        );
        decode(line.as_bytes()).unwrap()
    }

    #[test]
    fn keeps_the_greatest_stamp_of_each_video_and_counts_every_event() {
        let mut w = Window::default();
        let late = scrape(1, "2026-03-02T00:00:00Z", 1, 10);
        // The same instant with a greater event id wins the tie (contract §2.3).
        let tie = scrape(1, "2026-03-02T00:00:00Z", 2, 20);
        let early = scrape(1, "2026-03-01T00:00:00Z", 3, 5);
        assert_eq!(w.push(early.clone()), None);
        assert_eq!(w.push(late.clone()), Some(early), "the held event it supersedes comes back");
        assert_eq!(w.push(scrape(2, "2026-03-01T00:00:00Z", 4, 7)), None);
        assert_eq!(w.push(tie.clone()), Some(late.clone()));
        assert_eq!(w.push(late.clone()), Some(late), "an event superseded by the held one comes back");
        assert_eq!((w.held(), w.read()), (2, 5));
        let taken = w.take();
        assert_eq!(taken.len(), 2);
        assert!(taken.contains(&tie), "{taken:?}");
        assert_eq!((w.held(), w.read()), (0, 0));
    }

    #[test]
    fn take_puts_other_events_first_then_videos_by_creator() {
        let profile = decode(
            br#"{"type":"creator.snapshot","event_id":"00000000-0000-4000-8000-0000000000ff","project_id":"0e000000-0000-4000-8000-000000000001","occurred_at":"2026-03-01T00:00:00Z","creator_id":"c0000000-0000-4000-8000-000000000001","tiktok_handle":"h","follower_count":3}"#,
        )
        .unwrap();
        let winner = scrape(1, "2026-03-03T00:00:00Z", 3, 30);
        let mut w = Window::default();
        for ev in [
            scrape(2, "2026-03-01T00:00:00Z", 4, 7),
            scrape(1, "2026-03-01T00:00:00Z", 1, 10),
            winner.clone(),
            profile.clone(),
            scrape(1, "2026-03-02T00:00:00Z", 2, 20),
        ] {
            let _superseded = w.push(ev);
        }
        assert_eq!(w.read(), 5);
        let taken = w.take();
        assert_eq!(taken.len(), 3, "profile, videos 1 and 2");
        assert_eq!(taken[0], profile, "other events first");
        assert_eq!(taken[1], winner, "then videos in id order");
        assert_eq!((w.held(), w.read()), (0, 0));
    }

    #[test]
    fn take_into_counts_what_was_superseded_as_the_batch_s_other_events() {
        let mut w = Window::default();
        assert_eq!(w.push(scrape(1, "2026-03-01T00:00:00Z", 1, 10)), None);
        assert_eq!(w.push(scrape(2, "2026-03-01T00:00:00Z", 2, 7)), None);
        assert!(w.push(scrape(1, "2026-03-02T00:00:00Z", 3, 20)).is_some());
        let mut batch = Batch::default();
        w.take_into(&mut batch);
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.other_events, 1, "the superseded scrape counts, unapplied");
        assert_eq!((w.held(), w.read()), (0, 0));
    }
}
