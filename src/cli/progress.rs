//! Progress of a long offline command on stderr: one line redrawn in place
//! on a terminal, and an occasional plain line otherwise, so a log that
//! captures stderr gets a few lines rather than one per chunk.
//!
//! No crate for this: one counter with a rate is a few lines, and the
//! offline commands have no other terminal output to coordinate with.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a terminal line is redrawn.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
/// How often a line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Below this many items nothing is shown: the command is over in a blink.
const QUIET_BELOW: u64 = 10_000;

/// A counter of `done` out of `total` items, shown as it goes.
pub(super) struct Progress {
    what: &'static str,
    terminal: bool,
    started: Instant,
    last_shown: Option<Instant>,
    /// The length of the line last drawn on a terminal, to blank it out.
    drawn: usize,
}

impl Progress {
    /// A progress display for `what` ("exporting"), on stderr.
    pub(super) fn new(what: &'static str) -> Self {
        Self {
            what,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_shown: None,
            drawn: 0,
        }
    }

    /// Records progress; shows it when it is time to.
    pub(super) fn update(&mut self, done: u64, total: u64) {
        if total < QUIET_BELOW {
            return;
        }
        let now = Instant::now();
        let every = if self.terminal {
            TERMINAL_EVERY
        } else {
            LOG_EVERY
        };
        // The first plain line waits a full interval: short exports print none.
        let since = now.duration_since(self.last_shown.unwrap_or(self.started));
        if since < every {
            return;
        }
        self.last_shown = Some(now);
        self.show(done, total);
    }

    /// Ends the display: a terminal line is erased so that the command's
    /// own summary follows on a clean line.
    pub(super) fn finish(self) {
        if self.terminal && self.drawn > 0 {
            eprint!("\r{:width$}\r", "", width = self.drawn);
        }
    }

    fn show(&mut self, done: u64, total: u64) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / elapsed;
        let percent = done as f64 * 100.0 / total.max(1) as f64;
        let line = format!(
            "govgate: {} {done}/{total} entries ({percent:.0}%), {rate:.0}/s",
            self.what
        );
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the export.
        let _ = if self.terminal {
            let pad = self.drawn.saturating_sub(line.len());
            self.drawn = line.len();
            write!(stderr, "\r{line}{:pad$}", "")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
}
