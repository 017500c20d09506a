//! The registry of a fleet: its events shared by every replica through a
//! control log with one order (`[cluster]`, kept in PostgreSQL by
//! `crate::cluster::control`).
//!
//! A replica decides a command on its registry as of the last control
//! event it applied, and appends the event to the control log only if no
//! other event came first; otherwise it applies what came first and
//! decides again. Every replica (the deciding one too) records each
//! control event in its own ledger, citing its control seq, before
//! applying it: each ledger stays complete on its own, and every decision
//! names the approval entry of its own ledger.

use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The entry member naming the control event a registry entry records.
pub const CONTROL_SEQ_MEMBER: &str = "control_seq";

/// A future the control log returns.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SharedLogError>> + Send + 'a>>;

/// One event of the control log.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedEvent {
    /// Its place in the fleet's one order, from 1.
    pub control_seq: u64,
    /// The entry kind (`version_approved`, ...).
    pub kind: String,
    /// The entry members, as the deciding replica recorded them.
    pub members: Map<String, Value>,
}

/// The control log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the fleet's control plane is unavailable: {0}")]
pub struct SharedLogError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The fleet's control log of registry events.
pub trait SharedLog: Send + Sync {
    /// Events after control seq `after`, in order (at most a page).
    fn since(&self, after: u64) -> LogFuture<'_, Vec<SharedEvent>>;

    /// Appends `kind` with `members` if the log's last event is still
    /// `after`: its control seq, or `None` when another event came first.
    fn append<'a>(
        &'a self,
        after: u64,
        kind: &'a str,
        members: &'a Map<String, Value>,
    ) -> LogFuture<'a, Option<u64>>;
}

/// Control events of another kind than the registry's (policy sets),
/// applied by the service that owns them, in the fleet's one order.
pub trait SharedDomain: Send + Sync {
    /// The entry kinds it applies.
    fn kinds(&self) -> &'static [&'static str];

    /// Records `event` (another replica's, or this one's that it could
    /// not record at once) in the ledger with its control seq, and applies
    /// it.
    fn apply<'a>(&'a self, event: &'a SharedEvent) -> LogFuture<'a, ()>;
}

/// How current this replica's view of the control log is: the request
/// path refuses to serve once it is older than the bounded staleness, or
/// once another gateway took this replica's id.
#[derive(Debug)]
pub struct Freshness {
    start: Instant,
    /// Milliseconds after `start` of the last complete read of the log.
    synced_ms: AtomicU64,
    max_staleness: Duration,
    /// Another gateway claimed this replica's id: never fresh again.
    id_lost: std::sync::OnceLock<String>,
}

impl Freshness {
    /// Fresh now; stale once `max_staleness` passes without a read.
    pub fn new(max_staleness: Duration) -> Self {
        Self {
            start: Instant::now(),
            synced_ms: AtomicU64::new(0),
            max_staleness,
            id_lost: std::sync::OnceLock::new(),
        }
    }

    /// Another gateway claimed `replica_id`: this process stops serving
    /// (two gateways must not write one replica's log).
    pub fn id_lost(&self, replica_id: &str) {
        let _ = self.id_lost.set(replica_id.to_owned());
    }

    /// Why the replica must not serve now, if it must not.
    pub fn problem(&self) -> Option<String> {
        if let Some(replica_id) = self.id_lost.get() {
            return Some(format!(
                "another gateway claimed this replica's id `{replica_id}`; this one no longer serves"
            ));
        }
        let stale_for = self.stale_for()?;
        Some(format!(
            "this replica has not reached the fleet's control plane for {} s (more than the {} s allowed)",
            stale_for.as_secs(),
            self.max_staleness.as_secs()
        ))
    }

    /// The log was read to its end just now.
    pub fn synced(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.synced_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How long since the last complete read, when that is longer than the
    /// bounded staleness.
    fn stale_for(&self) -> Option<Duration> {
        let synced = Duration::from_millis(self.synced_ms.load(Ordering::Relaxed));
        let since = self.start.elapsed().saturating_sub(synced);
        (since > self.max_staleness).then_some(since)
    }

    /// The bounded staleness.
    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_turns_stale_after_its_bound_and_fresh_again_on_a_read() {
        let freshness = Freshness::new(Duration::from_millis(30));
        assert_eq!(freshness.stale_for(), None);
        std::thread::sleep(Duration::from_millis(60));
        let stale = freshness.stale_for().expect("stale after its bound");
        assert!(stale >= Duration::from_millis(60), "{stale:?}");
        freshness.synced();
        assert_eq!(freshness.stale_for(), None);
        assert_eq!(freshness.problem(), None);
        freshness.id_lost("gw-1");
        freshness.synced();
        let problem = freshness
            .problem()
            .expect("never fresh once the id is lost");
        assert!(problem.contains("`gw-1`"), "{problem}");
    }
}
