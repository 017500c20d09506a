//! The write-ahead file on its own: commit point, torn tail, rotation and
//! deletion, and the failures it turns into refused commits.

use super::record::tests::sample;
use super::*;
use crate::ledger::memstore::MemStore;
use std::io::Write;
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
    // A third record, cut by a crash halfway through its write.
    let third = record::encode(&sample(5, 4));
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
        record::encode(&sample(3, 1)),
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
    assert_eq!(inner.size().unwrap(), 2, "the reopen brought the store up");
    drop(wal);
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

/// A last segment of three good records; the offset where each starts.
fn three_records(dir: &Path) -> (PathBuf, Vec<usize>) {
    let path = dir.join("00000000000000000000.wal");
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for (first, n) in [(0, 2), (2, 3), (5, 1)] {
        starts.push(bytes.len());
        bytes.extend(record::encode(&sample(first, n)));
    }
    std::fs::write(&path, &bytes).unwrap();
    (path, starts)
}

#[test]
fn a_damaged_record_followed_by_a_good_one_in_the_last_segment_is_refused_and_nothing_cut() {
    // A flipped byte in the body (checksum) and in the length field (the
    // record seems to run on): both have a valid record after them.
    for (record, byte) in [(0, record::HEADER_BYTES + 3), (1, 5), (0, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let (path, starts) = three_records(dir.path());
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

#[test]
fn a_final_record_that_fails_its_checksum_is_torn_cut_at_a_start_and_kept_when_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = three_records(dir.path());
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
