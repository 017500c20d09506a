//! Drafts of decisions while a request is in flight, and the recorder that
//! completes them, counts them and hands them to the sink.

use super::backlog::{Backlog, Detached};
use super::error::ProxyError;
use super::metrics::ProxyMetrics;
use crate::config::OnLedgerFailure;
use crate::decision::{
    Ack, Capture, CutDigests, Decision, DecisionId, DecisionSink, Outcome, PolicyRecord, Protocol,
    RecordFuture, Route, SinkError, StreamEnd, Timings,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Completes decisions and submits them; cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    sink: Arc<dyn DecisionSink>,
    metrics: ProxyMetrics,
    on_failure: OnLedgerFailure,
    backlog: Backlog,
}

impl Recorder {
    /// A recorder writing to `sink`, counting in `metrics`, and applying
    /// `on_failure` when the sink cannot record.
    pub(crate) fn new(
        sink: Arc<dyn DecisionSink>,
        metrics: ProxyMetrics,
        on_failure: OnLedgerFailure,
        backlog: Backlog,
    ) -> Self {
        Self {
            sink,
            metrics,
            on_failure,
            backlog,
        }
    }

    /// Whether an answer whose decision cannot be recorded is withheld
    /// (`ledger.on_failure = refuse`, the default).
    pub(crate) fn refuses_unlogged(&self) -> bool {
        self.on_failure == OnLedgerFailure::Refuse
    }

    /// The request path's metric families.
    pub(crate) fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// The backlog of records written in the background.
    pub(crate) fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Counts the decision and submits it. The returned future resolves
    /// when the sink acknowledges it (see [`DecisionSink`]); with
    /// `on_failure = serve` a failure resolves `Ok` too, logged and counted.
    /// This is the one place that policy lives, for whole and streamed answers alike.
    pub(crate) fn submit(&self, decision: Decision, model_label: &str) -> RecordFuture {
        // A stream is counted once, when it ends, with how it ended.
        if decision.outcome != Outcome::Streaming {
            self.metrics.observe(&decision, model_label);
        }
        let id = decision.id;
        let record = self.sink.record(decision);
        self.apply_failure_policy(id, record)
    }

    /// Submits the end of a stream and counts the request, as
    /// [`Recorder::submit`] does for a decision.
    pub(crate) fn submit_end(&self, end: StreamEnd, stream: &StreamDraft) -> RecordFuture {
        self.metrics.observe_stream_end(stream, &end);
        let id = end.decision_id;
        let record = self.sink.record_end(end);
        self.apply_failure_policy(id, record)
    }

    /// Counts a stream that was cut and hands its end to the backlog.
    pub(crate) fn detach_end(&self, end: StreamEnd, stream: &StreamDraft) {
        self.metrics.observe_stream_end(stream, &end);
        self.detach(Detached::End(Box::new(end)));
    }

    /// Counts a decision and hands it to the backlog.
    pub(crate) fn detach_decision(&self, decision: Decision, model_label: &str) {
        self.metrics.observe(&decision, model_label);
        self.detach(Detached::Decision(Box::new(decision)));
    }

    /// Hands a record to the backlog: written in the background, retried
    /// while the ledger cannot take it, whatever the request does.
    pub(crate) fn detach(&self, record: Detached) {
        self.backlog.push(record);
    }

    fn apply_failure_policy(&self, id: DecisionId, record: RecordFuture) -> RecordFuture {
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

    /// [`Recorder::record`] for a request that was forwarded: if the
    /// ledger cannot take the decision now, the client gets 503 and the
    /// decision, as that refusal, goes to the backlog (the model was called;
    /// exactly one decision per request).
    pub(crate) async fn record_forwarded(
        &self,
        draft: Draft,
        end: Ending,
    ) -> Result<Ack, ProxyError> {
        let label = draft.model_label().to_owned();
        let route = draft.route;
        let added_clock = draft.added_clock();
        let decision = draft.complete(end);
        let copy = decision.clone();
        match self.submit(decision, &label).await {
            Ok(ack) => {
                if let Some(clock) = added_clock {
                    self.metrics.observe_gateway_added(route, clock.added());
                }
                Ok(ack)
            }
            Err(err) => {
                tracing::error!(decision_id = %copy.id, error = %err, "decision not recorded; answer withheld, the refusal is recorded once the ledger takes it");
                let err = sink_error(err);
                self.detach(Detached::Decision(Box::new(as_refusal(copy, &err))));
                Err(err)
            }
        }
    }
}

/// A decision rewritten as the refusal its client received instead.
pub(super) fn as_refusal(mut decision: Decision, err: &ProxyError) -> Decision {
    let body = bytes::Bytes::from(err.body_as(super::error::ErrorShape::of(decision.route)));
    decision.outcome = Outcome::Error;
    decision.status = err.status().as_u16();
    decision.error_code = Some(err.code());
    decision.response = Capture::of_complete(&body, body.len());
    decision
}

/// Status recorded for a request whose client left before any answer
/// (the convention of nginx's 499, "client closed request").
pub(crate) const CLIENT_CLOSED_STATUS: u16 = 499;

/// The draft of a request once it has been forwarded. The request future
/// can be dropped at any await (the client left); dropping this guard
/// before the draft was handed on records the decision anyway, as
/// `client_disconnected` with what is known, through the backlog.
pub(crate) struct Forwarded {
    draft: Option<Draft>,
    recorder: Recorder,
    abort: Option<crate::listener::ConnectionAbort>,
}

impl Forwarded {
    /// Guards `draft` from now on.
    pub(crate) fn new(
        draft: Draft,
        recorder: Recorder,
        abort: Option<crate::listener::ConnectionAbort>,
    ) -> Self {
        Self {
            draft: Some(draft),
            recorder,
            abort,
        }
    }

    /// [`Forwarded::take`], with the handle that resets the client
    /// connection (for a stream that may have to be cut).
    pub(crate) fn take_with_abort(mut self) -> (Draft, Option<crate::listener::ConnectionAbort>) {
        let abort = self.abort.take();
        (self.take(), abort)
    }

    /// The draft.
    pub(crate) fn draft(&mut self) -> &mut Draft {
        // INVARIANT: `draft` is `Some` until `take` consumes the guard.
        match &mut self.draft {
            Some(draft) => draft,
            None => unreachable!("a forwarded draft is present until taken"),
        }
    }

    /// Hands the draft on; from here its recording is the caller's job.
    pub(crate) fn take(mut self) -> Draft {
        // INVARIANT: as in `draft`.
        match self.draft.take() {
            Some(draft) => draft,
            None => unreachable!("a forwarded draft is present until taken"),
        }
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        if let Some(draft) = self.draft.take() {
            let label = draft.model_label().to_owned();
            let decision = draft.complete(Ending {
                outcome: Outcome::Error,
                status: CLIENT_CLOSED_STATUS,
                error_code: Some("client_disconnected"),
                response: Capture::default(),
            });
            self.recorder.detach_decision(decision, &label);
        }
    }
}

/// What the end of a stream needs of its request once the decision
/// (outcome `streaming`) is recorded.
#[derive(Debug, Clone)]
pub(crate) struct StreamDraft {
    /// The decision's id.
    pub id: DecisionId,
    /// Its route.
    pub route: Route,
    /// Its model, as recorded.
    pub model: Option<String>,
    /// Its version, as recorded.
    pub version: Option<String>,
    /// The metrics label of the model.
    pub model_label: String,
    /// Whether the version is a label (it was resolved and approved).
    pub version_label: bool,
    /// Until the upstream's head arrived.
    pub upstream_head_us: Option<u64>,
    received: Instant,
}

impl StreamDraft {
    /// The end of this stream as of now.
    pub(crate) fn end(
        &self,
        decision_seq: u64,
        outcome: Outcome,
        error_code: Option<&'static str>,
        released_bytes: u64,
        response: Capture,
    ) -> StreamEnd {
        StreamEnd {
            decision_id: self.id,
            decision_seq,
            model: self.model.clone(),
            version: self.version.clone(),
            outcome,
            error_code,
            released_bytes,
            complete_us: self.received.elapsed().as_micros() as u64,
            response,
        }
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
    /// Why the caller's claim is refused (recorded as `anonymous`).
    pub caller_refusal: Option<super::callers::Refusal>,
    /// The API key that named the caller, if one did.
    pub api_key: Option<std::sync::Arc<crate::config::ApiKey>>,
    /// How the caller was established.
    pub auth: crate::decision::CallerAuth,
    /// A verified token's claims for the policies.
    pub claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
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
    /// Request path as received, capped (set by ingress).
    pub path: String,
    /// Digests of members kept cut (set by ingress).
    pub cut: CutDigests,
    /// The request's data subject, hashed (set by ingress when the model
    /// has a subject selector).
    pub subject: Option<crate::decision::SubjectHash>,
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
            caller_refusal: None,
            api_key: None,
            auth: crate::decision::CallerAuth::None,
            claims: None,
            route,
            protocol: None,
            model: None,
            model_known: false,
            version: None,
            approval_seq: None,
            policy: None,
            request: Capture::default(),
            path: String::new(),
            cut: CutDigests::default(),
            subject: None,
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

    /// The decision of a streamed answer (outcome `streaming`, recorded
    /// before the first byte leaves) and what its end will need.
    pub(crate) fn begin_stream(self, status: u16) -> (Decision, StreamDraft) {
        let stream = StreamDraft {
            id: self.id,
            route: self.route,
            model: self.model.clone(),
            version: self.version.clone(),
            model_label: self.model_label().to_owned(),
            version_label: self.approval_seq.is_some(),
            upstream_head_us: self.upstream_head_us,
            received: self.received,
        };
        let decision = self.complete(Ending {
            outcome: Outcome::Streaming,
            status,
            error_code: None,
            response: Capture::default(),
        });
        (decision, stream)
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
            path: self.path,
            cut: self.cut,
            subject: self.subject,
            auth: self.auth,
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
