//! The request path: axum ingress for the four protocols, the pooled
//! upstream client, and the recording of one decision per request.
//!
//! Uses `decision` and `config` values only; it never names the store or
//! the admin API. Decisions leave through a [`DecisionSink`].

mod backlog;
mod bodiless;
mod body;
mod callers;
pub use callers::API_KEY_PREFIX;
mod budget;
mod error;
mod forward;
mod grpc;
mod headers;
mod ingress;
pub mod jwks;
pub mod jwt;
mod metrics;
mod oversight;
mod path;
mod poll;
mod rate;
mod recorder;
pub mod responses;
mod senders;
mod serving;
mod stream;
mod subject;
pub(crate) mod upstream;

pub use backlog::Backlog;
pub use error::{ProxyError, ServedModels};
pub use headers::{
    DECISION_ID_HEADER, MODEL_VERSION_HEADER, RECEIPT_HEADER, REVIEW_ID_HEADER, REVIEW_STATE_HEADER,
};
pub use metrics::ProxyMetrics;
pub use oversight::Oversight;
pub use poll::routes as poll_routes;
pub use serving::{ModelServing, Refusal, ServableVersion, Serving, ServingTable};

use crate::config::{Config, Limits, ModelConfig, Timeouts};
use crate::decision::DecisionSink;
use axum::Router;
use http::HeaderName;
use recorder::Recorder;
use std::sync::Arc;
use upstream::UpstreamClient;

/// Everything a request handler needs; shared by all requests.
#[derive(Clone)]
pub struct ProxyState {
    inner: Arc<Shared>,
}

/// The immutable part of [`ProxyState`], behind one `Arc`.
pub struct Shared {
    pub(crate) models: Vec<ModelConfig>,
    pub(crate) limits: Limits,
    pub(crate) timeouts: Timeouts,
    pub(crate) caller_header: HeaderName,
    pub(crate) require_caller: bool,
    /// Whose caller header is believed (`[auth]`).
    pub(crate) auth: crate::config::AuthConfig,
    /// JWT bearer tokens (`[auth.jwt]`).
    pub(crate) jwt: Option<jwt::JwtAuth>,
    /// The fetcher of `auth.jwt.jwks_url`, until the app takes it to run.
    jwks_fetcher: std::sync::Mutex<Option<jwks::JwksFetcher>>,
    pub(crate) client: UpstreamClient,
    pub(crate) recorder: Recorder,
    pub(crate) budget: Arc<budget::BodyBudget>,
    pub(crate) serving: Arc<Serving>,
    pub(crate) oversight: Option<Oversight>,
    pub(crate) kpi: Option<crate::kpi::KpiRecorder>,
    /// Requests per caller and model (`[rate_limit]`).
    pub(crate) rate: rate::RateLimiter,
    /// The key of subject hashes, when a model has a subject selector.
    pub(crate) subject_key: Option<crate::decision::SubjectKey>,
    /// Which model version created each Responses API response id.
    pub(crate) responses: responses::ResponseIndex,
    /// What `/v2/health/ready` asks; ready when unset.
    pub(crate) readiness: std::sync::OnceLock<crate::decision::Readiness>,
}

impl std::ops::Deref for ProxyState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.inner
    }
}

impl ProxyState {
    /// Builds the request path's shared state from the checked config;
    /// versions are routed as `serving` says at the time of each request.
    pub fn new(
        config: &Config,
        sink: Arc<dyn DecisionSink>,
        metrics: ProxyMetrics,
        serving: Arc<Serving>,
        oversight: Option<Oversight>,
        kpi: Option<crate::kpi::KpiRecorder>,
        subject_key: Option<crate::decision::SubjectKey>,
    ) -> Self {
        let client = UpstreamClient::new(
            upstream::PoolSettings {
                connect_timeout: config.timeouts.connect,
                first_byte_timeout: config.timeouts.first_byte,
                idle_timeout: config.timeouts.upstream_pool_idle,
                max_idle_per_host: config.limits.upstream_pool_max_idle_per_host,
            },
            &config.upstream_tls.extra_roots,
        );
        let (jwt, jwks_fetcher) = match &config.auth.jwt {
            Some(jwt) => {
                let (auth, fetcher) = jwt::JwtAuth::with_metrics(jwt, metrics.jwt.clone());
                (Some(auth), fetcher)
            }
            None => (None, None),
        };
        Self {
            inner: Arc::new(Shared {
                jwt,
                jwks_fetcher: std::sync::Mutex::new(jwks_fetcher),
                models: config.models.clone(),
                limits: config.limits.clone(),
                timeouts: config.timeouts.clone(),
                caller_header: config.server.caller_header.clone(),
                require_caller: config.server.require_caller,
                auth: config.auth.clone(),
                client,
                budget: budget::BodyBudget::new(
                    config.limits.max_buffered_total_bytes,
                    &metrics.budget,
                ),
                recorder: Recorder::new(
                    sink.clone(),
                    metrics.clone(),
                    config.ledger.on_failure,
                    Backlog::new(sink, metrics.backlog.clone()),
                ),
                serving,
                oversight,
                kpi,
                rate: rate::RateLimiter::new(
                    &config.rate_limits,
                    &config.models,
                    metrics.rate.clone(),
                ),
                subject_key,
                responses: responses::ResponseIndex::new(responses::MAX_RESPONSE_IDS),
                readiness: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The records written in the background (drained at shutdown).
    pub fn backlog(&self) -> Backlog {
        self.recorder.backlog().clone()
    }

    /// The task that keeps `auth.jwt.jwks_url`'s key set, once: the app
    /// runs it until shutdown and waits for it.
    pub fn take_jwks_fetcher(&self) -> Option<jwks::JwksFetcher> {
        self.jwks_fetcher.lock().ok()?.take()
    }

    /// Whether decisions can be recorded now (always, without a readiness check).
    pub(crate) fn ready(&self) -> bool {
        self.readiness.get().is_none_or(|check| check().is_ok())
    }

    /// Makes `/v2/health/ready` answer 503 while `readiness` says the
    /// decisions cannot be recorded. Only the first call counts.
    pub fn set_readiness(&self, readiness: crate::decision::Readiness) {
        let _ = self.inner.readiness.set(readiness);
    }

    fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|model| model.name == name)
    }
}

pub use senders::with_senders;

/// The public router: proxy routes plus the gateway's own health endpoints.
pub fn router(state: ProxyState) -> Router {
    ingress::routes(state)
}
