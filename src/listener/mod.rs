//! The HTTP/1.1 and HTTP/2 listeners: our own accept loop on hyper, used for both the
//! public and the admin listener, with the edges `axum::serve` leaves open.
//!
//! - A head must arrive within `timeouts.header_read_ms` (a new
//!   connection: from its start; a kept-alive one: from the first byte of
//!   its next request, after at most `timeouts.keep_alive_idle_ms` of
//!   waiting), else the connection is closed: no slowloris holds a slot.
//! - At most `limits.*_max_connections` connections are served at once,
//!   never more than the open-file limit allows ([`fit_to_descriptor_limit`]).
//!   One more is answered `503 overloaded` with `Retry-After` and closed,
//!   not left hanging; when even accepting fails for lack of descriptors,
//!   the listener answers with a descriptor it kept in reserve and backs
//!   off instead of spinning.
//! - A head larger than `limits.max_header_bytes`, with more than
//!   `limits.max_headers` fields, or that does not parse, gets the
//!   documented JSON error instead of hyper's empty answer.
//! - With `server.half_close`, a client that half-closes its socket after
//!   its request still gets the answer (without, that ends the request, as
//!   a client that left: hyper cannot tell them apart).
//! - With [`Settings::tls`], each connection first shakes hands (TLS 1.2
//!   or 1.3, ALPN `h2` or `http/1.1`) within `timeouts.header_read_ms`; the
//!   certificate can be reloaded while serving ([`ListenerTls::reload`]).
//! - HTTP/2: over TLS when ALPN settles on `h2`; in plain text when the
//!   connection opens with the HTTP/2 preface (h2c with prior knowledge),
//!   else HTTP/1.1 on the same port. [`Settings::http2`] sets the streams
//!   and windows. The head limits above are HTTP/1.1's; on HTTP/2 the
//!   header list is bounded by `limits.max_header_bytes` and refused by
//!   hyper's own means.
//! - Every request carries `ConnectInfo<SocketAddr>` and the connection's
//!   [`ConnectionAbort`] in its extensions.
//!
//! Every connection task is owned by the listener; on shutdown the
//! listener stops accepting, lets each connection finish its request in
//! flight, and waits for them all (the caller bounds that wait).

mod abort;
mod accept;
mod answers;
mod conn;
mod descriptors;
mod io;
mod metrics;
mod service;
mod sniff;
mod timer;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

pub use abort::ConnectionAbort;
pub use accept::serve;
pub use descriptors::{Caps, fit_to_descriptor_limit};
pub use metrics::ListenerMetrics;
pub use tls::{CertificateSource, ClientAuth, ListenerTls, TlsError};

use answers::Answers;
use metrics::ListenerCounters;
use std::sync::Arc;
use std::time::Duration;

/// The certificate a client presented and the listener verified (mutual
/// TLS), in the extensions of each request on that connection: the leaf,
/// DER.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub Arc<rustls_pki_types::CertificateDer<'static>>);

/// How one listener serves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `public` or `admin`: the metric label and the log field.
    pub name: &'static str,
    /// Connections served at once; one more is answered 503 `overloaded`.
    pub max_connections: usize,
    /// Longest time to receive a request head, from its first byte (or the
    /// connection's start).
    pub header_read_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection.
    pub keep_alive_idle: Duration,
    /// Largest request head (request line and header fields), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in a request head.
    pub max_headers: usize,
    /// Whether a client's half-close (EOF after its request) lets the
    /// request finish and the answer go out; if not, it ends the request
    /// like a client that left (the two look the same until a write).
    pub half_close: bool,
    /// TLS: `None` serves plain HTTP.
    pub tls: Option<Arc<ListenerTls>>,
    /// How HTTP/2 connections are served.
    pub http2: Http2,
}

/// How a listener serves HTTP/2 connections (`[server.http2]`).
#[derive(Debug, Clone, Copy)]
pub struct Http2 {
    /// Streams one connection may have open at once (SETTINGS).
    pub max_concurrent_streams: u32,
    /// Flow-control window of each stream, in bytes.
    pub initial_stream_window: u32,
    /// Flow-control window of the connection, in bytes.
    pub initial_connection_window: u32,
    /// Largest frame payload accepted, in bytes.
    pub max_frame_size: u32,
    /// Pause between two PINGs (`None`: none).
    pub keep_alive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection closes.
    pub keep_alive_timeout: Duration,
}

/// Bytes one client connection may buffer: a whole head of the largest
/// size allowed plus a little, at least 64 KiB.
fn connection_buffer(max_header_bytes: usize) -> usize {
    max_header_bytes.max(48 * 1024) + 16 * 1024
}

/// What every connection of one listener shares.
struct Shared {
    settings: Settings,
    answers: Answers,
    metrics: ListenerCounters,
    /// hyper's HTTP/1.1 settings; each connection adds its own timer.
    http1: hyper::server::conn::http1::Builder,
    /// hyper's HTTP/2 settings.
    http2: hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
}

impl Shared {
    fn new(settings: Settings, metrics: &ListenerMetrics) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .half_close(settings.half_close)
            .keep_alive(true)
            // Up to 100 the parser's field array stays on the stack.
            .max_headers(settings.max_headers)
            .max_header_size(settings.max_header_bytes)
            // What one connection buffers, read ahead and queued to write
            // (hyper's default is about 400 KiB): room for a whole head,
            // and little of an answer a slow client has not taken yet.
            .max_buf_size(connection_buffer(settings.max_header_bytes))
            .header_read_timeout(settings.header_read_timeout);
        let h2 = settings.http2;
        let mut http2 =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        http2
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(h2.max_concurrent_streams)
            .initial_stream_window_size(h2.initial_stream_window)
            .initial_connection_window_size(h2.initial_connection_window)
            .max_frame_size(h2.max_frame_size)
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            // What one stream queues to write before its answer body waits.
            .max_send_buf_size(connection_buffer(settings.max_header_bytes))
            .keep_alive_interval(h2.keep_alive_interval)
            .keep_alive_timeout(h2.keep_alive_timeout);
        Self {
            answers: Answers::new(settings.max_header_bytes, settings.max_headers),
            metrics: metrics.listener(settings.name, settings.max_connections),
            settings,
            http1,
            http2,
        }
    }
}
