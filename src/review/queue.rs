//! [`ReviewQueue`]: the open reviews, their files and their ledger
//! entries, reviewers' verdicts, timeouts, and the polls of clients
//! waiting for a held answer.
//!
//! Every step of a hold is written in the same order: first the item's
//! file (so a crash never loses a held answer or an override), then the
//! ledger entry (the step happened only once it is there), then memory and
//! waiting polls. At start, [`ReviewQueue::start`] reconciles files with
//! the ledger: a file whose step the ledger lacks goes back one step.
//!
//! A flag has no file: its answer already went out, so there is nothing a
//! crash could lose but the bodies shown to the reviewer, and its ledger
//! entries are its durable record. Writing and syncing a file per flag
//! cost more than the rest of the flagged request. At start, pending
//! flags are queued again from their `review_opened` entries, without
//! bodies.

use super::files::{FileError, ReviewFiles};
use super::input::Stage;
use super::item::{
    Closing, OnTimeoutName, ReviewItem, ReviewKind, ReviewState, ReviewVerdict, StoredAnswer,
    StoredBody, now_unix_ms,
};
use super::metrics::ReviewMetrics;
use super::replay::{LedgerReview, RecordedFlag};
use crate::config::ReviewConfig;
use crate::decision::{DecisionId, SinkError};
use crate::ledger::sequencer::Ledger;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod fleet;
mod usage;

pub use usage::QueueFull;
use usage::{Usage, kept_bytes};

/// What opens a review.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// The decision under review.
    pub decision_id: String,
    /// Hold or flag.
    pub kind: ReviewKind,
    /// Model name.
    pub model: String,
    /// Version label.
    pub version: String,
    /// Who asked.
    pub caller: String,
    /// The caller's JWT identity, when a token established it.
    pub caller_token: Option<super::TokenIdentity>,
    /// The stage whose verdict opens it.
    pub stage: Stage,
    /// The reasons.
    pub reasons: Vec<String>,
    /// Seq of the policy set that judged it.
    pub set_seq: u64,
    /// The request as forwarded.
    pub request: StoredBody,
    /// The upstream's answer.
    pub answer: StoredAnswer,
}

/// A hold whose file is written but whose decision is not yet recorded.
#[derive(Debug)]
pub struct PreparedHold {
    item: ReviewItem,
}

impl PreparedHold {
    /// The review's id.
    pub fn review_id(&self) -> &str {
        &self.item.review_id
    }
}

/// A review could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Its file could not be written.
    #[error(transparent)]
    Storage(#[from] FileError),
    /// The ledger could not record it.
    #[error("ledger: {0}")]
    Ledger(SinkError),
    /// The queue is at one of its bounds.
    #[error("the review queue is full: {0}")]
    Full(#[from] QueueFull),
}

/// A verdict that was not applied; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such review (or it was forgotten after its retention).
    #[error("no review {0}")]
    NotFound(String),
    /// It is no longer pending.
    #[error("the review is already {}", .0.as_str())]
    AlreadyDecided(ReviewState),
    /// The reviewer made the request under review.
    #[error("a reviewer may not review a request they made")]
    OwnRequest,
    /// A flagged answer already went out; it cannot be replaced.
    #[error("a flagged answer was already released; it cannot be overridden")]
    OverrideNotAllowed,
    /// Reject and override need a reason.
    #[error("a reason is required to {0}")]
    ReasonRequired(&'static str),
    /// The item's file could not be written.
    #[error(transparent)]
    Storage(#[from] FileError),
    /// The ledger could not record the verdict.
    #[error("ledger: {0}")]
    Ledger(SinkError),
    /// In a fleet: the review store could not be reached.
    #[error(transparent)]
    Fleet(#[from] super::shared::MirrorError),
    /// In a fleet: the verdict is the one that counts, but the replica
    /// that owns the review has not applied it yet.
    #[error(
        "the verdict is recorded for the fleet; replica `{owner}`, which holds the review, has not applied it yet (it does once it is reachable)"
    )]
    NotYetApplied {
        /// The owner's replica id.
        owner: String,
    },
}

/// Which reviews a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Pending only (`Some(true)`), decided only (`Some(false)`), or all.
    pub pending: Option<bool>,
    /// One model.
    pub model: Option<String>,
    /// One kind.
    pub kind: Option<ReviewKind>,
    /// Opened at least this long ago.
    pub older_than: Option<Duration>,
    /// One of its reasons holds this text (case does not matter).
    pub reason: Option<String>,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// Pending reviews of one (model, kind): (opened at, review id), oldest first.
type PendingSet = BTreeSet<(u64, String)>;

struct Slot {
    item: tokio::sync::Mutex<ReviewItem>,
    state: watch::Sender<ReviewState>,
    decision_id: String,
    model: String,
    kind: ReviewKind,
    opened_unix_ms: u64,
}

struct Inner {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    by_decision: Mutex<HashMap<String, String>>,
    /// Pending reviews by (model, kind), oldest first: the gauges read
    /// it without walking every review.
    pending: Mutex<HashMap<(String, ReviewKind), PendingSet>>,
    files: ReviewFiles,
    ledger: Ledger,
    config: ReviewConfig,
    metrics: ReviewMetrics,
    /// In a fleet: the reviews every replica sees (`fleet.rs`).
    mirror: std::sync::OnceLock<Arc<dyn super::shared::ReviewMirror>>,
    /// In a fleet: reviews whose last change the fleet's copy missed
    /// (published again each round; at most one per tracked review).
    unpublished: Mutex<BTreeSet<String>>,
    /// Cancelled when the gateway stops: the timers end without acting
    /// (a hold whose deadline passes meanwhile times out at the next start).
    stopping: CancellationToken,
    /// Pending reviews and kept bytes against their bounds.
    usage: Mutex<Usage>,
    /// Openings, verdicts and timers run as tasks of their own (so a
    /// caller going away cannot cut them short); `drained` waits for them.
    tasks: TaskTracker,
}

/// The open and recently closed reviews; cheap to clone.
#[derive(Clone)]
pub struct ReviewQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReviewQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewQueue").finish_non_exhaustive()
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(FileError {
                path: Default::default(),
                source: std::io::Error::other(join.to_string()),
            })
        })
}

impl ReviewQueue {
    /// Loads the stored items, reconciles them with the ledger's review
    /// entries (`recorded`) and decisions (`decision_seq`), and starts the
    /// timers of pending holds and of the retention of closed ones.
    pub async fn start(
        files: ReviewFiles,
        ledger: Ledger,
        config: ReviewConfig,
        metrics: ReviewMetrics,
        recorded: HashMap<String, LedgerReview>,
        decision_seq: impl Fn(&DecisionId) -> Option<u64>,
    ) -> Result<Self, QueueError> {
        let queue = Self {
            inner: Arc::new(Inner {
                slots: Mutex::default(),
                by_decision: Mutex::default(),
                pending: Mutex::default(),
                files: files.clone(),
                ledger,
                metrics,
                mirror: std::sync::OnceLock::new(),
                unpublished: Mutex::default(),
                stopping: CancellationToken::new(),
                usage: Mutex::new(Usage::new(config.max_pending, config.max_kept_bytes)),
                tasks: TaskTracker::new(),
                config,
            }),
        };
        let loader = files.clone();
        let (items, unreadable) = blocking(move || loader.load_all()).await?;
        for err in unreadable {
            tracing::error!(error = %err, "a stored review does not parse; left in place, not loaded");
        }
        let mut from_files = std::collections::HashSet::new();
        for item in items {
            from_files.insert(item.review_id.clone());
            let seq = DecisionId::parse(&item.decision_id).and_then(|id| decision_seq(&id));
            let recorded = recorded.get(&item.review_id).cloned();
            queue.restore(item, recorded, seq).await?;
        }
        for (review_id, review) in recorded {
            if let (Some(flag), false) = (review.flag, from_files.contains(&review_id)) {
                queue.track_restored(flag_from_ledger(review_id, review.opened_seq, flag));
            }
        }
        queue.refresh_gauges();
        queue.start_gauge_ticker();
        Ok(queue)
    }

    /// Brings one stored item in line with the ledger, then tracks it.
    async fn restore(
        &self,
        mut item: ReviewItem,
        recorded: Option<LedgerReview>,
        decision_seq: Option<u64>,
    ) -> Result<(), QueueError> {
        let files = self.inner.files.clone();
        let Some(recorded) = recorded else {
            if decision_seq.is_none() {
                // Its decision was never recorded, so no client was told
                // about it: the review never existed.
                tracing::warn!(review_id = %item.review_id, "dropping a stored review whose decision is not in the ledger");
                let id = item.review_id.clone();
                return Ok(blocking(move || files.remove(&id)).await?);
            }
            // The decision is recorded but its review_opened is not.
            item.decision_seq = decision_seq;
            item.state = ReviewState::Pending;
            item.closing = None;
            let ack = self
                .inner
                .ledger
                .append(item.opened_entry())
                .await
                .map_err(QueueError::Ledger)?;
            item.opened_seq = ack.seq;
            tracing::info!(review_id = %item.review_id, "recorded the review_opened entry a crash had left out");
            let saved = item.clone();
            blocking(move || files.save(&saved)).await?;
            self.track_restored(item);
            return Ok(());
        };
        item.opened_seq = Some(recorded.opened_seq);
        item.decision_seq = item.decision_seq.or(decision_seq);
        match (recorded.closing_seq, item.state) {
            (Some(seq), state) if state != ReviewState::Pending => {
                if let Some(closing) = item.closing.as_mut() {
                    closing.entry_seq = Some(seq);
                }
            }
            (Some(seq), _) => {
                // Cannot happen in the write order; keep the answer
                // withheld rather than guess a release.
                tracing::error!(review_id = %item.review_id, closing_seq = seq, "the ledger closed a review its file shows pending; treating it as rejected");
                item.state = ReviewState::Rejected;
                item.closing = Some(Closing {
                    verdict: recorded.verdict.unwrap_or_else(|| "reject".to_owned()),
                    reviewer: None,
                    reviewer_issuer: None,
                    reason: Some("restored from the ledger".to_owned()),
                    at_unix_ms: now_unix_ms(),
                    entry_seq: Some(seq),
                    override_answer: None,
                });
            }
            (None, ReviewState::Pending) => {}
            (None, _) => {
                // The verdict's file was written but the ledger never
                // recorded it: the verdict did not happen.
                tracing::warn!(review_id = %item.review_id, "a verdict the ledger did not record is undone; the review is pending again");
                item.state = ReviewState::Pending;
                item.closing = None;
                let saved = item.clone();
                blocking(move || files.save(&saved)).await?;
            }
        }
        self.track_restored(item);
        Ok(())
    }

    /// Tracks an item found at start, counted whatever the bounds.
    fn track_restored(&self, item: ReviewItem) {
        lock(&self.inner.usage).restored(&item);
        self.track(item);
    }

    /// Adds an item to memory and starts its timer.
    fn track(&self, item: ReviewItem) {
        let review_id = item.review_id.clone();
        let deadline = item.deadline_unix_ms;
        let state = item.state;
        let closed_at = item.closing.as_ref().map(|closing| closing.at_unix_ms);
        let slot = Arc::new(Slot {
            state: watch::channel(item.state).0,
            decision_id: item.decision_id.clone(),
            model: item.model.clone(),
            kind: item.kind,
            opened_unix_ms: item.opened_unix_ms,
            item: tokio::sync::Mutex::new(item),
        });
        lock(&self.inner.by_decision).insert(slot.decision_id.clone(), review_id.clone());
        let mut pending = lock(&self.inner.pending);
        let queued = pending.entry((slot.model.clone(), slot.kind)).or_default();
        if state == ReviewState::Pending {
            queued.insert((slot.opened_unix_ms, review_id.clone()));
        }
        drop(pending);
        lock(&self.inner.slots).insert(review_id.clone(), slot);
        match (state, deadline, closed_at) {
            (ReviewState::Pending, Some(deadline), _) => self.schedule_timeout(review_id, deadline),
            (ReviewState::Pending, None, _) => {}
            (_, _, Some(closed_at)) => self.schedule_forget(review_id, closed_at),
            (_, _, None) => {}
        }
    }

    fn new_item(&self, new: NewReview) -> ReviewItem {
        let opened_unix_ms = now_unix_ms();
        let (deadline, on_timeout) = match new.kind {
            ReviewKind::Hold => {
                let (timeout, outcome) = self.inner.config.timeout_for(&new.model, &new.reasons);
                (
                    Some(opened_unix_ms + timeout.as_millis() as u64),
                    Some(OnTimeoutName::from(outcome)),
                )
            }
            ReviewKind::Flag => (None, None),
        };
        ReviewItem {
            review_id: DecisionId::random().to_string(),
            decision_id: new.decision_id,
            decision_seq: None,
            opened_seq: None,
            kind: new.kind,
            model: new.model,
            version: new.version,
            caller: new.caller,
            caller_token: new.caller_token,
            stage: new.stage,
            reasons: new.reasons,
            set_seq: new.set_seq,
            opened_unix_ms,
            deadline_unix_ms: deadline,
            on_timeout,
            request: new.request,
            answer: new.answer,
            state: ReviewState::Pending,
            closing: None,
            bodies_kept: true,
        }
    }

    /// Stores a held answer before its decision is recorded. Follow with
    /// [`ReviewQueue::open`] once recorded, or [`ReviewQueue::abandon`].
    /// Refused with [`QueueError::Full`] when the queue is at a bound.
    pub async fn prepare_hold(&self, new: NewReview) -> Result<PreparedHold, QueueError> {
        let item = self.new_item(new);
        if let Err(full) = lock(&self.inner.usage).take(kept_bytes(&item)) {
            self.inner
                .metrics
                .not_opened(&item.model, item.kind.as_str(), full.limit());
            return Err(full.into());
        }
        let files = self.inner.files.clone();
        let saved = item.clone();
        if let Err(err) = blocking(move || files.save(&saved)).await {
            lock(&self.inner.usage).abandoned(kept_bytes(&item));
            return Err(err.into());
        }
        Ok(PreparedHold { item })
    }

    /// Records `review_opened` for a prepared hold whose decision is at
    /// `decision_seq`, and queues it. Cancel-safe: the work runs in its own task.
    pub async fn open(
        &self,
        prepared: PreparedHold,
        decision_seq: Option<u64>,
    ) -> Result<String, QueueError> {
        let queue = self.clone();
        self.inner
            .tasks
            .spawn(async move { queue.open_item(prepared.item, decision_seq).await })
            .await
            .unwrap_or_else(|join| {
                Err(QueueError::Ledger(SinkError::Unavailable(join.to_string())))
            })
    }

    async fn open_item(
        &self,
        mut item: ReviewItem,
        decision_seq: Option<u64>,
    ) -> Result<String, QueueError> {
        item.decision_seq = decision_seq;
        match self.inner.ledger.append(item.opened_entry()).await {
            Ok(ack) => {
                item.opened_seq = ack.seq;
                let review_id = item.review_id.clone();
                let published = self.is_shared().then(|| item.clone());
                self.track(item);
                self.refresh_gauges();
                if let Some(item) = published {
                    self.publish(&item).await;
                }
                Ok(review_id)
            }
            Err(err) => {
                self.abandon(PreparedHold { item }).await;
                Err(QueueError::Ledger(err))
            }
        }
    }

    /// Drops a prepared hold whose decision could not be recorded.
    pub async fn abandon(&self, prepared: PreparedHold) {
        lock(&self.inner.usage).abandoned(kept_bytes(&prepared.item));
        let files = self.inner.files.clone();
        let id = prepared.item.review_id;
        if let Err(err) = blocking(move || files.remove(&id)).await {
            tracing::error!(error = %err, "could not remove an abandoned hold");
        }
    }

    /// Queues a post-hoc review of a released answer: for the caller to
    /// run in the background (the request path on its backlog, which
    /// shutdown drains), so the answer is not delayed; a failure is logged.
    pub fn flag(
        &self,
        new: NewReview,
        decision_seq: Option<u64>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let queue = self.clone();
        async move {
            let Some(item) = queue.admit_flag(queue.new_item(new)) else {
                return;
            };
            if let Err(err) = queue.open_item(item, decision_seq).await {
                tracing::error!(error = %err, "a flagged decision could not be queued for review");
            }
        }
    }

    /// Takes a place for a flag: without its bodies when they would pass
    /// `review.max_kept_bytes` (the reviewer still sees what the ledger
    /// holds); `None`, counted and logged, when `review.max_pending`
    /// reviews are pending (its decision records the flag all the same).
    fn admit_flag(&self, mut item: ReviewItem) -> Option<ReviewItem> {
        let mut usage = lock(&self.inner.usage);
        let full = match usage.take(kept_bytes(&item)) {
            Ok(()) => return Some(item),
            Err(full @ QueueFull::Bytes(_)) => {
                item.request.bytes = Vec::new();
                item.answer.body = Vec::new();
                item.bodies_kept = false;
                match usage.take(0) {
                    Ok(()) => {
                        drop(usage);
                        self.inner.metrics.bodies_dropped(&item.model);
                        tracing::warn!(decision_id = %item.decision_id, "{full}: a flagged decision's review opens without its bodies");
                        return Some(item);
                    }
                    Err(full) => full,
                }
            }
            Err(full) => full,
        };
        drop(usage);
        self.inner
            .metrics
            .not_opened(&item.model, item.kind.as_str(), full.limit());
        tracing::warn!(decision_id = %item.decision_id, "{full}: a flagged decision's review is not opened");
        None
    }

    /// Applies a reviewer's verdict. Cancel-safe: the work runs in its own task.
    pub async fn decide(
        &self,
        review_id: &str,
        reviewer: impl Into<super::Reviewer>,
        verdict: ReviewVerdict,
        reason: Option<String>,
    ) -> Result<ReviewItem, DecideError> {
        let queue = self.clone();
        let (review_id, reviewer) = (review_id.to_owned(), reviewer.into());
        self.inner
            .tasks
            .spawn(async move {
                if queue.slot(&review_id).is_none() && queue.is_shared() {
                    return queue
                        .decide_elsewhere(&review_id, reviewer, verdict, reason)
                        .await;
                }
                queue
                    .close(&review_id, Some(reviewer), Some(verdict), reason)
                    .await
            })
            .await
            .unwrap_or_else(|join| {
                Err(DecideError::Ledger(SinkError::Unavailable(
                    join.to_string(),
                )))
            })
    }

    /// Closes a pending review: with a verdict, or (`None`) by timeout.
    async fn close(
        &self,
        review_id: &str,
        reviewer: Option<super::Reviewer>,
        verdict: Option<ReviewVerdict>,
        reason: Option<String>,
    ) -> Result<ReviewItem, DecideError> {
        let slot = self
            .slot(review_id)
            .ok_or_else(|| DecideError::NotFound(review_id.to_owned()))?;
        let mut item = slot.item.lock().await;
        let reason = reason.filter(|text| !text.trim().is_empty());
        check_verdict(&item, reviewer.as_ref(), verdict.as_ref(), reason.as_ref())?;
        // In a fleet the first claim wins: a verdict given on another
        // replica, or this replica's timer, may have come first.
        let fleet::Claimed {
            reviewer,
            verdict,
            reason,
            came_first,
        } = self.claim(review_id, reviewer, verdict, reason).await;
        let (state, override_answer) = match verdict.clone() {
            None => (ReviewState::TimedOut, None),
            Some(ReviewVerdict::Approve) => (ReviewState::Approved, None),
            Some(ReviewVerdict::Reject) => (ReviewState::Rejected, None),
            Some(ReviewVerdict::Override(answer)) => (ReviewState::Overridden, Some(answer)),
        };
        let mut closed = item.clone();
        closed.state = state;
        closed.closing = Some(Closing {
            verdict: verdict
                .as_ref()
                .map_or("timeout", ReviewVerdict::as_str)
                .to_owned(),
            reviewer_issuer: reviewer.as_ref().and_then(|r| r.issuer.clone()),
            reviewer: reviewer.map(|r| r.principal),
            reason,
            at_unix_ms: now_unix_ms(),
            entry_seq: None,
            override_answer,
        });
        // A flag has no file: its closing entry is its record.
        let has_file = closed.kind == ReviewKind::Hold;
        if has_file {
            let files = self.inner.files.clone();
            let saved = closed.clone();
            blocking(move || files.save(&saved)).await?;
        }
        // INVARIANT: `closed` has a closing, so it has a closing entry.
        let Some(entry) = closed.closing_entry() else {
            return Err(DecideError::NotFound(review_id.to_owned()));
        };
        match self.inner.ledger.append(entry).await {
            Ok(ack) => {
                if let Some(closing) = closed.closing.as_mut() {
                    closing.entry_seq = ack.seq;
                }
            }
            Err(err) if !has_file => return Err(DecideError::Ledger(err)),
            Err(err) => {
                let files = self.inner.files.clone();
                let pending = item.clone();
                if let Err(undo) = blocking(move || files.save(&pending)).await {
                    tracing::error!(error = %undo, "could not undo an unrecorded verdict on disk; the next start undoes it");
                }
                return Err(DecideError::Ledger(err));
            }
        }
        let waited = closed
            .closing
            .as_ref()
            .map_or(0, |c| c.at_unix_ms.saturating_sub(closed.opened_unix_ms));
        let verdict_name = closed
            .closing
            .as_ref()
            .map_or("timeout", |c| c.verdict.as_str());
        self.inner.metrics.review_decided(
            &closed.model,
            closed.kind.as_str(),
            verdict_name,
            waited as f64 / 1000.0,
        );
        lock(&self.inner.usage).closed(kept_bytes(&item), kept_bytes(&closed));
        *item = closed.clone();
        drop(item);
        slot.state.send_replace(state);
        if let Some(queued) = lock(&self.inner.pending).get_mut(&(slot.model.clone(), slot.kind)) {
            queued.remove(&(slot.opened_unix_ms, review_id.to_owned()));
        }
        self.refresh_gauges();
        let at = closed.closing.as_ref().map_or(0, |c| c.at_unix_ms);
        self.schedule_forget(review_id.to_owned(), at);
        if self.is_shared() {
            self.publish(&closed).await;
        }
        if !came_first {
            // Applied, but it is not the verdict (or timeout) asked for.
            return Err(DecideError::AlreadyDecided(closed.state));
        }
        Ok(closed)
    }

    /// The review of a decision as it stands, after waiting up to `wait`
    /// for a pending one to close. Cancel-safe.
    pub async fn poll(&self, decision_id: &str, wait: Duration) -> Option<ReviewItem> {
        let local = lock(&self.inner.by_decision).get(decision_id).cloned();
        let Some(review_id) = local else {
            return self.poll_elsewhere(decision_id, wait).await;
        };
        let slot = self.slot(&review_id)?;
        if !wait.is_zero() {
            let mut changes = slot.state.subscribe();
            let _ = tokio::time::timeout(
                wait,
                changes.wait_for(|state| *state != ReviewState::Pending),
            )
            .await;
        }
        let item = slot.item.lock().await;
        Some(item.clone())
    }

    /// The longest wait a poll may ask for.
    pub fn max_wait(&self) -> Duration {
        self.inner.config.max_wait
    }

    /// One review, with its bodies.
    pub async fn get(&self, review_id: &str) -> Option<ReviewItem> {
        let Some(slot) = self.slot(review_id) else {
            return self.get_elsewhere(review_id).await;
        };
        let item = slot.item.lock().await;
        Some(item.clone())
    }

    /// Reviews matching `filter`, oldest first, without their bodies: in
    /// a fleet, every replica's.
    pub async fn list(&self, filter: &ListFilter) -> Vec<ReviewItem> {
        let mut items = self.list_here(filter).await;
        if self.is_shared() {
            self.add_elsewhere(&mut items, filter).await;
        }
        items
    }

    /// This replica's reviews matching `filter`, oldest first, without
    /// their bodies.
    async fn list_here(&self, filter: &ListFilter) -> Vec<ReviewItem> {
        let now = now_unix_ms();
        let mut slots: Vec<Arc<Slot>> = lock(&self.inner.slots)
            .values()
            .filter(|slot| {
                let pending = *slot.state.borrow() == ReviewState::Pending;
                filter.pending.is_none_or(|wanted| wanted == pending)
                    && filter.model.as_ref().is_none_or(|m| *m == slot.model)
                    && filter.kind.is_none_or(|k| k == slot.kind)
                    && filter.older_than.is_none_or(|age| {
                        now.saturating_sub(slot.opened_unix_ms) >= age.as_millis() as u64
                    })
            })
            .cloned()
            .collect();
        slots.sort_by_key(|slot| slot.opened_unix_ms);
        let reason = filter.reason.as_ref().map(|text| text.to_lowercase());
        let mut items = Vec::with_capacity(slots.len().min(filter.limit));
        for slot in slots {
            if items.len() == filter.limit {
                break;
            }
            let item = slot.item.lock().await;
            let wanted = reason.as_ref().is_none_or(|text| {
                item.reasons
                    .iter()
                    .any(|reason| reason.to_lowercase().contains(text.as_str()))
            });
            if wanted {
                items.push(without_bodies(&item));
            }
        }
        items
    }

    fn slot(&self, review_id: &str) -> Option<Arc<Slot>> {
        lock(&self.inner.slots).get(review_id).cloned()
    }

    /// Ends the timers (hold deadlines, retention of closed reviews, the
    /// gauges' ticker) without acting, when the gateway stops: nothing
    /// is recorded after its `gateway_stopped`.
    pub fn stop(&self) {
        self.inner.stopping.cancel();
    }

    /// Waits for the openings, verdicts and timeouts already under way
    /// (their entries belong before `gateway_stopped`); the timers end
    /// without acting once [`ReviewQueue::stop`] was called.
    pub async fn drained(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn schedule_timeout(&self, review_id: String, deadline_unix_ms: u64) {
        let weak = Arc::downgrade(&self.inner);
        let stopping = self.inner.stopping.clone();
        self.inner.tasks.spawn(async move {
            let wait = deadline_unix_ms.saturating_sub(now_unix_ms());
            if !sleep_unless_stopped(Duration::from_millis(wait), &stopping).await {
                return;
            }
            let Some(queue) = upgrade(&weak) else { return };
            match queue.close(&review_id, None, None, None).await {
                Ok(item) => {
                    tracing::info!(%review_id, outcome = ?item.on_timeout, "review timed out");
                }
                Err(DecideError::AlreadyDecided(_) | DecideError::NotFound(_)) => {}
                Err(err) => {
                    tracing::error!(%review_id, error = %err, "review timeout not recorded; retrying in 5 s");
                    queue.schedule_timeout(review_id, now_unix_ms() + 5_000);
                }
            }
        });
    }

    /// Forgets a closed review (memory and file) once its retention is over.
    fn schedule_forget(&self, review_id: String, closed_unix_ms: u64) {
        let weak = Arc::downgrade(&self.inner);
        let stopping = self.inner.stopping.clone();
        let keep = self.inner.config.keep_decided.as_millis() as u64;
        self.inner.tasks.spawn(async move {
            let wait = (closed_unix_ms + keep).saturating_sub(now_unix_ms());
            if !sleep_unless_stopped(Duration::from_millis(wait), &stopping).await {
                return;
            }
            let Some(queue) = upgrade(&weak) else { return };
            let Some(slot) = lock(&queue.inner.slots).remove(&review_id) else {
                return;
            };
            lock(&queue.inner.by_decision).remove(&slot.decision_id);
            let kept = kept_bytes(&*slot.item.lock().await);
            lock(&queue.inner.usage).forgotten(kept);
            let files = queue.inner.files.clone();
            let id = review_id.clone();
            if let Err(err) = blocking(move || files.remove(&id)).await {
                tracing::error!(error = %err, "could not remove a closed review's file");
            }
            queue.unpublish(&review_id).await;
        });
    }

    /// Sets the kept-bytes gauge, and the pending-count and oldest-age
    /// gauges of every (model, kind) that has had a review (back to 0 when
    /// none is pending).
    fn refresh_gauges(&self) {
        let kept = lock(&self.inner.usage).bytes();
        self.inner.metrics.kept_bytes(kept);
        let now = now_unix_ms();
        for ((model, kind), queued) in lock(&self.inner.pending).iter() {
            let oldest = queued.first().map_or(now, |(opened, _)| *opened);
            let age = now.saturating_sub(oldest) as f64 / 1000.0;
            self.inner
                .metrics
                .queue(model, kind.as_str(), queued.len(), age);
        }
    }

    /// Keeps the oldest-age gauges current between changes.
    fn start_gauge_ticker(&self) {
        let weak = Arc::downgrade(&self.inner);
        let stopping = self.inner.stopping.clone();
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stopping.cancelled() => return,
                }
                let Some(queue) = upgrade(&weak) else { return };
                queue.refresh_gauges();
            }
        });
    }
}

/// Waits `wait`; `false` if `stopping` is cancelled first.
async fn sleep_unless_stopped(wait: Duration, stopping: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stopping.cancelled() => false,
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<ReviewQueue> {
    weak.upgrade().map(|inner| ReviewQueue { inner })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Refuses a verdict `item` may not get (`verdict` `None`: a timeout).
fn check_verdict(
    item: &ReviewItem,
    reviewer: Option<&super::Reviewer>,
    verdict: Option<&ReviewVerdict>,
    reason: Option<&String>,
) -> Result<(), DecideError> {
    if item.state != ReviewState::Pending {
        return Err(DecideError::AlreadyDecided(item.state));
    }
    // Names compared in one normalised form (a variant spelling of the
    // reviewer's own name is still their own request), and one JWT
    // identity is one person whatever the names.
    if reviewer.is_some_and(|reviewer| {
        super::identity::decides_own(reviewer, &item.caller, item.caller_token.as_ref())
    }) {
        return Err(DecideError::OwnRequest);
    }
    match verdict {
        Some(ReviewVerdict::Reject) if reason.is_none() => {
            Err(DecideError::ReasonRequired("reject"))
        }
        Some(ReviewVerdict::Override(_)) if item.kind == ReviewKind::Flag => {
            Err(DecideError::OverrideNotAllowed)
        }
        Some(ReviewVerdict::Override(_)) if reason.is_none() => {
            Err(DecideError::ReasonRequired("override"))
        }
        _ => Ok(()),
    }
}

/// The queue item of a pending flag that the ledger records, without its
/// bodies (they were kept in memory only).
fn flag_from_ledger(review_id: String, opened_seq: u64, flag: RecordedFlag) -> ReviewItem {
    ReviewItem {
        review_id,
        decision_id: flag.decision_id,
        decision_seq: flag.decision_seq,
        opened_seq: Some(opened_seq),
        kind: ReviewKind::Flag,
        model: flag.model,
        version: flag.version,
        caller: flag.caller,
        caller_token: flag.caller_token,
        stage: if flag.stage == Stage::Request.as_str() {
            Stage::Request
        } else {
            Stage::Response
        },
        reasons: flag.reasons,
        set_seq: flag.set_seq,
        opened_unix_ms: flag.opened_unix_ms,
        deadline_unix_ms: None,
        on_timeout: None,
        request: StoredBody {
            content_type: None,
            bytes: Vec::new(),
        },
        answer: StoredAnswer {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        },
        state: ReviewState::Pending,
        closing: None,
        bodies_kept: false,
    }
}

/// A copy of `item` without its (possibly large) bodies.
fn without_bodies(item: &ReviewItem) -> ReviewItem {
    ReviewItem {
        review_id: item.review_id.clone(),
        decision_id: item.decision_id.clone(),
        decision_seq: item.decision_seq,
        opened_seq: item.opened_seq,
        kind: item.kind,
        model: item.model.clone(),
        version: item.version.clone(),
        caller: item.caller.clone(),
        caller_token: item.caller_token.clone(),
        stage: item.stage,
        reasons: item.reasons.clone(),
        set_seq: item.set_seq,
        opened_unix_ms: item.opened_unix_ms,
        deadline_unix_ms: item.deadline_unix_ms,
        on_timeout: item.on_timeout,
        request: StoredBody {
            content_type: item.request.content_type.clone(),
            bytes: Vec::new(),
        },
        answer: StoredAnswer {
            status: item.answer.status,
            headers: item.answer.headers.clone(),
            body: Vec::new(),
        },
        state: item.state,
        closing: item.closing.as_ref().map(|closing| Closing {
            override_answer: None,
            ..closing.clone()
        }),
        bodies_kept: item.bodies_kept,
    }
}
