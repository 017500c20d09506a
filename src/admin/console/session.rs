//! Console sessions: a random cookie value names a session held in memory
//! (bounded; idle and absolute timeouts). A session keeps the credential
//! its person signed in with, so every page and every change is an admin
//! API call made as that person: the console can do no more than the API
//! allows them.

use crate::admin::auth::Caller;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie that carries the session.
pub(crate) const COOKIE: &str = "govgate_console";
/// Unused this long, a session ends.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// Used or not, a session ends this long after its sign-in.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at most; signing in beyond ends the least recently used.
const MAX_SESSIONS: usize = 1024;

/// One signed-in person.
#[derive(Clone)]
pub(crate) struct Session {
    /// The bearer credential the person signed in with (never shown).
    pub(crate) credential: String,
    /// Who the admin API says they are.
    pub(crate) caller: Caller,
    /// The token every form of this session carries (CSRF).
    pub(crate) csrf: String,
    signed_in: Instant,
    last_used: Instant,
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// The sessions, by the SHA-256 of their cookie value.
#[derive(Default)]
pub(crate) struct Sessions {
    held: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

fn random_hex() -> String {
    crate::ledger::entry::hex(&rand::random::<[u8; 32]>())
}

impl Sessions {
    /// A new session for `caller`; the cookie value to set.
    pub(crate) fn open(&self, credential: String, caller: Caller) -> String {
        let cookie = random_hex();
        let now = Instant::now();
        let session = Session {
            credential,
            caller,
            csrf: random_hex(),
            signed_in: now,
            last_used: now,
        };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, s| alive(s, now));
        if held.len() >= MAX_SESSIONS
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(key, _)| *key)
        {
            held.remove(&oldest);
        }
        held.insert(key(&cookie), session);
        cookie
    }

    /// The live session `cookie` names (its use recorded), if any.
    pub(crate) fn find(&self, cookie: &str) -> Option<Session> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(cookie);
        let session = held.get_mut(&key)?;
        if !alive(session, now) {
            held.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session `cookie` names.
    pub(crate) fn close(&self, cookie: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&key(cookie));
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.last_used) < IDLE && now.duration_since(session.signed_in) < ABSOLUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            principal: "dana".into(),
            roles: vec!["approver:ai_officer".into()],
            issuer: None,
            subject: None,
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only_until_it_is_closed_or_idle() {
        let sessions = Sessions::default();
        let cookie = sessions.open("token".into(), caller());
        let found = sessions.find(&cookie).expect("open");
        assert_eq!(found.caller.principal, "dana");
        assert!(found.csrf_matches(&found.csrf.clone()));
        assert!(!found.csrf_matches("other"));
        assert!(sessions.find("not-a-cookie").is_none());
        sessions.close(&cookie);
        assert!(sessions.find(&cookie).is_none());

        let cookie = sessions.open("token".into(), caller());
        {
            let mut held = sessions.held.lock().unwrap();
            let session = held.get_mut(&key(&cookie)).unwrap();
            session.last_used -= IDLE;
        }
        assert!(sessions.find(&cookie).is_none(), "idle too long");
        let cookie = sessions.open("token".into(), caller());
        {
            let mut held = sessions.held.lock().unwrap();
            let session = held.get_mut(&key(&cookie)).unwrap();
            session.signed_in -= ABSOLUTE;
        }
        assert!(sessions.find(&cookie).is_none(), "signed in too long ago");
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_used_goes_first() {
        let sessions = Sessions::default();
        let first = sessions.open("token".into(), caller());
        let second = sessions.open("token".into(), caller());
        for _ in 2..MAX_SESSIONS {
            sessions.open("token".into(), caller());
        }
        assert!(sessions.find(&second).is_some());
        // `first` is now the least recently used: the next sign-in ends it.
        sessions.open("token".into(), caller());
        assert_eq!(sessions.held.lock().unwrap().len(), MAX_SESSIONS);
        assert!(sessions.find(&first).is_none());
        assert!(sessions.find(&second).is_some());
    }
}
