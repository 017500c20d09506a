//! Pacing of long reads of the store on a blocking thread (verification
//! rounds, online exports): after each chunk of work the thread sleeps a
//! multiple of the time the chunk took, so the work takes at most a
//! fraction of one core and the request path keeps its latency.

use std::time::{Duration, Instant};

/// Sleeps after each chunk of work, `rest_per_busy` times its length.
pub(crate) struct Pace {
    since: Instant,
    rest_per_busy: u32,
}

impl Pace {
    /// Pacing from now: 3 means the work takes at most a quarter of a core.
    pub(crate) fn new(rest_per_busy: u32) -> Self {
        Self {
            since: Instant::now(),
            rest_per_busy,
        }
    }

    /// Rests for the chunk done since the last rest, in short naps so that
    /// `stop` (checked between them) is seen soon.
    pub(crate) fn rest(&mut self, stop: &dyn Fn() -> bool) {
        let busy = self.since.elapsed();
        let mut left = busy.saturating_mul(self.rest_per_busy);
        while !left.is_zero() && !stop() {
            let nap = left.min(Duration::from_millis(50));
            std::thread::sleep(nap);
            left -= nap;
        }
        self.since = Instant::now();
    }
}
