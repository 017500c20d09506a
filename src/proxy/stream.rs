//! The streamed response body. Its decision (outcome `streaming`) is
//! recorded before this body exists; this body passes the upstream's
//! frames through as they arrive, tees a bounded capture, and holds back
//! the end of the stream (the frame that completes a declared length, the
//! trailers, or the end marker) until the stream's end is recorded too.
//!
//! If the end cannot be recorded, the connection is cut (reset, not
//! closed), so no client can take the stream for complete, and the end is
//! recorded through the backlog once the ledger takes it. If the client
//! goes away mid-stream, dropping this body drops the upstream body too,
//! which closes that upstream connection instead of returning it to the
//! pool; the end is still recorded, as `client_disconnected`.

use super::backlog::Detached;
use super::budget::Reservation;
use super::recorder::{Recorder, StreamDraft};
use crate::decision::{CaptureBuilder, Outcome, RecordFuture, StreamEnd};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Called once the stream's end is recorded, with its decision's seq and
/// the bounded capture of the answer (queues a flagged stream's review).
pub(super) type OnRecorded = Box<dyn FnOnce(u64, Bytes) + Send>;

/// Sees each chunk of the answer before it is released, until it says it
/// is done (returns `true`); learns a Responses API answer's id.
pub(super) type Watch = Box<dyn FnMut(&Bytes) -> bool + Send>;

/// Why a copy of the whole answer is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoCopy {
    /// Longer than the copy's limit.
    TooLarge,
    /// The memory budget for buffered bodies was spent.
    OverBudget,
}

impl NoCopy {
    /// The reason label of the KPIs' unread counter.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            NoCopy::TooLarge => "too_large",
            NoCopy::OverBudget => "over_budget",
        }
    }
}

/// Called once the stream's end is recorded with the whole answer, or why
/// there is no copy of it (feeds the KPIs).
pub(super) type OnWhole = Box<dyn FnOnce(Result<Bytes, NoCopy>) + Send>;

/// A copy of the whole answer up to a limit, within the memory budget.
struct WholeTee {
    bytes: Result<BytesMut, NoCopy>,
    reservation: Reservation,
    limit: usize,
    hook: OnWhole,
}

impl WholeTee {
    fn push(&mut self, data: &Bytes) {
        let Ok(bytes) = &mut self.bytes else {
            return;
        };
        let len = bytes.len() + data.len();
        if len > self.limit {
            // Past the limit the copy is of no use; stop paying for it.
            self.bytes = Err(NoCopy::TooLarge);
        } else if len > self.reservation.bytes() && !self.reservation.grow(data.len()) {
            self.bytes = Err(NoCopy::OverBudget);
        } else {
            bytes.extend_from_slice(data);
        }
    }

    fn finish(self) {
        let whole = match self.bytes {
            Ok(bytes) => Ok(self.reservation.into_bytes(bytes)),
            Err(why) => Err(why),
        };
        (self.hook)(whole);
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
    #[error("end of stream not recorded; end withheld and connection cut")]
    NotRecorded,
}

enum State {
    /// Frames flow through.
    Streaming,
    /// The last frame (or end) is held until the end is acknowledged.
    Recording {
        record: RecordFuture,
        held: Option<Frame<Bytes>>,
    },
    /// Recorded and released; anything further passes straight through.
    Released,
    /// Failed or finished; nothing more.
    Closed,
}

/// What the stream's end needs: its decision and where ends go.
struct Pending {
    stream: StreamDraft,
    decision_seq: u64,
    recorder: Recorder,
}

/// Streams an upstream body to the client while recording it.
pub(super) struct RecordingBody {
    inner: Incoming,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    capture: Option<CaptureBuilder>,
    remaining: Option<u64>,
    /// Bytes of the body handed to the client connection so far.
    released: u64,
    pending: Option<Pending>,
    /// The end as submitted, to record as cut if the ledger refuses it.
    submitted: Option<StreamEnd>,
    on_recorded: Option<(OnRecorded, Bytes)>,
    whole: Option<WholeTee>,
    watch: Option<Watch>,
    abort: Option<Abort>,
    state: State,
}

/// Resets the client connection this body is sent on.
pub(super) type Abort = Box<dyn Fn() + Send + Sync>;

impl RecordingBody {
    /// Wraps `inner`, whose decision is recorded at `decision_seq` (none
    /// only when `ledger.on_failure = serve` let it through unrecorded).
    /// `declared_len` is the response's Content-Length, if any; `abort`
    /// resets the client connection when the stream must be cut.
    pub(super) fn new(
        inner: Incoming,
        declared_len: Option<u64>,
        recorded: Option<(StreamDraft, u64)>,
        recorder: Recorder,
        idle: Duration,
        capture_limit: usize,
        abort: Option<Abort>,
    ) -> Self {
        Self {
            inner,
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            capture: Some(CaptureBuilder::new(capture_limit)),
            remaining: declared_len,
            released: 0,
            pending: recorded.map(|(stream, decision_seq)| Pending {
                stream,
                decision_seq,
                recorder,
            }),
            submitted: None,
            on_recorded: None,
            whole: None,
            watch: None,
            abort,
            state: State::Streaming,
        }
    }

    /// Calls `hook` once the end is recorded (not when the stream fails).
    pub(super) fn on_recorded(mut self, hook: OnRecorded) -> Self {
        self.on_recorded = Some((hook, Bytes::new()));
        self
    }

    /// Shows `watch` each chunk before it is released, until it is done.
    pub(super) fn watch(mut self, watch: Watch) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Calls `hook` once the end is recorded with the whole answer if it is
    /// at most `limit` bytes and fits `reservation`'s budget (not when the
    /// stream fails).
    pub(super) fn on_whole(
        mut self,
        limit: usize,
        reservation: Reservation,
        hook: OnWhole,
    ) -> Self {
        self.whole = Some(WholeTee {
            bytes: Ok(BytesMut::new()),
            reservation,
            limit,
            hook,
        });
        self
    }

    /// Submits the end of a stream that ran to its end; `held` waits for
    /// it. Without an end to record, `held` comes back.
    fn submit(&mut self, held: Option<Frame<Bytes>>) -> Result<(), Option<Frame<Bytes>>> {
        // Recorded as served whole: the held frame leaves right after.
        let held_len = held
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |data| data.len() as u64);
        let Some((end, pending)) = self.end(Outcome::Served, None, held_len) else {
            return Err(held);
        };
        self.submitted = Some(end.clone());
        self.state = State::Recording {
            record: pending.recorder.submit_end(end, &pending.stream),
            held,
        };
        self.pending = Some(pending);
        Ok(())
    }

    /// The end as of now, and where it goes.
    fn end(
        &mut self,
        outcome: Outcome,
        error_code: Option<&'static str>,
        held_len: u64,
    ) -> Option<(StreamEnd, Pending)> {
        let pending = self.pending.take()?;
        let response = self
            .capture
            .take()
            .map(CaptureBuilder::finish)
            .unwrap_or_default();
        if let Some((_, captured)) = &mut self.on_recorded {
            *captured = response.bytes().clone();
        }
        let end = pending.stream.end(
            pending.decision_seq,
            outcome,
            error_code,
            self.released + held_len,
            response,
        );
        Some((end, pending))
    }

    /// Records a cut stream through the backlog: the stream ends either way.
    fn record_failure(&mut self, error_code: &'static str) {
        self.on_recorded = None;
        self.whole = None;
        if let Some((end, pending)) = self.end(Outcome::Error, Some(error_code), 0) {
            pending.recorder.detach_end(end, &pending.stream);
        }
    }

    /// Resets the client connection: a cut stream must never look complete
    /// (for HTTP/1.0 a clean close would end the body as if whole).
    fn cut(&mut self) {
        if let Some(abort) = &self.abort {
            abort();
        }
        self.state = State::Closed;
    }

    /// Counts a frame about to be released.
    fn release(&mut self, frame: Frame<Bytes>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = frame.data_ref() {
            self.released += data.len() as u64;
        }
        Poll::Ready(Some(Ok(frame)))
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
                            if let Some(watch) = &mut this.watch
                                && watch(data)
                            {
                                this.watch = None;
                            }
                            if let Some(remaining) = &mut this.remaining {
                                *remaining = remaining.saturating_sub(data.len() as u64);
                                completes = *remaining == 0;
                            }
                        }
                        if !completes {
                            return this.release(frame);
                        }
                        if let Err(Some(frame)) = this.submit(Some(frame)) {
                            return this.release(frame);
                        }
                    }
                    Poll::Ready(Some(Err(err))) => {
                        this.record_failure("upstream_failed");
                        this.cut();
                        return Poll::Ready(Some(Err(Box::new(StreamError::Upstream(err)))));
                    }
                    Poll::Ready(None) => {
                        if this.submit(None).is_err() {
                            this.state = State::Closed;
                            return Poll::Ready(None);
                        }
                    }
                    Poll::Pending => {
                        ready!(this.idle_timer.as_mut().poll(cx));
                        this.record_failure("upstream_timeout");
                        this.cut();
                        return Poll::Ready(Some(Err(Box::new(StreamError::Idle(this.idle)))));
                    }
                },
                State::Recording { record, held } => {
                    let result = ready!(record.as_mut().poll(cx));
                    let held = held.take();
                    // The end's recording is settled here.
                    let pending = this.pending.take();
                    let submitted = this.submitted.take();
                    let decision_seq = submitted.as_ref().map_or(0, |end| end.decision_seq);
                    if let Err(err) = result {
                        tracing::error!(error = %err, "end of stream not recorded; end withheld, connection cut, recorded as cut once the ledger takes it");
                        if let (Some(pending), Some(end)) = (pending, submitted) {
                            pending
                                .recorder
                                .detach(Detached::End(Box::new(cut_by_ledger(end, this.released))));
                        }
                        this.on_recorded = None;
                        this.whole = None;
                        this.cut();
                        return Poll::Ready(Some(Err(Box::new(StreamError::NotRecorded))));
                    }
                    if let Some((hook, captured)) = this.on_recorded.take() {
                        hook(decision_seq, captured);
                    }
                    if let Some(whole) = this.whole.take() {
                        whole.finish();
                    }
                    match held {
                        Some(frame) => {
                            this.state = State::Released;
                            return this.release(frame);
                        }
                        None => {
                            this.state = State::Closed;
                            return Poll::Ready(None);
                        }
                    }
                }
                State::Released => {
                    return match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                        Some(Ok(frame)) => this.release(frame),
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

/// An end the ledger refused, as it is recorded later: the stream was
/// cut before its end, after `released` bytes (the held frame never left).
fn cut_by_ledger(mut end: StreamEnd, released: u64) -> StreamEnd {
    end.outcome = Outcome::Error;
    end.error_code = Some("ledger_unavailable");
    end.released_bytes = released;
    end
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Closed) {
            // The end is submitted but not yet acknowledged: if the ledger
            // refuses it, it is recorded as cut once the ledger takes it.
            State::Recording { record, .. } => {
                if let (Some(pending), Some(end)) = (self.pending.take(), self.submitted.take()) {
                    let cut = Detached::End(Box::new(cut_by_ledger(end, self.released)));
                    pending.recorder.backlog().finish(record, cut);
                }
            }
            // The client left before the end: the stream still gets its end.
            _ => {
                if self.pending.is_some() {
                    self.record_failure("client_disconnected");
                }
            }
        }
    }
}
