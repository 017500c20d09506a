//! The streamed response body: passes the upstream's frames through as they
//! arrive, tees a bounded capture, and holds back the end of the stream
//! (the frame that completes a declared length, the trailers, or the end
//! marker) until the decision is recorded.
//!
//! If the client goes away mid-stream, dropping this body drops the
//! upstream body too, which closes that upstream connection instead of
//! returning it to the pool; the decision is still recorded, as
//! `client_disconnected`.

use super::recorder::{Draft, Ending, Recorder};
use crate::decision::{CaptureBuilder, Outcome, RecordFuture};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Called once the stream's decision is recorded, with its seq and the
/// bounded capture of the answer (queues a flagged stream's review).
pub(super) type OnRecorded = Box<dyn FnOnce(Option<u64>, Bytes) + Send>;

/// Called once the stream's decision is recorded with the whole answer, or
/// `None` when it grew beyond the tee's limit (feeds the KPIs).
pub(super) type OnWhole = Box<dyn FnOnce(Option<Bytes>) + Send>;

/// A copy of the whole answer up to a limit, for [`OnWhole`].
struct WholeTee {
    bytes: Option<BytesMut>,
    limit: usize,
    hook: OnWhole,
}

impl WholeTee {
    fn push(&mut self, data: &Bytes) {
        if let Some(bytes) = &mut self.bytes {
            if bytes.len() + data.len() > self.limit {
                // Past the limit the copy is of no use; stop paying for it.
                self.bytes = None;
            } else {
                bytes.extend_from_slice(data);
            }
        }
    }

    fn finish(self) {
        (self.hook)(self.bytes.map(BytesMut::freeze));
    }
}

/// Boxed error type of the client-facing body.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the stream was cut (sent to hyper, which aborts the client connection).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("upstream went silent for longer than {0:?}")]
    Idle(Duration),
    #[error("upstream body failed: {0}")]
    Upstream(hyper::Error),
    #[error("decision could not be recorded; end of stream withheld")]
    NotRecorded,
}

enum State {
    /// Frames flow through.
    Streaming,
    /// The last frame (or end) is held until the record is acknowledged.
    Recording {
        record: RecordFuture,
        held: Option<Frame<Bytes>>,
    },
    /// Recorded and released; anything further passes straight through.
    Released,
    /// Failed or finished; nothing more.
    Closed,
}

/// Streams an upstream body to the client while recording it.
pub(super) struct RecordingBody {
    inner: Incoming,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    capture: Option<CaptureBuilder>,
    remaining: Option<u64>,
    pending: Option<(Draft, Recorder, u16)>,
    on_recorded: Option<(OnRecorded, Bytes)>,
    whole: Option<WholeTee>,
    state: State,
}

impl RecordingBody {
    /// Wraps `inner`. `declared_len` is the response's Content-Length, if any.
    pub(super) fn new(
        inner: Incoming,
        declared_len: Option<u64>,
        draft: Draft,
        recorder: Recorder,
        status: u16,
        idle: Duration,
        capture_limit: usize,
    ) -> Self {
        Self {
            inner,
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            capture: Some(CaptureBuilder::new(capture_limit)),
            remaining: declared_len,
            pending: Some((draft, recorder, status)),
            on_recorded: None,
            whole: None,
            state: State::Streaming,
        }
    }

    /// Calls `hook` once the decision is recorded (not when the stream fails).
    pub(super) fn on_recorded(mut self, hook: OnRecorded) -> Self {
        self.on_recorded = Some((hook, Bytes::new()));
        self
    }

    /// Calls `hook` once the decision is recorded with the whole answer if
    /// it is at most `limit` bytes (not when the stream fails).
    pub(super) fn on_whole(mut self, limit: usize, hook: OnWhole) -> Self {
        self.whole = Some(WholeTee {
            bytes: Some(BytesMut::new()),
            limit,
            hook,
        });
        self
    }

    /// Completes the decision and starts recording it.
    fn start_record(
        &mut self,
        outcome: Outcome,
        error_code: Option<&'static str>,
    ) -> Option<RecordFuture> {
        let (draft, recorder, status) = self.pending.take()?;
        let response = self
            .capture
            .take()
            .map(CaptureBuilder::finish)
            .unwrap_or_default();
        if let Some((_, captured)) = &mut self.on_recorded {
            *captured = response.bytes().clone();
        }
        let label = draft.model_label().to_owned();
        let decision = draft.complete(Ending {
            outcome,
            status,
            error_code,
            response,
        });
        Some(recorder.submit(decision, &label))
    }

    /// Records a failure in the background: the stream is cut either way.
    fn record_failure(&mut self, error_code: &'static str) {
        self.on_recorded = None;
        self.whole = None;
        if let Some(record) = self.start_record(Outcome::Error, Some(error_code)) {
            spawn_record(record);
        }
    }
}

fn spawn_record(record: RecordFuture) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(err) = record.await {
                tracing::error!(error = %err, "decision of a broken stream not recorded");
            }
        });
    }
}

impl Body for RecordingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Streaming => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        this.idle_timer.as_mut().reset(Instant::now() + this.idle);
                        let mut completes = frame.is_trailers();
                        if let Some(data) = frame.data_ref() {
                            if let Some(capture) = &mut this.capture {
                                capture.push(data);
                            }
                            if let Some(whole) = &mut this.whole {
                                whole.push(data);
                            }
                            if let Some(remaining) = &mut this.remaining {
                                *remaining = remaining.saturating_sub(data.len() as u64);
                                completes = *remaining == 0;
                            }
                        }
                        if !completes {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        match this.start_record(Outcome::Served, None) {
                            Some(record) => {
                                this.state = State::Recording {
                                    record,
                                    held: Some(frame),
                                }
                            }
                            None => return Poll::Ready(Some(Ok(frame))),
                        }
                    }
                    Poll::Ready(Some(Err(err))) => {
                        this.record_failure("upstream_failed");
                        this.state = State::Closed;
                        return Poll::Ready(Some(Err(Box::new(StreamError::Upstream(err)))));
                    }
                    Poll::Ready(None) => match this.start_record(Outcome::Served, None) {
                        Some(record) => this.state = State::Recording { record, held: None },
                        None => {
                            this.state = State::Closed;
                            return Poll::Ready(None);
                        }
                    },
                    Poll::Pending => {
                        ready!(this.idle_timer.as_mut().poll(cx));
                        this.record_failure("upstream_timeout");
                        this.state = State::Closed;
                        return Poll::Ready(Some(Err(Box::new(StreamError::Idle(this.idle)))));
                    }
                },
                State::Recording { record, held } => {
                    let result = ready!(record.as_mut().poll(cx));
                    let held = held.take();
                    let ack = match result {
                        Ok(ack) => ack,
                        Err(err) => {
                            tracing::error!(error = %err, "decision not recorded; stream cut before its end");
                            this.state = State::Closed;
                            return Poll::Ready(Some(Err(Box::new(StreamError::NotRecorded))));
                        }
                    };
                    if let Some((hook, captured)) = this.on_recorded.take() {
                        hook(ack.seq, captured);
                    }
                    if let Some(whole) = this.whole.take() {
                        whole.finish();
                    }
                    match held {
                        Some(frame) => {
                            this.state = State::Released;
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        None => {
                            this.state = State::Closed;
                            return Poll::Ready(None);
                        }
                    }
                }
                State::Released => {
                    return match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                        Some(Err(err)) => {
                            Poll::Ready(Some(Err(Box::new(StreamError::Upstream(err)))))
                        }
                        None => {
                            this.state = State::Closed;
                            Poll::Ready(None)
                        }
                    };
                }
                State::Closed => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        // The client left before the end: the request still gets its one decision.
        if self.pending.is_some() {
            self.record_failure("client_disconnected");
        }
    }
}
