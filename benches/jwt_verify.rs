//! JWT bearer token verification (`[auth.jwt]`) with the key already in
//! the gateway's key set, per algorithm: a verified-token cache hit, a
//! miss (header parse, signature check, claim checks `iss`, `aud`, `exp`,
//! `nbf`, the caller's identity, cache insert) and ring's bare signature
//! check as the baseline; then how a miss is best moved off the async
//! worker. The RSA key is the TEST-ONLY key of
//! tests/data/jwt_rs256_test_key.json; Ed25519 and P-256 keys are made here.
//!
//! Run: `cargo bench --bench jwt_verify`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use criterion::{Criterion, criterion_group, criterion_main};
use govgate::config::{JwksSource, JwtConfig, parse_jwks};
use govgate::proxy::jwt::JwtAuth;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use serde_json::{Value, json};

fn keys() -> Vec<(Algorithm, EncodingKey, Value)> {
    let rng = ring::rand::SystemRandom::new();
    let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed_public = ring::signature::Ed25519KeyPair::from_pkcs8(ed.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let p256 = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let ec = ring::signature::EcdsaKeyPair::generate_pkcs8(p256, &rng).unwrap();
    let point = ring::signature::EcdsaKeyPair::from_pkcs8(p256, ec.as_ref(), &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let rsa: Value =
        serde_json::from_str(include_str!("../tests/data/jwt_rs256_test_key.json")).unwrap();
    let rsa_der = STANDARD
        .decode(rsa["private_pkcs1_der_base64"].as_str().unwrap())
        .unwrap();
    vec![
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(ed.as_ref()),
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "EdDSA", "x": B64.encode(ed_public)}),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_der(ec.as_ref()),
            json!({"kty": "EC", "crv": "P-256", "kid": "ES256",
                   "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}),
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&rsa_der),
            json!({"kty": "RSA", "kid": "RS256", "n": rsa["jwk"]["n"], "e": rsa["jwk"]["e"]}),
        ),
    ]
}

/// The bare signature check of `token` with ring, as jsonwebtoken makes
/// it: the baseline a cache miss cannot beat.
fn ring_check(alg: Algorithm, jwk: &Value) -> impl Fn(&str) -> bool {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
        UnparsedPublicKey,
    };
    let field = |name: &str| B64.decode(jwk[name].as_str().unwrap()).unwrap();
    let (x, n, e) = match alg {
        Algorithm::EdDSA => (field("x"), vec![], vec![]),
        Algorithm::ES256 => ([vec![4], field("x"), field("y")].concat(), vec![], vec![]),
        _ => (vec![], field("n"), field("e")),
    };
    move |token: &str| {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = B64.decode(signature).unwrap();
        match alg {
            Algorithm::EdDSA => UnparsedPublicKey::new(&ED25519, &x)
                .verify(message.as_bytes(), &signature)
                .is_ok(),
            Algorithm::ES256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &x)
                .verify(message.as_bytes(), &signature)
                .is_ok(),
            _ => RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature)
                .is_ok(),
        }
    }
}

fn config(keys: &[(Algorithm, EncodingKey, Value)], cache_entries: usize) -> JwtConfig {
    let set = json!({"keys": keys.iter().map(|k| k.2.clone()).collect::<Vec<_>>()});
    JwtConfig {
        issuer: "https://idp.bank.example".into(),
        audience: "govgate".into(),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        keys: JwksSource::File(parse_jwks(set.to_string().as_bytes()).unwrap()),
        leeway_secs: 60,
        caller_claim: "sub".into(),
        policy_claims: vec!["groups".into()],
        required: false,
        cache_entries,
    }
}

fn token(alg: Algorithm, key: &EncodingKey, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://idp.bank.example", "aud": "govgate", "sub": "svc-loans",
                        "exp": now + 3600, "iat": now, "jti": jti,
                        "groups": ["lending", "staff"]});
    let mut header = Header::new(alg);
    header.kid = Some(format!("{alg:?}"));
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// Per algorithm, in one run: a cache hit (the same token again), a miss
/// (two tokens taking turns in a one-entry cache: hash, full check,
/// insert, eviction) and ring's bare signature check of the same token.
fn verification(c: &mut Criterion) {
    let keys = keys();
    let (cached, _) = JwtAuth::new(&config(&keys, 10_000));
    let (one_entry, _) = JwtAuth::new(&config(&keys, 1));
    let mut group = c.benchmark_group("jwt_verify");
    for (alg, key, jwk) in &keys {
        let token = token(*alg, key, "a1b2c3d4");
        let other = token_other(*alg, key);
        assert!(
            cached.verify(&token).is_ok(),
            "{alg:?} token does not verify"
        );
        group.bench_function(format!("{alg:?}/hit"), |b| {
            b.iter(|| cached.verify(std::hint::black_box(&token)).unwrap())
        });
        let mut turn = false;
        group.bench_function(format!("{alg:?}/miss"), |b| {
            b.iter(|| {
                turn = !turn;
                let token = if turn { &token } else { &other };
                one_entry.verify(std::hint::black_box(token)).unwrap()
            })
        });
        let check = ring_check(*alg, jwk);
        assert!(check(&token));
        group.bench_function(format!("{alg:?}/signature"), |b| {
            b.iter(|| assert!(check(std::hint::black_box(&token))))
        });
    }
    group.finish();
}

fn token_other(alg: Algorithm, key: &EncodingKey) -> String {
    token(alg, key, "e5f6a7b8")
}

/// How a cache miss leaves the request path, from a task on a two-worker
/// runtime: run inline, under `block_in_place`, or on the blocking pool
/// with `spawn_blocking` (each includes the same task spawn and join).
fn miss_dispatch(c: &mut Criterion) {
    let keys = keys();
    let (one_entry, _) = JwtAuth::new(&config(&keys, 1));
    let (alg, key, _) = &keys[0];
    let tokens = [token(*alg, key, "a1b2c3d4"), token_other(*alg, key)];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("jwt_miss_dispatch");
    let mut turn = 0usize;
    for how in ["inline", "block_in_place", "spawn_blocking"] {
        group.bench_function(how, |b| {
            b.iter(|| {
                turn += 1;
                let (auth, token) = (one_entry.clone(), tokens[turn % 2].clone());
                runtime.block_on(async move {
                    tokio::spawn(async move {
                        match how {
                            "inline" => auth.verify(&token).is_ok(),
                            "block_in_place" => {
                                tokio::task::block_in_place(|| auth.verify(&token).is_ok())
                            }
                            _ => tokio::task::spawn_blocking(move || auth.verify(&token).is_ok())
                                .await
                                .unwrap(),
                        }
                    })
                    .await
                    .unwrap()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verification, miss_dispatch);
criterion_main!(benches);
