//! Progress of a long offline command (`verify`, `export`, `erase`) on
//! stderr: on a terminal, one line with a bar, the rate and the time left,
//! redrawn in place; otherwise an occasional plain line (every 10 s, or
//! every `GOVGATE_PROGRESS_EVERY` entries), so a log that captures stderr
//! gets a few lines rather than one per entry. `--quiet` shows none.
//!
//! No crate for this: a counter with a rate and an estimate is a few lines,
//! and the offline commands have no other terminal output to coordinate
//! with (indicatif would bring a terminal-handling stack for one line).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a terminal line is redrawn.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
/// How often a plain line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Below this many items nothing is shown: the command is over in a blink.
const QUIET_BELOW: u64 = 10_000;
/// The environment variable that asks for a plain line every N entries.
pub(super) const EVERY_VAR: &str = "GOVGATE_PROGRESS_EVERY";
/// Width of the terminal bar, in characters.
const BAR: usize = 24;

/// When lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing (`--quiet`).
    Off,
    /// Redrawn in place on a terminal, at most every `TERMINAL_EVERY`.
    Terminal,
    /// A plain line every `LOG_EVERY`, for logs.
    Timed,
    /// A plain line each time another N entries are done, whatever the size.
    Entries(u64),
}

/// A counter of `done` out of `total` entries, shown as it goes.
pub(super) struct Progress<W: Write = std::io::Stderr> {
    what: &'static str,
    mode: Mode,
    out: W,
    started: Instant,
    last_shown: Option<Instant>,
    /// The entries done when a line was last shown (for [`Mode::Entries`]).
    shown_at: u64,
    /// The length of the line last drawn on a terminal, to blank it out.
    drawn: usize,
}

impl Progress {
    /// A progress display for `what` ("exporting") on stderr: none when
    /// `quiet`; a plain line every N entries when `GOVGATE_PROGRESS_EVERY`
    /// is N (a positive number); else redrawn on a terminal or timed.
    pub(super) fn new(what: &'static str, quiet: bool) -> anyhow::Result<Self> {
        let every = match std::env::var(EVERY_VAR) {
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        super::usage(format!(
                            "{EVERY_VAR}={text:?}: expected a positive number of entries"
                        ))
                    })?,
            ),
            Err(_) => None,
        };
        let mode = match (quiet, every) {
            (true, _) => Mode::Off,
            (false, Some(n)) => Mode::Entries(n),
            (false, None) if std::io::stderr().is_terminal() => Mode::Terminal,
            (false, None) => Mode::Timed,
        };
        Ok(Self::with(what, mode, std::io::stderr(), Instant::now()))
    }
}

impl<W: Write> Progress<W> {
    fn with(what: &'static str, mode: Mode, out: W, started: Instant) -> Self {
        Self {
            what,
            mode,
            out,
            started,
            last_shown: None,
            shown_at: 0,
            drawn: 0,
        }
    }

    /// Records progress; shows it when it is time to.
    pub(super) fn update(&mut self, done: u64, total: u64) {
        self.update_at(done, total, Instant::now());
    }

    fn update_at(&mut self, done: u64, total: u64, now: Instant) {
        let due = match self.mode {
            Mode::Off => false,
            Mode::Entries(every) => done / every > self.shown_at / every,
            Mode::Terminal | Mode::Timed if total < QUIET_BELOW => false,
            Mode::Terminal | Mode::Timed => {
                let every = if self.mode == Mode::Terminal {
                    TERMINAL_EVERY
                } else {
                    LOG_EVERY
                };
                // The first line waits a full interval: short runs print none.
                now.duration_since(self.last_shown.unwrap_or(self.started)) >= every
            }
        };
        if due {
            self.last_shown = Some(now);
            self.shown_at = done;
            self.show(done, total, now.duration_since(self.started));
        }
    }

    /// Ends the display: a terminal line is erased so that the command's
    /// own summary follows on a clean line. Gives back the output.
    pub(super) fn finish(mut self) -> W {
        if self.mode == Mode::Terminal && self.drawn > 0 {
            let _ = write!(self.out, "\r{:width$}\r", "", width = self.drawn);
            let _ = self.out.flush();
        }
        self.out
    }

    fn show(&mut self, done: u64, total: u64, elapsed: Duration) {
        let terminal = self.mode == Mode::Terminal;
        let line = line(self.what, done, total, elapsed, terminal);
        // Progress is best effort: a closed stderr must not fail the command.
        let _ = if terminal {
            let pad = self.drawn.saturating_sub(line.len());
            self.drawn = line.len();
            write!(self.out, "\r{line}{:pad$}", "")
        } else {
            writeln!(self.out, "{line}")
        };
        let _ = self.out.flush();
    }
}

/// One progress line: entries done of the total, the share, the rate so
/// far and the time left at that rate; with a bar in front on a terminal.
fn line(what: &str, done: u64, total: u64, elapsed: Duration, bar: bool) -> String {
    let total = total.max(1);
    let share = done.min(total) as f64 / total as f64;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let left = if rate > 0.0 {
        clock(total.saturating_sub(done) as f64 / rate)
    } else {
        "?".to_owned()
    };
    let bar = if bar {
        // Truncation intended: a cell fills once it is wholly done.
        let full = (share * BAR as f64) as usize;
        format!("[{}{}] ", "#".repeat(full), ".".repeat(BAR - full.min(BAR)))
    } else {
        String::new()
    };
    format!(
        "govgate: {what} {bar}{done}/{total} entries ({:.0}%), {rate:.0}/s, {left} left",
        share * 100.0
    )
}

/// Seconds as `m:ss`, or `h:mm:ss` from an hour on.
fn clock(seconds: f64) -> String {
    // Truncation intended: whole seconds.
    let seconds = seconds.round() as u64;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(progress: Progress<Vec<u8>>) -> String {
        String::from_utf8(progress.out).unwrap()
    }

    #[test]
    fn a_line_has_rate_and_time_left() {
        let line = line("verifying", 25_000, 100_000, Duration::from_secs(5), false);
        assert_eq!(
            line,
            "govgate: verifying 25000/100000 entries (25%), 5000/s, 0:15 left"
        );
        let line = line_with_bar(50_000, 100_000);
        assert!(
            line.contains("[############............] 50000/100000"),
            "{line}"
        );
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(59.6), "1:00");
    }

    fn line_with_bar(done: u64, total: u64) -> String {
        line("exporting", done, total, Duration::from_secs(1), true)
    }

    #[test]
    fn a_terminal_line_is_redrawn_in_place_and_erased_at_the_end() {
        let start = Instant::now();
        let mut progress = Progress::with("exporting", Mode::Terminal, Vec::new(), start);
        progress.update_at(1_000, 100_000, start + Duration::from_millis(100));
        assert!(progress.out.is_empty(), "nothing before the first interval");
        progress.update_at(40_000, 100_000, start + Duration::from_millis(300));
        progress.update_at(41_000, 100_000, start + Duration::from_millis(350));
        progress.update_at(90_000, 100_000, start + Duration::from_millis(600));
        let drawn = progress.drawn;
        let text = String::from_utf8(progress.out.clone()).unwrap();
        assert_eq!(text.matches('\r').count(), 2, "{text:?}");
        assert!(!text.contains('\n'), "{text:?}");
        assert!(
            text.contains("[#########...............] 40000/100000"),
            "{text:?}"
        );
        assert!(
            text.ends_with("90000/100000 entries (90%), 150000/s, 0:00 left"),
            "{text:?}"
        );
        let out = progress.finish();
        assert_eq!(
            String::from_utf8(out[text.len()..].to_vec()).unwrap(),
            format!("\r{:drawn$}\r", "")
        );
    }

    #[test]
    fn plain_lines_come_every_n_entries_for_any_size() {
        let start = Instant::now();
        let mut progress = Progress::with("verifying", Mode::Entries(100), Vec::new(), start);
        for done in (0..=450).step_by(50) {
            progress.update_at(done, 450, start + Duration::from_millis(done));
        }
        let text = shown(progress);
        let counts: Vec<&str> = text
            .lines()
            .map(|line| line.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(
            counts,
            ["100/450", "200/450", "300/450", "400/450"],
            "{text}"
        );
    }

    #[test]
    fn timed_lines_wait_ten_seconds_and_quiet_shows_nothing() {
        let start = Instant::now();
        let mut timed = Progress::with("exporting", Mode::Timed, Vec::new(), start);
        let mut quiet = Progress::with("exporting", Mode::Off, Vec::new(), start);
        for second in 0..=25 {
            let now = start + Duration::from_secs(second);
            timed.update_at(second * 1_000, 1_000_000, now);
            quiet.update_at(second * 1_000, 1_000_000, now);
        }
        assert_eq!(shown(timed).lines().count(), 2);
        assert_eq!(shown(quiet), "");
    }
}
