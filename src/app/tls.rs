//! TLS on the listeners: the certificate files as a listener's source,
//! and the task that reloads them when they change or on SIGHUP.

use crate::config::TlsFiles;
use crate::listener::{CertificateSource, ClientAuth, ListenerMetrics, ListenerTls};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl CertificateSource for TlsFiles {
    fn read(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let identity = TlsFiles::read(self).map_err(|err| err.to_string())?;
        Ok((identity.chain, identity.key))
    }

    fn stamp(&self) -> Option<u64> {
        TlsFiles::stamp(self)
    }

    fn describe(&self) -> String {
        TlsFiles::describe(self)
    }
}

/// One listener's TLS, built from its files.
pub(super) fn listener_tls(
    name: &'static str,
    files: Option<&TlsFiles>,
    client_auth: Option<&ClientAuth>,
) -> Result<Option<Reloading>, super::AppError> {
    let Some(files) = files else {
        return Ok(None);
    };
    let tls = ListenerTls::new(Arc::new(files.clone()), client_auth).map_err(|source| {
        super::AppError::Tls {
            listener: name,
            source,
        }
    })?;
    Ok(Some(Reloading {
        name,
        tls: Arc::new(tls),
        check_every: files.reload_check,
    }))
}

/// A listener's TLS and how often its files are looked at.
#[derive(Clone)]
pub(super) struct Reloading {
    pub(super) name: &'static str,
    pub(super) tls: Arc<ListenerTls>,
    check_every: Option<Duration>,
}

impl Reloading {
    fn reload(&self, why: &str, metrics: &ListenerMetrics) {
        let reloaded = self.tls.reload();
        metrics.tls_reloaded(self.name, reloaded.is_ok());
        match reloaded {
            Ok(()) => tracing::info!(listener = self.name, why, "TLS certificate reloaded"),
            Err(err) => tracing::error!(
                listener = self.name,
                why,
                source = %self.tls.describe(),
                error = %err,
                "TLS certificate not reloaded; the current one stays"
            ),
        }
    }
}

/// Reloads each listener's certificate when its files change (looked at
/// every `reload_check_secs`) and on every SIGHUP, until `stop`.
pub(super) async fn reload_certificates(
    listeners: Vec<Reloading>,
    metrics: ListenerMetrics,
    stop: impl Future<Output = ()> + Send,
) {
    if listeners.is_empty() {
        return;
    }
    let mut stop = std::pin::pin!(stop);
    #[cfg(unix)]
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP; TLS certificates reload only when their files change");
            None
        }
    };
    // The shortest interval any listener asks for; each listener is looked
    // at no more often than that, which is cheap (two stat calls).
    let tick = listeners
        .iter()
        .filter_map(|listener| listener.check_every)
        .min();
    let mut ticks = tokio::time::interval(tick.unwrap_or(Duration::from_secs(3600)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hangups.as_mut() {
                Some(hangups) => hangups.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            () = &mut stop => return,
            Some(()) = hangup => {
                for listener in &listeners {
                    listener.reload("SIGHUP", &metrics);
                }
            }
            _ = ticks.tick(), if tick.is_some() => {
                for listener in listeners.iter().filter(|l| l.check_every.is_some()) {
                    if listener.tls.changed() {
                        listener.reload("files changed", &metrics);
                    }
                }
            }
        }
    }
}
