//! A store read from end to end in bounded memory: the offline export
//! reads every entry (and payload) of a log, and sled keeps what it has
//! read. Its page cache evicts only once a shard has queued 64 accesses
//! (256 shards), and a page holding one commit's pack of entries is read
//! a few times at most, so a sequential read of a large log evicts almost
//! nothing: resident memory grows with the bytes read (1.7 GB for an
//! export of a million entries with payloads). [`Relieved`] passes every
//! call through and, between calls, reopens the store (dropping all sled
//! holds) whenever the bytes read or the process's resident memory grew
//! by more than a budget since the last reopen.
//!
//! Reopening gives up the store's lock for a moment: a gateway starting
//! then takes it, and the export's next read fails (an offline export is
//! for a stopped gateway). Never for a store in use by a running gateway
//! (the online export reads a pinned view of it and is not relieved).

use crate::ledger::store::{CommitBatch, LedgerStore, StoreError};
use crate::ledger::tree::Hash;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes read, or resident memory grown, between reopens.
pub const RELIEF_BUDGET: u64 = 64 << 20;
/// How long a reopen waits out sled's own lock, still held by the threads
/// of the database just closed.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Resident memory is looked at after this many reads (it costs a read of
/// a small /proc file).
const LOOK_EVERY: u64 = 256;
/// `leaf_nodes_in` and `signatures_in` go through this many seqs between
/// chances to reopen (their callbacks cannot stop them).
const WINDOW: u64 = 4096;

/// `inner`, reopened as the module docs say.
pub struct Relieved<S> {
    inner: S,
    budget: u64,
    /// Bytes returned since the last reopen.
    read: AtomicU64,
    calls: AtomicU64,
    /// Resident bytes just after the last reopen (0: unknown).
    base_rss: AtomicU64,
    /// Range reads under way (their callbacks may read too): no reopen
    /// while one holds the store.
    busy: AtomicU32,
    reopens: AtomicU64,
}

/// The process's resident bytes, where the system says (Linux).
fn resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl<S: LedgerStore> Relieved<S> {
    /// `inner` reopened every [`RELIEF_BUDGET`].
    pub fn new(inner: S) -> Self {
        Self::with_budget(inner, RELIEF_BUDGET)
    }

    /// `inner` reopened every `budget` bytes.
    pub fn with_budget(inner: S, budget: u64) -> Self {
        Self {
            inner,
            budget,
            read: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            base_rss: AtomicU64::new(resident().unwrap_or(0)),
            busy: AtomicU32::new(0),
            reopens: AtomicU64::new(0),
        }
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How often it was reopened.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Counts a read of `bytes`, and reopens when over budget.
    fn count(&self, bytes: usize) -> Result<(), StoreError> {
        let read = self.read.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.busy.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        let mut over = read >= self.budget;
        if !over && calls.is_multiple_of(LOOK_EVERY) {
            let base = self.base_rss.load(Ordering::Relaxed);
            over = resident().is_some_and(|now| base > 0 && now > base + self.budget);
        }
        if over {
            self.reopen_waiting()?;
            self.reopens.fetch_add(1, Ordering::Relaxed);
            self.read.store(0, Ordering::Relaxed);
            self.base_rss
                .store(resident().unwrap_or(0), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reopens the store. sled lets its background threads go after the
    /// last handle is dropped, and they hold its file lock a moment
    /// longer: a lock is waited out for [`LOCK_WAIT`]; one held longer is
    /// another process's (a gateway that started), and the error stands.
    fn reopen_waiting(&self) -> Result<u64, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match self.inner.reopen() {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                reopened => return reopened,
            }
        }
    }

    /// Runs a range read over `from..to` in windows, with a chance to
    /// reopen between them.
    fn windows(
        &self,
        from: u64,
        to: u64,
        read: &mut dyn FnMut(u64, u64) -> Result<usize, StoreError>,
    ) -> Result<(), StoreError> {
        let mut at = from;
        while at < to {
            let end = at.saturating_add(WINDOW).min(to);
            self.busy.fetch_add(1, Ordering::AcqRel);
            let done = read(at, end);
            self.busy.fetch_sub(1, Ordering::AcqRel);
            self.count(done?)?;
            at = end;
        }
        Ok(())
    }
}

impl<S: LedgerStore> LedgerStore for Relieved<S> {
    fn size(&self) -> Result<u64, StoreError> {
        self.inner.size()
    }

    fn disk_bytes(&self) -> Option<u64> {
        self.inner.disk_bytes()
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }

    fn reopen(&self) -> Result<u64, StoreError> {
        self.inner.reopen()
    }

    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        self.inner.discard_above(size)
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.inner.entry(seq)?;
        self.count(found.as_ref().map_or(0, Vec::len))?;
        Ok(found)
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let found = self.inner.node(level, index)?;
        self.count(32)?;
        Ok(found)
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        let found = self.inner.checkpoint_covering(seq)?;
        self.count(found.as_ref().map_or(0, |(_, note)| note.len()))?;
        Ok(found)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.latest_checkpoint()
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.inner.checkpoints()
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let found = self.inner.decision_seq(id)?;
        self.count(16)?;
        Ok(found)
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.inner.payload(seq)?;
        self.count(found.as_ref().map_or(0, Vec::len))?;
        Ok(found)
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        let found = self.inner.entry_signature(seq)?;
        self.count(64)?;
        Ok(found)
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.inner.governance_seqs()
    }

    fn subject_seqs(&self, subject: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        self.inner.subject_seqs(subject)
    }

    fn erase_payloads(&self, seqs: &[u64]) -> Result<Vec<bool>, StoreError> {
        self.inner.erase_payloads(seqs)
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // Stopped (between two entries) when what it and `f` read is over
        // budget, and resumed after a reopen.
        let mut at = from;
        while at < to {
            let (mut next, mut stopped) = (None, false);
            self.busy.fetch_add(1, Ordering::AcqRel);
            let done = self.inner.entries_in(at, to, &mut |seq, entry| {
                self.read.fetch_add(entry.len() as u64, Ordering::Relaxed);
                if f(seq, entry).is_break() {
                    stopped = true;
                    return ControlFlow::Break(());
                }
                // Only the outermost range read can be resumed after a
                // reopen (an inner one's store would be the outer one's).
                let outermost = self.busy.load(Ordering::Acquire) == 1;
                if outermost && self.read.load(Ordering::Relaxed) >= self.budget {
                    next = Some(seq + 1);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            self.busy.fetch_sub(1, Ordering::AcqRel);
            done?;
            match next {
                Some(next) if !stopped => {
                    self.count(0)?;
                    at = next;
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        self.windows(from, to, &mut |start, end| {
            let mut bytes = 0;
            self.inner.leaf_nodes_in(start, end, &mut |leaf, nodes| {
                bytes += 32 * nodes.len();
                f(leaf, nodes);
            })?;
            Ok(bytes)
        })
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        self.windows(from, to, &mut |start, end| {
            let mut bytes = 0;
            self.inner
                .signatures_in(start, end, &mut |seq, signature| {
                    bytes += 64;
                    f(seq, signature);
                })?;
            Ok(bytes)
        })
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        self.inner.decisions_of_second(second, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::EntrySignatures;
    use crate::ledger::entry::EntryBody;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::store::SledStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_relieved_store_reads_the_same_and_reopens_between_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let config =
            SequencerConfig::for_tests("test.example/log", &key, EntrySignatures::On, 64, 4);
        let (ledger, writer) = Ledger::open(store.clone(), config).unwrap();
        for _ in 0..40 {
            let decision = crate::decision::fixture::streamed_chat();
            ledger
                .append(EntryBody::Decision(Box::new(decision)))
                .await
                .unwrap();
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        let mut expected = Vec::new();
        store
            .entries_in(0, 40, &mut |_, entry| {
                expected.push(entry.to_vec());
                ControlFlow::Continue(())
            })
            .unwrap();
        drop(store);

        let relieved = Relieved::with_budget(SledStore::open(dir.path()).unwrap(), 2048);
        let mut seen = Vec::new();
        relieved
            .entries_in(0, 40, &mut |seq, entry| {
                // A read from inside a range read never reopens under it.
                assert_eq!(relieved.entry(seq).unwrap().as_deref(), Some(entry));
                seen.push(entry.to_vec());
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, expected);
        let during = relieved.reopens();
        for (seq, entry) in expected.iter().enumerate() {
            assert_eq!(relieved.entry(seq as u64).unwrap().as_ref(), Some(entry));
            assert!(relieved.entry_signature(seq as u64).unwrap().is_some());
        }
        assert!(
            relieved.reopens() > during + 2,
            "{} reopens",
            relieved.reopens()
        );
    }
}
