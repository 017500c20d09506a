//! HTTP versions: `[server.http2]` (how both listeners serve HTTP/2) and a
//! version's `http` key (which HTTP version the gateway speaks to its
//! upstream).

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;
use std::time::Duration;

/// HTTP/2's smallest and largest frame payload (RFC 9113 section 4.2).
const FRAME_SIZE_RANGE: std::ops::RangeInclusive<u32> = 16_384..=16_777_215;
/// Largest flow-control window (RFC 9113 section 6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// `[server.http2]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp2 {
    #[serde(default)]
    max_concurrent_streams: Option<u32>,
    #[serde(default)]
    initial_stream_window_bytes: Option<u32>,
    #[serde(default)]
    initial_connection_window_bytes: Option<u32>,
    #[serde(default)]
    max_frame_bytes: Option<u32>,
    #[serde(default)]
    keep_alive_interval_ms: Option<u64>,
    #[serde(default)]
    keep_alive_timeout_ms: Option<u64>,
}

/// How the listeners serve HTTP/2 (h2 by ALPN over TLS, h2c with prior
/// knowledge in plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// Streams one client connection may have open at once; a stream
    /// beyond it is refused (`REFUSED_STREAM`).
    pub max_concurrent_streams: u32,
    /// Bytes a client may send on one stream before the gateway reads them.
    pub initial_stream_window: u32,
    /// Bytes a client may send on one connection, all streams together.
    pub initial_connection_window: u32,
    /// Largest frame payload the gateway accepts.
    pub max_frame_size: u32,
    /// Pause between two PINGs on a connection (`None`: no PINGs).
    pub keep_alive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
            max_frame_size: 16_384,
            keep_alive_interval: Some(Duration::from_secs(30)),
            keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

/// Checks `[server.http2]`; absent keys take [`Http2Settings::default`].
pub(super) fn check_http2(
    checker: &Checker<'_>,
    raw: Option<RawHttp2>,
) -> Result<Http2Settings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let default = Http2Settings::default();
    let key = |name: &str| format!("server.http2.{name}");
    let max_concurrent_streams = raw
        .max_concurrent_streams
        .unwrap_or(default.max_concurrent_streams);
    if max_concurrent_streams == 0 {
        return Err(checker.error(key("max_concurrent_streams"), "must be at least 1"));
    }
    let window = |name: &str, value: Option<u32>, default: u32| match value.unwrap_or(default) {
        value @ 65_535..=MAX_WINDOW => Ok(value),
        _ => Err(checker.error(key(name), "must be 65535 to 2147483647 (RFC 9113)")),
    };
    let initial_stream_window = window(
        "initial_stream_window_bytes",
        raw.initial_stream_window_bytes,
        default.initial_stream_window,
    )?;
    let initial_connection_window = window(
        "initial_connection_window_bytes",
        raw.initial_connection_window_bytes,
        default.initial_connection_window,
    )?;
    let max_frame_size = raw.max_frame_bytes.unwrap_or(default.max_frame_size);
    if !FRAME_SIZE_RANGE.contains(&max_frame_size) {
        return Err(checker.error(
            key("max_frame_bytes"),
            "must be 16384 to 16777215 (RFC 9113)",
        ));
    }
    let keep_alive_interval = match raw.keep_alive_interval_ms {
        None => default.keep_alive_interval,
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
    };
    let keep_alive_timeout = match raw.keep_alive_timeout_ms {
        None => default.keep_alive_timeout,
        Some(0) => return Err(checker.error(key("keep_alive_timeout_ms"), "must be at least 1")),
        Some(ms) => Duration::from_millis(ms),
    };
    Ok(Http2Settings {
        max_concurrent_streams,
        initial_stream_window,
        initial_connection_window,
        max_frame_size,
        keep_alive_interval,
        keep_alive_timeout,
    })
}

/// Which HTTP version the gateway speaks to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamHttp {
    /// HTTP/1.1 only (the default): over TLS, ALPN offers `http/1.1` alone.
    #[default]
    Http1,
    /// HTTP/2 only: over TLS, ALPN offers `h2` alone; in plain text, h2c
    /// with prior knowledge (RFC 9113 section 3.3).
    Http2,
    /// Over TLS, what ALPN settles (`h2` preferred, else `http/1.1`); in
    /// plain text, HTTP/1.1.
    Auto,
}

impl UpstreamHttp {
    /// Parses the `http` key's value.
    pub(super) fn parse(
        checker: &Checker<'_>,
        key: &str,
        text: &str,
    ) -> Result<UpstreamHttp, ConfigError> {
        match text {
            "http1" => Ok(Self::Http1),
            "http2" => Ok(Self::Http2),
            "auto" => Ok(Self::Auto),
            _ => Err(checker.error(
                key,
                format!("`{text}` is not one of `http1`, `http2`, `auto`"),
            )),
        }
    }

    /// The value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::Http2 => "http2",
            Self::Auto => "auto",
        }
    }
}
