//! JWT bearer token verification (`[auth.jwt]`) with the key already in
//! the gateway's key set: one token's header parse, signature check,
//! claim checks (`iss`, `aud`, `exp`, `nbf`) and the caller's identity,
//! per algorithm. The RSA key is the TEST-ONLY key of
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

fn verification(c: &mut Criterion) {
    let keys = keys();
    let set = json!({"keys": keys.iter().map(|k| k.2.clone()).collect::<Vec<_>>()});
    let config = JwtConfig {
        issuer: "https://idp.bank.example".into(),
        audience: "govgate".into(),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        keys: JwksSource::File(parse_jwks(set.to_string().as_bytes()).unwrap()),
        leeway_secs: 60,
        caller_claim: "sub".into(),
        policy_claims: vec!["groups".into()],
        required: false,
        cache_entries: 10_000,
    };
    let (auth, _) = JwtAuth::new(&config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://idp.bank.example", "aud": "govgate", "sub": "svc-loans",
                        "exp": now + 3600, "iat": now, "jti": "a1b2c3d4",
                        "groups": ["lending", "staff"]});
    let mut group = c.benchmark_group("jwt_verify");
    for (alg, key, _) in &keys {
        let mut header = Header::new(*alg);
        header.kid = Some(format!("{alg:?}"));
        let token = jsonwebtoken::encode(&header, &claims, key).unwrap();
        assert!(auth.verify(&token).is_ok(), "{alg:?} token does not verify");
        group.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| auth.verify(std::hint::black_box(&token)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
