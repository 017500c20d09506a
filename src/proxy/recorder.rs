//! Drafts of decisions while a request is in flight, and the recorder that
//! completes them, counts them and hands them to the sink.

use super::error::ProxyError;
use super::metrics::ProxyMetrics;
use crate::config::OnLedgerFailure;
use crate::decision::{
    Ack, Capture, Decision, DecisionId, DecisionSink, Outcome, PolicyRecord, Protocol,
    RecordFuture, Route, SinkError, Timings,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Completes decisions and submits them; cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    sink: Arc<dyn DecisionSink>,
    metrics: ProxyMetrics,
    on_failure: OnLedgerFailure,
}

impl Recorder {
    /// A recorder writing to `sink`, counting in `metrics`, and applying
    /// `on_failure` when the sink cannot record.
    pub(crate) fn new(
        sink: Arc<dyn DecisionSink>,
        metrics: ProxyMetrics,
        on_failure: OnLedgerFailure,
    ) -> Self {
        Self {
            sink,
            metrics,
            on_failure,
        }
    }

    /// Counts the decision and submits it. The returned future resolves
    /// when the sink acknowledges it (see [`DecisionSink`]); with
    /// `on_failure = serve` a failure resolves `Ok` too, logged and counted.
    /// This is the one place that policy lives, for whole and streamed answers alike.
    pub(crate) fn submit(&self, decision: Decision, model_label: &str) -> RecordFuture {
        self.metrics.observe(&decision, model_label);
        let id = decision.id;
        let record = self.sink.record(decision);
        match self.on_failure {
            OnLedgerFailure::Refuse => record,
            OnLedgerFailure::Serve => {
                let metrics = self.metrics.clone();
                Box::pin(async move {
                    match record.await {
                        Ok(ack) => Ok(ack),
                        Err(err) => {
                            tracing::error!(decision_id = %id, error = %err, "serving an answer the ledger did not record (ledger.on_failure = serve)");
                            metrics.count_unlogged();
                            Ok(Ack::default())
                        }
                    }
                })
            }
        }
    }

    /// Submits and waits, mapping sink failures to the proxy's errors.
    /// Cancel-safe in the sense that a dropped wait leaves the record queued.
    /// A forwarded answer read whole also counts the time the gateway
    /// added to it, measured once the ledger has acknowledged.
    pub(crate) async fn record(&self, draft: Draft, end: Ending) -> Result<Ack, ProxyError> {
        let label = draft.model_label().to_owned();
        let id = draft.id;
        let route = draft.route;
        let added_clock = draft.added_clock();
        let decision = draft.complete(end);
        let ack = self.submit(decision, &label).await.map_err(|err| {
            tracing::error!(decision_id = %id, error = %err, "decision not recorded; answer withheld");
            sink_error(err)
        })?;
        if let Some(clock) = added_clock {
            self.metrics.observe_gateway_added(route, clock.added());
        }
        Ok(ack)
    }
}

/// The proxy's answer to a sink failure.
pub(super) fn sink_error(err: SinkError) -> ProxyError {
    match err {
        SinkError::Overloaded => ProxyError::LedgerOverloaded,
        SinkError::Unavailable(_) => ProxyError::LedgerUnavailable,
    }
}

/// How a request ended: what the decision needs beyond the draft.
pub(crate) struct Ending {
    /// What happened.
    pub outcome: Outcome,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Stable error code, if the gateway refused or failed.
    pub error_code: Option<&'static str>,
    /// Bounded capture of the response body.
    pub response: Capture,
}

/// A decision under construction while its request is in flight.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The decision id, also sent to the client.
    pub id: DecisionId,
    /// Caller identity or `anonymous`.
    pub caller: String,
    /// Matched route.
    pub route: Route,
    /// Protocol, once the model is known.
    pub protocol: Option<Protocol>,
    /// Model name as requested.
    pub model: Option<String>,
    /// Whether `model` is a configured model (bounds the metric label).
    pub model_known: bool,
    /// Version resolved for the request.
    pub version: Option<String>,
    /// Seq of the approval that made `version` servable.
    pub approval_seq: Option<u64>,
    /// The policy verdicts so far, when policies apply.
    pub policy: Option<PolicyRecord>,
    /// Bounded capture of the request body.
    pub request: Capture,
    received: Instant,
    received_unix_ms: u64,
    upstream_head_us: Option<u64>,
    upstream_sent: Option<Instant>,
    upstream_spent: Option<Duration>,
}

/// What the gateway added to a forwarded answer: the time since the
/// request arrived, less the time spent waiting on the upstream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddedClock {
    received: Instant,
    upstream_spent: Duration,
}

impl AddedClock {
    /// The time added so far.
    pub(crate) fn added(&self) -> Duration {
        self.received.elapsed().saturating_sub(self.upstream_spent)
    }
}

impl Draft {
    /// Starts a draft at the moment a request arrives.
    pub(crate) fn start(id: DecisionId, caller: String, route: Route) -> Self {
        let received_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Self {
            id,
            caller,
            route,
            protocol: None,
            model: None,
            model_known: false,
            version: None,
            approval_seq: None,
            policy: None,
            request: Capture::default(),
            received: Instant::now(),
            received_unix_ms,
            upstream_head_us: None,
            upstream_sent: None,
            upstream_spent: None,
        }
    }

    /// Notes that the request is being sent upstream now.
    pub(crate) fn mark_upstream_sent(&mut self) {
        self.upstream_sent = Some(Instant::now());
    }

    /// Notes that the upstream's whole answer has been read now.
    pub(crate) fn mark_upstream_done(&mut self) {
        self.upstream_spent = self.upstream_sent.map(|sent| sent.elapsed());
    }

    /// The clock of the time the gateway added, once the upstream's
    /// answer has been read whole.
    pub(crate) fn added_clock(&self) -> Option<AddedClock> {
        Some(AddedClock {
            received: self.received,
            upstream_spent: self.upstream_spent?,
        })
    }

    /// Notes that the upstream's response head arrived now.
    pub(crate) fn mark_upstream_head(&mut self) {
        self.upstream_head_us = Some(self.received.elapsed().as_micros() as u64);
    }

    /// The model label for metrics: configured names only.
    pub(crate) fn model_label(&self) -> &str {
        match (&self.model, self.model_known) {
            (Some(model), true) => model,
            _ => "",
        }
    }

    /// Completes the decision as of now.
    pub(crate) fn complete(self, end: Ending) -> Decision {
        Decision {
            id: self.id,
            caller: self.caller,
            route: self.route,
            protocol: self.protocol,
            model: self.model,
            version: self.version,
            approval_seq: self.approval_seq,
            policy: self.policy,
            outcome: end.outcome,
            status: end.status,
            error_code: end.error_code,
            timings: Timings {
                received_unix_ms: self.received_unix_ms,
                upstream_head_us: self.upstream_head_us,
                complete_us: self.received.elapsed().as_micros() as u64,
            },
            request: self.request,
            response: end.response,
        }
    }
}
