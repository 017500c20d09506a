//! [`ConnectionAbort`]: lets a handler cut its client connection with a
//! TCP reset instead of a clean close.

use futures_util::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

/// A handle on the client connection a request arrived on, found in every
/// request's extensions (both listeners).
///
/// [`abort`](ConnectionAbort::abort) marks the connection: from then on
/// nothing more is written to it, and it is closed with a TCP reset
/// (`SO_LINGER` 0) rather than a FIN. A client can then never take a cut
/// answer for a complete one, not even a close-delimited HTTP/1.0 body,
/// whose only end marker is the FIN. Abort, then end the response body
/// with an error: the connection closes at once, also when it was waiting
/// to write to a client that stopped reading (the abort wakes that write).
///
/// On an HTTP/2 connection each request gets a handle of its own that cuts
/// nothing: the body's error alone resets that stream (`RST_STREAM`, so a
/// client never sees `END_STREAM` on a cut answer) and the connection's
/// other streams carry on.
#[derive(Clone, Debug, Default)]
pub struct ConnectionAbort {
    aborted: Arc<AtomicBool>,
    /// The write waiting on a full socket, if any.
    blocked_write: Arc<AtomicWaker>,
}

impl ConnectionAbort {
    /// A fresh handle (one per connection).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Marks the connection to be reset. Idempotent; never blocks.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.blocked_write.wake();
    }

    /// A write is waiting for the socket: [`abort`](ConnectionAbort::abort)
    /// wakes `waker` too.
    pub(crate) fn wake_on_abort(&self, waker: &Waker) {
        self.blocked_write.register(waker);
    }

    /// Whether [`abort`](ConnectionAbort::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
}
