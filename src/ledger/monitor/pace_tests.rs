//! A round keeps to its share of the CPU while the log grows (counted on a
//! fake clock: slices of work and the rests after them, no timing), and
//! runs unpaced on an idle gateway.

use super::*;
use crate::decision::{EntrySignatures, fixture};
use crate::ledger::memstore::MemStore;
use crate::ledger::pace::tests::Counting;
use crate::ledger::sequencer::{LedgerWriter, SequencerConfig};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "test.example/log";
const KEY: [u8; 32] = [7; 32];

/// Entries the full pass checks between rests (`verify::pass`'s chunk).
const FULL_CHUNK: u64 = 4096;

fn open(store: Arc<MemStore>) -> (Ledger, LedgerWriter) {
    Ledger::open(
        store,
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&KEY),
            EntrySignatures::Off,
            4096,
            1024,
        ),
    )
    .unwrap()
}

/// Appends `entries` decisions, a batch's worth at a time (the queue is
/// bounded).
async fn append(ledger: &Ledger, entries: u64) {
    let mut left = entries;
    while left > 0 {
        let batch = left.min(1024);
        let appends: Vec<_> = (0..batch)
            .map(|_| ledger.append(EntryBody::Decision(Box::new(fixture::streamed_chat()))))
            .collect();
        for append in appends {
            append.await.unwrap();
        }
        left -= batch;
    }
}

/// A round of `mode` after `previous` on `clock` (10 ms of work between
/// two readings), with `share`; what it found and how often it rested.
fn paced_round(
    store: &MemStore,
    mode: Mode,
    previous: Option<Anchor>,
    share: f64,
    loaded: bool,
) -> (Finished, Counting, u64) {
    let key = NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap();
    paced_round_with(store, &key, mode, previous, share, loaded)
}

fn paced_round_with(
    store: &MemStore,
    verifier: &NoteVerifier,
    mode: Mode,
    previous: Option<Anchor>,
    share: f64,
    loaded: bool,
) -> (Finished, Counting, u64) {
    let monitor =
        Monitor::new(None, None, CpuShare::new(share).unwrap(), &Registry::new()).unwrap();
    let mut clock = Counting {
        work: Duration::from_millis(10),
        ..Counting::default()
    };
    let rest_per_busy = (1.0 - share) / share;
    let mut pace = Pace::on(&mut clock, rest_per_busy);
    let mut slices = 0;
    let mut load = || {
        slices += 1;
        loaded
    };
    let halt = AtomicBool::new(false);
    let round = Round {
        store,
        verifier,
        halt: &halt,
        monitor: &monitor,
    };
    let finished = round.run(mode, previous, &mut pace, &mut load);
    (finished, clock, slices)
}

#[tokio::test]
async fn a_round_rests_after_every_chunk_while_the_log_grows_and_not_when_idle() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    let entries = 2 * FULL_CHUNK + 500;
    append(&ledger, entries).await;

    let (full, clock, slices) = paced_round(&store, Mode::Full, None, 0.25, true);
    assert_eq!(full.result.as_ref().unwrap(), &entries);
    // One rest per chunk of the pass, three times the 10 ms slice each
    // (a quarter of a core): the round took at least that many intervals.
    assert!(slices >= entries.div_ceil(FULL_CHUNK), "{slices}");
    assert_eq!(clock.napped, Duration::from_millis(30) * slices as u32);

    // An incremental round rests after every chunk of its own.
    append(&ledger, 3 * CHUNK).await;
    let (incremental, clock, slices) =
        paced_round(&store, Mode::Incremental, full.anchor, 0.5, true);
    assert_eq!(incremental.result.as_ref().unwrap(), &(3 * CHUNK));
    assert!(slices >= 3, "{slices}");
    assert_eq!(clock.napped, Duration::from_millis(10) * slices as u32);

    // Nothing recorded meanwhile: no rest at all.
    let (idle, clock, slices) = paced_round(&store, Mode::Full, None, 0.05, false);
    assert!(idle.result.is_ok());
    assert!(slices >= 3, "{slices}");
    assert_eq!(clock.naps, 0);

    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_gateway_counts_as_loaded_while_its_log_grows() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    append(&ledger, 3).await;
    let mut grew = growth(store.as_ref());
    assert!(!grew(), "nothing appended since it looked");
    append(&ledger, 1).await;
    assert!(grew(), "an entry was recorded");
    assert!(!grew());
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_round_of_a_log_that_rotated_its_key_rests_while_it_reads_the_key_history() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    append(&ledger, 1).await;
    let new = SigningKey::from_bytes(&[8; 32]);
    let signer = crate::ledger::checkpoint::NoteSigner::new(ORIGIN, new.clone()).unwrap();
    ledger.rotate_key(signer, None).unwrap().await.unwrap();
    let entries = 2 * FULL_CHUNK + 500;
    append(&ledger, entries).await;
    let current = NoteVerifier::new(ORIGIN, new.verifying_key()).unwrap();
    let (full, clock, slices) = paced_round_with(&store, &current, Mode::Full, None, 0.25, true);
    assert!(full.result.is_ok(), "{:?}", full.result.err());
    // The log is read twice (its key history, then the checks), resting
    // after every chunk of each: not only after the checks' chunks.
    let size = entries + 2;
    assert!(slices > 2 * (size / FULL_CHUNK), "{slices}");
    assert_eq!(clock.napped, Duration::from_millis(30) * slices as u32);
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}
