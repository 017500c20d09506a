//! `[[ledger.witnesses]]`: the C2SP tlog-witness services the gateway
//! sends its latest checkpoint to, and how often.

use super::ConfigError;
use super::validate::Checker;
use crate::ledger::cosignature::CosignerKey;
use serde::Deserialize;
use std::time::Duration;

/// Default `ledger.witness_interval_secs`.
const DEFAULT_INTERVAL_SECS: u64 = 10;
/// Default `ledger.witnesses[].timeout_ms`.
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Most witnesses: each is asked every interval, and names a metric label.
const MAX_WITNESSES: usize = 32;

/// One `[[ledger.witnesses]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    name: String,
    url: String,
    vkey: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// A witness the gateway asks for cosignatures.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// A short label (metrics, the admin API, logs).
    pub name: String,
    /// `<url>/add-checkpoint`.
    pub add_checkpoint: http::Uri,
    /// Its cosignature/v1 public key; a cosignature is kept only if it verifies.
    pub key: CosignerKey,
    /// Longest wait for one answer.
    pub timeout: Duration,
}

/// The witnesses and the policy the gateway serves its cosigned checkpoint under.
#[derive(Debug, Clone, Default)]
pub struct Witnessing {
    /// In file order; empty: no witnessing.
    pub witnesses: Vec<WitnessConfig>,
    /// How often the latest checkpoint is sent (when it changed).
    pub interval: Duration,
    /// Cosignatures a checkpoint needs before it is served as the cosigned
    /// checkpoint (default: every witness).
    pub threshold: usize,
}

fn label_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

pub(super) fn check_witnesses(
    checker: &Checker<'_>,
    raw: Vec<RawWitness>,
    interval_secs: Option<u64>,
    threshold: Option<u64>,
) -> Result<Witnessing, ConfigError> {
    if raw.len() > MAX_WITNESSES {
        return Err(checker.error(
            "ledger.witnesses",
            format!("at most {MAX_WITNESSES} witnesses"),
        ));
    }
    let mut witnesses: Vec<WitnessConfig> = Vec::with_capacity(raw.len());
    for (i, witness) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("ledger.witnesses[{i}].{field}");
        if !label_ok(&witness.name) {
            return Err(checker.error(
                key("name"),
                "must be 1 to 64 letters, digits, `.`, `_`, `-` or `/`",
            ));
        }
        if witnesses.iter().any(|w| w.name == witness.name) {
            return Err(checker.error(
                key("name"),
                format!("`{}` names two witnesses", witness.name),
            ));
        }
        let base = witness.url.trim_end_matches('/');
        let add_checkpoint: http::Uri = format!("{base}/add-checkpoint")
            .parse()
            .ok()
            .filter(|uri: &http::Uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            })
            .ok_or_else(|| {
                checker.error(
                    key("url"),
                    format!(
                        "`{}` is not an http:// or https:// URL (the witness's submission prefix)",
                        witness.url
                    ),
                )
            })?;
        let cosigner = CosignerKey::parse(&witness.vkey).map_err(|err| {
            checker.error(
                key("vkey"),
                format!(
                    "not a cosignature/v1 verifier key (name+keyid+base64 of 0x04 || key): {err}"
                ),
            )
        })?;
        if witnesses.iter().any(|w| w.key == cosigner) {
            return Err(checker.error(key("vkey"), "the same key is given for two witnesses"));
        }
        let timeout_ms = witness.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=600_000).contains(&timeout_ms) {
            return Err(checker.error(key("timeout_ms"), "must be between 1 and 600000"));
        }
        witnesses.push(WitnessConfig {
            name: witness.name,
            add_checkpoint,
            key: cosigner,
            timeout: Duration::from_millis(timeout_ms),
        });
    }
    let interval_secs = interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS);
    if !(1..=86_400).contains(&interval_secs) {
        return Err(checker.error(
            "ledger.witness_interval_secs",
            "must be between 1 and 86400",
        ));
    }
    let threshold = match threshold {
        None => witnesses.len(),
        Some(k) if k >= 1 && (k as usize) <= witnesses.len() => k as usize,
        Some(k) => {
            return Err(checker.error(
                "ledger.witness_threshold",
                format!(
                    "{k} is not between 1 and the number of witnesses ({})",
                    witnesses.len()
                ),
            ));
        }
    };
    Ok(Witnessing {
        witnesses,
        interval: Duration::from_secs(interval_secs),
        threshold,
    })
}
