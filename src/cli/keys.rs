//! `govgate keygen`: a new Ed25519 signing key for the ledger; `govgate
//! vkey`: the verifier key of an existing one; `govgate token`: an admin
//! API token.

use crate::ledger::checkpoint::NoteVerifier;
use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use rand::TryRngCore;
use std::io::Write;
use std::path::Path;

/// `govgate keygen`: writes the key (and the verifier key, if asked) and
/// says what it wrote. An existing file is never replaced: both are
/// checked before anything is written, so a refusal leaves nothing behind.
pub(super) fn keygen(out: &Path, vkey_out: Option<&Path>, origin: &str) -> anyhow::Result<()> {
    if out.exists() {
        return Err(super::usage(format!(
            "{} exists; keygen never overwrites a key (its verifier key: \
             govgate vkey --key {} --origin {origin})",
            out.display(),
            out.display()
        )));
    }
    if let Some(vkey_out) = vkey_out.filter(|path| path.exists()) {
        return Err(super::usage(format!(
            "{} exists; keygen never overwrites it (nothing was written)",
            vkey_out.display()
        )));
    }
    let (pem, vkey) = generate(out, origin)?;
    let mut said = format!(
        "wrote {} (keep it secret; mode 0600)\npublic key:\n{pem}\n\
         verifier key (signed-note, for checkpoint verifiers):\n{vkey}\n",
        out.display()
    );
    if let Some(vkey_out) = vkey_out {
        create_new(vkey_out, 0o644, format!("{vkey}\n").as_bytes())?;
        said.push_str(&format!(
            "wrote the verifier key to {}\n",
            vkey_out.display()
        ));
    }
    super::print_out(&said);
    Ok(())
}

/// `govgate vkey`: the verifier key of the key at `key` for `origin`,
/// either taken from the config at `config` when not given.
pub(super) fn vkey(
    config: &Path,
    key: Option<&Path>,
    origin: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let vkey = match (key, origin) {
        (Some(key), Some(origin)) => verifier_key(&read_key(key)?, origin)?,
        (key, origin) => {
            let config = super::load_offline_config(config)?;
            let signing_key = match key {
                Some(key) => read_key(key)?,
                None => config.ledger.signing_key.clone(),
            };
            let configured = replica_origin(&config, &signing_key);
            verifier_key(&signing_key, origin.unwrap_or(&configured))?
        }
    };
    match out {
        Some(out) => {
            std::fs::write(out, format!("{vkey}\n"))
                .with_context(|| format!("writing {}", out.display()))?;
            super::print_out(&format!("wrote {} ({vkey})\n", out.display()));
        }
        None => super::print_out(&format!("{vkey}\n")),
    }
    Ok(())
}

/// The signing key in a PKCS#8 PEM file; a file that is not one is a usage error.
fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .map_err(|err| super::usage(format!("cannot read {}: {err}", path.display())))?;
    crate::config::keyfile::decode_pem(&pem).map_err(|_| {
        super::usage(format!(
            "{} is not a PKCS#8 PEM Ed25519 private key (from govgate keygen)",
            path.display()
        ))
    })
}

/// The configured origin; with `[cluster]`, the replica's log name
/// (`cluster::origin`), read without the store (a running gateway holds
/// it): the configured origin itself when the key's history record says
/// it signs for that name.
fn replica_origin(config: &crate::config::OfflineConfig, key: &SigningKey) -> String {
    let Some(replica_id) = &config.replica_id else {
        return config.ledger.origin.clone();
    };
    let record_path = crate::ledger::history::record_path(&config.ledger.key_file);
    let stored = crate::ledger::history::load(&record_path)
        .ok()
        .flatten()
        .filter(|record| record.is_of_key(&key.verifying_key().to_bytes()))
        .map(|record| record.origin);
    crate::cluster::origin::replica_origin(&config.ledger.origin, replica_id, stored.as_deref())
}

fn verifier_key(key: &SigningKey, origin: &str) -> anyhow::Result<String> {
    Ok(NoteVerifier::new(origin, key.verifying_key())
        .map_err(|err| super::usage(format!("origin: {err}")))?
        .vkey())
}

/// Creates `path` (never replacing a file) with `mode` and `contents`, synced.
fn create_new(path: &Path, mode: u32, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::AlreadyExists {
            super::usage(format!(
                "{} exists; it is never overwritten",
                path.display()
            ))
        } else {
            anyhow::Error::new(err).context(format!("cannot create {}", path.display()))
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a new PKCS#8 v1 PEM private key to `out` (mode 0600, never
/// overwriting) and returns the public key as PEM and as a signed-note
/// verifier key for `origin`.
pub(crate) fn generate(out: &Path, origin: &str) -> anyhow::Result<(String, String)> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("the operating system has no randomness to give")?;
    let key = SigningKey::from_bytes(&seed);
    let vkey = verifier_key(&key, origin)?;
    let private_pem = crate::config::keyfile::encode_pem(&key).context("encoding the key")?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")?;
    create_new(out, 0o600, private_pem.as_bytes())?;
    Ok((public_pem, vkey))
}

/// A fresh admin token and the config entry that admits it.
pub(super) fn admin_token(principal: &str, roles: &[String]) -> anyhow::Result<String> {
    use rand::RngCore;
    for role in roles {
        if role.parse::<crate::registry::Role>().is_err() {
            return Err(super::usage(format!(
                "--roles: `{role}` is not a role; roles are admin, proposer, approver, \
                 approver:<qualifier>, reviewer, auditor"
            )));
        }
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("gg_{}", crate::ledger::entry::hex(&raw));
    let roles: Vec<String> = roles.iter().map(|role| format!("{role:?}")).collect();
    Ok(format!(
        "token for {principal} (give it to them; it is not stored anywhere):\n{token}\n\n\
         add to the config:\n[[admin.tokens]]\nprincipal = {principal:?}\nroles = [{}]\ntoken_sha256 = \"{}\"\n",
        roles.join(", "),
        crate::admin::auth::token_hash_hex(&token)
    ))
}

/// A new API key for callers of the public listener, and its
/// `[[auth.api_keys]]` entry.
pub(super) fn api_key(
    caller: &str,
    id: &str,
    models: &[String],
    expires: Option<&str>,
) -> anyhow::Result<String> {
    use rand::RngCore;
    use sha2::Digest;
    if let Some(expires) = expires {
        crate::ledger::export::UtcTime::parse(expires)
            .map_err(|err| super::usage(format!("--expires: {err}")))?;
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = format!(
        "{}{}",
        crate::proxy::API_KEY_PREFIX,
        crate::ledger::entry::hex(&raw)
    );
    let digest: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
    let hash = crate::ledger::entry::hex(&digest);
    let mut entry =
        format!("[[auth.api_keys]]\nid = {id:?}\ncaller = {caller:?}\nkey_sha256 = \"{hash}\"\n");
    if !models.is_empty() {
        let models: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
        entry.push_str(&format!("models = [{}]\n", models.join(", ")));
    }
    if let Some(expires) = expires {
        entry.push_str(&format!("expires = {expires:?}\n"));
    }
    Ok(format!(
        "API key {id} for {caller} (give it to them; it is not stored anywhere; they send it as `Authorization: Bearer <key>`):\n{key}\n\n\
         add to the config:\n{entry}"
    ))
}
