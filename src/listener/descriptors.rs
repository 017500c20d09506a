//! Fits the connection caps to the process's open-file limit
//! (`RLIMIT_NOFILE`), read (and raised towards its hard limit) at start.
//!
//! Each public connection is counted twice (its own socket and the upstream
//! connection it may hold), each admin or tiles connection once, plus the sockets
//! the listeners use to answer `overloaded` and a reserve for the store,
//! the listeners and the process itself.

/// The connection cap of each listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Public listener.
    pub public: usize,
    /// Admin listener.
    pub admin: usize,
    /// The tiles' own listener (0 when it has none).
    pub tiles: usize,
}

/// Descriptors kept for everything but client and upstream connections:
/// standard streams, the runtime's, the listeners, the ledger store.
const RESERVED: u64 = 64;

/// Connections a listener may hold open at once beyond its cap while it
/// answers them `overloaded` (see `super::accept`).
pub(super) const OVERFLOW_SLOTS: usize = 16;

/// Descriptors the caps need.
fn needed(caps: Caps) -> u64 {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    RESERVED
        .saturating_add(listeners(caps) * count(OVERFLOW_SLOTS))
        .saturating_add(count(caps.public).saturating_mul(2))
        .saturating_add(count(caps.admin))
        .saturating_add(count(caps.tiles))
}

/// Listeners that answer `overloaded` with a descriptor of their own.
fn listeners(caps: Caps) -> u64 {
    if caps.tiles > 0 { 3 } else { 2 }
}

/// The caps that fit in `limit` descriptors: `wanted` if they fit, else
/// lower ones (the admin and the tiles listener get at most an eighth
/// each), never below 1.
fn fit(limit: u64, wanted: Caps) -> Caps {
    if needed(wanted) <= limit {
        return wanted;
    }
    let available = limit.saturating_sub(RESERVED + listeners(wanted) * OVERFLOW_SLOTS as u64);
    let eighth = |wanted: usize| {
        u64::try_from(wanted)
            .unwrap_or(u64::MAX)
            .min((available / 8).max(1))
    };
    let admin = eighth(wanted.admin);
    let tiles = if wanted.tiles > 0 {
        eighth(wanted.tiles)
    } else {
        0
    };
    let public = u64::try_from(wanted.public)
        .unwrap_or(u64::MAX)
        .min((available.saturating_sub(admin + tiles) / 2).max(1));
    Caps {
        public: usize::try_from(public).unwrap_or(1),
        admin: usize::try_from(admin).unwrap_or(1),
        tiles: usize::try_from(tiles).unwrap_or(1),
    }
}

/// Raises the soft open-file limit as far as the caps need (up to the hard
/// limit) and returns the caps that fit in it, with a warning when they
/// had to be lowered.
pub fn fit_to_descriptor_limit(wanted: Caps) -> Caps {
    let limit = match rlimit::increase_nofile_limit(needed(wanted)) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the open-file limit; connection caps not checked against it");
            return wanted;
        }
    };
    let fitted = fit(limit, wanted);
    if fitted != wanted {
        tracing::warn!(
            open_file_limit = limit,
            needed = needed(wanted),
            public_max_connections = fitted.public,
            admin_max_connections = fitted.admin,
            "the open-file limit is too low for the configured connection caps; lowered them (raise the limit, e.g. LimitNOFILE= or ulimit -n)"
        );
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        let wanted = Caps {
            public: 10_000,
            admin: 256,
            tiles: 0,
        };
        assert_eq!(fit(needed(wanted), wanted), wanted);
        assert_eq!(fit(1 << 20, wanted), wanted);
    }

    #[test]
    fn caps_are_lowered_to_the_limit() {
        let wanted = Caps {
            public: 10_000,
            admin: 256,
            tiles: 0,
        };
        let fitted = fit(1024, wanted);
        assert!(needed(fitted) <= 1024, "{fitted:?}");
        assert!(fitted.public > 300 && fitted.admin >= 64, "{fitted:?}");
        let tiny = fit(256, wanted);
        assert_eq!(
            tiny,
            Caps {
                public: 70,
                admin: 20,
                tiles: 0
            }
        );
        assert!(needed(tiny) <= 256);
        // Nothing left: one connection each, the limit is hopeless anyway.
        assert_eq!(
            fit(10, wanted),
            Caps {
                public: 1,
                admin: 1,
                tiles: 0
            }
        );
        // A tiles listener of its own is counted and lowered like the admin one.
        let with_tiles = Caps {
            tiles: 1_024,
            ..wanted
        };
        let fitted = fit(1024, with_tiles);
        assert!(needed(fitted) <= 1024, "{fitted:?}");
        assert!(fitted.tiles >= 64 && fitted.tiles <= 120, "{fitted:?}");
    }
}
