//! The ledger's metric families (no labels but the commit result).

use super::tally::OutcomeTally;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Counted by the sequencer once per commit, and by the appending half
/// when the queue is full.
#[derive(Clone)]
pub struct LedgerMetrics {
    entries: IntCounter,
    commits: IntCounterVec,
    batch_entries: Histogram,
    commit_seconds: Histogram,
    size: IntGauge,
    checkpoints: IntCounter,
    checkpoint_time: Gauge,
    entry_bytes: IntCounter,
    payload_bytes: IntCounter,
    store_bytes: IntGauge,
    queue_depth: IntGauge,
    overloaded: IntCounter,
    committing: IntGauge,
    recoveries: IntCounter,
    torn_tail_bytes: IntGauge,
    /// Committed decisions by minute and outcome, when the gateway keeps
    /// them (the console's overview).
    tally: Option<Arc<OutcomeTally>>,
}

/// What one successful commit wrote.
pub(crate) struct Committed {
    /// Entries in the batch.
    pub entries: usize,
    /// Tree size after it: the signed checkpoint's size.
    pub size: u64,
    /// The time its entries and checkpoint carry.
    pub time: SystemTime,
    /// Canonical entry bytes written.
    pub entry_bytes: u64,
    /// Payload bytes (salts and captures) written.
    pub payload_bytes: u64,
}

impl LedgerMetrics {
    /// Creates the families (not yet registered anywhere).
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            entries: IntCounter::new(
                "govgate_ledger_entries_total",
                "Entries committed to the ledger.",
            )?,
            commits: IntCounterVec::new(
                Opts::new(
                    "govgate_ledger_commits_total",
                    "Group commits (batch + signed checkpoint + fsync) by result.",
                ),
                &["result"],
            )?,
            batch_entries: Histogram::with_opts(
                HistogramOpts::new("govgate_ledger_batch_entries", "Entries per group commit.")
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                    ]),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "govgate_ledger_commit_seconds",
                    "Time to write one group commit (entries, nodes, signed checkpoint) to the store and fsync it; sealing and signing happen before, pipelined.",
                )
                .buckets(vec![
                    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.5,
                ]),
            )?,
            size: IntGauge::new("govgate_ledger_size_entries", "Entries in the ledger.")?,
            checkpoints: IntCounter::new(
                "govgate_ledger_checkpoints_total",
                "Signed checkpoints made durable (one per successful group commit).",
            )?,
            checkpoint_time: Gauge::new(
                "govgate_ledger_checkpoint_timestamp_seconds",
                "Unix time the latest durable signed checkpoint's entries carry.",
            )?,
            entry_bytes: IntCounter::new(
                "govgate_ledger_entry_bytes_total",
                "Canonical entry bytes committed (what the hash chain and the tree cover).",
            )?,
            payload_bytes: IntCounter::new(
                "govgate_ledger_payload_bytes_total",
                "Payload bytes committed (salts and body captures, erasable).",
            )?,
            store_bytes: IntGauge::new(
                "govgate_ledger_store_bytes",
                "Size of the ledger's store on disk, read at most once a second after a commit.",
            )?,
            queue_depth: IntGauge::new(
                "govgate_ledger_queue_entries",
                "Entries waiting to be sealed ahead of the latest append.",
            )?,
            overloaded: IntCounter::new(
                "govgate_ledger_overloaded_total",
                "Entries refused because the ledger's queue was full (decisions, reviews, governance changes alike).",
            )?,
            committing: IntGauge::new(
                "govgate_ledger_committing",
                "1 while the ledger commits; 0 from a failed commit until the store works again (every entry is refused meanwhile).",
            )?,
            recoveries: IntCounter::new(
                "govgate_ledger_recoveries_total",
                "Times the ledger resumed committing by itself after a failed commit.",
            )?,
            torn_tail_bytes: IntGauge::new(
                "govgate_ledger_wal_torn_bytes",
                "Bytes of a torn final write-ahead record cut at start (a write interrupted by a crash, never acknowledged); 0: none.",
            )?,
            tally: None,
        })
    }

    /// The families, also counting committed decisions in `tally`.
    pub fn with_tally(mut self, tally: Arc<OutcomeTally>) -> Self {
        self.tally = Some(tally);
        self
    }

    /// The tally of committed decisions, when kept.
    pub(crate) fn tally(&self) -> Option<&OutcomeTally> {
        self.tally.as_deref()
    }

    /// Registers every family in `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.entries.clone()))?;
        registry.register(Box::new(self.commits.clone()))?;
        // Both series exist from the start, so `increase()` sees the first failure.
        for result in ["ok", "error"] {
            self.commits.with_label_values(&[result]);
        }
        registry.register(Box::new(self.batch_entries.clone()))?;
        registry.register(Box::new(self.commit_seconds.clone()))?;
        registry.register(Box::new(self.size.clone()))?;
        registry.register(Box::new(self.checkpoints.clone()))?;
        registry.register(Box::new(self.checkpoint_time.clone()))?;
        registry.register(Box::new(self.entry_bytes.clone()))?;
        registry.register(Box::new(self.payload_bytes.clone()))?;
        registry.register(Box::new(self.store_bytes.clone()))?;
        registry.register(Box::new(self.queue_depth.clone()))?;
        registry.register(Box::new(self.overloaded.clone()))?;
        registry.register(Box::new(self.committing.clone()))?;
        registry.register(Box::new(self.recoveries.clone()))?;
        registry.register(Box::new(self.torn_tail_bytes.clone()))?;
        Ok(())
    }

    /// The state found when the ledger opens: its size and the Unix time
    /// of its latest checkpoint (none for an empty ledger).
    /// The bytes of a torn final write-ahead record cut at open.
    pub(crate) fn set_torn_tail(&self, bytes: u64) {
        self.torn_tail_bytes.set(bytes as i64);
    }

    pub(crate) fn observe_open(&self, size: u64, checkpoint_unix_seconds: Option<f64>) {
        self.committing.set(1);
        self.size.set(size as i64);
        if let Some(seconds) = checkpoint_unix_seconds {
            self.checkpoint_time.set(seconds);
        }
    }

    /// Records one successful commit that took `seconds`.
    pub(crate) fn observe_commit(&self, committed: &Committed, seconds: f64) {
        self.commit_seconds.observe(seconds);
        self.commits.with_label_values(&["ok"]).inc();
        self.entries.inc_by(committed.entries as u64);
        self.batch_entries.observe(committed.entries as f64);
        self.size.set(committed.size as i64);
        self.checkpoints.inc();
        self.checkpoint_time.set(unix_seconds(committed.time));
        self.entry_bytes.inc_by(committed.entry_bytes);
        self.payload_bytes.inc_by(committed.payload_bytes);
    }

    /// Records one failed commit that took `seconds`.
    pub(crate) fn observe_failed_commit(&self, seconds: f64) {
        self.commit_seconds.observe(seconds);
        self.commits.with_label_values(&["error"]).inc();
    }

    /// Whether the ledger commits.
    pub(crate) fn set_committing(&self, committing: bool) {
        self.committing.set(i64::from(committing));
    }

    /// Counts one resumption after a failed commit.
    pub(crate) fn count_recovery(&self) {
        self.recoveries.inc();
    }

    /// The store's size on disk.
    pub(crate) fn set_store_bytes(&self, bytes: u64) {
        self.store_bytes.set(bytes as i64);
    }

    /// Entries waiting ahead of the latest append.
    pub(crate) fn set_queue_depth(&self, entries: usize) {
        self.queue_depth.set(entries as i64);
    }

    /// Counts one entry refused for a full queue.
    pub(crate) fn count_overloaded(&self) {
        self.overloaded.inc();
    }
}

/// Seconds since 1970 to the millisecond, as entries carry their time.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_millis() as f64 / 1000.0)
}
