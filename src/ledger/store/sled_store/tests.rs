//! The sled store on disk: batches, reopening, payloads, erasure.

use super::*;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use crate::ledger::store::StoreNodes;
use crate::ledger::tree::{inclusion_proof, leaf_hash, root, verify_inclusion};
use crate::ledger::verify::verify_store;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

/// Opens the store in `dir`. A store just closed in this process may hold
/// sled's file lock a moment longer (sled lets its background threads go
/// after the last handle is dropped), so a lock is waited out, briefly.
fn opened(dir: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.unwrap(),
        }
    }
}

#[test]
fn node_offsets_count_finished_nodes() {
    // Leaves 0..n finish 2n - popcount(n) nodes.
    let mut count = 0u64;
    for leaf in 0..1000u64 {
        assert_eq!(nodes_before(leaf), count);
        count += 1 + u64::from((leaf + 1).trailing_zeros());
    }
}

/// Batches of uneven sizes on the real sled store, every other entry a
/// decision: everything verifies (index included), every proof checks
/// out, and it all survives reopening.
#[tokio::test]
async fn uneven_batches_verify_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let origin = "test.example/sled";
    let key = SigningKey::from_bytes(&[9; 32]);
    let verifier = NoteVerifier::new(origin, key.verifying_key()).unwrap();
    let config = |max_batch| {
        SequencerConfig::for_tests(
            origin,
            &key,
            crate::decision::EntrySignatures::Off,
            256,
            max_batch,
        )
    };
    {
        let store = Arc::new(opened(dir.path()));
        let (ledger, writer) = Ledger::open(store.clone(), config(7)).unwrap();
        for burst in [1usize, 3, 7, 2, 13, 1, 30] {
            let appends: Vec<_> = (0..burst)
                .map(|i| {
                    ledger.append(if i % 2 == 1 {
                        EntryBody::Decision(Box::new(payloads::decision(b"q", b"a")))
                    } else {
                        EntryBody::GatewayStopped
                    })
                })
                .collect();
            for append in appends {
                append.await.unwrap();
            }
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
    }
    let store = Arc::new(opened(dir.path()));
    assert_eq!(store.size().unwrap(), 57);
    verify_store(store.as_ref(), &verifier).unwrap();
    let nodes = StoreNodes(store.as_ref());
    for size in [1u64, 2, 7, 8, 30, 57] {
        let root_n = root(&nodes, size).unwrap();
        for seq in 0..size {
            let proof = inclusion_proof(&nodes, seq, size).unwrap();
            let leaf = leaf_hash(&store.entry(seq).unwrap().unwrap());
            assert!(
                verify_inclusion(&leaf, seq, size, &proof, &root_n),
                "({seq}, {size})"
            );
        }
    }
    // Payloads are kept per decision only, and erasure leaves the log verifiable.
    assert!(
        store.payload(0).unwrap().is_none(),
        "no payload for non-decision entries"
    );
    // Reopened, the writer continues the same chain.
    let (ledger, writer) = Ledger::open(store.clone(), config(7)).unwrap();
    assert_eq!(
        ledger.append(EntryBody::GatewayStopped).await.unwrap().seq,
        Some(57)
    );
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    verify_store(store.as_ref(), &verifier).unwrap();
}

/// What an interrupted commit left above the latest checkpoint (packs
/// written, the checkpoint not) is gone after reopening; a store of
/// another layout is refused.
#[test]
fn opening_discards_uncommitted_packs_and_refuses_other_layouts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = opened(dir.path());
        store
            .commit(&CommitBatch {
                entries: vec![(0, b"{\"a\":1}".to_vec())],
                nodes: vec![(0, 0, [1; 32])],
                checkpoint: (1, "note".to_owned()),
                decisions: vec![([5; 16], 0)],
                payloads: vec![(0, b"p".to_vec())],
                signatures: vec![],
                governance: vec![],
                subjects: vec![],
            })
            .unwrap();
        // The first half of the next commit, then a crash.
        store
            .engine()
            .unwrap()
            .entries
            .insert(1u64.to_be_bytes(), pack([&b"{}"[..], b"{}"].into_iter()))
            .unwrap();
        store
            .engine()
            .unwrap()
            .payloads
            .insert(1u64.to_be_bytes(), pack([&b"q"[..], b"r"].into_iter()))
            .unwrap();
        assert_eq!(
            store.entry(2).unwrap(),
            None,
            "nothing above the latest checkpoint is read"
        );
        store.sync().unwrap();
    }
    {
        let store = opened(dir.path());
        assert_eq!(store.size().unwrap(), 1);
        assert_eq!(store.entry(0).unwrap(), Some(b"{\"a\":1}".to_vec()));
        assert_eq!(store.entry(1).unwrap(), None);
        assert_eq!(store.payload(1).unwrap(), None);
        assert_eq!(store.payload(0).unwrap(), Some(b"p".to_vec()));
        assert_eq!(store.decision_seq(&[5; 16]).unwrap(), Some(0));
        assert_eq!(
            store.decision_seq(&[6; 16]).unwrap(),
            None,
            "a decision of the discarded commit"
        );
        // The layout before the index was packed per commit.
        store
            .engine()
            .unwrap()
            .main
            .insert(FORMAT_KEY, &b"govgate-ledger-sled/2"[..])
            .unwrap();
        store.sync().unwrap();
    }
    let refused = SledStore::open(dir.path())
        .err()
        .expect("other layout refused");
    assert!(
        refused.to_string().contains("govgate-ledger-sled/2"),
        "{refused}"
    );
}

mod payloads {

    use super::*;
    use crate::decision::{Capture, Decision, DecisionId, Outcome, Route, Timings};
    use crate::ledger::checkpoint::NoteVerifier;
    use crate::ledger::entry::{EntryBody, commitment, hex};
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::verify::verify_store;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    pub(super) fn decision(request: &'static [u8], response: &'static [u8]) -> Decision {
        Decision {
            id: DecisionId::random(),
            caller: "c".into(),
            route: Route::Http,
            protocol: None,
            model: None,
            version: None,
            approval_seq: None,
            path: "/v1/chat/completions".into(),
            cut: Default::default(),
            subject: None,
            auth: Default::default(),
            policy: None,
            outcome: Outcome::Served,
            status: 200,
            error_code: None,
            timings: Timings::default(),
            request: Capture::of_complete(&bytes::Bytes::from_static(request), 64),
            response: Capture::of_complete(&bytes::Bytes::from_static(response), 64),
        }
    }

    /// The payload record opens the entry's commitments; erasing it keeps
    /// everything signed verifiable.
    #[tokio::test]
    async fn payloads_open_their_commitments_and_erasure_keeps_the_log_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let origin = "test.example/payloads";
        let key = SigningKey::from_bytes(&[3; 32]);
        let store = Arc::new(opened(dir.path()));
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(origin, &key, crate::decision::EntrySignatures::Off, 16, 16),
        )
        .unwrap();
        let acks = [
            ledger.append(EntryBody::GatewayStopped),
            ledger.append(EntryBody::Decision(Box::new(decision(
                b"question one",
                b"answer one",
            )))),
            ledger.append(EntryBody::Decision(Box::new(decision(
                b"question two",
                b"answer two",
            )))),
        ];
        for ack in acks {
            ack.await.unwrap();
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();

        for (seq, request, response) in [
            (1u64, &b"question one"[..], &b"answer one"[..]),
            (2, b"question two", b"answer two"),
        ] {
            let record = store.payload(seq).unwrap().expect("payload kept");
            let (request_salt, response_salt) = (&record[..32], &record[32..64]);
            let request_len = u32::from_be_bytes(record[64..68].try_into().unwrap()) as usize;
            assert_eq!(&record[68..68 + request_len], request);
            assert_eq!(&record[68 + request_len..], response);
            let entry: serde_json::Value =
                serde_json::from_slice(&store.entry(seq).unwrap().unwrap()).unwrap();
            let salt = |s: &[u8]| <[u8; 32]>::try_from(s).unwrap();
            assert_eq!(
                entry["request"]["commitment"],
                hex(&commitment(&salt(request_salt), request))
            );
            assert_eq!(
                entry["response"]["commitment"],
                hex(&commitment(&salt(response_salt), response))
            );
        }
        assert!(store.payload(0).unwrap().is_none());

        assert!(store.erase_payloads(&[1]).unwrap()[0]);
        assert!(!store.erase_payloads(&[1]).unwrap()[0], "already erased");
        assert!(store.payload(1).unwrap().is_none());
        assert!(
            store.payload(2).unwrap().is_some(),
            "only that payload is gone"
        );
        let verifier = NoteVerifier::new(origin, key.verifying_key()).unwrap();
        verify_store(store.as_ref(), &verifier).unwrap();
    }
}

/// A one-entry commit at `seq` whose entry is `bytes`, with a decision.
fn single(seq: u64, bytes: &[u8]) -> CommitBatch {
    let mut id = [7; 16];
    id[8..].copy_from_slice(&seq.to_be_bytes());
    CommitBatch {
        entries: vec![(seq, bytes.to_vec())],
        nodes: vec![(0, seq, leaf_hash(bytes))],
        checkpoint: (seq + 1, format!("note {}", seq + 1)),
        decisions: vec![(id, seq)],
        payloads: vec![(seq, b"p".to_vec())],
        signatures: vec![],
        governance: vec![seq],
        subjects: vec![([1; 32], seq)],
    }
}

/// A commit that reached the disk although it reported failure is never
/// read; reopening finds it but still hides it; discarding it lets the seq
/// be written again, durably.
#[test]
fn a_failed_commit_on_disk_stays_unread_until_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut decision_of_one = [7; 16];
    decision_of_one[8..].copy_from_slice(&1u64.to_be_bytes());
    {
        let store = opened(dir.path());
        store.commit(&single(0, b"{\"kept\":0}")).unwrap();
        store.commit(&single(1, b"{\"failed\":1}")).unwrap();
        // As if the second commit's fsync had reported an error.
        store.visible.store(1, Ordering::SeqCst);
        let hidden = |store: &SledStore| {
            assert_eq!(store.size().unwrap(), 1);
            assert_eq!(store.entry(1).unwrap(), None);
            assert_eq!(store.payload(1).unwrap(), None);
            assert_eq!(store.node(0, 1).unwrap(), None);
            assert_eq!(store.decision_seq(&decision_of_one).unwrap(), None);
            assert_eq!(store.governance_seqs().unwrap(), [0]);
            assert_eq!(store.subject_seqs(&[1; 32]).unwrap(), [0]);
            assert_eq!(store.checkpoints().unwrap().len(), 1);
            assert_eq!(store.checkpoint_covering(1).unwrap(), None);
        };
        hidden(&store);
        assert_eq!(store.reopen().unwrap(), 2, "the disk holds it");
        hidden(&store);
        store.probe().unwrap();
        assert_eq!(store.discard_above(1).unwrap(), 1);
        hidden(&store);
        // The discarded commit's subject row is gone, not only hidden.
        store.visible.store(2, Ordering::SeqCst);
        assert_eq!(store.subject_seqs(&[1; 32]).unwrap(), [0]);
        store.visible.store(1, Ordering::SeqCst);
        store.commit(&single(1, b"{\"written\":1}")).unwrap();
        assert_eq!(store.decision_seq(&decision_of_one).unwrap(), Some(1));
    }
    let store = opened(dir.path());
    assert_eq!(store.size().unwrap(), 2);
    assert_eq!(store.entry(1).unwrap().unwrap(), b"{\"written\":1}");
    assert_eq!(store.checkpoints().unwrap().len(), 2);
    assert_eq!(store.governance_seqs().unwrap(), [0, 1]);
}
