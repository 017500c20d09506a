//! The decision index as a verification pass reads it: one map per id
//! second, filled from the store's rows for that second the first time an
//! entry asks, instead of one store lookup per decision entry.
//!
//! Memory: only the seconds entries of the last two rounds asked for are
//! kept. Ids begin with the second their request arrived, so a round's
//! entries ask for few seconds, and a second's map holds at most the
//! decisions made in that second.

use super::facts::Lookups;
use super::pass::BLOCK;
use crate::ledger::store::{LedgerStore, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One second's ids (without the second) and their seqs. The keys are 96
/// random bits already, so their first 8 bytes are the hash: SipHash
/// (the default, there against chosen keys) cost more than the lookup.
type Second = HashMap<[u8; 12], u64, std::hash::BuildHasherDefault<RandomBitsHasher>>;

/// Hashes random keys by taking their first 8 bytes.
#[derive(Default)]
struct RandomBitsHasher(u64);

impl std::hash::Hasher for RandomBitsHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 12]` hashes as its length then its bytes: keep the bytes.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// Each second read, and the last round that used it.
type Seconds = HashMap<[u8; 4], (Arc<Second>, u64)>;

fn split(id: &[u8; 16]) -> ([u8; 4], [u8; 12]) {
    let (mut second, mut rest) = ([0; 4], [0; 12]);
    second.copy_from_slice(&id[..4]);
    rest.copy_from_slice(&id[4..]);
    (second, rest)
}

/// The seconds read so far, shared by the threads of a pass.
pub(super) struct DecisionIndex<'a> {
    store: &'a dyn LedgerStore,
    seconds: Mutex<Seconds>,
    round: AtomicU64,
}

impl<'a> DecisionIndex<'a> {
    pub(super) fn new(store: &'a dyn LedgerStore) -> Self {
        Self {
            store,
            seconds: Mutex::new(HashMap::new()),
            round: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seconds> {
        // Plain data: a panic elsewhere leaves it usable.
        self.seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn second(&self, second: [u8; 4]) -> Result<Arc<Second>, StoreError> {
        let round = self.round.load(Ordering::Relaxed);
        if let Some((map, used)) = self.lock().get_mut(&second) {
            *used = round;
            return Ok(map.clone());
        }
        // Read without the lock so the other threads go on; two threads
        // may read the same second once each.
        let mut map = Second::default();
        self.store.decisions_of_second(second, &mut |id, seq| {
            // Later rows for an id come last and win, as in `decision_seq`.
            map.insert(split(id).1, seq);
        })?;
        let map = Arc::new(map);
        Ok(self.lock().entry(second).or_insert((map, round)).0.clone())
    }

    /// Ends a round: forgets the seconds neither it nor the one before used.
    pub(super) fn next_round(&self) {
        let finished = self.round.fetch_add(1, Ordering::Relaxed);
        self.lock().retain(|_, (_, used)| *used + 1 >= finished);
    }
}

/// One thread's view for one round: the seconds it already holds, so most
/// lookups take no lock. Few: a round's ids come from a few seconds.
pub(super) struct Local<'a> {
    index: &'a DecisionIndex<'a>,
    /// Most recently used last.
    seconds: RefCell<Vec<([u8; 4], Arc<Second>)>>,
}

impl<'a> Local<'a> {
    pub(super) fn new(index: &'a DecisionIndex<'a>) -> Self {
        Self {
            index,
            seconds: RefCell::new(Vec::new()),
        }
    }

    fn seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let (second, rest) = split(id);
        let mut seconds = self.seconds.borrow_mut();
        // Consecutive entries mostly share a second: look from the end.
        if let Some(at) = seconds.iter().rposition(|(s, _)| *s == second) {
            let last = seconds.len() - 1;
            seconds.swap(at, last);
            return Ok(seconds[last].1.get(&rest).copied());
        }
        let map = self.index.second(second)?;
        let seq = map.get(&rest).copied();
        seconds.push((second, map));
        Ok(seq)
    }
}

/// What the entries of one block of seqs look up: their signatures, read
/// for the whole block, and the decision index.
pub(super) struct BlockLookups<'a, 'b> {
    pub(super) from: u64,
    pub(super) signatures: &'b [Option<[u8; 64]>; BLOCK as usize],
    pub(super) index: &'b Local<'a>,
}

impl Lookups for BlockLookups<'_, '_> {
    fn signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        let slot = seq
            .checked_sub(self.from)
            .and_then(|i| self.signatures.get(usize::try_from(i).ok()?));
        Ok(slot.copied().flatten())
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        self.index.seq(id)
    }
}
