//! The input document the policies see as `input`, and the audit `sample`
//! derived from the decision id.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Domain separator hashed before the decision id to derive `sample`.
pub const SAMPLE_DOMAIN: &[u8] = b"govgate-sample/v1";

/// When the policies run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before the request is forwarded upstream.
    Request,
    /// After the upstream answered, before the answer is released.
    Response,
}

impl Stage {
    /// The value of `input.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Response => "response",
        }
    }
}

/// The document bound to `input` in Rego. Field names are the JSON keys;
/// docs/policies.md describes each with an example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyInput {
    /// `"request"` or `"response"`.
    pub stage: Stage,
    /// The model name.
    pub model: String,
    /// The model version served.
    pub version: String,
    /// The version's risk class as registered (e.g. `"high"`).
    pub risk_class: String,
    /// The authenticated caller.
    pub caller: String,
    /// The decision id, 32 lower-case hex digits.
    pub decision_id: String,
    /// [`sample_of`] the decision id, in [0, 1).
    pub sample: f64,
    /// The parsed JSON request body, or null when it is not JSON.
    pub request: Value,
    /// The parsed JSON response body; null at the request stage or when the
    /// body is not JSON.
    pub response: Value,
    /// The upstream HTTP status; null at the request stage.
    pub status: Option<u16>,
    /// The caller's verified token claims named by `auth.jwt.policy_claims`
    /// (an empty object when the caller was not established by a token).
    pub claims: Value,
}

impl PolicyInput {
    /// A request-stage input; `sample` is derived from `decision_id`.
    pub fn request(
        model: impl Into<String>,
        version: impl Into<String>,
        risk_class: impl Into<String>,
        caller: impl Into<String>,
        decision_id: impl Into<String>,
        request: Value,
    ) -> Self {
        let decision_id = decision_id.into();
        Self {
            stage: Stage::Request,
            model: model.into(),
            version: version.into(),
            risk_class: risk_class.into(),
            caller: caller.into(),
            sample: sample_of(&decision_id),
            decision_id,
            request,
            response: Value::Null,
            status: None,
            claims: Value::Object(serde_json::Map::new()),
        }
    }

    /// The same input with the caller's verified token claims.
    pub fn with_claims(self, claims: serde_json::Map<String, Value>) -> Self {
        Self {
            claims: Value::Object(claims),
            ..self
        }
    }

    /// The response-stage input that follows this request-stage one.
    pub fn into_response(self, status: u16, response: Value) -> Self {
        Self {
            stage: Stage::Response,
            response,
            status: Some(status),
            ..self
        }
    }
}

/// The audit sample of a decision, a number in [0, 1) that anyone holding
/// the decision id can recompute:
///
/// ```text
/// h = SHA-256("govgate-sample/v1" || lower-case hex decision id, as ASCII)
/// x = the first 8 bytes of h as a big-endian u64
/// sample = (x >> 11) / 2^53
/// ```
///
/// Keeping the top 53 bits makes the division exact in an `f64`, so the
/// value is strictly below 1 and the same in every language. Upper-case
/// hex digits are lowered first.
pub fn sample_of(decision_id_hex: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(SAMPLE_DOMAIN);
    hasher.update(decision_id_hex.to_ascii_lowercase().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let x = u64::from_be_bytes(first);
    // 2^53: every integer below it is exact in an f64.
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_in_unit_interval_and_case_insensitive() {
        let id = "65a1b2c3d4e5f60718293a4b5c6d7e8f";
        let s = sample_of(id);
        assert!((0.0..1.0).contains(&s));
        assert_eq!(s, sample_of(&id.to_uppercase()));
        assert_ne!(s, sample_of("65a1b2c3d4e5f60718293a4b5c6d7e80"));
    }

    #[test]
    fn input_serializes_to_the_documented_document() {
        let input = PolicyInput::request(
            "credit-scoring",
            "v3",
            "high",
            "svc-loans",
            "00000000000000000000000000000000",
            serde_json::json!({"a": 1}),
        );
        let json = serde_json::to_value(&input).unwrap();
        assert_eq!(json["stage"], "request");
        assert_eq!(json["response"], Value::Null);
        assert_eq!(json["status"], Value::Null);
        assert_eq!(json["request"]["a"], 1);
        let json = serde_json::to_value(input.into_response(200, serde_json::json!([]))).unwrap();
        assert_eq!(json["stage"], "response");
        assert_eq!(json["status"], 200);
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 11);
    }
}
