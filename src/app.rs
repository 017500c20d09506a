//! Wiring only: builds the parts from a checked [`Config`], runs the public
//! and admin listeners, and shuts down in order (stop accepting, drain
//! in-flight requests within the grace period, flush the decision log).

use crate::config::Config;
use crate::ledger::{Journal, JournalError, JournalWriter};
use crate::metrics::Metrics;
use crate::proxy::{self, ProxyMetrics, ProxyState};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Decisions that may wait for the journal writer before requests get 503.
const DECISION_QUEUE_LEN: usize = 16 * 1024;

/// Errors building or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        /// `public` or `admin`.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The decision journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Metric families could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A listener failed while serving.
    #[error("serving {which}: {source}")]
    Serve {
        /// `public` or `admin`.
        which: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// A built gateway, ready to serve.
pub struct App {
    public: Router,
    admin: Router,
    journal: JournalWriter,
    shutdown_grace: Duration,
}

impl App {
    /// Builds every part from the config (opens the decision journal in the
    /// data directory). Call from within the async runtime.
    pub fn build(config: &Config) -> Result<App, AppError> {
        let metrics = Metrics::new();
        let proxy_metrics = ProxyMetrics::register(metrics.registry())?;
        let (journal, writer) = Journal::open(&config.server.data_dir, DECISION_QUEUE_LEN)?;
        let state = ProxyState::new(config, Arc::new(journal), proxy_metrics);
        Ok(App {
            public: proxy::router(state),
            admin: crate::admin::router(metrics),
            journal: writer,
            shutdown_grace: config.timeouts.shutdown_grace,
        })
    }

    /// Serves on already-bound listeners until `shutdown` resolves, then
    /// drains (at most the grace period) and flushes the decision journal.
    pub async fn run(
        self,
        public: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Either a `true` or a dropped sender means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let public_server = axum::serve(
            public,
            self.public
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()));
        let admin_server = axum::serve(admin, self.admin).with_graceful_shutdown(stopped(stop_rx));
        let mut public_task = tokio::spawn(async move { public_server.await });
        let mut admin_task = tokio::spawn(async move { admin_server.await });

        let early_exit = tokio::select! {
            () = shutdown => None,
            result = &mut public_task => Some(("public", result)),
            result = &mut admin_task => Some(("admin", result)),
        };
        let _ = stop_tx.send(true);
        if let Some((which, result)) = early_exit {
            return match result {
                Ok(Err(source)) => Err(AppError::Serve { which, source }),
                _ => Err(AppError::Serve {
                    which,
                    source: std::io::Error::other("listener task ended unexpectedly"),
                }),
            };
        }
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: draining in-flight requests");
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            let _ = public_task.await;
            let _ = admin_task.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; remaining requests are cut");
        }
        self.journal.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds a listener, naming which one failed.
pub async fn bind(which: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            which,
            addr,
            source,
        })
}
