//! Records that must reach the ledger whatever happens to the request that
//! made them: the decision of a forwarded request whose client left, the
//! end of a stream, the refusal of an answer the ledger could not record.
//!
//! The request future can be dropped at any await, so these records are not
//! left in it: each is handed to a task of its own, tracked here, that
//! submits it and, while the ledger cannot take it (overloaded, or not
//! committing after an I/O error), retries with backoff until it can. The
//! number waiting is bounded; shutdown waits for them within its grace.

use crate::decision::{Decision, DecisionSink, SinkError, StreamEnd};
use prometheus::{IntCounter, IntGauge, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Records waiting in the backlog at most; beyond it a record is logged
/// and counted as lost rather than growing memory without bound.
pub(crate) const BACKLOG_LIMIT: usize = 65_536;

/// First pause before a retry; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One record of the backlog.
#[derive(Debug, Clone)]
pub(crate) enum Detached {
    /// A decision.
    Decision(Box<Decision>),
    /// The end of a streamed decision.
    End(Box<StreamEnd>),
}

impl Detached {
    fn submit(&self, sink: &dyn DecisionSink) -> crate::decision::RecordFuture {
        match self {
            Detached::Decision(decision) => sink.record((**decision).clone()),
            Detached::End(end) => sink.record_end((**end).clone()),
        }
    }

    fn decision_id(&self) -> String {
        match self {
            Detached::Decision(decision) => decision.id.to_string(),
            Detached::End(end) => end.decision_id.to_string(),
        }
    }
}

/// Metric families of the backlog.
#[derive(Clone)]
pub(crate) struct BacklogMetrics {
    waiting: IntGauge,
    lost: IntCounter,
}

impl BacklogMetrics {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let waiting = IntGauge::new(
            "govgate_backlog_records",
            "Records (decisions of requests whose client left, stream ends, refusals the ledger could not take at once) waiting to be written to the ledger.",
        )?;
        let lost = IntCounter::new(
            "govgate_backlog_lost_total",
            "Records dropped because the backlog was full or shutdown's grace ran out before the ledger took them.",
        )?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(lost.clone()))?;
        Ok(Self { waiting, lost })
    }
}

/// The owner of the background records; cheap to clone.
#[derive(Clone)]
pub struct Backlog {
    sink: Arc<dyn DecisionSink>,
    tracker: TaskTracker,
    /// Cancelled when shutdown's grace is over: the tasks let go of the
    /// sink so the ledger can close.
    give_up: CancellationToken,
    waiting: Arc<AtomicUsize>,
    metrics: BacklogMetrics,
}

impl Backlog {
    /// A backlog writing to `sink`.
    pub(crate) fn new(sink: Arc<dyn DecisionSink>, metrics: BacklogMetrics) -> Self {
        Self {
            sink,
            tracker: TaskTracker::new(),
            give_up: CancellationToken::new(),
            waiting: Arc::new(AtomicUsize::new(0)),
            metrics,
        }
    }

    /// Hands `record` to a task of its own that writes it, retrying while
    /// the ledger cannot take it. Never blocks; needs a Tokio runtime.
    pub(crate) fn push(&self, record: Detached) {
        self.track(record.decision_id(), async move { Some(record) });
    }

    /// Waits for `record` (already submitted) in the background; if the
    /// ledger refuses it, writes `instead` (retrying) in its place.
    pub(crate) fn finish(&self, record: crate::decision::RecordFuture, instead: Detached) {
        self.track(instead.decision_id(), async move {
            record.await.is_err().then_some(instead)
        });
    }

    /// Waits for a stream's decision (already submitted) in the
    /// background, then writes what follows it: `end(seq)` once it is
    /// recorded, or `instead` (the refusal the client got) if the ledger
    /// refused it.
    pub(crate) fn finish_head(
        &self,
        head: crate::decision::RecordFuture,
        instead: Detached,
        end: impl FnOnce(u64) -> StreamEnd + Send + 'static,
    ) {
        self.track(instead.decision_id(), async move {
            match head.await {
                Ok(ack) => ack.seq.map(|seq| Detached::End(Box::new(end(seq)))),
                Err(_) => Some(instead),
            }
        });
    }

    /// Runs `work` as a task of the backlog: it finishes even when the
    /// request that started it is dropped, and shutdown waits for it.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tracker.spawn(work)
    }

    /// Counts a record as waiting and spawns the task that first runs
    /// `first` and then writes what it yields until the ledger takes it.
    fn track(
        &self,
        decision_id: String,
        first: impl std::future::Future<Output = Option<Detached>> + Send + 'static,
    ) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= BACKLOG_LIMIT {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics.lost.inc();
            tracing::error!(%decision_id, "record lost: the backlog of records waiting for the ledger is full");
            return;
        }
        self.metrics.waiting.inc();
        let (sink, waiting, metrics) = (
            self.sink.clone(),
            self.waiting.clone(),
            self.metrics.clone(),
        );
        let give_up = self.give_up.clone();
        self.tracker.spawn(async move {
            let work = async move {
                if let Some(record) = first.await {
                    write_until_taken(sink, record).await;
                }
            };
            tokio::select! {
                () = work => {}
                () = give_up.cancelled() => metrics.lost.inc(),
            }
            waiting.fetch_sub(1, Ordering::AcqRel);
            metrics.waiting.dec();
        });
    }

    /// Waits at most `grace` for every waiting record to be written; the
    /// ones still waiting after it are counted as lost. Call once, at
    /// shutdown, before the ledger closes.
    pub async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            let left = self.waiting.load(Ordering::Acquire);
            tracing::error!(
                records = left,
                "shutdown: records still waiting for the ledger are lost"
            );
            self.give_up.cancel();
            self.tracker.wait().await;
        }
    }
}

/// Submits `record` until the sink acknowledges it.
async fn write_until_taken(sink: Arc<dyn DecisionSink>, record: Detached) {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    loop {
        match record.submit(sink.as_ref()).await {
            Ok(_) => break,
            Err(err) => {
                attempt += 1;
                if attempt == 1 {
                    let level_note = match err {
                        SinkError::Overloaded => "overloaded",
                        SinkError::Unavailable(_) => "unavailable",
                    };
                    tracing::warn!(decision_id = %record.decision_id(), error = %err, ledger = level_note, "record waits for the ledger; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if attempt > 0 {
        tracing::info!(decision_id = %record.decision_id(), attempts = attempt + 1, "waiting record written");
    }
}
