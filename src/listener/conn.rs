//! One accepted connection, served by hyper until it closes or the
//! listener shuts down.

use super::Shared;
use super::abort::ConnectionAbort;
use super::io::ConnIo;
use super::metrics::Reason;
use super::service::ConnService;
use super::sniff::{Replay, SniffError, Spoken, sniff};
use super::timer::{ConnState, HeadTimer};
use super::transport::Transport;
use axum::Router;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Serves one connection. When `stop` turns true (or its sender is gone)
/// the connection finishes the request in flight and closes.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Small answers and stream chunks leave at once, not after an ACK.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let _open = OpenGuard::new(&shared.metrics.open);
    let mut stream = match &shared.settings.tls {
        None => Transport::Plain(stream),
        Some(tls) => {
            // The head's deadline covers the handshake too: a client that
            // never finishes it holds a slot no longer than a slow head.
            let handshake = tls.accept(stream, shared.settings.header_read_timeout);
            let shaken = tokio::select! {
                shaken = handshake => shaken,
                () = stopped(&mut stop) => return,
            };
            match shaken {
                Ok(tls_stream) => Transport::Tls(Box::new(tls_stream)),
                Err(err) => {
                    shared.metrics.refused(Reason::TlsHandshake);
                    tracing::debug!(error = %err, "closed: TLS handshake failed");
                    return;
                }
            }
        }
    };
    let client_certificate = match &stream {
        Transport::Tls(tls) => tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(|leaf| super::ClientCertificate(Arc::new(leaf.clone().into_owned()))),
        Transport::Plain(_) => None,
    };
    let (spoken, replay) = match &stream {
        // Over TLS, ALPN said it.
        Transport::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
            (Spoken::Http2, Replay::default())
        }
        Transport::Tls(_) => (Spoken::Http1, Replay::default()),
        Transport::Plain(_) => {
            let telling = sniff(&mut stream, shared.settings.header_read_timeout);
            let told = tokio::select! {
                told = telling => told,
                () = stopped(&mut stop) => return,
            };
            match told {
                Ok(told) => told,
                Err(SniffError::TimedOut) => {
                    shared.metrics.refused(Reason::HeaderTimeout);
                    tracing::debug!("closed: no complete request head in time");
                    return;
                }
                Err(SniffError::Io(err)) => {
                    tracing::debug!(error = %err, "connection ended before its first request");
                    return;
                }
            }
        }
    };
    let state = Arc::new(ConnState::default());
    let abort = ConnectionAbort::new();
    let io = TokioIo::new(ConnIo::new(
        stream,
        spoken,
        replay,
        state.clone(),
        abort.clone(),
        shared.clone(),
    ));
    let service = ConnService::new(
        router,
        peer,
        spoken,
        abort,
        state.clone(),
        client_certificate,
    );
    let served = match spoken {
        Spoken::Http1 => {
            let mut http1 = shared.http1.clone();
            http1.timer(HeadTimer::new(
                state,
                shared.settings.header_read_timeout,
                shared.settings.keep_alive_idle,
            ));
            let connection = http1.serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => served,
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }
        Spoken::Http2 => {
            // Streams are served concurrently; a graceful shutdown sends
            // GOAWAY and lets the streams in flight finish. A connection
            // without a stream for `keep_alive_idle` is closed the same
            // way, as an idle HTTP/1.1 one is: idle clients hold no slot.
            let connection = shared.http2.serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => served,
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
                () = state.idle_for(shared.settings.keep_alive_idle) => {
                    tracing::debug!("closing an idle HTTP/2 connection");
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }
    };
    match served {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            shared.metrics.refused(Reason::HeaderTimeout);
            tracing::debug!("closed: no complete request head in time");
        }
        // Resets, broken pipes, heads that do not parse (answered already):
        // the client's doing, nothing to act on.
        Err(err) => tracing::debug!(error = %err, "connection ended with an error"),
    }
}

/// Resolves once `stop` turns true or its sender is gone. Cancel-safe.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// Counts the connection open until it is dropped (also when its task is
/// aborted at the end of the shutdown grace).
struct OpenGuard(prometheus::IntGauge);

impl OpenGuard {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
