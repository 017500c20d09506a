//! A bounded in-memory cache of tile bytes. A tile's bytes never change
//! (a partial tile of width W is the first W hashes of the full one, and
//! tree nodes are immutable), so nothing is ever invalidated: entries
//! leave only to make room, oldest inserted first.

use super::TileRef;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Tiles by address, at most `budget` bytes of them.
pub struct TileCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tiles: HashMap<TileRef, Bytes>,
    /// Insertion order, for eviction.
    order: VecDeque<TileRef>,
    bytes: usize,
}

impl TileCache {
    /// A cache holding at most `budget` bytes of tiles (0: none).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached bytes of `tile`.
    pub fn get(&self, tile: &TileRef) -> Option<Bytes> {
        self.lock().tiles.get(tile).cloned()
    }

    /// Keeps `bytes` as `tile`'s, evicting the oldest tiles to stay within
    /// the budget; a tile larger than the whole budget is not kept.
    pub fn insert(&self, tile: TileRef, bytes: Bytes) {
        if bytes.len() > self.budget {
            return;
        }
        let mut inner = self.lock();
        if inner.tiles.contains_key(&tile) {
            return;
        }
        while inner.bytes + bytes.len() > self.budget {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.tiles.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
        inner.bytes += bytes.len();
        inner.order.push_back(tile);
        inner.tiles.insert(tile, bytes);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every
        // mutation above completes or does not start), so a poisoned lock
        // is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tiles::TileKind;

    fn tile(index: u64) -> TileRef {
        TileRef::full(TileKind::Hashes { level: 0 }, index)
    }

    #[test]
    fn stays_within_its_budget_evicting_the_oldest() {
        let cache = TileCache::new(100);
        cache.insert(tile(0), Bytes::from(vec![0; 40]));
        cache.insert(tile(1), Bytes::from(vec![1; 40]));
        cache.insert(tile(2), Bytes::from(vec![2; 40]));
        assert_eq!(cache.bytes(), 80);
        assert!(cache.get(&tile(0)).is_none(), "oldest evicted");
        assert_eq!(cache.get(&tile(2)).unwrap()[0], 2);
        cache.insert(tile(3), Bytes::from(vec![3; 101]));
        assert!(cache.get(&tile(3)).is_none(), "larger than the budget");
        assert_eq!(cache.bytes(), 80);
    }
}
