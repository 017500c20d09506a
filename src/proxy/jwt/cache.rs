//! The verified-token cache (`auth.jwt.cache_entries`): a token seen
//! again is not checked again. Entries are keyed by the BLAKE3 hash of the
//! token's bytes (the token itself is never kept) and hold what the check
//! yielded, the token's `exp` and `nbf`, and the generation of the key set
//! that verified it. A hit counts only under the same key-set generation:
//! a changed set (a key removed by rotation) sends every token back to the
//! full check. `exp` and `nbf` are checked on every hit exactly as a fresh
//! check does, so the cache never lengthens a token's life.
//!
//! Bounded: at most `capacity` entries; when full, the oldest inserted
//! entry goes (first in, first out: one queue pop, no scan).

use super::{TokenProblem, Verified};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The BLAKE3 hash of a token's bytes.
pub(super) type TokenHash = [u8; 32];

/// The hash a token is cached under.
pub(super) fn hash(token: &str) -> TokenHash {
    blake3::hash(token.as_bytes()).into()
}

/// What a verified token yielded, and until when it holds.
pub(super) struct Entry {
    pub(super) verified: Verified,
    /// The token's `exp` (seconds since the epoch, rounded as the check
    /// rounds a fractional one).
    pub(super) exp: u64,
    /// The token's `nbf`, if it has one.
    pub(super) nbf: Option<u64>,
    /// The key set's generation when the token was verified.
    pub(super) generation: u64,
}

/// What the cache says of a token.
#[derive(Debug, PartialEq)]
pub(super) enum Lookup {
    /// Verified under the key set in force and valid now.
    Hit(Verified),
    /// Verified under the key set in force, but outside its validity now.
    Refused(TokenProblem),
    /// Not known under the key set in force: check it.
    Miss,
}

/// Verified tokens by hash; bounded, first in first out.
pub(super) struct TokenCache {
    capacity: usize,
    leeway: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TokenHash, Entry>,
    /// Every key of `entries` once, oldest first.
    // INVARIANT: `order` and `entries` hold the same keys, so
    // `order.len() == entries.len() <= capacity`.
    order: VecDeque<TokenHash>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (`None` for 0: no cache), whose
    /// hits allow `leeway` seconds of clock skew as the full check does.
    pub(super) fn new(capacity: usize, leeway: u64) -> Option<Self> {
        (capacity > 0).then(|| Self {
            capacity,
            leeway,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The cached result of the token hashed to `key` under key-set
    /// `generation` at `now` (seconds since the epoch).
    pub(super) fn lookup(&self, key: &TokenHash, generation: u64, now: u64) -> Lookup {
        let Ok(inner) = self.inner.lock() else {
            return Lookup::Miss;
        };
        let Some(entry) = inner.entries.get(key) else {
            return Lookup::Miss;
        };
        if entry.generation != generation {
            return Lookup::Miss;
        }
        // SPEC: as jsonwebtoken's check: expired when `exp < now - leeway`,
        // not yet valid when `nbf > now + leeway`.
        if entry.exp < now.saturating_sub(self.leeway) {
            return Lookup::Refused(TokenProblem::Expired);
        }
        if entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Lookup::Refused(TokenProblem::NotYetValid);
        }
        Lookup::Hit(entry.verified.clone())
    }

    /// Remembers a verified token; the oldest entry goes when full.
    pub(super) fn insert(&self, key: TokenHash, entry: Entry) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(held) = inner.entries.get_mut(&key) {
            // Verified again (under a new key set): already in `order`.
            *held = entry;
            return;
        }
        if inner.order.len() >= self.capacity
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.entries.remove(&oldest);
        }
        inner.order.push_back(key);
        inner.entries.insert(key, entry);
    }

    /// How many tokens are held.
    pub(super) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |inner| inner.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::CallerAuth;
    use std::sync::Arc;

    fn entry(caller: &str, exp: u64, nbf: Option<u64>, generation: u64) -> Entry {
        Entry {
            verified: Verified {
                caller: caller.to_owned(),
                auth: CallerAuth::Jwt {
                    issuer: "https://idp".into(),
                    subject: None,
                    jti: None,
                },
                claims: Arc::default(),
            },
            exp,
            nbf,
            generation,
        }
    }

    #[test]
    fn the_bound_holds_and_the_oldest_entry_goes_first() {
        let cache = TokenCache::new(3, 0).unwrap();
        for n in 0..10u8 {
            cache.insert([n; 32], entry(&format!("c{n}"), 100, None, 1));
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.lookup(&[6; 32], 1, 50), Lookup::Miss);
        for n in 7..10u8 {
            assert!(
                matches!(cache.lookup(&[n; 32], 1, 50), Lookup::Hit(v) if v.caller == format!("c{n}"))
            );
        }
        // A token verified again under a new key set replaces its entry in place.
        cache.insert([9; 32], entry("again", 100, None, 2));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.lookup(&[9; 32], 1, 50), Lookup::Miss);
        assert!(matches!(cache.lookup(&[7; 32], 1, 50), Lookup::Hit(_)));
        assert!(TokenCache::new(0, 0).is_none());
    }

    #[test]
    fn a_hit_holds_only_within_exp_nbf_and_leeway_under_the_same_key_set() {
        let cache = TokenCache::new(10, 5).unwrap();
        cache.insert([1; 32], entry("svc", 100, Some(50), 7));
        assert!(matches!(cache.lookup(&[1; 32], 7, 100), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&[1; 32], 7, 105), Lookup::Hit(_)));
        assert_eq!(
            cache.lookup(&[1; 32], 7, 106),
            Lookup::Refused(TokenProblem::Expired)
        );
        assert!(matches!(cache.lookup(&[1; 32], 7, 45), Lookup::Hit(_)));
        assert_eq!(
            cache.lookup(&[1; 32], 7, 44),
            Lookup::Refused(TokenProblem::NotYetValid)
        );
        assert_eq!(cache.lookup(&[1; 32], 8, 100), Lookup::Miss);
    }
}
