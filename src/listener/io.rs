//! A client connection's socket as hyper sees it: counts reads for the
//! head timer, replaces hyper's empty answers to unparsable heads with the
//! documented JSON, and resets the connection once it is aborted.

use super::abort::ConnectionAbort;
use super::answers::Refusal;
use super::sniff::{Replay, Spoken};
use super::timer::ConnState;
use super::transport::Transport;
use super::{Shared, metrics::Reason};
use bytes::Bytes;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The socket of one accepted connection.
pub(super) struct ConnIo {
    stream: Transport,
    state: Arc<ConnState>,
    abort: ConnectionAbort,
    shared: Arc<Shared>,
    /// Our answer in place of hyper's, once hyper started writing one.
    replacement: Option<Replacement>,
    /// Bytes read before hyper took over (to tell the HTTP version).
    replay: Replay,
    /// HTTP/1.1 (hyper's own answers to bad heads are replaced) or HTTP/2
    /// (whose frames are never looked into: a write may start inside one).
    spoken: Spoken,
}

/// The JSON answer written instead of hyper's, and how much of it is out.
struct Replacement {
    bytes: Bytes,
    written: usize,
}

impl ConnIo {
    pub(super) fn new(
        stream: Transport,
        spoken: Spoken,
        replay: Replay,
        state: Arc<ConnState>,
        abort: ConnectionAbort,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            stream,
            state,
            abort,
            shared,
            replacement: None,
            replay,
            spoken,
        }
    }

    /// Whether `buf` (the start of a write) is hyper's own answer to a
    /// head it could not parse, which only happens outside an exchange.
    /// Starts the replacement if so.
    fn replaces(&mut self, buf: &[u8]) -> bool {
        if self.replacement.is_some() {
            return true;
        }
        if self.spoken == Spoken::Http2 || self.state.answering() {
            return false;
        }
        let Some(refusal) = Refusal::of_hyper_answer(buf) else {
            return false;
        };
        self.shared.metrics.refused(Reason::Refusal(refusal));
        tracing::debug!(code = refusal.code(), "request head refused");
        self.replacement = Some(Replacement {
            bytes: self.shared.answers.get(refusal),
            written: 0,
        });
        true
    }

    /// Writes our answer; then reports hyper's `len` bytes as written, so
    /// hyper's own answer is swallowed whole.
    fn poll_replacement(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if let Some(replacement) = &mut self.replacement {
            while replacement.written < replacement.bytes.len() {
                let rest = &replacement.bytes[replacement.written..];
                match ready!(Pin::new(&mut self.stream).poll_write(cx, rest)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => replacement.written += n,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
        }
        Poll::Ready(Ok(len))
    }

    /// A write that must wait for a full socket also waits for an abort,
    /// which then fails it (a client that stopped reading cannot hold the
    /// connection open past its abort).
    fn unless_aborted<T>(
        &self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_pending() {
            self.abort.wake_on_abort(cx.waker());
            // An abort between the write and the registration woke nothing.
            if self.abort.is_aborted() {
                return Poll::Ready(Err(Self::aborted()));
            }
        }
        polled
    }

    fn aborted() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "connection aborted")
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            this.replay.take_into(buf);
            this.state.note_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.note_read();
        }
        polled
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.abort.is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        if this.replaces(buf) {
            return this.poll_replacement(cx, buf.len());
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.unless_aborted(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.abort.is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        let first = bufs.iter().find(|buf| !buf.is_empty());
        if first.is_some_and(|first| this.replaces(first)) {
            let len = bufs.iter().map(|buf| buf.len()).sum();
            return this.poll_replacement(cx, len);
        }
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.unless_aborted(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.abort.is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.state.flushed();
        }
        this.unless_aborted(cx, flushed)
    }

    /// A clean close sends a FIN, which ends a close-delimited body as if
    /// complete: an aborted connection skips it (and resets on drop).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.abort.is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.abort.is_aborted() {
            // SO_LINGER 0: close() then sends a RST and drops unsent data.
            if let Err(err) =
                socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO))
            {
                tracing::warn!(error = %err, "cannot reset an aborted connection");
            }
        }
    }
}
