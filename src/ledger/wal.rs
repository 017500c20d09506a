//! The write-ahead file: the ledger's commit point, in front of the store.
//!
//! [`WalStore`] is a [`LedgerStore`] around another one (the sled store).
//! Its `commit` appends the sealed batch as one record to the current
//! segment file and fdatasyncs it, nothing else: that is what the
//! sequencer waits for before it acknowledges. The batch then stays in
//! memory (the overlay) and a background thread, the applier, writes the
//! batches to the store behind it every [`FLUSH_EVERY`] (or sooner when
//! many wait) and flushes the store once for all of them; segment files
//! are deleted once the store has flushed past them. Reads look at the
//! overlay first, so receipts and proofs of entries not yet in the store
//! are served from memory.
//!
//! At open the store is brought up to the file's durable tail ([`replay`]):
//! a torn final record (a crash during its write: the last bytes of the
//! last segment, no valid record after them) is cut and reported; damage
//! anywhere else is refused.
//!
//! Failures fail closed: a failed append or fdatasync fails the commit
//! (the sequencer answers 503 and retries through `reopen`, which cuts the
//! failed record); a failed apply or flush of the store stops every later
//! commit, and `reopen` writes every batch of the overlay into the
//! reopened store again and flushes it (what the store reads back may be
//! only in the page cache) before the ledger acknowledges again. A panic
//! of the applier fails every later commit and every reopen (a restart
//! replays the file). Nothing acknowledged is only in memory: it is in the
//! file until the store has it durably.
//!
//! Erasing a payload while the gateway runs (`erasure.rs`) first brings
//! the batch holding it into the store behind and out of memory, so no
//! later write puts it back, then erases it there and retires the segment
//! file holding its bytes.
//!
//! [`Faults`] injects write, fdatasync, apply and flush failures and
//! applier panics for tests.

mod applier;
mod erasure;
mod faults;
mod overlay;
mod record;
mod segments;

pub use faults::Faults;
pub use segments::{Tail, TornTail};

use super::store::{CommitBatch, LedgerStore, StoreError};
use super::tree::Hash;
use overlay::Overlay;
use segments::Appender;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often the applier writes waiting batches to the store and flushes it.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// This many entries waiting make the applier start before its tick.
const APPLY_FROM_ENTRIES: usize = 16_384;
/// So do this many bytes of entries and payloads.
const APPLY_FROM_BYTES: usize = 16 << 20;
/// This many entries, or bytes of entries and payloads, waiting make
/// commits wait for the applier, so memory stays bounded when the store is
/// slower than the file.
const MAX_WAITING_ENTRIES: usize = 131_072;
const MAX_WAITING_BYTES: usize = 64 << 20;

/// The WAL directory inside a ledger store's directory.
pub fn dir_of(store_dir: &Path) -> PathBuf {
    store_dir.join("wal")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`replay`] did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Batches written to the store.
    pub batches: usize,
    /// Entries they held.
    pub entries: u64,
    /// The torn final record found (cut or kept, as asked), if any.
    pub torn: Option<TornTail>,
}

/// Brings `store` up to the durable tail of the write-ahead file in `dir`:
/// writes every batch the store lacks and flushes. With [`Tail::Cut`] (a
/// start) it also cuts a torn final record and then deletes the segments
/// (the store holds all of them now); with [`Tail::Keep`] (a command that
/// only reads the ledger) the file stays exactly as it was.
pub fn replay(dir: &Path, store: &dyn LedgerStore, tail: Tail) -> Result<Replayed, StoreError> {
    let scanned = segments::scan(dir, tail)?;
    if let Some(torn) = &scanned.torn {
        tracing::warn!(
            segment = %torn.path.display(),
            offset = torn.offset,
            bytes = torn.bytes,
            reason = %torn.reason,
            cut = torn.cut,
            "ledger write-ahead file: a torn final record (a write interrupted by a crash; never acknowledged)"
        );
    }
    let mut size = store.size()?;
    let mut replayed = Replayed {
        torn: scanned.torn,
        ..Replayed::default()
    };
    for batch in &scanned.batches {
        let end = batch.checkpoint.0;
        if end <= size {
            continue;
        }
        let first = batch.first_seq();
        if first != size {
            return Err(StoreError::Corrupt(format!(
                "write-ahead file: a batch of seqs {first}..{end} follows a store of {size} entries"
            )));
        }
        store.apply(batch)?;
        replayed.batches += 1;
        replayed.entries += end - first;
        size = end;
    }
    store.flush()?;
    if tail == Tail::Keep {
        return Ok(replayed);
    }
    for (_, path) in &scanned.segments {
        std::fs::remove_file(path).map_err(|source| StoreError::Sync {
            path: path.clone(),
            source,
        })?;
    }
    if replayed.batches > 0 {
        tracing::info!(
            batches = replayed.batches,
            entries = replayed.entries,
            size,
            "ledger: store brought up to the write-ahead file"
        );
    }
    Ok(replayed)
}

/// What the committer, the applier and readers share.
struct Shared {
    inner: Arc<dyn LedgerStore>,
    state: Mutex<State>,
    /// Signals new batches, finished applies and closing.
    changed: Condvar,
    /// Entries `0..size` are durable (in the file or the store).
    size: AtomicU64,
    appender: Mutex<Appender>,
    /// Held while the store behind is written, so a reopen never races it.
    applying: Mutex<()>,
    faults: Faults,
    flush_every: Duration,
}

struct State {
    overlay: Overlay,
    /// The store holds entries `0..applied` (maybe not durably yet).
    applied: u64,
    /// Why the store behind failed; commits fail while this is set.
    failed: Option<String>,
    /// The applier thread panicked: nothing writes the store any more.
    applier_gone: bool,
    closing: bool,
}

/// Why commits fail once the applier thread has panicked.
const APPLIER_GONE: &str = "the store applier thread panicked; restart the gateway";

/// The write-ahead commit point in front of another store.
pub struct WalStore {
    shared: Arc<Shared>,
    applier: Mutex<Option<std::thread::JoinHandle<()>>>,
    torn: Option<TornTail>,
}

impl WalStore {
    /// Replays the file in `dir` into `inner` ([`replay`]), starts a new
    /// segment and the applier thread.
    pub fn open(dir: &Path, inner: Arc<dyn LedgerStore>) -> Result<Self, StoreError> {
        Self::open_flushing_every(dir, inner, FLUSH_EVERY)
    }

    /// [`WalStore::open`], the applier ticking every `flush_every`.
    pub fn open_flushing_every(
        dir: &Path,
        inner: Arc<dyn LedgerStore>,
        flush_every: Duration,
    ) -> Result<Self, StoreError> {
        let replayed = replay(dir, inner.as_ref(), Tail::Cut)?;
        let size = inner.size()?;
        let appender = Appender::start(dir, Vec::new(), size)?;
        let shared = Arc::new(Shared {
            inner,
            state: Mutex::new(State {
                overlay: Overlay::default(),
                applied: size,
                failed: None,
                applier_gone: false,
                closing: false,
            }),
            changed: Condvar::new(),
            size: AtomicU64::new(size),
            appender: Mutex::new(appender),
            applying: Mutex::new(()),
            faults: Faults::default(),
            flush_every,
        });
        let worker = shared.clone();
        let applier = std::thread::Builder::new()
            .name("govgate-ledger-apply".to_owned())
            .spawn(move || applier::apply_loop(&worker))
            .map_err(|err| StoreError::Engine(format!("cannot start the store applier: {err}")))?;
        Ok(Self {
            shared,
            applier: Mutex::new(Some(applier)),
            torn: replayed.torn,
        })
    }

    /// The torn final record cut at open, if any.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Writes the waiting batches to the store behind and flushes it now,
    /// as the applier's tick would, for tests.
    #[cfg(test)]
    pub(crate) fn apply_now(&self) -> Result<(), StoreError> {
        applier::apply_waiting(&self.shared)
    }

    /// Failure injection, for tests.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    fn size_now(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// The overlay's batches now: `(its first seq, the batches)`; reads
    /// below the first seq go to the store behind.
    fn snapshot(&self) -> (u64, Vec<Arc<CommitBatch>>) {
        let state = lock(&self.shared.state);
        let batches = state.overlay.batches();
        let start = batches.first().map_or(self.size_now(), |b| b.first_seq());
        (start, batches)
    }
}

impl Drop for WalStore {
    /// Applies and flushes what waits, then stops the applier.
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.changed.notify_all();
        if let Some(applier) = lock(&self.applier).take()
            && applier.join().is_err()
        {
            tracing::error!("ledger store applier panicked");
        }
    }
}

impl LedgerStore for WalStore {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.size_now())
    }

    fn disk_bytes(&self) -> Option<u64> {
        self.shared.inner.disk_bytes()
    }

    fn torn_tail_bytes(&self) -> u64 {
        self.torn.as_ref().map_or(0, |torn| torn.bytes)
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.commit_shared(&Arc::new(batch.clone()))
    }

    fn commit_shared(&self, batch: &Arc<CommitBatch>) -> Result<(), StoreError> {
        if batch.entries.is_empty() {
            return Err(StoreError::Corrupt("an empty commit batch".to_owned()));
        }
        {
            let mut state = lock(&self.shared.state);
            while state.failed.is_none()
                && (state.overlay.entries() >= MAX_WAITING_ENTRIES
                    || state.overlay.bytes() >= MAX_WAITING_BYTES)
            {
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if let Some(reason) = &state.failed {
                return Err(StoreError::Engine(format!(
                    "the store behind the write-ahead file failed: {reason}"
                )));
            }
        }
        lock(&self.shared.appender).append(batch, &self.shared.faults)?;
        let mut state = lock(&self.shared.state);
        state.overlay.push(batch.clone());
        self.shared
            .size
            .store(batch.checkpoint.0, Ordering::Release);
        let wake = state.overlay.entries() >= APPLY_FROM_ENTRIES
            || state.overlay.bytes() >= APPLY_FROM_BYTES;
        drop(state);
        if wake {
            self.shared.changed.notify_all();
        }
        Ok(())
    }

    fn failure(&self) -> Option<String> {
        lock(&self.shared.state).failed.clone()
    }

    fn reopen(&self) -> Result<u64, StoreError> {
        let _applying = lock(&self.shared.applying);
        if lock(&self.shared.state).applier_gone {
            return Err(StoreError::Engine(APPLIER_GONE.to_owned()));
        }
        lock(&self.shared.appender).repair()?;
        if lock(&self.shared.state).failed.is_none() {
            // Only the file failed; the store behind and the applier work
            // on, so there is nothing to reopen or write again there.
            return Ok(self.size_now());
        }
        let stored = self.shared.inner.reopen()?;
        // What the store reads back after a failed flush may be in the page
        // cache only (a failed fsync leaves its pages clean but never
        // written): write every batch still in memory again (the same keys
        // and values) and flush before forgetting any of them.
        let waiting = lock(&self.shared.state).overlay.batches();
        let mut through = stored;
        for batch in &waiting {
            let first = batch.first_seq();
            if first > through {
                return Err(StoreError::Corrupt(format!(
                    "the store holds {through} entries; the write-ahead batches in memory go on at {first}"
                )));
            }
            self.shared.inner.apply(batch)?;
            through = through.max(batch.checkpoint.0);
        }
        self.shared.inner.flush()?;
        let mut state = lock(&self.shared.state);
        state.applied = through;
        state.overlay.forget_through(through);
        state.failed = None;
        drop(state);
        self.shared.changed.notify_all();
        Ok(self.size_now())
    }

    fn probe(&self) -> Result<(), StoreError> {
        lock(&self.shared.appender).probe()?;
        self.shared.inner.probe()
    }

    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        if size < self.size_now() {
            return Err(StoreError::Corrupt(format!(
                "entries above {size} are durable in the write-ahead file"
            )));
        }
        self.shared.inner.discard_above(size)
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.size_now() {
            return Ok(None);
        }
        if let Some(batch) = lock(&self.shared.state).overlay.holding(seq) {
            return Ok(overlay::entry(&batch, seq).map(<[u8]>::to_vec));
        }
        self.shared.inner.entry(seq)
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let Some(last_leaf) = index
            .checked_add(1)
            .and_then(|n| n.checked_shl(u32::from(level)))
            .and_then(|n| n.checked_sub(1))
            .filter(|leaf| *leaf < self.size_now())
        else {
            return Ok(None);
        };
        if let Some(batch) = lock(&self.shared.state).overlay.holding(last_leaf) {
            return Ok(overlay::node(&batch, level, index));
        }
        self.shared.inner.node(level, index)
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        if seq >= self.size_now() {
            return Ok(None);
        }
        if let Some(batch) = lock(&self.shared.state).overlay.holding(seq) {
            return Ok(Some(batch.checkpoint.clone()));
        }
        self.shared.inner.checkpoint_covering(seq)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        if let Some(batch) = lock(&self.shared.state).overlay.last() {
            return Ok(Some(batch.checkpoint.clone()));
        }
        self.shared.inner.latest_checkpoint()
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let (_, batches) = self.snapshot();
        let mut all: std::collections::BTreeMap<u64, String> =
            self.shared.inner.checkpoints()?.into_iter().collect();
        all.extend(batches.iter().map(|b| b.checkpoint.clone()));
        Ok(all.into_iter().collect())
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        if let Some(seq) = lock(&self.shared.state).overlay.decision(id) {
            return Ok(Some(seq));
        }
        self.shared.inner.decision_seq(id)
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.size_now() {
            return Ok(None);
        }
        if let Some(batch) = lock(&self.shared.state).overlay.holding(seq) {
            return Ok(overlay::payload(&batch, seq).map(<[u8]>::to_vec));
        }
        self.shared.inner.payload(seq)
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        if seq >= self.size_now() {
            return Ok(None);
        }
        if let Some(batch) = lock(&self.shared.state).overlay.holding(seq) {
            return Ok(overlay::signature(&batch, seq));
        }
        self.shared.inner.entry_signature(seq)
    }

    fn subject_seqs(&self, subject: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        // Memory first: a batch leaves it only once the store behind shows
        // it, so one of the two reads holds every batch.
        let mut seqs = lock(&self.shared.state).overlay.subject_seqs(subject);
        seqs.extend(self.shared.inner.subject_seqs(subject)?);
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    fn erase_payloads(&self, seqs: &[u64]) -> Result<Vec<bool>, StoreError> {
        erasure::erase(&self.shared, seqs, self.size_now())
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        let (_, batches) = self.snapshot();
        let mut seqs = self.shared.inner.governance_seqs()?;
        seqs.extend(batches.iter().flat_map(|b| b.governance.iter().copied()));
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (start, batches) = self.snapshot();
        let mut stopped = false;
        self.shared
            .inner
            .entries_in(from, to.min(start), &mut |seq, bytes| {
                let flow = f(seq, bytes);
                stopped = flow.is_break();
                flow
            })?;
        if stopped {
            return Ok(());
        }
        for batch in &batches {
            for (seq, bytes) in &batch.entries {
                if (from..to).contains(seq) && f(*seq, bytes).is_break() {
                    return Ok(());
                }
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
        let (start, batches) = self.snapshot();
        self.shared.inner.leaf_nodes_in(from, to.min(start), f)?;
        let mut seen = from.max(start);
        for batch in &batches {
            overlay::leaf_nodes(batch, seen, to, f);
            seen = seen.max(batch.checkpoint.0);
        }
        for leaf in seen..to {
            f(leaf, &[]);
        }
        Ok(())
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        let (start, batches) = self.snapshot();
        self.shared.inner.signatures_in(from, to.min(start), f)?;
        for batch in &batches {
            for (seq, _) in &batch.entries {
                if let Some(signature) = overlay::signature(batch, *seq)
                    && (from..to).contains(seq)
                {
                    f(*seq, &signature);
                }
            }
        }
        Ok(())
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        let (start, batches) = self.snapshot();
        self.shared
            .inner
            .decisions_of_second(second, &mut |id, seq| {
                if seq < start {
                    f(id, seq);
                }
            })?;
        for batch in &batches {
            for (id, seq) in &batch.decisions {
                if id[..4] == second {
                    f(id, *seq);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
