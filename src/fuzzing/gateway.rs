//! An in-process gateway for the request-path targets: the real public
//! router (`proxy::router`) over a sink that acknowledges every record at
//! once, on a current-thread runtime, called without a socket.

use crate::config::{Config, ModelConfig};
use crate::decision::{Ack, Decision, DecisionSink, RecordFuture, StreamEnd};
use crate::proxy::{
    ModelServing, ProxyMetrics, ProxyState, Refusal, ServableVersion, Serving, ServingTable,
};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Keeps what it is given and acknowledges at once.
#[derive(Default)]
struct MemorySink {
    seq: AtomicU64,
    decisions: Mutex<Vec<Decision>>,
    ends: Mutex<Vec<StreamEnd>>,
}

impl MemorySink {
    fn ack(&self) -> RecordFuture {
        let ack = Ack {
            seq: Some(self.seq.fetch_add(1, Ordering::Relaxed)),
            time: Some(SystemTime::now()),
        };
        Box::pin(std::future::ready(Ok(ack)))
    }
}

impl DecisionSink for MemorySink {
    fn record(&self, decision: Decision) -> RecordFuture {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(decision);
        self.ack()
    }

    fn record_end(&self, end: StreamEnd) -> RecordFuture {
        self.ends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(end);
        self.ack()
    }
}

/// What one request got.
pub(super) struct Answer {
    /// The response head.
    pub(super) parts: http::response::Parts,
    /// The whole response body; `None` if it broke off.
    pub(super) body: Option<Bytes>,
    /// The decisions recorded while the request ran.
    pub(super) decisions: Vec<Decision>,
    /// The stream ends recorded while the request ran.
    pub(super) ends: Vec<StreamEnd>,
}

/// The public router of one configuration, and its runtime.
pub(super) struct Gateway {
    runtime: Runtime,
    router: Router,
    sink: Arc<MemorySink>,
}

impl Gateway {
    /// A gateway on `runtime` serving `config`'s models as [`serving_table`]
    /// says.
    ///
    /// # Panics
    /// If the metrics cannot be registered (the target's setup is wrong).
    pub(super) fn new(runtime: Runtime, config: &Config) -> Self {
        let sink = Arc::new(MemorySink::default());
        let metrics = match ProxyMetrics::register(&prometheus::Registry::new()) {
            Ok(metrics) => metrics,
            Err(err) => panic!("proxy metrics: {err}"),
        };
        let serving = Arc::new(Serving::new(serving_table(&config.models)));
        // The runtime must be current for anything the state spawns.
        let state = {
            let _guard = runtime.enter();
            ProxyState::new(config, sink.clone(), metrics, serving, None, None, None)
        };
        Self {
            router: crate::proxy::router(state),
            runtime,
            sink,
        }
    }

    /// Sends one request through the router, as from 127.0.0.1, and reads
    /// the whole answer.
    pub(super) fn send(&self, mut request: Request<Body>) -> Answer {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = self.router.clone();
        let (parts, body) = self.runtime.block_on(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = body.collect().await.ok().map(|c| c.to_bytes());
            (parts, body)
        });
        Answer {
            parts,
            body,
            decisions: take(&self.sink.decisions),
            ends: take(&self.sink.ends),
        }
    }
}

fn take<T>(list: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *list.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A current-thread runtime with I/O and timers.
///
/// # Panics
/// If the runtime cannot be built.
pub(super) fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("tokio runtime: {err}"),
    }
}

/// Every declared version is approved (seq 1) and the default version is
/// active, except by label: a version called `proposed` is not approved,
/// one called `revoked` is revoked, and a model whose name starts with
/// `idle` has no active version.
fn serving_table(models: &[ModelConfig]) -> ServingTable {
    let models = models
        .iter()
        .map(|model| {
            let versions = model
                .versions
                .iter()
                .map(|declared| {
                    let state = match declared.version.as_str() {
                        "proposed" => Err(Refusal::NotApproved {
                            state: "proposed".to_owned(),
                        }),
                        "revoked" => Err(Refusal::Revoked),
                        _ => Ok(Arc::new(ServableVersion {
                            version: declared.version.clone(),
                            upstream: declared.upstream.clone(),
                            upstream_model: declared.upstream_model.clone(),
                            credential: declared.credential.clone(),
                            http: declared.http,
                            approval_seq: Some(1),
                            risk_class: "limited",
                        })),
                    };
                    (declared.version.clone(), state)
                })
                .collect();
            let active = (!model.name.starts_with("idle")).then(|| model.default_version.clone());
            (
                model.name.clone(),
                ModelServing {
                    versions,
                    active,
                    revoked_active: None,
                },
            )
        })
        .collect();
    ServingTable { models }
}
