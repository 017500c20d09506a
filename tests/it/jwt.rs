//! JWT bearer tokens for callers (`[auth.jwt]`): a valid token names the
//! caller by its claim and the decision records the issuer, subject and
//! token id; expired, wrong-audience, wrong-issuer, `alg: none`, HS256 and
//! unknown-kid tokens get 401 `caller_unauthenticated` with
//! `WWW-Authenticate: Bearer ... error="invalid_token"`; a `jwks_url` key
//! set served by a test server is rotated (a new kid picked up, the old
//! one gone) and a failed fetch keeps the last good set; the configured
//! claims reach the policies as `input.claims`. A token seen again comes
//! from the verified-token cache, which never outlives the token's `exp`
//! nor the key that signed it; the JWT and JWKS metrics move.

use crate::support::{Gateway, TestUpstream, send};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::Method;
use ring::signature::KeyPair;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://idp.bank.example";
const AUDIENCE: &str = "govgate";

/// A signing key of the test issuer, with its public JWK.
struct SigningKey {
    kid: String,
    alg: jsonwebtoken::Algorithm,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl SigningKey {
    fn ed25519(kid: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            alg: jsonwebtoken::Algorithm::EdDSA,
            encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                        "x": B64.encode(pair.public_key().as_ref())}),
        }
    }

    fn p256(kid: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.to_owned(),
            alg: jsonwebtoken::Algorithm::ES256,
            encoding: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass, for `sub`, with `extra` merged in.
fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub,
                            "exp": now() + 300, "iat": now(), "jti": format!("jti-{sub}")});
    if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        base.extend(extra);
    }
    claims
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "scorer"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

async fn infer_with_token(gateway: &Gateway, token: &str) -> crate::support::client::Reply {
    let bearer = format!("Bearer {token}");
    send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[("authorization", &bearer), ("x-govgate-caller", "root")],
        r#"{"inputs":[1]}"#,
    )
    .await
}

/// The value of the series `series` (name and labels, as exposed) in a
/// `/metrics` scrape, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

async fn assert_refused(gateway: &Gateway, token: &str, said: &str) {
    let refused = infer_with_token(gateway, token).await;
    assert_eq!(refused.status, 401, "{said}: {}", refused.text());
    assert_eq!(refused.error_code(), "caller_unauthenticated");
    assert!(
        refused.text().contains(said),
        "wanted {said:?}: {}",
        refused.text()
    );
    assert_eq!(
        refused.headers["www-authenticate"],
        "Bearer realm=\"govgate\", error=\"invalid_token\""
    );
    let entry = gateway.decision(&refused.decision_id()).await;
    assert_eq!(entry["caller"], "anonymous");
    assert_eq!(entry["auth"], json!({"method": "none"}));
}

#[tokio::test]
async fn a_token_names_the_caller_and_expired_misaddressed_unsigned_hmac_and_unknown_key_tokens_are_refused()
 {
    let upstream = TestUpstream::start().await;
    let ed = SigningKey::ed25519("ed-1");
    let ec = SigningKey::p256("ec-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&ed, &ec])).unwrap();
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\nrequired = true\n{}",
        file.display(),
        models(&upstream.url())
    ))
    .await;

    let headers_only = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[("x-govgate-caller", "svc-loans")],
        r#"{"inputs":[1]}"#,
    )
    .await;
    assert_eq!(
        headers_only.status, 401,
        "required: the header is not enough"
    );
    assert_eq!(
        headers_only.headers["www-authenticate"],
        "Bearer realm=\"govgate\""
    );

    for key in [&ed, &ec] {
        let served = infer_with_token(&gateway, &key.sign(&claims("svc-loans", json!({})))).await;
        assert_eq!(served.status, 200, "{}", served.text());
        let entry = gateway.decision(&served.decision_id()).await;
        assert_eq!(entry["caller"], "svc-loans", "the token, not the header");
        assert_eq!(
            entry["auth"],
            json!({"method": "jwt", "issuer": ISSUER, "subject": "svc-loans", "jti": "jti-svc-loans"})
        );
    }
    assert!(
        upstream
            .seen()
            .iter()
            .all(|sent| sent.headers.get("authorization").is_none()),
        "the token went upstream"
    );

    let past = json!({"exp": now() - 3600});
    assert_refused(&gateway, &ed.sign(&claims("svc", past)), "expired").await;
    let elsewhere = json!({"aud": "another-service"});
    assert_refused(&gateway, &ed.sign(&claims("svc", elsewhere)), "audience").await;
    let stranger = json!({"iss": "https://evil.example"});
    assert_refused(&gateway, &ec.sign(&claims("svc", stranger)), "issuer").await;
    let unsigned = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims("svc", json!({})).to_string())
    );
    assert_refused(&gateway, &unsigned, "algorithm").await;
    // HMAC "signed" with the issuer's public key: the key-confusion attack.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(ed.kid.clone());
    let public = B64.decode(ed.jwk["x"].as_str().unwrap()).unwrap();
    let hmac = jsonwebtoken::encode(
        &header,
        &claims("svc", json!({})),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_refused(&gateway, &hmac, "algorithm").await;
    let unknown = SigningKey::ed25519("ed-unknown");
    assert_refused(&gateway, &unknown.sign(&claims("svc", json!({}))), "kid").await;
    assert_eq!(
        upstream.seen().len(),
        2,
        "only the valid tokens were served"
    );
}

/// A JWKS endpoint on 127.0.0.1: serves what `body` holds (or 500 when it
/// is `None`) and counts the fetches.
struct JwksServer {
    url: String,
    body: Arc<Mutex<Option<String>>>,
    fetches: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let body = Arc::new(Mutex::new(Some(body)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (served, counted) = (served.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    match served.lock().unwrap().clone() {
                        Some(body) => (http::StatusCode::OK, body),
                        None => (http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            body,
            fetches,
            _task: task,
        }
    }

    fn serve(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_rotated_key_set_is_fetched_on_an_unknown_kid_at_most_so_often_and_a_failed_fetch_keeps_the_last_good_one()
 {
    let upstream = TestUpstream::start().await;
    let first = SigningKey::ed25519("2026-11");
    let second = SigningKey::p256("2026-12");
    let third = SigningKey::ed25519("2027-01");
    let server = JwksServer::start(jwks(&[&first])).await;
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{}\"\njwks_min_refresh_secs = 1\ncaller_claim = \"client_id\"\n{}",
        server.url,
        models(&upstream.url())
    ))
    .await;
    let token = |key: &SigningKey| key.sign(&claims("user-7", json!({"client_id": "svc-loans"})));

    // The set fetched at start (a token may arrive before it: it then
    // waits for that fetch). The same token again comes from the cache.
    let old = token(&first);
    for _ in 0..2 {
        let served = infer_with_token(&gateway, &old).await;
        assert_eq!(served.status, 200, "{}", served.text());
        assert_eq!(
            gateway.decision(&served.decision_id()).await["caller"],
            "svc-loans",
            "caller_claim names the caller"
        );
    }
    let text = gateway.metrics().await;
    assert_eq!(
        metric(&text, r#"govgate_jwt_cache_lookups_total{result="hit"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"govgate_jwks_fetches_total{result="ok"}"#),
        1.0
    );
    assert_eq!(metric(&text, "govgate_jwks_keys"), 1.0);
    let fetched_at = metric(&text, "govgate_jwks_last_success_timestamp_seconds");
    assert!((fetched_at - now() as f64).abs() < 60.0, "{text}");
    let at_start = server.fetches();

    // The issuer rotates: the new kid is fetched and accepted, the old one is gone.
    server.serve(Some(jwks(&[&second])));
    let served = infer_with_token(&gateway, &token(&second)).await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(server.fetches(), at_start + 1);
    // A cached token signed by the removed key is refused too.
    assert_refused(&gateway, &old, "kid").await;
    assert_refused(&gateway, &token(&first), "kid").await;
    assert_eq!(
        server.fetches(),
        at_start + 1,
        "an unknown kid within jwks_min_refresh_secs of a fetch does not fetch again"
    );

    // The endpoint fails: the last good set stays in force.
    server.serve(None);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_refused(&gateway, &token(&third), "kid").await;
    assert_eq!(server.fetches(), at_start + 2, "a fetch after the interval");
    let served = infer_with_token(&gateway, &token(&second)).await;
    assert_eq!(served.status, 200, "{}", served.text());

    // A set that is not JSON: kept too.
    server.serve(Some("not a key set".to_owned()));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_refused(&gateway, &token(&third), "kid").await;
    let text = gateway.metrics().await;
    for (series, value) in [
        (r#"govgate_jwks_fetches_total{result="ok"}"#, 2.0),
        (r#"govgate_jwks_fetches_total{result="http_error"}"#, 1.0),
        (r#"govgate_jwks_fetches_total{result="parse_error"}"#, 1.0),
        ("govgate_jwks_keys", 1.0),
        (r#"govgate_jwt_tokens_total{result="unknown_kid"}"#, 4.0),
    ] {
        assert_eq!(metric(&text, series), value, "{series}\n{text}");
    }
    assert!(metric(&text, r#"govgate_jwt_tokens_total{result="accepted"}"#) >= 4.0);
}

#[tokio::test]
async fn a_cached_token_is_refused_as_soon_as_it_expires() {
    let upstream = TestUpstream::start().await;
    let key = SigningKey::ed25519("ed-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\nleeway_secs = 0\n{}",
        file.display(),
        models(&upstream.url())
    ))
    .await;
    let exp = now() + 1;
    let token = key.sign(&claims("svc-loans", json!({"exp": exp})));
    for _ in 0..2 {
        let served = infer_with_token(&gateway, &token).await;
        assert_eq!(served.status, 200, "{}", served.text());
    }
    // Past `exp` (no leeway): the next second.
    while now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_refused(&gateway, &token, "expired").await;
    let text = gateway.metrics().await;
    for (series, value) in [
        (r#"govgate_jwt_cache_lookups_total{result="miss"}"#, 1.0),
        (r#"govgate_jwt_cache_lookups_total{result="hit"}"#, 2.0),
        (r#"govgate_jwt_tokens_total{result="accepted"}"#, 2.0),
        (r#"govgate_jwt_tokens_total{result="expired"}"#, 1.0),
        ("govgate_jwks_keys", 1.0),
    ] {
        assert_eq!(metric(&text, series), value, "{series}\n{text}");
    }
}

#[tokio::test]
async fn a_key_set_url_that_does_not_answer_counts_a_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{url}\"\njwks_fetch_timeout_ms = 200\n{}",
        models(&upstream.url())
    ))
    .await;
    let text = gateway
        .metrics_when(r#"govgate_jwks_fetches_total{result="timeout"} 1"#)
        .await;
    assert_eq!(metric(&text, "govgate_jwks_keys"), 0.0, "{text}");
    assert_eq!(
        metric(&text, "govgate_jwks_last_success_timestamp_seconds"),
        0.0
    );
}

const LENDING_ONLY: &str = r#"package govgate

import rego.v1

deny contains "only the lending group may call the scorer" if {
	input.stage == "request"
	not "lending" in input.claims.groups
}
"#;

#[tokio::test]
async fn the_configured_claims_reach_the_policies() {
    let upstream = TestUpstream::start().await;
    let key = SigningKey::ed25519("ed-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&key])).unwrap();
    let policies = crate::reviews::policy_dir(&[("lending.rego", LENDING_ONLY)]);
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\npolicy_claims = [\"groups\"]\n{}\n[review]\npolicies_dir = \"{}\"\n",
        file.display(),
        models(&upstream.url()),
        policies.path().display()
    ))
    .await;
    let lending = key.sign(&claims("ana", json!({"groups": ["lending", "staff"]})));
    let marketing = key.sign(&claims("bob", json!({"groups": ["marketing"]})));
    // The second time each token comes from the cache, claims and all.
    for _ in 0..2 {
        let served = infer_with_token(&gateway, &lending).await;
        assert_eq!(served.status, 200, "{}", served.text());
        let denied = infer_with_token(&gateway, &marketing).await;
        assert_eq!(denied.status, 403, "{}", denied.text());
        assert_eq!(denied.error_code(), "policy_denied");
        let entry = gateway.decision(&denied.decision_id()).await;
        assert_eq!(entry["caller"], "bob");
        assert_eq!(
            entry["policy"]["request"]["deny"],
            json!(["only the lending group may call the scorer"])
        );
    }
    let text = gateway.metrics().await;
    assert_eq!(
        metric(&text, r#"govgate_jwt_cache_lookups_total{result="hit"}"#),
        2.0
    );
}
