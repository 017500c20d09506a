//! The review queue's restart reconciliation on a real sequencer over an
//! in-memory store: stored files and ledger entries that a crash left out
//! of step are brought back in line, one step back.

use super::files::ReviewFiles;
use super::input::Stage;
use super::item::{
    Closing, ReviewItem, ReviewKind, ReviewState, StoredAnswer, StoredBody, now_unix_ms,
};
use super::metrics::ReviewMetrics;
use super::queue::ReviewQueue;
use super::replay::ledger_reviews;
use crate::config::ReviewConfig;
use crate::decision::{Capture, Decision, DecisionId, EntrySignatures, Outcome, Route, Timings};
use crate::ledger::entry::EntryBody;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, LedgerWriter, SequencerConfig};
use crate::ledger::store::LedgerStore;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

fn item(decision_id: &str, state: ReviewState) -> ReviewItem {
    ReviewItem {
        review_id: DecisionId::random().to_string(),
        decision_id: decision_id.to_owned(),
        decision_seq: None,
        opened_seq: None,
        kind: ReviewKind::Hold,
        model: "m".into(),
        version: "1".into(),
        caller: "svc".into(),
        caller_token: None,
        stage: Stage::Response,
        reasons: vec!["why".into()],
        set_seq: 0,
        opened_unix_ms: now_unix_ms(),
        deadline_unix_ms: None,
        on_timeout: None,
        request: StoredBody {
            content_type: None,
            bytes: b"{}".to_vec(),
        },
        answer: StoredAnswer {
            status: 200,
            headers: Vec::new(),
            body: b"{\"score\":0.5}".to_vec(),
        },
        state,
        closing: (state != ReviewState::Pending).then(|| Closing {
            verdict: "approve".into(),
            reviewer: Some("rita".into()),
            reviewer_issuer: None,
            reason: None,
            at_unix_ms: now_unix_ms(),
            entry_seq: None,
            override_answer: None,
        }),
        bodies_kept: true,
    }
}

fn held_decision(id: DecisionId) -> EntryBody {
    EntryBody::Decision(Box::new(Decision {
        id,
        caller: "svc".into(),
        route: Route::KserveInfer,
        protocol: None,
        model: Some("m".into()),
        version: Some("1".into()),
        approval_seq: None,
        path: "/v1/chat/completions".into(),
        cut: Default::default(),
        subject: None,
        auth: Default::default(),
        policy: None,
        outcome: Outcome::Held,
        status: 202,
        error_code: None,
        timings: Timings::default(),
        request: Capture::default(),
        response: Capture::default(),
    }))
}

async fn restart(store: &Arc<MemStore>, ledger: &Ledger, files: &ReviewFiles) -> ReviewQueue {
    let recorded = ledger_reviews(store.as_ref()).unwrap();
    let metrics = ReviewMetrics::register(&prometheus::Registry::new()).unwrap();
    ReviewQueue::start(
        files.clone(),
        ledger.clone(),
        ReviewConfig::default(),
        metrics,
        recorded,
        |id: &DecisionId| store.decision_seq(id.as_bytes()).ok().flatten(),
    )
    .await
    .unwrap()
}

/// A ledger over a memory store, and a review store in a new directory.
fn opened() -> (
    Arc<MemStore>,
    Ledger,
    LedgerWriter,
    tempfile::TempDir,
    ReviewFiles,
) {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            "test.example/reviews",
            &SigningKey::from_bytes(&[5; 32]),
            EntrySignatures::Off,
            64,
            8,
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = ReviewFiles::open(dir.path()).unwrap();
    (store, ledger, writer, dir, files)
}

#[tokio::test]
async fn restart_brings_files_and_ledger_back_in_step() {
    let (store, ledger, writer, dir, files) = opened();

    // 1. A held answer stored, but the crash came before its decision.
    let never_recorded = item(&DecisionId::random().to_string(), ReviewState::Pending);
    files.save(&never_recorded).unwrap();
    // 2. The decision recorded, but not its review_opened.
    let id = DecisionId::random();
    let decision_seq = ledger.append(held_decision(id)).await.unwrap().seq;
    let unopened = item(&id.to_string(), ReviewState::Pending);
    files.save(&unopened).unwrap();
    // 3. Opened in the ledger; a verdict on disk the ledger never got.
    let id = DecisionId::random();
    let mut undecided = item(&id.to_string(), ReviewState::Approved);
    undecided.decision_seq = ledger.append(held_decision(id)).await.unwrap().seq;
    let opened_seq = ledger.append(undecided.opened_entry()).await.unwrap().seq;
    files.save(&undecided).unwrap();

    let queue = restart(&store, &ledger, &files).await;
    assert!(queue.get(&never_recorded.review_id).await.is_none());
    assert!(
        !dir.path()
            .join(format!("{}.json", never_recorded.review_id))
            .exists(),
        "an answer no client heard of is dropped"
    );
    let opened = queue.get(&unopened.review_id).await.unwrap();
    assert_eq!(opened.state, ReviewState::Pending);
    assert_eq!(opened.decision_seq, decision_seq);
    let recorded = ledger_reviews(store.as_ref()).unwrap();
    assert_eq!(
        recorded[&unopened.review_id].opened_seq,
        opened.opened_seq.unwrap(),
        "the missing review_opened is recorded at start"
    );
    let undone = queue.get(&undecided.review_id).await.unwrap();
    assert_eq!(
        undone.state,
        ReviewState::Pending,
        "unrecorded verdict undone"
    );
    assert!(undone.closing.is_none());
    assert_eq!(undone.opened_seq, opened_seq);
    // And it stays decidable: approve it, then a second start agrees.
    let decided = queue
        .decide(
            &undecided.review_id,
            "rita",
            super::ReviewVerdict::Approve,
            None,
        )
        .await
        .unwrap();
    assert_eq!(decided.state, ReviewState::Approved);
    drop(queue);
    let queue = restart(&store, &ledger, &files).await;
    let again = queue.get(&undecided.review_id).await.unwrap();
    assert_eq!(again.state, ReviewState::Approved);
    assert_eq!(
        again.closing.unwrap().entry_seq,
        ledger_reviews(store.as_ref()).unwrap()[&undecided.review_id].closing_seq
    );
    drop(queue);
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

/// Stopped with the gateway, the queue's timers end without acting: a
/// hold whose deadline passes after the stop is not timed out then (it
/// would be recorded after `gateway_stopped`), and the next start does it.
#[tokio::test]
async fn a_deadline_passing_after_the_stop_times_out_at_the_next_start() {
    let (store, ledger, _writer, _dir, files) = opened();
    let id = DecisionId::random();
    let mut held = item(&id.to_string(), ReviewState::Pending);
    held.decision_seq = ledger.append(held_decision(id)).await.unwrap().seq;
    held.opened_seq = ledger.append(held.opened_entry()).await.unwrap().seq;
    held.deadline_unix_ms = Some(now_unix_ms() + 300);
    held.on_timeout = Some(super::item::OnTimeoutName::Reject);
    files.save(&held).unwrap();
    let timed_out = |store: &MemStore| {
        (0..store.size().unwrap())
            .filter_map(|seq| store.entry(seq).unwrap())
            .filter(|entry| {
                let entry: serde_json::Value = serde_json::from_slice(entry).unwrap();
                entry["kind"] == "review_timed_out"
            })
            .count()
    };

    let queue = restart(&store, &ledger, &files).await;
    queue.stop();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(timed_out(&store), 0, "a timeout recorded after the stop");
    assert_eq!(
        queue.get(&held.review_id).await.unwrap().state,
        ReviewState::Pending
    );
    drop(queue);

    let queue = restart(&store, &ledger, &files).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while queue.get(&held.review_id).await.unwrap().state == ReviewState::Pending {
        assert!(
            std::time::Instant::now() < deadline,
            "not timed out at the next start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(timed_out(&store), 1);
}

#[tokio::test]
async fn a_verdict_whose_caller_went_away_is_recorded_before_the_queue_is_drained() {
    let (store, ledger, writer, _dir, files) = opened();
    let queue = restart(&store, &ledger, &files).await;
    let id = DecisionId::random();
    let template = item(&id.to_string(), ReviewState::Pending);
    let prepared = queue
        .prepare_hold(super::queue::NewReview {
            decision_id: template.decision_id,
            kind: template.kind,
            model: template.model,
            version: template.version,
            caller: template.caller,
            caller_token: None,
            stage: template.stage,
            reasons: template.reasons,
            set_seq: 0,
            request: template.request,
            answer: template.answer,
        })
        .await
        .unwrap();
    let decision_seq = ledger.append(held_decision(id)).await.unwrap().seq;
    let review_id = queue.open(prepared, decision_seq).await.unwrap();

    // The reviewer's request goes away after its verdict was handed over
    // (one poll), as an aborted connection's handler does.
    let verdict = queue.decide(
        &review_id,
        "rita",
        super::item::ReviewVerdict::Approve,
        None,
    );
    // Polled once, then dropped: the task it handed over has not run yet
    // (a current-thread runtime runs it only when this test yields).
    let gone = futures_util::FutureExt::now_or_never(verdict);
    assert!(
        gone.is_none(),
        "the verdict had not finished at its first poll"
    );
    queue.stop();
    queue.drained().await;
    let recorded = ledger_reviews(store.as_ref()).unwrap();
    assert!(
        recorded[&review_id].closing_seq.is_some(),
        "the verdict is in the ledger once the queue is drained"
    );
    drop((queue, ledger));
    writer.close();
}
