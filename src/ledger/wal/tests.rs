//! The write-ahead file on its own: commit point, torn tail, rotation and
//! deletion, and the failures it turns into refused commits.

use super::record::tests::sample;
use super::*;
use crate::ledger::memstore::MemStore;
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

fn segments_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wal"))
        .collect();
    found.sort();
    found
}

/// The store behind never catches up by itself.
fn open_slow(dir: &Path, inner: Arc<dyn LedgerStore>) -> WalStore {
    WalStore::open_flushing_every(dir, inner, Duration::from_secs(3600)).unwrap()
}

#[test]
fn a_torn_final_record_is_cut_and_reported_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open_slow(dir.path(), Arc::new(MemStore::new()));
        wal.commit(&sample(0, 3)).unwrap();
        wal.commit(&sample(3, 2)).unwrap();
        wal.faults().fail_applies(u64::MAX);
    }
    let segment = segments_in(dir.path()).pop().unwrap();
    let good = std::fs::metadata(&segment).unwrap().len();
    // A third record, cut by a crash halfway through its write (with the
    // segment's key, from its header).
    let key: [u8; 32] = std::fs::read(&segment).unwrap()[4..36].try_into().unwrap();
    let third = record::encode(&sample(5, 4), Some(&key));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&third[..third.len() / 2])
        .unwrap();

    let inner = Arc::new(MemStore::new());
    let wal = open_slow(dir.path(), inner.clone());
    let torn = wal.torn_tail().expect("reported");
    assert_eq!(torn.offset, good);
    assert_eq!(torn.bytes, third.len() as u64 / 2);
    assert_eq!(torn.reason, "a record cut short");
    assert_eq!(wal.size().unwrap(), 5);
    assert_eq!(inner.size().unwrap(), 5, "replayed into the store");
    assert_eq!(wal.entry(4).unwrap().unwrap(), b"{\"seq\":4}");
    assert_eq!(wal.entry(5).unwrap(), None);
}

#[test]
fn a_damaged_record_before_the_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000000.wal"), b"GWR1garbage").unwrap();
    std::fs::write(
        dir.path().join("00000000000000000003.wal"),
        record::encode(&sample(3, 1), None),
    )
    .unwrap();
    let err = WalStore::open(dir.path(), Arc::new(MemStore::new()))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("00000000000000000000.wal at byte 0"),
        "{err}"
    );
}

#[test]
fn a_failed_write_or_fdatasync_fails_the_commit_and_reopen_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal = open_slow(dir.path(), inner.clone());
    wal.commit(&sample(0, 2)).unwrap();
    wal.faults().fail_syncs(1);
    assert!(
        wal.commit(&sample(2, 2))
            .unwrap_err()
            .to_string()
            .contains("injected fdatasync failure")
    );
    assert_eq!(
        wal.size().unwrap(),
        2,
        "nothing of the failed batch is visible"
    );
    assert_eq!(wal.entry(2).unwrap(), None);
    assert!(
        wal.commit(&sample(2, 2)).is_err(),
        "no commit before a repair"
    );
    assert_eq!(wal.reopen().unwrap(), 2);
    wal.probe().unwrap();
    wal.faults().fail_writes(1);
    assert!(
        wal.commit(&sample(2, 2))
            .unwrap_err()
            .to_string()
            .contains("injected write failure")
    );
    assert_eq!(wal.reopen().unwrap(), 2);
    wal.commit(&sample(2, 2)).unwrap();
    drop(wal);
    assert_eq!(inner.size().unwrap(), 4, "closing brought the store up");
    // The file holds the two good batches once each: the failed record was cut.
    let inner = Arc::new(MemStore::new());
    let replayed = replay(dir.path(), inner.as_ref(), Tail::Keep).unwrap();
    assert!(replayed.torn.is_none());
    assert_eq!(inner.size().unwrap(), 4);
}

#[test]
fn a_failed_apply_stops_commits_until_reopen_replays_memory_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal =
        WalStore::open_flushing_every(dir.path(), inner.clone(), Duration::from_millis(1)).unwrap();
    wal.faults().fail_applies(1);
    wal.commit(&sample(0, 2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&wal.shared.state).failed.is_none() {
        assert!(Instant::now() < deadline, "the applier never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    let refused = wal.commit(&sample(2, 1)).unwrap_err();
    assert!(
        refused.to_string().contains("injected apply failure"),
        "{refused}"
    );
    assert_eq!(wal.size().unwrap(), 2, "acknowledged entries stay readable");
    assert_eq!(wal.entry(1).unwrap().unwrap(), b"{\"seq\":1}");
    assert_eq!(wal.reopen().unwrap(), 2);
    assert_eq!(
        inner.size().unwrap(),
        2,
        "nothing lost: replayed from memory"
    );
    wal.commit(&sample(2, 1)).unwrap();
}

#[test]
fn segments_rotate_and_are_deleted_once_the_store_has_flushed_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal = open_slow(dir.path(), inner.clone());
    let big = |first: u64| {
        let mut batch = sample(first, 1);
        batch.payloads[0].1 = vec![0; segments::SEGMENT_BYTES as usize];
        batch
    };
    wal.commit(&big(0)).unwrap();
    wal.commit(&big(1)).unwrap();
    wal.commit(&sample(2, 1)).unwrap();
    assert_eq!(
        segments_in(dir.path()).len(),
        3,
        "a new segment after each full one"
    );
    drop(wal);
    // Closing flushed everything to the store: only the current segment stays.
    assert_eq!(inner.size().unwrap(), 3);
    let left = segments_in(dir.path());
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with("00000000000000000002.wal"), "{left:?}");
}

/// A segment key for tests.
const KEY: record::SegmentKey = [5; 32];

/// A last segment of three good records, keyed by `key` (with the header
/// that names it) or in the form written before segment keys; the offset
/// where each record starts.
fn three_records(dir: &Path, key: Option<&record::SegmentKey>) -> (PathBuf, Vec<usize>) {
    let path = dir.join("00000000000000000000.wal");
    let mut bytes = Vec::new();
    if let Some(key) = key {
        bytes.extend_from_slice(b"GWS1");
        bytes.extend_from_slice(key);
    }
    let mut starts = Vec::new();
    for (first, n) in [(0, 2), (2, 3), (5, 1)] {
        starts.push(bytes.len());
        bytes.extend(record::encode(&sample(first, n), key));
    }
    std::fs::write(&path, &bytes).unwrap();
    (path, starts)
}

#[test]
fn a_damaged_record_followed_by_a_good_one_in_the_last_segment_is_refused_and_nothing_cut() {
    // A flipped byte in the body (checksum) and in the length field (the
    // record seems to run on): both have a valid record after them.
    for key in [Some(&KEY), None] {
        for (record, byte) in [(0, record::HEADER_BYTES + 3), (1, 5), (0, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let (path, starts) = three_records(dir.path(), key);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[starts[record] + byte] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            for tail in [Tail::Cut, Tail::Keep] {
                let inner = Arc::new(MemStore::new());
                let err = replay(dir.path(), inner.as_ref(), tail).unwrap_err();
                let said = err.to_string();
                assert!(
                    said.contains(&format!(
                        "00000000000000000000.wal at byte {}",
                        starts[record]
                    )) && said.contains("damage"),
                    "record {record} byte {byte}: {said}"
                );
                assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing cut");
            }
            assert!(WalStore::open(dir.path(), Arc::new(MemStore::new())).is_err());
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing cut");
        }
    }
}

#[test]
fn a_final_record_that_fails_its_checksum_is_torn_cut_at_a_start_and_kept_when_reading() {
    for key in [Some(&KEY), None] {
        let dir = tempfile::tempdir().unwrap();
        let (path, starts) = three_records(dir.path(), key);
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len();
        bytes[end - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();

        let inner = Arc::new(MemStore::new());
        let kept = replay(dir.path(), inner.as_ref(), Tail::Keep).unwrap();
        let torn = kept.torn.expect("reported");
        assert_eq!(
            (torn.offset, torn.bytes, torn.cut),
            (starts[2] as u64, (end - starts[2]) as u64, false)
        );
        assert_eq!(
            inner.size().unwrap(),
            5,
            "the durable records are in the store"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file left as it was"
        );

        let inner = Arc::new(MemStore::new());
        let wal = open_slow(dir.path(), inner.clone());
        let torn = wal.torn_tail().expect("reported");
        assert_eq!((torn.offset, torn.cut), (starts[2] as u64, true));
        assert_eq!(wal.size().unwrap(), 5);
    }
}

#[test]
fn a_torn_record_carrying_a_forged_record_in_its_payload_is_still_a_torn_record() {
    // A client's request body is in a record's payload. A body built to
    // read as a whole record (checksummed without the segment's key, which
    // it cannot know) inside a record that a crash cut short must not
    // count as "a valid record after a bad one" (damage, start refused).
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = three_records(dir.path(), Some(&KEY));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(starts[2]);
    let mut carrier = sample(5, 1);
    for forged_key in [[5u8; 32], [6; 32]] {
        let forged = record::encode(&sample(6, 1), Some(&forged_key));
        carrier.payloads[0].1 = forged;
        let real = record::encode(&carrier, Some(&KEY));
        let mut torn = bytes.clone();
        // Cut after the payload, before the record's end.
        torn.extend_from_slice(&real[..real.len() - 8]);
        std::fs::write(&path, &torn).unwrap();
        let replayed = replay(dir.path(), &MemStore::new(), Tail::Keep);
        if forged_key == KEY {
            // Knowing the key, it would be found: what the key prevents.
            assert!(replayed.is_err(), "a record made with the key is found");
        } else {
            let torn_tail = replayed.unwrap().torn.expect("a torn record");
            assert_eq!(torn_tail.offset, starts[2] as u64);
        }
    }
}

#[test]
fn a_segment_header_cut_short_is_a_torn_tail_in_the_last_segment_and_damage_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let last = dir.path().join("00000000000000000000.wal");
    std::fs::write(&last, b"GWS1\x05\x05").unwrap();
    let replayed = replay(dir.path(), &MemStore::new(), Tail::Keep).unwrap();
    let torn = replayed.torn.expect("torn");
    assert_eq!((torn.offset, torn.bytes), (0, 6));
    std::fs::write(
        dir.path().join("00000000000000000001.wal"),
        record::encode(&sample(0, 1), None),
    )
    .unwrap();
    let err = replay(dir.path(), &MemStore::new(), Tail::Keep).unwrap_err();
    assert!(
        err.to_string().contains("segment header cut short"),
        "{err}"
    );
}

#[test]
fn segments_written_before_segment_keys_still_replay() {
    // The current segment of a demo run by the release build of 25a49b3
    // (tests/data/upgrade/wal-25a49b3/README.md), killed with SIGKILL.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/wal-25a49b3");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture.join("00000000000000000000.wal"),
        dir.path().join("00000000000000000000.wal"),
    )
    .unwrap();
    let inner = Arc::new(MemStore::new());
    let replayed = replay(dir.path(), inner.as_ref(), Tail::Keep).unwrap();
    assert!(replayed.torn.is_none());
    assert_eq!(
        (replayed.batches, replayed.entries),
        (45, 45),
        "{replayed:?}"
    );
    let size = inner.size().unwrap();
    assert_eq!(size, replayed.entries);
    let vkey = std::fs::read_to_string(fixture.join("log.vkey")).unwrap();
    let verifier = crate::ledger::checkpoint::NoteVerifier::parse(vkey.trim()).unwrap();
    let (at, note) = inner
        .latest_checkpoint()
        .unwrap()
        .expect("the last checkpoint");
    assert_eq!(at, size);
    assert!(verifier.open(&note).is_ok(), "signed by the fixture's key");
    let first: serde_json::Value =
        serde_json::from_slice(&inner.entry(0).unwrap().unwrap()).unwrap();
    assert_eq!(first["seq"], 0);
}

/// A store whose `reopen` forgets what was applied but not flushed, as an
/// engine does after a failed fsync: the page cache still reads it back,
/// the disk never got it. `durable` is what a crash would leave.
struct PageCache {
    mem: MemStore,
    unflushed: Mutex<Option<u64>>,
    durable: AtomicU64,
    reopens: AtomicU64,
}

impl PageCache {
    fn new() -> Self {
        Self {
            mem: MemStore::new(),
            unflushed: Mutex::new(None),
            durable: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
        }
    }
}

impl LedgerStore for PageCache {
    fn size(&self) -> Result<u64, StoreError> {
        self.mem.size()
    }
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.mem.commit(batch)?;
        self.durable.fetch_max(batch.checkpoint.0, Ordering::SeqCst);
        Ok(())
    }
    fn apply(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.mem.commit(batch)?;
        let mut unflushed = lock(&self.unflushed);
        *unflushed = Some(unflushed.unwrap_or(0).max(batch.checkpoint.0));
        Ok(())
    }
    fn flush(&self) -> Result<(), StoreError> {
        if let Some(end) = lock(&self.unflushed).take() {
            self.durable.fetch_max(end, Ordering::SeqCst);
        }
        Ok(())
    }
    fn reopen(&self) -> Result<u64, StoreError> {
        self.reopens.fetch_add(1, Ordering::SeqCst);
        *lock(&self.unflushed) = None;
        self.mem.size()
    }
    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        self.mem.discard_above(size)
    }
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.mem.entry(seq)
    }
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        self.mem.node(level, index)
    }
    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        self.mem.checkpoint_covering(seq)
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.mem.latest_checkpoint()
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.mem.checkpoints()
    }
    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        self.mem.decision_seq(id)
    }
    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.mem.payload(seq)
    }
    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        self.mem.entry_signature(seq)
    }
    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.mem.governance_seqs()
    }
    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.mem.entries_in(from, to, f)
    }
    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        self.mem.leaf_nodes_in(from, to, f)
    }
    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        self.mem.signatures_in(from, to, f)
    }
    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        self.mem.decisions_of_second(second, f)
    }
}

/// Waits until the applier has failed.
fn wait_failed(wal: &WalStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&wal.shared.state).failed.is_none() {
        assert!(Instant::now() < deadline, "the applier never failed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn after_a_failed_flush_reopen_writes_every_batch_in_memory_again_before_forgetting_it() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(PageCache::new());
    let wal =
        WalStore::open_flushing_every(dir.path(), inner.clone(), Duration::from_millis(1)).unwrap();
    wal.faults().fail_flushes(1);
    wal.commit(&sample(0, 2)).unwrap();
    wal.commit(&sample(2, 3)).unwrap();
    wait_failed(&wal);
    assert!(
        wal.commit(&sample(5, 1))
            .unwrap_err()
            .to_string()
            .contains("injected flush failure")
    );
    assert_eq!(inner.durable.load(Ordering::SeqCst), 0);
    assert_eq!(wal.reopen().unwrap(), 5);
    assert_eq!(
        inner.durable.load(Ordering::SeqCst),
        5,
        "the batches the failed flush left only in the page cache were written and flushed again"
    );
    wal.commit(&sample(5, 1)).unwrap();
}

#[test]
fn a_panic_in_the_applier_fails_commits_and_reopens_and_closing_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal =
        WalStore::open_flushing_every(dir.path(), inner.clone(), Duration::from_millis(1)).unwrap();
    wal.faults().panic_applies(1);
    wal.commit(&sample(0, 2)).unwrap();
    wait_failed(&wal);
    let refused = wal.commit(&sample(2, 1)).unwrap_err().to_string();
    assert!(refused.contains("applier thread panicked"), "{refused}");
    assert!(wal.reopen().is_err(), "no applier to resume with");
    assert!(wal.commit(&sample(2, 1)).is_err());
    assert_eq!(wal.entry(1).unwrap().unwrap(), b"{\"seq\":1}");
    drop(wal);
    // The acknowledged batch is in the file: the next open replays it.
    let inner = Arc::new(MemStore::new());
    assert_eq!(open_slow(dir.path(), inner.clone()).size().unwrap(), 2);
}

#[test]
fn a_failure_of_the_file_alone_does_not_reopen_the_store_behind() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(PageCache::new());
    let wal = open_slow(dir.path(), inner.clone());
    wal.commit(&sample(0, 2)).unwrap();
    wal.faults().fail_syncs(1);
    assert!(wal.commit(&sample(2, 1)).is_err());
    assert_eq!(wal.reopen().unwrap(), 2);
    assert_eq!(inner.reopens.load(Ordering::SeqCst), 0);
    wal.commit(&sample(2, 1)).unwrap();
    drop(wal);
    assert_eq!(inner.durable.load(Ordering::SeqCst), 3);
}

/// A batch whose payload at `first` is `payload`.
fn with_payload(first: u64, n: u64, payload: &[u8]) -> CommitBatch {
    let mut batch = sample(first, n);
    batch.payloads = vec![(first, payload.to_vec())];
    batch
}

fn files_holding(dir: &Path, needle: &[u8]) -> usize {
    segments_in(dir)
        .iter()
        .filter(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .count()
}

#[test]
fn an_erased_payload_leaves_memory_store_and_segment_and_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    {
        let wal = open_slow(dir.path(), inner.clone());
        wal.commit(&with_payload(0, 2, b"secret-zero")).unwrap();
        wal.commit(&with_payload(2, 2, b"kept-two")).unwrap();
        // Both batches are in memory only, and in the current segment.
        assert_eq!(inner.size().unwrap(), 0);
        assert_eq!(files_holding(dir.path(), b"secret-zero"), 1);
        assert_eq!(
            wal.erase_payloads(&[0, 1, 9]).unwrap(),
            [true, false, false]
        );
        assert_eq!(wal.payload(0).unwrap(), None);
        assert_eq!(
            inner.payload(0).unwrap(),
            None,
            "erased in the store behind"
        );
        assert_eq!(wal.payload(2).unwrap().unwrap(), b"kept-two");
        assert_eq!(
            files_holding(dir.path(), b"secret-zero"),
            0,
            "the segment that held it is gone"
        );
        // Commits go on in the next segment; the erasure holds through
        // applies and reopens.
        wal.commit(&with_payload(4, 1, b"later")).unwrap();
        wal.apply_now().unwrap();
        assert_eq!(wal.payload(0).unwrap(), None);
        assert_eq!(wal.erase_payloads(&[0]).unwrap(), [false]);
        wal.faults().fail_applies(1);
        wal.commit(&with_payload(5, 1, b"more")).unwrap();
        assert!(wal.apply_now().is_err());
        wal.reopen().unwrap();
        assert_eq!(wal.payload(0).unwrap(), None);
        assert_eq!(wal.payload(5).unwrap().unwrap(), b"more");
    }
    // A start replays the file into a store that lost nothing: still gone.
    let wal = open_slow(dir.path(), inner.clone());
    assert_eq!(wal.size().unwrap(), 6);
    assert_eq!(wal.payload(0).unwrap(), None);
    assert_eq!(wal.payload(4).unwrap().unwrap(), b"later");
}

#[test]
fn subject_rows_are_answered_from_memory_and_from_the_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_slow(dir.path(), Arc::new(MemStore::new()));
    let mut first = sample(0, 2);
    first.subjects = vec![([1; 32], 0), ([2; 32], 1)];
    let mut second = sample(2, 2);
    second.subjects = vec![([1; 32], 3)];
    wal.commit(&first).unwrap();
    wal.apply_now().unwrap();
    wal.commit(&second).unwrap();
    assert_eq!(wal.subject_seqs(&[1; 32]).unwrap(), [0, 3]);
    assert_eq!(wal.subject_seqs(&[2; 32]).unwrap(), [1]);
    assert!(wal.subject_seqs(&[3; 32]).unwrap().is_empty());
}
