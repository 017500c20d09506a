//! The listeners' metric families: open connections, the cap in force, and
//! what the listeners refused or closed on their own.

use super::answers::Refusal;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Families shared by both listeners (label `listener`: `public`, `admin`).
#[derive(Clone)]
pub struct ListenerMetrics {
    open: IntGaugeVec,
    cap: IntGaugeVec,
    refused: IntCounterVec,
    tls_reloads: IntCounterVec,
}

impl ListenerMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let open = IntGaugeVec::new(
            Opts::new(
                "govgate_connections_open",
                "Client connections being served, by listener.",
            ),
            &["listener"],
        )?;
        let cap = IntGaugeVec::new(
            Opts::new(
                "govgate_connections_max",
                "The cap on open client connections in force, by listener (after fitting to the descriptor limit).",
            ),
            &["listener"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "govgate_connections_refused_total",
                "Connections the listener answered or closed itself, by listener and reason: overloaded (at the cap), headers_too_large, uri_too_long, malformed_request, header_timeout (head not received in time), tls_handshake (the TLS handshake failed or took longer than the header-read timeout).",
            ),
            &["listener", "reason"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "govgate_tls_reloads_total",
                "Reloads of a listener's TLS certificate (files changed, or SIGHUP), by listener and result: ok, or failed (the certificate in use stays).",
            ),
            &["listener", "result"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(cap.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        Ok(Self {
            open,
            cap,
            refused,
            tls_reloads,
        })
    }

    /// Shows `listener`'s reload counters at 0 before any reload, so a
    /// rate or an alert on them has a series from the start.
    pub fn expose_tls_reloads(&self, listener: &str) {
        for result in ["ok", "failed"] {
            self.tls_reloads.with_label_values(&[listener, result]);
        }
    }

    /// Counts one reload of `listener`'s certificate.
    pub fn tls_reloaded(&self, listener: &str, ok: bool) {
        self.tls_reloads
            .with_label_values(&[listener, if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// The handles of one listener, labels resolved once.
    pub(super) fn listener(&self, name: &str, cap: usize) -> ListenerCounters {
        self.cap
            .with_label_values(&[name])
            .set(i64::try_from(cap).unwrap_or(i64::MAX));
        let refused = |reason: &str| self.refused.with_label_values(&[name, reason]);
        ListenerCounters {
            open: self.open.with_label_values(&[name]),
            overloaded: refused(Refusal::Overloaded.code()),
            headers_too_large: refused(Refusal::HeadersTooLarge.code()),
            uri_too_long: refused(Refusal::UriTooLong.code()),
            malformed_request: refused(Refusal::MalformedRequest.code()),
            header_timeout: refused("header_timeout"),
            tls_handshake: refused("tls_handshake"),
        }
    }
}

/// Why a connection was refused or closed by the listener.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reason {
    /// An answer of the listener's own.
    Refusal(Refusal),
    /// No complete head within the header-read (or keep-alive) timeout.
    HeaderTimeout,
    /// The TLS handshake failed or did not finish in time.
    TlsHandshake,
}

/// One listener's metric handles.
#[derive(Clone)]
pub(super) struct ListenerCounters {
    pub(super) open: IntGauge,
    overloaded: IntCounter,
    headers_too_large: IntCounter,
    uri_too_long: IntCounter,
    malformed_request: IntCounter,
    header_timeout: IntCounter,
    tls_handshake: IntCounter,
}

impl ListenerCounters {
    pub(super) fn refused(&self, reason: Reason) {
        match reason {
            Reason::Refusal(Refusal::Overloaded) => &self.overloaded,
            Reason::Refusal(Refusal::HeadersTooLarge) => &self.headers_too_large,
            Reason::Refusal(Refusal::UriTooLong) => &self.uri_too_long,
            Reason::Refusal(Refusal::MalformedRequest) => &self.malformed_request,
            Reason::HeaderTimeout => &self.header_timeout,
            Reason::TlsHandshake => &self.tls_handshake,
        }
        .inc();
    }
}
