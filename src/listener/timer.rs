//! The timer hyper uses for its header-read timeout, made to tell a new
//! request head from the wait between two requests on a kept-alive
//! connection.
//!
//! hyper arms its header-read timer whenever it starts waiting for a
//! request head: at the connection's start and again right after each
//! answer. With its plain timer the wait for a kept-alive connection's
//! next request would count against the header-read timeout. This timer
//! gives that wait `timeouts.keep_alive_idle_ms` instead, and switches to
//! `timeouts.header_read_ms` from the first byte of the next head. A new
//! connection gets the header-read timeout from its start: a client that
//! connects and sends nothing is a slowloris too.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// What a connection's IO, service and timer share (one per connection).
#[derive(Debug, Default)]
pub(super) struct ConnState {
    /// Reads that returned data; wraps. The timer compares two values.
    reads: AtomicU32,
    /// Where the current exchange is: [`IDLE`], [`ANSWERING`] or [`ENDING`].
    exchange: AtomicU8,
    /// At least one request was handed to the service.
    served: AtomicBool,
    /// Requests handed to the service whose answer is not over yet
    /// (HTTP/2: streams in flight).
    open_streams: AtomicU32,
    /// Requests handed to the service so far; wraps. The idle watch
    /// compares two values.
    started_streams: AtomicU32,
    /// Woken when the last open stream ends.
    quiet: tokio::sync::Notify,
}

/// No request is being answered: what hyper writes now is its own answer.
const IDLE: u8 = 0;
/// A request was handed to the service and its answer is being written.
const ANSWERING: u8 = 1;
/// hyper dropped the answer's body; its last bytes may still sit in
/// hyper's write buffer until the next flush of the socket.
const ENDING: u8 = 2;

impl ConnState {
    /// The IO read some bytes.
    pub(super) fn note_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn reads(&self) -> u32 {
        self.reads.load(Ordering::Relaxed)
    }

    /// hyper handed a request to the service.
    pub(super) fn open_exchange(&self) {
        self.exchange.store(ANSWERING, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
    }

    /// A request was handed to the service: open until the guard drops
    /// (with the answer's body, or with the request when it has none).
    pub(super) fn start_stream(self: &Arc<Self>) -> StreamGuard {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        self.started_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Resolves once no request has been in flight for `idle` (HTTP/2:
    /// no open stream, none started meanwhile). Cancel-safe.
    pub(super) async fn idle_for(&self, idle: Duration) {
        loop {
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            // Registered before the count is read: an end in between wakes it.
            quiet.as_mut().enable();
            if self.open_streams.load(Ordering::Relaxed) > 0 {
                quiet.await;
                continue;
            }
            let started = self.started_streams.load(Ordering::Relaxed);
            tokio::time::sleep(idle).await;
            if self.open_streams.load(Ordering::Relaxed) == 0
                && self.started_streams.load(Ordering::Relaxed) == started
            {
                return;
            }
        }
    }

    /// hyper dropped the answer's body (it may not be flushed yet).
    pub(super) fn end_exchange(&self) {
        let _ =
            self.exchange
                .compare_exchange(ANSWERING, ENDING, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The socket was flushed: an ended answer is out whole. hyper reads
    /// (and may refuse) the next head only after this flush.
    pub(super) fn flushed(&self) {
        let _ = self
            .exchange
            .compare_exchange(ENDING, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether bytes written now may belong to an answer of the service.
    pub(super) fn answering(&self) -> bool {
        self.exchange.load(Ordering::Relaxed) != IDLE
    }

    fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
}

/// One request in flight on a connection ([`ConnState::start_stream`]).
pub(super) struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open_streams.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// One connection's timer for hyper's `header_read_timeout`.
pub(super) struct HeadTimer {
    state: Arc<ConnState>,
    header_read: Duration,
    keep_alive_idle: Duration,
}

impl HeadTimer {
    pub(super) fn new(
        state: Arc<ConnState>,
        header_read: Duration,
        keep_alive_idle: Duration,
    ) -> Self {
        Self {
            state,
            header_read,
            keep_alive_idle,
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep {
            sleep: tokio::time::sleep(duration),
            phase: Phase::Head,
            state: self.state.clone(),
            header_read: self.header_read,
        })
    }

    /// hyper calls this each time it starts waiting for a head, with its
    /// own deadline (now + header-read timeout); the deadline is chosen
    /// here instead.
    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let (duration, phase) = if self.state.served() {
            (
                self.keep_alive_idle,
                Phase::Idle {
                    reads_seen: self.state.reads(),
                },
            )
        } else {
            (self.header_read, Phase::Head)
        };
        Box::pin(HeadSleep {
            sleep: tokio::time::sleep(duration),
            phase,
            state: self.state.clone(),
            header_read: self.header_read,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Kept alive, waiting for the next request: no byte of it seen yet
    /// (the reads counter was `reads_seen` when the wait began).
    Idle { reads_seen: u32 },
    /// A head is being received.
    Head,
}

pin_project! {
    /// hyper polls this each time a read leaves the head incomplete, so
    /// the first byte of a new head is noticed at the next poll.
    struct HeadSleep {
        #[pin]
        sleep: tokio::time::Sleep,
        phase: Phase,
        state: Arc<ConnState>,
        header_read: Duration,
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Phase::Idle { reads_seen } = *this.phase
            && this.state.reads() != reads_seen
        {
            *this.phase = Phase::Head;
            this.sleep
                .as_mut()
                .reset(Instant::now() + *this.header_read);
        }
        this.sleep.poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    fn pending(sleep: Pin<&mut dyn hyper::rt::Sleep>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        sleep.poll(&mut cx).is_pending()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_read_timeout() {
        let state = Arc::new(ConnState::default());
        let timer = HeadTimer::new(state, Duration::from_secs(10), Duration::from_secs(60));
        let start = Instant::now();
        timer.sleep_until(std::time::Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_waits_idle_then_header_read_from_the_first_byte() {
        let state = Arc::new(ConnState::default());
        state.open_exchange();
        state.end_exchange();
        state.flushed();
        let timer = HeadTimer::new(
            state.clone(),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let start = Instant::now();
        // Nothing arrives: the idle timeout applies.
        timer.sleep_until(std::time::Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));

        let start = Instant::now();
        let mut sleep = timer.sleep_until(std::time::Instant::now());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(pending(sleep.as_mut()));
        // The first byte of the next head: 10 s from now to complete it.
        state.note_read();
        assert!(pending(sleep.as_mut()));
        sleep.await;
        assert_eq!(start.elapsed(), Duration::from_secs(40));
    }
}
