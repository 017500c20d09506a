//! The ledger's metric families (no labels but the commit result).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counted by the sequencer once per commit.
#[derive(Clone)]
pub struct LedgerMetrics {
    entries: IntCounter,
    commits: IntCounterVec,
    batch_entries: Histogram,
    commit_seconds: Histogram,
    size: IntGauge,
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
        })
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
        Ok(())
    }

    /// Records one commit attempt.
    pub(crate) fn observe_commit(&self, entries: usize, seconds: f64, ok: bool, size: u64) {
        self.commit_seconds.observe(seconds);
        if ok {
            self.commits.with_label_values(&["ok"]).inc();
            self.entries.inc_by(entries as u64);
            self.batch_entries.observe(entries as f64);
            self.size.set(size as i64);
        } else {
            self.commits.with_label_values(&["error"]).inc();
        }
    }
}
