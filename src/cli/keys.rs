//! `govgate keygen`: a new Ed25519 signing key for the ledger.

use crate::ledger::checkpoint::NoteVerifier;
use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rand::TryRngCore;
use std::io::Write;
use std::path::Path;

/// Writes a new PKCS#8 PEM private key to `out` (mode 0600, never
/// overwriting) and returns the public key as PEM and as a signed-note
/// verifier key for `origin`.
pub(crate) fn generate(out: &Path, origin: &str) -> anyhow::Result<(String, String)> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("the operating system has no randomness to give")?;
    let key = SigningKey::from_bytes(&seed);
    let verifier = NoteVerifier::new(origin, key.verifying_key())
        .map_err(|err| anyhow::anyhow!("origin: {err}"))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the key")?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(out).with_context(|| {
        format!(
            "cannot create {} (an existing key is never overwritten)",
            out.display()
        )
    })?;
    file.write_all(private_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    Ok((public_pem, verifier.vkey()))
}

/// A fresh admin token and the config entry that admits it.
pub(super) fn admin_token(principal: &str, roles: &[String]) -> String {
    use rand::RngCore;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("gg_{}", crate::ledger::entry::hex(&raw));
    let roles: Vec<String> = roles.iter().map(|role| format!("{role:?}")).collect();
    format!(
        "token for {principal} (give it to them; it is not stored anywhere):\n{token}\n\n\
         add to the config:\n[[admin.tokens]]\nprincipal = {principal:?}\nroles = [{}]\ntoken_sha256 = \"{}\"\n",
        roles.join(", "),
        crate::admin::auth::token_hash_hex(&token)
    )
}
