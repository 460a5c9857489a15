//! A short list of a set's first members in key order, kept up to date without holding
//! the whole set.
//!
//! `campaign_best` needs, per campaign and day (or 32-day block), the video with most
//! views. Keeping every video in order cost a row per video, campaign and level, moved
//! on every scrape, and made that table most of the state file at scale. A list of at
//! most [`CAP`] entries is enough, because it always holds the *exact* first `len`
//! members of the set:
//!
//! - a member that falls behind the list's last entry leaves the list, since members
//!   the list never held may now rank ahead of it;
//! - a newcomer joins when it ranks ahead of the last entry, or when the list holds the
//!   whole set;
//! - a list emptied that way while its set is not is rebuilt from the set (it takes
//!   [`CAP`] such losses, which scrapes, whose views only grow, rarely cause).

use crate::events::Id;

/// Entries a list keeps at most.
pub const CAP: usize = 8;

/// A member's rank: `(!views, video)`, so the smallest key has most views and ties go to
/// the smaller id (contract §4.5).
pub type Key = (u64, Id);

const ENTRY: usize = 24;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopList(Vec<Key>);

impl TopList {
    /// The `CAP` first of `members`, in any order.
    pub fn of(members: impl IntoIterator<Item = Key>) -> TopList {
        let mut all: Vec<Key> = members.into_iter().collect();
        all.sort_unstable();
        all.truncate(CAP);
        TopList(all)
    }

    pub fn decode(bytes: &[u8]) -> Option<TopList> {
        if !bytes.len().is_multiple_of(ENTRY) || bytes.len() > CAP * ENTRY {
            return None;
        }
        let keys = bytes
            .chunks_exact(ENTRY)
            .map(|c| (u64::from_be_bytes(c[..8].try_into().unwrap()), c[8..].try_into().unwrap()))
            .collect();
        Some(TopList(keys))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * ENTRY);
        for (rank, id) in &self.0 {
            out.extend_from_slice(&rank.to_be_bytes());
            out.extend_from_slice(id);
        }
        out
    }

    /// The set's first member, if the list holds any.
    pub fn first(&self) -> Option<Key> {
        self.0.first().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `k` joins a set that had `n` members.
    pub fn add(&mut self, k: Key, n: u64) {
        if self.0.len() as u64 == n || self.0.last().is_some_and(|&last| k < last) {
            self.insert(k);
        }
    }

    /// `k` leaves the set.
    pub fn remove(&mut self, k: Key) {
        if let Ok(i) = self.0.binary_search(&k) {
            self.0.remove(i);
        }
    }

    /// A member of a set of `n` moves from rank `old` to `new`.
    pub fn change(&mut self, old: Key, new: Key, n: u64) {
        let whole = self.0.len() as u64 == n;
        let last = self.0.last().copied();
        match self.0.binary_search(&old) {
            Ok(i) => {
                self.0.remove(i);
                // Ahead of the old last entry it still beats every member not held.
                if whole || last.is_some_and(|last| new <= last) {
                    self.insert(new);
                }
            }
            Err(_) => {
                if last.is_some_and(|last| new < last) {
                    self.insert(new);
                }
            }
        }
    }

    fn insert(&mut self, k: Key) {
        let i = self.0.partition_point(|&x| x < k);
        self.0.insert(i, k);
        self.0.truncate(CAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Set(u8, u64),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 0u64..40).prop_map(|(v, r)| Op::Set(v, r)),
            1 => (0u8..24).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// After any sequence of joins, moves and leaves, the list is exactly the first
        /// `len` members of the set, and it is empty only if the set is or a rebuild is due.
        #[test]
        fn list_is_always_an_exact_prefix(ops in proptest::collection::vec(op(), 0..200)) {
            let mut set: BTreeMap<u8, u64> = BTreeMap::new();
            let mut list = TopList::default();
            let key = |v: u8, r: u64| (r, [v; 16]);
            for op in ops {
                let n = set.len() as u64;
                match op {
                    Op::Set(v, r) => match set.insert(v, r) {
                        Some(old) => list.change(key(v, old), key(v, r), n),
                        None => list.add(key(v, r), n),
                    },
                    Op::Remove(v) => {
                        if let Some(old) = set.remove(&v) {
                            list.remove(key(v, old));
                        }
                    }
                }
                let mut all: Vec<Key> = set.iter().map(|(&v, &r)| key(v, r)).collect();
                all.sort();
                if list.is_empty() && !all.is_empty() {
                    list = TopList::of(all.iter().copied());
                }
                prop_assert!(list.0.len() <= CAP);
                prop_assert_eq!(&list.0[..], &all[..list.0.len()]);
                prop_assert_eq!(TopList::decode(&list.encode()), Some(list.clone()));
            }
        }
    }
}
