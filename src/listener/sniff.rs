//! Which HTTP version a plain-text connection speaks: HTTP/2 with prior
//! knowledge (h2c) opens with the client preface (RFC 9113 section 3.4),
//! which no HTTP/1.1 request line starts with; anything else is HTTP/1.1.
//! The bytes read to tell are kept and replayed to hyper.

use super::transport::Transport;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// The HTTP/2 client connection preface.
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spoken {
    Http1,
    Http2,
}

/// The bytes read while telling, replayed before the socket's own.
#[derive(Debug, Default)]
pub(super) struct Replay {
    bytes: [u8; PREFACE.len()],
    start: usize,
    end: usize,
}

impl Replay {
    /// Whether every byte was handed back.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Hands back as many bytes as fit in `buf`.
    pub(super) fn take_into(&mut self, buf: &mut tokio::io::ReadBuf<'_>) {
        let len = (self.end - self.start).min(buf.remaining());
        buf.put_slice(&self.bytes[self.start..self.start + len]);
        self.start += len;
    }
}

/// Tells from the bytes so far; `None` while they are still a beginning
/// of the preface.
pub(super) fn classify(bytes: &[u8]) -> Option<Spoken> {
    if !PREFACE.starts_with(bytes) {
        Some(Spoken::Http1)
    } else if bytes.len() == PREFACE.len() {
        Some(Spoken::Http2)
    } else {
        None
    }
}

/// Why a connection could not be told.
#[derive(Debug)]
pub(super) enum SniffError {
    /// Not enough bytes within the head's deadline.
    TimedOut,
    /// The socket failed.
    Io(std::io::Error),
}

/// Reads until the first bytes tell the version, within `timeout`. An
/// HTTP/1.1 request tells at its first or second byte. A connection
/// closed before telling is handed to HTTP/1.1 (hyper sees the close).
/// Cancel-safe only in that the bytes read are lost with the future.
pub(super) async fn sniff(
    stream: &mut Transport,
    timeout: Duration,
) -> Result<(Spoken, Replay), SniffError> {
    let mut replay = Replay::default();
    let telling = async {
        loop {
            let read = stream.read(&mut replay.bytes[replay.end..]).await?;
            if read == 0 {
                return Ok(Spoken::Http1);
            }
            replay.end += read;
            if let Some(spoken) = classify(&replay.bytes[..replay.end]) {
                return Ok(spoken);
            }
        }
    };
    match tokio::time::timeout(timeout, telling).await {
        Ok(Ok(spoken)) => Ok((spoken, replay)),
        Ok(Err(err)) => Err(SniffError::Io(err)),
        Err(_) => Err(SniffError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_whole_is_http2() {
        assert_eq!(classify(PREFACE), Some(Spoken::Http2));
    }

    #[test]
    fn a_beginning_of_the_preface_needs_more() {
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), None);
    }

    #[test]
    fn request_lines_are_http1() {
        assert_eq!(classify(b"G"), Some(Spoken::Http1));
        assert_eq!(classify(b"PO"), Some(Spoken::Http1));
        assert_eq!(classify(b"PUT / HTTP/1.1"), Some(Spoken::Http1));
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Some(Spoken::Http1));
    }
}
