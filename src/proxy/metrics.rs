//! The request path's metric families. Labels are bounded: route templates,
//! configured model names (unknown names become `""`) and outcomes.

use super::recorder::StreamDraft;
use crate::decision::{Decision, Outcome, Route, StreamEnd};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Latency buckets in seconds, fine-grained below a millisecond where the
/// gateway's own overhead lives.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Families recorded once per decision.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub(crate) backlog: super::backlog::BacklogMetrics,
    pub(crate) budget: super::budget::BudgetMetrics,
    pub(crate) rate: super::rate::RateMetrics,
    pub(crate) jwt: super::jwt::JwtMetrics,
    unlogged: IntCounter,
    subject_missing: IntCounterVec,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_head: HistogramVec,
    gateway_added: HistogramVec,
}

/// Buckets for the time the gateway adds: tens of microseconds when the
/// ledger's group commit is quick, milliseconds when fsync dominates.
const ADDED_BUCKETS: [f64; 15] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

impl ProxyMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "govgate_requests_total",
                "Requests by route, model, version (approved versions only, else empty) and outcome.",
            ),
            &["route", "model", "version", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "govgate_request_duration_seconds",
                "From request received to the answer ready for release, before recording.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let upstream_head = HistogramVec::new(
            HistogramOpts::new(
                "govgate_upstream_head_seconds",
                "From request received to the upstream's response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["model"],
        )?;
        let gateway_added = HistogramVec::new(
            HistogramOpts::new(
                "govgate_gateway_added_seconds",
                "Time the gateway added to a forwarded answer read whole (released, held or refused): from request received to the answer's release after the ledger's acknowledgement, less the time from sending upstream to the upstream's last byte.",
            )
            .buckets(ADDED_BUCKETS.to_vec()),
            &["route"],
        )?;
        let unlogged = IntCounter::new(
            "govgate_unlogged_answers_total",
            "Answers served although the ledger could not record their decision (ledger.on_failure = serve).",
        )?;
        let subject_missing = IntCounterVec::new(
            Opts::new(
                "govgate_subject_missing_total",
                "Requests to a model with a subject selector that named no usable subject (recorded without one), by model.",
            ),
            &["model"],
        )?;
        registry.register(Box::new(subject_missing.clone()))?;
        registry.register(Box::new(unlogged.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_head.clone()))?;
        registry.register(Box::new(gateway_added.clone()))?;
        Ok(Self {
            backlog: super::backlog::BacklogMetrics::register(registry)?,
            budget: super::budget::BudgetMetrics::register(registry)?,
            rate: super::rate::RateMetrics::register(registry)?,
            jwt: super::jwt::JwtMetrics::register(registry)?,
            unlogged,
            subject_missing,
            requests,
            duration,
            upstream_head,
            gateway_added,
        })
    }

    /// Counts an answer served without its ledger entry.
    pub fn count_unlogged(&self) {
        self.unlogged.inc();
    }

    /// Counts a request to `model` (a configured name) that named no usable
    /// subject although the model has a subject selector.
    pub(crate) fn count_subject_missing(&self, model: &str) {
        self.subject_missing.with_label_values(&[model]).inc();
    }

    /// Observes the time the gateway added to one forwarded answer.
    pub fn observe_gateway_added(&self, route: Route, added: std::time::Duration) {
        self.gateway_added
            .with_label_values(&[route.as_str()])
            .observe(added.as_secs_f64());
    }

    /// Counts one decision. `model_label` is the configured model name, or
    /// `""` when the request named no known model.
    pub fn observe(&self, decision: &Decision, model_label: &str) {
        // Only a version the registry resolved (it has an approval) is a
        // label: a requested but unknown version is client text.
        let version = match (&decision.version, decision.approval_seq) {
            (Some(version), Some(_)) if !model_label.is_empty() => version.as_str(),
            _ => "",
        };
        self.count(
            decision.route,
            model_label,
            version,
            decision.outcome,
            decision.timings.complete_us,
            decision.timings.upstream_head_us,
        );
    }

    /// Counts a streamed request once its stream has ended.
    pub(crate) fn observe_stream_end(&self, stream: &StreamDraft, end: &StreamEnd) {
        let version = match &stream.version {
            Some(version) if stream.version_label && !stream.model_label.is_empty() => {
                version.as_str()
            }
            _ => "",
        };
        self.count(
            stream.route,
            &stream.model_label,
            version,
            end.outcome,
            end.complete_us,
            stream.upstream_head_us,
        );
    }

    fn count(
        &self,
        route: Route,
        model_label: &str,
        version: &str,
        outcome: Outcome,
        complete_us: u64,
        upstream_head_us: Option<u64>,
    ) {
        let route = route.as_str();
        self.requests
            .with_label_values(&[route, model_label, version, outcome.as_str()])
            .inc();
        self.duration
            .with_label_values(&[route])
            .observe(complete_us as f64 / 1e6);
        if let Some(head_us) = upstream_head_us {
            self.upstream_head
                .with_label_values(&[model_label])
                .observe(head_us as f64 / 1e6);
        }
    }
}
