//! Statistical and recomputation tests of the audit `sample`.

use super::*;
use crate::decision::DecisionId;
use sha2::{Digest, Sha256};

/// Values computed outside Rust with Python's hashlib:
/// `(int.from_bytes(sha256(b"govgate-sample/v1" + id.encode()).digest()[:8], "big") >> 11) / 2**53`.
const KNOWN: [(&str, f64); 3] = [
    ("00000000000000000000000000000000", 0.059758623695773117),
    ("65a1b2c3d4e5f60718293a4b5c6d7e8f", 0.34989937761793855),
    ("ffffffffffffffffffffffffffffffff", 0.47095991349324606),
];

#[test]
fn sample_matches_known_answers() {
    for (id, want) in KNOWN {
        assert_eq!(sample_of(id).to_bits(), want.to_bits(), "{id}");
    }
}

/// An auditor's recomputation, written independently: integer arithmetic
/// on the digest of the concatenated bytes.
fn recompute(id_hex: &str) -> f64 {
    let mut message = b"govgate-sample/v1".to_vec();
    message.extend_from_slice(id_hex.as_bytes());
    let digest = Sha256::digest(&message);
    let top = digest[..8]
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    // Exact: the top 53 bits over 2^53.
    (top >> 11) as f64 / 9_007_199_254_740_992.0
}

#[test]
fn audit_sample_rate_is_within_binomial_bounds_and_recomputable() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set = PolicySet::load(&dir).unwrap();
    const N: usize = 4000;
    const P: f64 = 0.05;
    let mut flagged = 0usize;
    for _ in 0..N {
        let id = DecisionId::random();
        let hex = std::str::from_utf8(&id.hex()).unwrap().to_string();
        let input = PolicyInput::request(
            "sentiment",
            "v1",
            "low",
            "alice",
            hex.clone(),
            serde_json::Value::Null,
        )
        .into_response(200, serde_json::json!({"label": "positive"}));
        assert_eq!(input.sample.to_bits(), recompute(&hex).to_bits(), "{hex}");
        assert!((0.0..1.0).contains(&input.sample));
        let verdict = set.evaluate(&input).unwrap();
        let expect_flag = input.sample < P;
        assert_eq!(verdict.action == Action::Flag, expect_flag, "{hex}");
        flagged += usize::from(expect_flag);
    }
    let mean = N as f64 * P;
    let sigma = (N as f64 * P * (1.0 - P)).sqrt();
    let k = flagged as f64;
    assert!(
        (k - mean).abs() <= 4.0 * sigma,
        "{flagged} of {N} flagged, expected {mean} +- {:.1}",
        4.0 * sigma
    );
}
