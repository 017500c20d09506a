//! Pacing of long reads of the store on a blocking thread (verification
//! rounds, online exports): after each slice of work the thread sleeps a
//! multiple of the time the slice took, so the work takes at most a set
//! share of one core and the request path keeps its latency.
//!
//! The time a slice took is wall time, not CPU time: on a core shared with
//! requests the thread's slice takes longer than its CPU time, so it rests
//! longer and its share of the CPU drops below the set one, never above.

use std::time::{Duration, Instant};

/// Where pacing reads the time and how it waits: the monotonic clock and
/// `thread::sleep`, or a counting fake in tests.
pub(crate) trait Clock {
    /// Time since some fixed origin, monotonic.
    fn now(&mut self) -> Duration;
    /// Sleeps `nap`.
    fn nap(&mut self, nap: Duration);
}

/// The real clock.
pub(crate) struct Monotonic(Instant);

impl Monotonic {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }
}

impl Clock for Monotonic {
    fn now(&mut self) -> Duration {
        self.0.elapsed()
    }

    fn nap(&mut self, nap: Duration) {
        std::thread::sleep(nap);
    }
}

/// The longest single nap: `stop` is checked between naps.
const NAP: Duration = Duration::from_millis(50);

/// Sleeps after each slice of work, `rest_per_busy` times its length.
pub(crate) struct Pace<C: Clock = Monotonic> {
    clock: C,
    since: Duration,
    rest_per_busy: f64,
}

impl Pace {
    /// Pacing from now: 3 means the work takes at most a quarter of a core.
    pub(crate) fn new(rest_per_busy: u32) -> Self {
        Pace::on(Monotonic::new(), f64::from(rest_per_busy))
    }

    /// Pacing from now to `share` of one core (in `(0, 1]`; 1: no rest).
    pub(crate) fn sharing(share: CpuShare) -> Self {
        Pace::on(Monotonic::new(), share.rest_per_busy())
    }
}

impl<C: Clock> Pace<C> {
    /// Pacing on `clock`.
    pub(crate) fn on(mut clock: C, rest_per_busy: f64) -> Self {
        Self {
            since: clock.now(),
            clock,
            rest_per_busy,
        }
    }

    /// Rests for the slice done since the last rest, in short naps so that
    /// `stop` (checked between them) is seen soon.
    pub(crate) fn rest(&mut self, stop: &dyn Fn() -> bool) {
        let busy = self.clock.now().saturating_sub(self.since);
        let mut left = busy.mul_f64(self.rest_per_busy);
        while !left.is_zero() && !stop() {
            let nap = left.min(NAP);
            self.clock.nap(nap);
            left -= nap;
        }
        self.since = self.clock.now();
    }

    /// [`Pace::rest`] when `loaded` (something else wants the CPU);
    /// otherwise only starts the next slice: work nobody waits behind
    /// runs at full speed.
    pub(crate) fn rest_if(&mut self, loaded: bool, stop: &dyn Fn() -> bool) {
        if loaded {
            self.rest(stop);
        } else {
            self.since = self.clock.now();
        }
    }
}

/// A share of one core, in `(0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShare(f64);

impl CpuShare {
    /// The background verification's default: a twentieth of one core.
    pub const VERIFY_DEFAULT: CpuShare = CpuShare(0.05);

    /// `share` if it is in `(0, 1]`.
    pub fn new(share: f64) -> Option<CpuShare> {
        (share > 0.0 && share <= 1.0).then_some(CpuShare(share))
    }

    /// The share, in `(0, 1]`.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Time at rest per unit of work for this share: `(1 - s) / s`.
    fn rest_per_busy(self) -> f64 {
        (1.0 - self.0) / self.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clock that advances `work` at each reading (the work between two
    /// readings) and counts its naps instead of sleeping.
    #[derive(Default)]
    pub(crate) struct Counting {
        pub(crate) at: Duration,
        pub(crate) work: Duration,
        pub(crate) napped: Duration,
        pub(crate) naps: u32,
    }

    impl Clock for &mut Counting {
        fn now(&mut self) -> Duration {
            self.at += self.work;
            self.at
        }

        fn nap(&mut self, nap: Duration) {
            self.at += nap;
            self.napped += nap;
            self.naps += 1;
        }
    }

    #[test]
    fn a_share_rests_its_complement_per_slice_of_work() {
        let mut clock = Counting {
            work: Duration::from_millis(10),
            ..Counting::default()
        };
        let share = CpuShare::new(0.2).unwrap();
        let mut pace = Pace::on(&mut clock, share.rest_per_busy());
        for _ in 0..5 {
            pace.rest(&|| false);
        }
        // 10 ms of work per slice at a fifth of a core: 40 ms at rest.
        let napped = clock.napped.as_secs_f64();
        assert!((napped - 0.2).abs() < 1e-6, "{napped}");
        // In naps of at most 50 ms, so a stop is seen soon.
        assert_eq!(clock.naps, 5);
    }

    #[test]
    fn a_whole_core_or_no_load_never_rests_and_a_stop_cuts_the_rest_short() {
        let mut clock = Counting {
            work: Duration::from_millis(10),
            ..Counting::default()
        };
        let mut whole = Pace::on(&mut clock, CpuShare::new(1.0).unwrap().rest_per_busy());
        whole.rest(&|| false);
        assert_eq!(clock.naps, 0);
        let mut idle = Pace::on(&mut clock, CpuShare::VERIFY_DEFAULT.rest_per_busy());
        idle.rest_if(false, &|| false);
        idle.rest_if(true, &|| true);
        assert_eq!(clock.naps, 0);
        let mut loaded = Pace::on(&mut clock, CpuShare::VERIFY_DEFAULT.rest_per_busy());
        loaded.rest_if(true, &|| false);
        // 10 ms at a twentieth of a core: 190 ms, in naps of 50 ms.
        assert_eq!(clock.naps, 4);
        let napped = clock.napped.as_secs_f64();
        assert!((napped - 0.19).abs() < 1e-6, "{napped}");
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        for share in [0.0, -0.1, 1.01, f64::NAN] {
            assert!(CpuShare::new(share).is_none(), "{share}");
        }
        assert_eq!(CpuShare::new(1.0).map(CpuShare::get), Some(1.0));
    }
}
