//! A bundle's cosigned checkpoint: `cosigned-checkpoint.txt` (the latest
//! cosigned checkpoint the gateway kept, with its cosignature lines) and
//! `cosigned-proof.txt` (the RFC 6962 consistency proof between it and the
//! bundle's `checkpoint.txt`, from the smaller size to the larger, one
//! base64 hash per line), written beside a bundle by `govgate export`, and
//! checked by `govgate verify --bundle DIR --witness NAME=VKEY`.

use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::cosignature::{Cosigned, WitnessPolicy};
use crate::ledger::store::{LedgerStore, StoreNodes};
use crate::ledger::tree::{Hash, consistency_proof, verify_consistency};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::path::Path;

/// The cosigned checkpoint's file in a bundle.
pub const COSIGNED_FILE: &str = "cosigned-checkpoint.txt";
/// The consistency proof's file in a bundle.
pub const PROOF_FILE: &str = "cosigned-proof.txt";
/// The bundle's own checkpoint (both bundle forms).
const CHECKPOINT_FILE: &str = "checkpoint.txt";

/// Why a bundle's cosigned checkpoint could not be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CosignedError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The bundle's cosigned checkpoint does not meet the policy or does not link.
    #[error("{0}")]
    Bad(String),
}

/// Writes `cosigned` (a cosigned checkpoint note of this log) and the
/// consistency proof linking it to the bundle in `dir` (blocking).
pub fn write(
    store: &dyn LedgerStore,
    log: &NoteVerifier,
    dir: &Path,
    cosigned: &str,
) -> Result<u64, CosignedError> {
    let bundle_note = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).map_err(|err| {
        CosignedError::Io(format!("{}: {err}", dir.join(CHECKPOINT_FILE).display()))
    })?;
    let (witnessed, proof) = contents(store, log, &bundle_note, cosigned)?;
    for (name, content) in [(COSIGNED_FILE, cosigned), (PROOF_FILE, proof.as_str())] {
        std::fs::write(dir.join(name), content)
            .map_err(|err| CosignedError::Io(format!("{}: {err}", dir.join(name).display())))?;
    }
    Ok(witnessed)
}

/// The size of `cosigned` and the text of [`PROOF_FILE`] linking it to a
/// bundle whose checkpoint is `bundle_note`, read from `store` (which must
/// hold both sizes).
pub fn contents(
    store: &dyn LedgerStore,
    log: &NoteVerifier,
    bundle_note: &str,
    cosigned: &str,
) -> Result<(u64, String), CosignedError> {
    let bad = |what: String| CosignedError::Bad(what);
    let size_of = |note: &str| {
        log.open(note)
            .ok()
            .and_then(|body| Checkpoint::parse(body).ok())
            .map(|c| c.size)
    };
    let bundle = size_of(bundle_note).ok_or_else(|| bad("the bundle's checkpoint".into()))?;
    let witnessed = size_of(cosigned).ok_or_else(|| {
        bad("the kept cosigned checkpoint is not signed by this log's key".into())
    })?;
    let (old, new) = (bundle.min(witnessed), bundle.max(witnessed));
    let proof = if old == 0 || old == new {
        Vec::new()
    } else {
        consistency_proof(&StoreNodes(store), old, new)
            .map_err(|err| bad(format!("consistency proof {old} -> {new}: {err:?}")))?
    };
    let text: String = proof
        .iter()
        .map(|hash| format!("{}\n", BASE64.encode(hash)))
        .collect();
    Ok((witnessed, text))
}

/// What a checked cosigned checkpoint says.
#[derive(Debug, Clone)]
pub struct CosignedReport {
    /// Its tree size.
    pub size: u64,
    /// The bundle checkpoint's size.
    pub bundle_size: u64,
    /// The witnesses whose cosignature verified.
    pub cosigned: Vec<Cosigned>,
}

/// Checks the bundle in `dir` carries a cosigned checkpoint of this log
/// (signed by one of `logs`) that meets `policy` and is consistent with
/// the bundle's checkpoint.
pub fn verify(
    dir: &Path,
    logs: &[&NoteVerifier],
    policy: &WitnessPolicy,
) -> Result<CosignedReport, CosignedError> {
    let bad = |what: String| CosignedError::Bad(what);
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(bad(format!(
            "the bundle carries no {name}, so no witness cosigned it"
        ))),
        Err(err) => Err(CosignedError::Io(format!(
            "{}: {err}",
            dir.join(name).display()
        ))),
    };
    let open = |note: &str, what: &str| {
        logs.iter()
            .find_map(|log| log.open(note).ok())
            .ok_or_else(|| bad(format!("{what} is not signed by the log's key")))
            .and_then(|body| Checkpoint::parse(body).map_err(|err| bad(format!("{what}: {err}"))))
    };
    let cosigned_note = read(COSIGNED_FILE)?;
    let witnessed = open(&cosigned_note, COSIGNED_FILE)?;
    let bundle = open(&read(CHECKPOINT_FILE)?, CHECKPOINT_FILE)?;
    if witnessed.origin != bundle.origin {
        return Err(bad(format!(
            "{COSIGNED_FILE} is of origin {}, the bundle of {}",
            witnessed.origin, bundle.origin
        )));
    }
    let cosigned = policy
        .check(&cosigned_note)
        .map_err(|err| bad(format!("{COSIGNED_FILE}: {err}")))?;
    let proof: Vec<Hash> = read(PROOF_FILE)?
        .lines()
        .map(|line| {
            BASE64
                .decode(line)
                .ok()
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .ok_or_else(|| bad(format!("{PROOF_FILE}: not a base64 SHA-256 hash per line")))
        })
        .collect::<Result<_, _>>()?;
    let (old, new) = if witnessed.size <= bundle.size {
        (&witnessed, &bundle)
    } else {
        (&bundle, &witnessed)
    };
    let consistent = if old.size == 0 {
        proof.is_empty()
    } else {
        verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
    };
    if !consistent {
        return Err(bad(format!(
            "the cosigned checkpoint (size {}) and the bundle's (size {}) are not consistent: \
             {PROOF_FILE} does not prove one extends the other",
            witnessed.size, bundle.size
        )));
    }
    Ok(CosignedReport {
        size: witnessed.size,
        bundle_size: bundle.size,
        cosigned,
    })
}
