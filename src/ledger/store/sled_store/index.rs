//! The decision index: rows packed per commit and id second, and a bounded
//! memory of the decisions committed last.
//!
//! One row per decision made every commit rewrite many sled tree nodes (the
//! ids are random after their second, so 256 rows touch 256 places); one
//! row per (id second, commit) touches one or two. A row's value is the
//! commit's `(id[4..16], seq)` pairs for ids of that second, 20 bytes each,
//! sorted by id suffix so a lookup is a binary search.

use super::{StoreError, be_u64};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub(super) const DECISION: u8 = b'd';
const SUFFIX: usize = 12;
const PAIR: usize = SUFFIX + 8;

/// Decisions remembered in memory after their commit: receipts are mostly
/// asked for right after the answer, and a hit costs no sled read. About
/// 75 bytes each with the hash table's slack: some 20 MiB at most.
pub(super) const RECENT: usize = 262_144;

/// `d` + id second + first seq of the commit.
pub(super) fn row_key(second: [u8; 4], first_seq: u64) -> [u8; 13] {
    let mut key = [DECISION; 13];
    key[1..5].copy_from_slice(&second);
    key[5..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

/// `d` + id second: the prefix of every row for that second.
pub(super) fn second_prefix(second: [u8; 4]) -> [u8; 5] {
    let mut prefix = [DECISION; 5];
    prefix[1..].copy_from_slice(&second);
    prefix
}

/// Splits an id into its second and its random suffix.
pub(super) fn split(id: &[u8; 16]) -> ([u8; 4], [u8; SUFFIX]) {
    let mut second = [0; 4];
    let mut suffix = [0; SUFFIX];
    second.copy_from_slice(&id[..4]);
    suffix.copy_from_slice(&id[4..]);
    (second, suffix)
}

/// The rows of one commit: `(id second, value)`, one per second.
pub(super) fn rows(decisions: &[([u8; 16], u64)]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut sorted = decisions.to_vec();
    // Stable, so of two rows for one id the later (the one kept) stays last.
    sorted.sort_by_key(|(id, _)| *id);
    let mut rows: Vec<([u8; 4], Vec<u8>)> = Vec::new();
    for (i, (id, seq)) in sorted.iter().enumerate() {
        if sorted.get(i + 1).is_some_and(|(next, _)| next == id) {
            continue;
        }
        let (second, suffix) = split(id);
        let value = match rows.last_mut() {
            Some((last, value)) if *last == second => value,
            _ => {
                rows.push((second, Vec::new()));
                // INVARIANT: just pushed.
                &mut rows.last_mut().expect("a row").1
            }
        };
        value.extend_from_slice(&suffix);
        value.extend_from_slice(&seq.to_be_bytes());
    }
    rows
}

fn pairs(value: &[u8]) -> Result<std::slice::ChunksExact<'_, u8>, StoreError> {
    if !value.len().is_multiple_of(PAIR) {
        return Err(StoreError::Corrupt("a decision index row".to_owned()));
    }
    Ok(value.chunks_exact(PAIR))
}

/// The seq for `suffix` in one row's value.
pub(super) fn find(value: &[u8], suffix: &[u8; SUFFIX]) -> Result<Option<u64>, StoreError> {
    let count = pairs(value)?.len();
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = (low + high) / 2;
        let pair = &value[middle * PAIR..(middle + 1) * PAIR];
        match pair[..SUFFIX].cmp(suffix) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return be_u64(&pair[SUFFIX..]).map(Some),
        }
    }
    Ok(None)
}

/// Calls `f` with every `(id, seq)` of one row of `second`.
pub(super) fn each(
    second: [u8; 4],
    value: &[u8],
    f: &mut dyn FnMut(&[u8; 16], u64),
) -> Result<(), StoreError> {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&second);
    for pair in pairs(value)? {
        id[4..].copy_from_slice(&pair[..SUFFIX]);
        f(&id, be_u64(&pair[SUFFIX..])?);
    }
    Ok(())
}

/// The last `capacity` decisions committed, forgotten oldest first.
pub(super) struct Recent {
    capacity: usize,
    inner: Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    seqs: HashMap<[u8; 16], u64>,
    order: VecDeque<([u8; 16], u64)>,
}

impl Recent {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// Remembers a commit's decisions; call only once it is durable.
    pub(super) fn add(&self, decisions: &[([u8; 16], u64)]) {
        let mut inner = self.lock();
        for &(id, seq) in decisions {
            // Forget before remembering, so the queue never outgrows
            // its capacity (it would double its allocation).
            if inner.order.len() >= self.capacity
                && let Some((old, old_seq)) = inner.order.pop_front()
            {
                // A later row for the same id stays.
                if inner.seqs.get(&old) == Some(&old_seq) {
                    inner.seqs.remove(&old);
                }
            }
            inner.seqs.insert(id, seq);
            inner.order.push_back((id, seq));
        }
    }

    /// Forgets every decision at `size` or above (they were discarded).
    pub(super) fn forget_from(&self, size: u64) {
        let mut inner = self.lock();
        inner.order.retain(|(_, seq)| *seq < size);
        inner.seqs.retain(|_, seq| *seq < size);
    }

    pub(super) fn get(&self, id: &[u8; 16]) -> Option<u64> {
        self.lock().seqs.get(id).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentInner> {
        // Plain data: a panic elsewhere leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn recent_decisions_are_forgotten_oldest_first() {
        let recent = Recent::new(3);
        recent.add(&[(id(1), 10), (id(2), 20)]);
        recent.add(&[(id(3), 30), (id(1), 11)]);
        // id 1's first row went; its later one stays.
        assert_eq!(recent.get(&id(1)), Some(11));
        recent.add(&[(id(4), 40)]);
        assert_eq!(recent.get(&id(2)), None);
        assert_eq!(recent.get(&id(3)), Some(30));
        assert_eq!(recent.get(&id(4)), Some(40));
        recent.add(&[(id(5), 50)]);
        assert_eq!(recent.get(&id(3)), None);
        assert_eq!(recent.get(&id(1)), Some(11));
        assert_eq!(recent.lock().order.len(), 3);
    }

    #[test]
    fn rows_group_by_second_and_find_by_suffix() {
        let mut a = [0u8; 16];
        a[3] = 1;
        let (mut b, mut c) = (a, a);
        b[15] = 9;
        c[3] = 2;
        let rows = rows(&[(b, 5), (c, 6), (a, 7), (b, 8)]);
        assert_eq!(rows.len(), 2);
        let (second, value) = &rows[0];
        assert_eq!(*second, [0, 0, 0, 1]);
        assert_eq!(value.len(), 2 * PAIR, "one pair per id, the later kept");
        assert_eq!(find(value, &split(&a).1).unwrap(), Some(7));
        assert_eq!(find(value, &split(&b).1).unwrap(), Some(8));
        assert_eq!(find(&rows[1].1, &split(&c).1).unwrap(), Some(6));
        assert_eq!(find(&rows[1].1, &split(&b).1).unwrap(), None);
        assert!(find(&value[1..], &split(&a).1).is_err(), "torn row");
    }
}
