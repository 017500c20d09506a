//! JWT bearer tokens (`[auth.jwt]`): a token's signature checked against
//! the issuer's key set, then its `iss`, `aud`, `exp` and `nbf` (with the
//! configured leeway); the caller is the configured claim. The key set is
//! a file read at start or a URL that [`super::jwks`] fetches in the
//! background; a token whose `kid` is not in the set may ask for a fetch
//! (at most once per `jwks_min_refresh_secs`) and wait for it.
//!
//! A verified token is remembered by its hash ([`cache`]) so the same
//! token seen again skips the signature check; on the request path a
//! check that misses the cache runs under `block_in_place`
//! ([`JwtAuth::verify_request`]).
//!
//! Tokens are never kept, logged or recorded: the decision names the
//! token's issuer, subject and id (`jti`).

mod cache;
mod metrics;

pub(crate) use self::metrics::FetchResult;
pub use self::metrics::JwtMetrics;
use crate::config::{JwksSource, JwtConfig};
use crate::decision::{CallerAuth, MAX_NAME_BYTES};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Most bytes of a token the gateway looks at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token is refused (said to the client; never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not three base64url parts with a JSON header, or too long.
    Malformed,
    /// Signed with an algorithm that is not accepted (`none`, HS*, ...).
    Algorithm,
    /// No key of the issuer's set has the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Past `exp` (beyond the leeway).
    Expired,
    /// Before `nbf` (beyond the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not name the configured audience.
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`) is missing or mistyped.
    MissingClaim,
    /// The caller claim is missing, not a string, empty or over 128 bytes
    /// (or `sub`/`jti` is over 128 bytes).
    NoCaller,
}

impl TokenProblem {
    /// Said to the client.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "the bearer token is not a well-formed JWT",
            Self::Algorithm => "the token's algorithm is not accepted",
            Self::UnknownKey => "the token's signing key (kid) is not known",
            Self::BadSignature => "the token's signature does not verify",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::WrongIssuer => "the token's issuer is not accepted",
            Self::WrongAudience => "the token is not for this gateway (audience)",
            Self::MissingClaim => "the token lacks a required claim (exp, iss, aud)",
            Self::NoCaller => "the token does not name a caller the gateway can record",
        }
    }
}

/// A verified token: who it names and what the policies may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The caller claim's value.
    pub caller: String,
    /// As the decision records it.
    pub auth: CallerAuth,
    /// The configured `policy_claims` the token carries.
    pub claims: Arc<Map<String, Value>>,
}

/// One usable key: its decoding key and the checks that go with it.
struct VerifyKey {
    key: DecodingKey,
    validation: Validation,
}

/// The keys in force, by `kid`; `attempt` counts fetch attempts (also
/// failed ones), so a waiting request sees when one has ended.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// Keys without a `kid` (usable only by tokens without one).
    unnamed: Vec<Arc<VerifyKey>>,
    pub(crate) attempt: u64,
    /// Changes whenever the keys change (not on a failed fetch, nor on a
    /// fetch that brings the same set): a cached token verified under
    /// another generation is checked again.
    pub(crate) generation: u64,
}

impl KeySet {
    /// The usable keys of `set` for `config`: asymmetric keys of an
    /// accepted algorithm's family; others are skipped.
    pub(crate) fn of(set: &JwkSet, config: &JwtConfig, attempt: u64) -> Self {
        let mut keys = KeySet {
            attempt,
            ..KeySet::default()
        };
        for jwk in &set.keys {
            let family: &[Algorithm] = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => &[Algorithm::RS256],
                AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256],
                AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
                // Symmetric keys never verify a caller's token.
                AlgorithmParameters::OctetKey(_) => continue,
            };
            let mut algorithms: Vec<Algorithm> = config
                .algorithms
                .iter()
                .copied()
                .filter(|a| family.contains(a))
                .collect();
            // A key that names its algorithm is used for that one only.
            if let Some(named) = jwk.common.key_algorithm {
                let Ok(named) = named.to_string().parse::<Algorithm>() else {
                    continue;
                };
                algorithms.retain(|a| *a == named);
            }
            if algorithms.is_empty() {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let mut validation = Validation::new(algorithms[0]);
            validation.algorithms = algorithms;
            validation.leeway = config.leeway_secs;
            validation.validate_nbf = true;
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[&config.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            let key = Arc::new(VerifyKey { key, validation });
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.unnamed.push(key),
            }
        }
        keys
    }

    fn find(&self, kid: Option<&str>) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).map(Arc::as_ref),
            // A token without a kid: the set's only key, if it has one.
            None => match (self.unnamed.as_slice(), self.by_kid.len()) {
                ([only], 0) => Some(only),
                ([], 1) => self.by_kid.values().next().map(Arc::as_ref),
                _ => None,
            },
        }
    }

    /// The same keys after another fetch attempt (one that failed).
    pub(crate) fn retried(&self, attempt: u64) -> Self {
        Self {
            by_kid: self.by_kid.clone(),
            unnamed: self.unnamed.clone(),
            attempt,
            generation: self.generation,
        }
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

/// Asks the fetcher for a new key set when a token names an unknown key,
/// at most once per `min_refresh`.
pub(crate) struct RefreshGate {
    pub(crate) wake: Arc<Notify>,
    min_refresh: Duration,
    fetch_timeout: Duration,
    /// When a fetch was last asked for, and the attempt count then.
    asked: Mutex<Option<(Instant, u64)>>,
}

/// Verifies tokens against the key set in force; cheap to clone (clones
/// share the verified-token cache).
#[derive(Clone)]
pub struct JwtAuth {
    config: Arc<JwtConfig>,
    keys: watch::Receiver<Arc<KeySet>>,
    refresh: Option<Arc<RefreshGate>>,
    cache: Option<Arc<cache::TokenCache>>,
    metrics: JwtMetrics,
}

/// What the cache knows of a token.
enum Cached {
    /// The answer, without a signature check.
    Known(Result<Verified, TokenProblem>),
    /// Check it; remember it under this hash (none: no cache).
    Unknown(Option<cache::TokenHash>),
}

/// The check of the request's bearer token, made before the handler
/// runs (a request extension), so it is made once.
#[derive(Clone)]
pub(crate) struct TokenChecked(pub(crate) Result<Verified, TokenProblem>);

/// A request's bearer token check: made before the handler ran, or to
/// make now.
#[derive(Clone, Copy)]
pub(crate) struct RequestToken<'a> {
    pub(crate) auth: &'a JwtAuth,
    pub(crate) checked: Option<&'a TokenChecked>,
}

impl RequestToken<'_> {
    /// The check's result.
    pub(crate) fn verify(self, token: &str) -> Result<Verified, TokenProblem> {
        match self.checked {
            Some(checked) => checked.0.clone(),
            None => self.auth.verify(token),
        }
    }
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// The verifier of `config`, and for a `jwks_url` the fetcher that
    /// keeps its key set (to be run by the caller, see [`super::jwks`]).
    /// Its metrics are served by no registry: see [`Self::with_metrics`].
    pub fn new(config: &JwtConfig) -> (Self, Option<super::jwks::JwksFetcher>) {
        Self::with_metrics(config, JwtMetrics::detached())
    }

    /// As [`Self::new`], counting into `metrics`.
    pub fn with_metrics(
        config: &JwtConfig,
        metrics: JwtMetrics,
    ) -> (Self, Option<super::jwks::JwksFetcher>) {
        let config = Arc::new(config.clone());
        let cache = cache::TokenCache::new(config.cache_entries, config.leeway_secs).map(Arc::new);
        match &config.keys {
            JwksSource::File(set) => {
                let keys = KeySet::of(set, &config, 0);
                metrics.set_keys(keys.len());
                let (_, keys) = watch::channel(Arc::new(keys));
                (
                    Self {
                        config,
                        keys,
                        refresh: None,
                        cache,
                        metrics,
                    },
                    None,
                )
            }
            JwksSource::Url(url) => {
                let (sender, keys) = watch::channel(Arc::new(KeySet::default()));
                let wake = Arc::new(Notify::new());
                let gate = Arc::new(RefreshGate {
                    wake: wake.clone(),
                    min_refresh: url.min_refresh,
                    fetch_timeout: url.fetch_timeout,
                    asked: Mutex::new(None),
                });
                let fetcher = super::jwks::JwksFetcher::new(
                    config.clone(),
                    url.clone(),
                    sender,
                    wake,
                    metrics.clone(),
                );
                (
                    Self {
                        config,
                        keys,
                        refresh: Some(gate),
                        cache,
                        metrics,
                    },
                    Some(fetcher),
                )
            }
        }
    }

    /// Waits (at most the fetch timeout) for a new key set when `token`
    /// names a key the set in force lacks and a fetch may be asked for now.
    /// Cancel-safe: a dropped wait leaves the fetch to run.
    pub async fn prepare(&self, token: &str) {
        let Some(gate) = &self.refresh else {
            return;
        };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return;
        };
        let mut keys = self.keys.clone();
        let current = keys.borrow_and_update().clone();
        if current.find(header.kid.as_deref()).is_some() {
            return;
        }
        let wait = {
            let Ok(mut asked) = gate.asked.lock() else {
                return;
            };
            match *asked {
                // The fetch at start has not ended: wait for it, ask nothing.
                _ if current.attempt == 0 => true,
                // A fetch asked for recently: wait for it if it has not ended.
                Some((at, attempt)) if at.elapsed() < gate.min_refresh => {
                    attempt == current.attempt
                }
                _ => {
                    *asked = Some((Instant::now(), current.attempt));
                    gate.wake.notify_one();
                    true
                }
            }
        };
        if wait {
            let _ = tokio::time::timeout(gate.fetch_timeout, keys.changed()).await;
        }
    }

    /// Verifies `token` against the key set in force: from the cache when
    /// it was verified under this key set and is valid now, else one
    /// signature check on this thread. No waiting.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenProblem> {
        let keys = self.keys.borrow().clone();
        let result = match self.cached(token, keys.generation) {
            Cached::Known(result) => result,
            Cached::Unknown(hash) => self.check(token, &keys, hash),
        };
        self.metrics.count_token(&result);
        result
    }

    /// Verifies the request's `token`: from the cache, else after waiting
    /// for a fresh key set where the token names an unknown key (see
    /// [`Self::prepare`]) with the signature check moved off the async
    /// worker. Cancel-safe.
    pub async fn verify_request(&self, token: &str) -> Result<Verified, TokenProblem> {
        let generation = self.keys.borrow().generation;
        let hash = match self.cached(token, generation) {
            Cached::Known(result) => {
                self.metrics.count_token(&result);
                return result;
            }
            Cached::Unknown(hash) => hash,
        };
        self.prepare(token).await;
        let keys = self.keys.borrow().clone();
        let result = off_worker(|| self.check(token, &keys, hash));
        self.metrics.count_token(&result);
        result
    }

    /// How many verified tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.len())
    }

    /// The cache's answer for `token` under key-set `generation`.
    fn cached(&self, token: &str, generation: u64) -> Cached {
        if token.len() > MAX_TOKEN_BYTES {
            return Cached::Known(Err(TokenProblem::Malformed));
        }
        let Some(cache) = &self.cache else {
            return Cached::Unknown(None);
        };
        let hash = cache::hash(token);
        let now = jsonwebtoken::get_current_timestamp();
        match cache.lookup(&hash, generation, now) {
            cache::Lookup::Hit(verified) => {
                self.metrics.count_cache(true);
                Cached::Known(Ok(verified))
            }
            cache::Lookup::Refused(problem) => {
                self.metrics.count_cache(true);
                Cached::Known(Err(problem))
            }
            cache::Lookup::Miss => {
                self.metrics.count_cache(false);
                Cached::Unknown(Some(hash))
            }
        }
    }

    /// The full check of `token` against `keys` (one signature check);
    /// a verified token is remembered under `hash`.
    fn check(
        &self,
        token: &str,
        keys: &KeySet,
        hash: Option<cache::TokenHash>,
    ) -> Result<Verified, TokenProblem> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_problem(token))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(TokenProblem::Algorithm);
        }
        let key = keys
            .find(header.kid.as_deref())
            .ok_or(TokenProblem::UnknownKey)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(|err| problem(&err))?;
        let exp = seconds(&data.claims, "exp");
        let nbf = seconds(&data.claims, "nbf");
        let verified = self.identity(data.claims)?;
        if let (Some(cache), Some(hash), Some(exp)) = (&self.cache, hash, exp) {
            let entry = cache::Entry {
                verified: verified.clone(),
                exp,
                nbf,
                generation: keys.generation,
            };
            cache.insert(hash, entry);
        }
        Ok(verified)
    }

    /// The caller and the recorded identity of verified claims.
    fn identity(&self, mut claims: Map<String, Value>) -> Result<Verified, TokenProblem> {
        let text = |claims: &Map<String, Value>,
                    name: &str|
         -> Result<Option<String>, TokenProblem> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::String(text)) if text.len() <= MAX_NAME_BYTES => Ok(Some(text.clone())),
                Some(_) => Err(TokenProblem::NoCaller),
            }
        };
        let caller = text(&claims, &self.config.caller_claim)?
            .filter(|caller| !caller.is_empty())
            .ok_or(TokenProblem::NoCaller)?;
        let issuer = text(&claims, "iss")?.ok_or(TokenProblem::MissingClaim)?;
        let auth = CallerAuth::Jwt {
            issuer,
            subject: text(&claims, "sub")?,
            jti: text(&claims, "jti")?,
        };
        let policy: Map<String, Value> = self
            .config
            .policy_claims
            .iter()
            .filter_map(|name| Some((name.clone(), claims.remove(name)?)))
            .collect();
        Ok(Verified {
            caller,
            auth,
            claims: Arc::new(policy),
        })
    }
}

/// Runs one signature check (30-75 us, more on a busy machine) from the
/// request path. `block_in_place` hands this worker's other tasks to
/// another worker and runs the check here. Measured with `cargo bench
/// --bench jwt_verify` (group `jwt_miss_dispatch`, docs/performance.md):
/// a miss took 114 us inline, 130 us under `block_in_place` and 158 us
/// with `spawn_blocking` (a handoff to the blocking pool and back); inline
/// is quickest for this request but stalls every request queued on the
/// worker for the whole check, so `block_in_place` it is. A
/// single-threaded runtime has no other worker: inline there.
fn off_worker<T>(check: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(check),
        _ => check(),
    }
}

/// A time claim as the check reads it: whole seconds, a fractional value
/// rounded (jsonwebtoken's `numeric_type`); `None` when absent or unusable.
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    let value = claims.get(name)?;
    if let Some(whole) = value.as_u64() {
        return Some(whole);
    }
    let fractional = value.as_f64()?;
    (fractional.is_finite() && fractional >= 0.0 && fractional < u64::MAX as f64)
        .then(|| fractional.round() as u64)
}

/// Why a token's header does not parse: an algorithm the library does not
/// even name (`none`) is an algorithm refusal, anything else malformed.
fn header_problem(token: &str) -> TokenProblem {
    use base64::Engine;
    let named_alg = token
        .split('.')
        .next()
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|header| header["alg"].is_string());
    if named_alg {
        TokenProblem::Algorithm
    } else {
        TokenProblem::Malformed
    }
}

fn problem(err: &jsonwebtoken::errors::Error) -> TokenProblem {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenProblem::Algorithm,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            TokenProblem::BadSignature
        }
        ErrorKind::ExpiredSignature => TokenProblem::Expired,
        ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
        ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
        ErrorKind::InvalidAudience => TokenProblem::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => TokenProblem::MissingClaim,
        _ => TokenProblem::Malformed,
    }
}

/// The bearer token of `Authorization` when it has the shape of a JWT
/// (three dot-separated base64url parts) and is not a gateway API key.
pub(crate) fn bearer_jwt(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let looks = token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    (scheme.eq_ignore_ascii_case("bearer")
        && looks
        && !token.starts_with(super::callers::API_KEY_PREFIX))
    .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ring::signature::KeyPair;
    use serde_json::json;

    /// A verifier whose set holds one Ed25519 key (`kid` as given, or none),
    /// and that key for signing.
    fn one_key(kid: Option<&str>) -> (JwtAuth, jsonwebtoken::EncodingKey) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519",
                             "x": B64.encode(pair.public_key().as_ref())});
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        let set = crate::config::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes());
        let config = JwtConfig {
            issuer: "https://idp".into(),
            audience: "gw".into(),
            algorithms: vec![Algorithm::EdDSA],
            keys: JwksSource::File(set.unwrap()),
            leeway_secs: 60,
            caller_claim: "sub".into(),
            policy_claims: vec!["groups".into()],
            required: false,
            cache_entries: 16,
        };
        let encoding = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        (JwtAuth::new(&config).0, encoding)
    }

    fn sign(key: &jsonwebtoken::EncodingKey, kid: Option<&str>, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(sub: &str) -> Value {
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        json!({"iss": "https://idp", "aud": "gw", "sub": sub, "exp": exp,
               "groups": ["a"], "email": "x@example"})
    }

    #[test]
    fn a_token_without_kid_uses_the_only_key_and_hands_on_only_the_listed_claims() {
        let (auth, key) = one_key(None);
        let verified = auth.verify(&sign(&key, None, claims("svc"))).unwrap();
        assert_eq!(verified.caller, "svc");
        assert_eq!(
            verified.auth,
            CallerAuth::Jwt {
                issuer: "https://idp".into(),
                subject: Some("svc".into()),
                jti: None
            }
        );
        assert_eq!(
            Value::Object(verified.claims.as_ref().clone()),
            json!({"groups": ["a"]})
        );
        assert_eq!(
            auth.verify(&sign(&key, Some("other"), claims("svc"))),
            Err(TokenProblem::UnknownKey)
        );
    }

    #[test]
    fn a_caller_the_ledger_cannot_hold_and_broken_tokens_are_refused() {
        let (auth, key) = one_key(Some("k"));
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            auth.verify(&sign(&key, Some("k"), claims(&long))),
            Err(TokenProblem::NoCaller)
        );
        assert_eq!(
            auth.verify(&sign(&key, Some("k"), claims(""))),
            Err(TokenProblem::NoCaller)
        );
        let mut token = sign(&key, Some("k"), claims("svc"));
        token.push('A');
        assert_eq!(auth.verify(&token), Err(TokenProblem::BadSignature));
        assert_eq!(auth.verify("a.b.c"), Err(TokenProblem::Malformed));
        let none = format!("{}.e30.", B64.encode(br#"{"alg":"none"}"#));
        assert_eq!(auth.verify(&none), Err(TokenProblem::Algorithm));
    }
}
