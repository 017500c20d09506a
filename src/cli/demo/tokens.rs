//! The demo's own identity provider: an Ed25519 key made at start whose
//! public half is the JWKS file `[auth.jwt]` reads, a policy that decides
//! on the tokens' `groups` claim, and short-lived tokens signed with the
//! key for the tour's commands. DEMO ONLY: the key lives in memory for
//! the demo's life and its tokens are printed.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rand::TryRngCore;
use std::path::Path;

/// The demo tokens' issuer and audience (the names are only compared).
const ISSUER: &str = "https://idp.demo.govgate.example";
const AUDIENCE: &str = "govgate-demo";

/// The JWKS file, in the data directory.
const JWKS_FILE: &str = "demo-jwks.json";

/// The key's id in the JWKS and in the tokens' header.
const KID: &str = "demo-1";

/// How long a printed token is good for.
pub(super) const TOKEN_MINUTES: u64 = 10;

/// The file name of the demo's policy on token claims.
pub(super) const POLICY_FILE: &str = "token_groups.rego";

/// The demo's policy on token claims, next to the shipped ones.
const POLICY: (&str, &str) = (
    POLICY_FILE,
    r#"# Decide on what the identity provider says of a caller: a caller that
# brings a token (the demo's [auth.jwt]) may use credit-scoring only when
# its `groups` claim names the lending group. Callers without a token have
# no claims (input.claims is {}): this rule leaves them to the others.
package govgate

import rego.v1

deny contains msg if {
	input.stage == "request"
	input.model == "credit-scoring"
	groups := input.claims.groups
	not "lending" in groups
	msg := sprintf("credit-scoring is for the lending group; %s is in %v", [input.caller, groups])
}
"#,
);

/// `[auth.jwt]` of the demo's configuration (paths relative to its data
/// directory).
pub(super) const CONFIG: &str = r#"
[auth.jwt]
issuer = "https://idp.demo.govgate.example"
audience = "govgate-demo"
algorithms = ["EdDSA"]
jwks_file = "demo-jwks.json"
policy_claims = ["groups"]
"#;

/// Signs the demo's tokens.
pub(super) struct Issuer {
    key: jsonwebtoken::EncodingKey,
}

impl Issuer {
    /// A new key: its JWKS written into `data_dir`, its policy into
    /// `policies` (unless one was left there to edit).
    pub(super) fn create(data_dir: &Path, policies: &Path) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .context("the operating system has no randomness to give")?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": KID,
            "x": B64.encode(key.verifying_key().as_bytes()),
        }]});
        let file = data_dir.join(JWKS_FILE);
        std::fs::write(&file, jwks.to_string())
            .with_context(|| format!("writing {}", file.display()))?;
        let policy = policies.join(POLICY.0);
        if !policy.exists() {
            std::fs::write(&policy, POLICY.1)
                .with_context(|| format!("writing {}", policy.display()))?;
        }
        let der = key.to_pkcs8_der().context("encoding the demo token key")?;
        Ok(Self {
            key: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// A token for caller `sub` in `groups`, valid from now for
    /// [`TOKEN_MINUTES`], and when it expires (Unix seconds).
    pub(super) fn mint(&self, sub: &str, groups: &[&str]) -> anyhow::Result<(String, u64)> {
        let now = jsonwebtoken::get_current_timestamp();
        let exp = now + TOKEN_MINUTES * 60;
        let mut jti = [0u8; 8];
        rand::rngs::OsRng
            .try_fill_bytes(&mut jti)
            .context("the operating system has no randomness to give")?;
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups,
            "iat": now, "exp": exp,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(KID.to_owned());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.key).context("signing a demo token")?;
        Ok((token, exp))
    }
}

/// `unix` seconds as `HH:MM:SS UTC`.
pub(super) fn clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_against_the_written_key_set() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::create(dir.path(), dir.path()).unwrap();
        let (token, exp) = issuer.mint("svc-underwriting", &["lending"]).unwrap();
        let set =
            crate::config::parse_jwks(&std::fs::read(dir.path().join(JWKS_FILE)).unwrap()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "svc-underwriting");
        assert_eq!(data.claims["exp"], exp);
        assert!(dir.path().join(POLICY.0).exists());
        assert!(CONFIG.contains(ISSUER) && CONFIG.contains(AUDIENCE));
        assert!(CONFIG.contains(JWKS_FILE));
        assert_eq!(clock(86_400 + 3_723), "01:02:03 UTC");
    }
}
