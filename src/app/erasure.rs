//! Online payload erasure: the decisions a selection names are found on a
//! blocking thread (a caller or time selection reads the whole log), then
//! for each group of them the `payload_erased` entries are appended
//! through the running ledger and, once durable, the payloads are removed
//! from the store (`LedgerStore::erase_payloads`, which on the gateway's
//! write-ahead store also retires the file holding them). The order is the
//! offline command's: a crash in between leaves entries saying so, and
//! erasing again finishes. A caller that goes away does not stop it; the
//! gateway stopping does, at the next group, and waits for it before its
//! `gateway_stopped` entry.

use crate::admin::erasure::{Erase, ErasureFailure, ErasureRequest, MAX_DECISIONS, selection_kind};
use crate::decision::SinkError;
use crate::ledger::entry::EntryBody;
use crate::ledger::erase::{Found, select};
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::LedgerStore;
use http::StatusCode;
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Decisions whose entries are appended together before their payloads
/// go: small beside the ledger's queue, so live requests keep their room.
const GROUP: usize = 32;
/// How long an erasure entry is retried while the ledger's queue is full.
const OVERLOADED_FOR: Duration = Duration::from_secs(10);

/// What an erasure needs.
pub(super) struct Eraser {
    pub(super) ledger: Ledger,
    pub(super) store: Arc<dyn LedgerStore>,
    /// One erasure at a time.
    pub(super) busy: Mutex<()>,
    /// The erasures' threads, drained at shutdown.
    pub(super) tracker: TaskTracker,
    /// Set at shutdown: an erasure stops at its next group.
    pub(super) stop: CancellationToken,
}

/// The gateway is stopping: no erasure starts, a running one stops at its
/// next group (those before are erased and recorded).
fn shutting_down() -> ErasureFailure {
    ErasureFailure {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "shutting_down",
        message: "the gateway is stopping; erase again once it runs (what was erased stays erased)"
            .to_owned(),
    }
}

fn ours(code: &'static str, status: StatusCode, message: String) -> ErasureFailure {
    tracing::error!(%message, "payload erasure");
    ErasureFailure {
        status,
        code,
        message,
    }
}

impl Eraser {
    /// For `ledger` and its `store`.
    pub(super) fn new(ledger: Ledger, store: Arc<dyn LedgerStore>) -> Self {
        Self {
            ledger,
            store,
            busy: Mutex::new(()),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Refuses new erasures and stops a running one at its next group.
    pub(super) fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
    }

    /// Whether the gateway is stopping.
    pub(super) fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when no erasure's thread runs (after [`Eraser::stop`]).
    pub(super) async fn drained(&self) {
        self.tracker.wait().await;
    }

    /// The route's handler.
    pub(super) fn handler(self: Arc<Self>) -> Erase {
        Arc::new(move |request| {
            let eraser = self.clone();
            let handle = tokio::runtime::Handle::current();
            Box::pin(async move {
                if eraser.stopping() {
                    return Err(shutting_down());
                }
                let tracker = eraser.tracker.clone();
                tracker
                    .spawn_blocking(move || eraser.run(&handle, &request))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ours(
                            "erasure_failed",
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the erasure thread panicked".to_owned(),
                        ))
                    })
            })
        })
    }

    /// One erasure, on a blocking thread.
    fn run(
        &self,
        runtime: &tokio::runtime::Handle,
        request: &ErasureRequest,
    ) -> Result<serde_json::Value, ErasureFailure> {
        let Ok(_one) = self.busy.try_lock() else {
            return Err(ErasureFailure {
                status: StatusCode::CONFLICT,
                code: "erasure_in_progress",
                message: "another erasure is running; try again when it is done".to_owned(),
            });
        };
        let kind = selection_kind(&request.selection);
        let started = Instant::now();
        let mut logged = Instant::now();
        let found = select(
            self.store.as_ref(),
            &request.selection,
            MAX_DECISIONS,
            &mut |done, total| {
                if logged.elapsed() >= Duration::from_secs(5) {
                    logged = Instant::now();
                    tracing::info!(
                        selection = kind,
                        done,
                        total,
                        "payload erasure: reading the log"
                    );
                }
            },
        )
        .map_err(|err| {
            ours(
                "erasure_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the ledger: {err}"),
            )
        })?;
        tracing::info!(
            selection = kind,
            decisions = found.decisions.len(),
            more = found.more,
            dry_run = request.dry_run,
            "payload erasure: decisions selected"
        );
        let mut erasures: Vec<Vec<u64>> = Vec::with_capacity(found.decisions.len());
        if !request.dry_run {
            for (i, group) in found.decisions.chunks(GROUP).enumerate() {
                if self.stopping() {
                    tracing::warn!(
                        selection = kind,
                        done = i * GROUP,
                        of = found.decisions.len(),
                        "payload erasure: stopped with the gateway; erase again to finish"
                    );
                    return Err(shutting_down());
                }
                erasures.extend(self.erase_group(
                    runtime,
                    group,
                    &request.reason,
                    Some(&request.by),
                )?);
                tracing::info!(
                    selection = kind,
                    done = (i * GROUP + group.len()),
                    of = found.decisions.len(),
                    "payload erasure: progress"
                );
            }
            tracing::info!(
                selection = kind,
                decisions = found.decisions.len(),
                ms = started.elapsed().as_millis() as u64,
                "payload erasure: done"
            );
        }
        Ok(answer(&found, &erasures, request.dry_run))
    }

    /// Erases the payloads of `decisions` for payload retention (no
    /// principal: the configuration asked), in groups, after any erasure
    /// asked for on the admin API; the number of payload records erased.
    pub(super) fn erase_expired(
        &self,
        runtime: &tokio::runtime::Handle,
        decisions: &[crate::ledger::erase::Selected],
        reason: &str,
    ) -> Result<u64, ErasureFailure> {
        let _one = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let mut erased = 0;
        for group in decisions.chunks(GROUP) {
            // The run's mark stays where it was: the next run, after the
            // restart, selects what is left.
            if self.stopping() {
                return Err(shutting_down());
            }
            let entries = self.erase_group(runtime, group, reason, None)?;
            erased += entries.iter().map(|seqs| seqs.len() as u64).sum::<u64>();
        }
        Ok(erased)
    }

    /// Appends the erasure entries of `group` (`reason`, and who asked
    /// when someone did), then erases its payloads; for each decision, the
    /// seqs of its erasure entries.
    fn erase_group(
        &self,
        runtime: &tokio::runtime::Handle,
        group: &[crate::ledger::erase::Selected],
        reason: &str,
        by: Option<&crate::ledger::entry::ActedBy>,
    ) -> Result<Vec<Vec<u64>>, ErasureFailure> {
        let bodies: Vec<(usize, EntryBody)> = group
            .iter()
            .enumerate()
            .flat_map(|(i, selected)| {
                selected.present.iter().map(move |seq| {
                    (
                        i,
                        EntryBody::PayloadErased {
                            decision_id: selected.id.to_string(),
                            erased_seq: *seq,
                            reason: reason.to_owned(),
                            by: by.cloned(),
                        },
                    )
                })
            })
            .collect();
        let appended = runtime.block_on(futures_util::future::join_all(
            bodies
                .into_iter()
                .map(|(i, body)| async move { (i, self.append(body).await) }),
        ));
        let mut entry_seqs = vec![Vec::new(); group.len()];
        for (i, appended) in appended {
            let seq = appended.map_err(|err| {
                ours(
                    "ledger_unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("an erasure entry could not be recorded; nothing of this group was erased: {err}"),
                )
            })?;
            entry_seqs[i].extend(seq);
        }
        let seqs: Vec<u64> = group
            .iter()
            .flat_map(|s| s.present.iter().copied())
            .collect();
        self.store.erase_payloads(&seqs).map_err(|err| {
            ours(
                "erasure_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the erasure entries are recorded but the payloads could not be removed \
                     (erase again to finish): {err}"
                ),
            )
        })?;
        Ok(entry_seqs)
    }

    /// Appends one entry, waiting while the ledger's queue is full (live
    /// requests come first).
    async fn append(&self, body: EntryBody) -> Result<Option<u64>, SinkError> {
        let deadline = Instant::now() + OVERLOADED_FOR;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.ledger.append(body.clone()).await {
                Ok(ack) => return Ok(ack.seq),
                Err(SinkError::Overloaded) if Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// The answer: each decision with its payload seqs (and, unless a dry
/// run, its erasure entries' seqs).
fn answer(found: &Found, erasures: &[Vec<u64>], dry_run: bool) -> serde_json::Value {
    let decisions: Vec<serde_json::Value> = found
        .decisions
        .iter()
        .enumerate()
        .map(|(i, selected)| {
            let mut item = json!({
                "decision_id": selected.id.to_string(),
                "payload_seqs": selected.present,
            });
            if !dry_run {
                item["erasure_seqs"] = json!(erasures.get(i).cloned().unwrap_or_default());
            }
            item
        })
        .collect();
    json!({
        "dry_run": dry_run,
        "decisions": decisions,
        "more": found.more,
        "already_empty": found.empty,
        "unknown": found.unknown.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod stop_tests {
    use super::*;
    use crate::decision::{DecisionId, EntrySignatures};
    use crate::ledger::erase::{PayloadSeqs, Selected};
    use crate::ledger::memstore::MemStore;
    use crate::ledger::sequencer::SequencerConfig;

    /// Retention's erasure after the gateway began stopping appends
    /// nothing and says so, so its run keeps its mark.
    #[tokio::test]
    async fn an_erasure_asked_for_while_stopping_appends_nothing() {
        let store = Arc::new(MemStore::new());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(
                "test.example/erasure",
                &ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
                EntrySignatures::Off,
                16,
                4,
            ),
        )
        .unwrap();
        let eraser = Arc::new(Eraser::new(ledger, store.clone()));
        eraser.stop();
        let selected = vec![Selected {
            id: DecisionId::parse(&"ab".repeat(16)).unwrap(),
            seqs: PayloadSeqs {
                decision: 0,
                stream_end: None,
            },
            present: vec![0],
        }];
        let runtime = tokio::runtime::Handle::current();
        let asked = eraser.clone();
        let failure = tokio::task::spawn_blocking(move || {
            asked.erase_expired(&runtime, &selected, "retention")
        })
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(failure.code, "shutting_down");
        eraser.drained().await;
        drop(eraser);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        assert_eq!(store.size().unwrap(), 0, "nothing appended");
    }
}
