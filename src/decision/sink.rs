//! The seam between the request path and the ledger.

use super::{Decision, StreamEnd};
use std::future::Future;
use std::pin::Pin;

/// What a sink answers once a decision is safely recorded.
#[derive(Debug, Clone, Default)]
pub struct Ack {
    /// The record's position in the log, when the sink assigns one.
    pub seq: Option<u64>,
    /// The time the record carries, when the sink assigns one.
    pub time: Option<std::time::SystemTime>,
}

/// Why a sink could not record a decision. The proxy answers 503 for both
/// and releases nothing of the upstream's answer (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The sink's queue is full; the client may retry after a pause.
    #[error("decision log is overloaded")]
    Overloaded,
    /// The sink cannot write at all (I/O failure, shut down).
    #[error("decision log is unavailable: {0}")]
    Unavailable(String),
}

/// Why decisions cannot be recorded now: the reason readiness checks
/// give (every model request would be refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The ledger's store refuses commits; the store's error.
    #[error("ledger not committing: {0}")]
    LedgerNotCommitting(String),
    /// The same, without the store's error (paths, engine messages): what
    /// the public listener says.
    #[error("ledger not committing")]
    LedgerStopped,
    /// This replica must not serve (its fleet id was claimed by another
    /// gateway, or it lost the control plane for too long).
    #[error("{0}")]
    Replica(String),
}

/// Whether decisions can be recorded now, for readiness checks.
pub type Readiness = std::sync::Arc<dyn Fn() -> Result<(), NotReady> + Send + Sync>;

/// The future a sink returns for one record.
pub type RecordFuture = Pin<Box<dyn Future<Output = Result<Ack, SinkError>> + Send + 'static>>;

/// Where every decision goes.
///
/// Contract:
/// - The future returned by `record` MUST NOT resolve `Ok` before the
///   decision is as durable as the sink promises (for the ledger: written,
///   fsynced and covered by a signed checkpoint).
/// - `record` MUST NOT block the calling thread; waiting happens in the
///   returned future.
/// - The proxy MUST await the future before releasing the answer (or the
///   end of a stream), and MUST record exactly one decision per request.
///
/// A streamed answer has two records: its decision (outcome `streaming`),
/// which MUST be acknowledged before the first byte of the answer is
/// released, and its [`StreamEnd`], which MUST be acknowledged before the
/// stream's end is released (a client must never take a stream for
/// complete when its end is not recorded).
pub trait DecisionSink: Send + Sync + 'static {
    /// Submits one decision; the future resolves when it is recorded.
    fn record(&self, decision: Decision) -> RecordFuture;

    /// Submits the end of a streamed decision; resolves when it is recorded.
    fn record_end(&self, end: StreamEnd) -> RecordFuture;
}
