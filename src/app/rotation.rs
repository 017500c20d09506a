//! Online key rotation: a new Ed25519 key is made and written beside the
//! key file (`KEYFILE.next`, mode 0600, fsynced); the ledger appends
//! `key_rotated` under the old key and signs every later batch with the new
//! one; then the new key is renamed over the key file (the old private key
//! is gone: old receipts verify with its verifier key, which the entry
//! names) and the key's history record is rewritten for the new key.
//!
//! The whole rotation runs on a blocking thread, so a caller that goes
//! away cannot leave it half done. Should the process stop between the
//! entry and the rename, `KEYFILE.next` holds the key in force: the
//! operator moves it over the key file (docs/operations.md).

use crate::admin::rotation::{Rotate, RotationFailure};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::history;
use crate::ledger::sequencer::{Ledger, RotateError};
use crate::ledger::store::LedgerStore;
use http::StatusCode;
use rand::TryRngCore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// What a rotation needs.
pub(super) struct Rotator {
    pub(super) ledger: Ledger,
    pub(super) store: Arc<dyn LedgerStore>,
    pub(super) key_file: PathBuf,
    pub(super) origin: String,
    /// The public key whose history record the gateway keeps up to date.
    pub(super) history_key: Arc<Mutex<[u8; 32]>>,
    /// One rotation at a time, files included.
    pub(super) busy: Mutex<()>,
}

fn ours(message: String) -> RotationFailure {
    tracing::error!(%message, "key rotation");
    RotationFailure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "rotation_failed",
        message,
    }
}

/// The key file's sibling holding the new key until it is in force.
pub(super) fn next_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    key_file.with_file_name(name)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    sync_dir(path)
}

impl Rotator {
    /// The route's handler.
    pub(super) fn handler(self: Arc<Self>) -> Rotate {
        Arc::new(move |by| {
            let rotator = self.clone();
            let handle = tokio::runtime::Handle::current();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || rotator.rotate(&handle, by))
                    .await
                    .unwrap_or_else(|_| Err(ours("the rotation thread panicked".to_owned())))
            })
        })
    }

    /// One rotation, on a blocking thread.
    fn rotate(
        &self,
        runtime: &tokio::runtime::Handle,
        by: crate::ledger::entry::ActedBy,
    ) -> Result<serde_json::Value, RotationFailure> {
        let _one = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|err| ours(format!("no randomness for a new key: {err}")))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let signer = NoteSigner::new(&self.origin, key.clone())
            .map_err(|err| ours(format!("the new key: {err}")))?;
        let new_vkey = signer.verifier().vkey();
        let old_vkey = self.ledger.key_in_force().vkey();
        let pem = crate::config::keyfile::encode_pem(&key)
            .map_err(|err| ours(format!("encoding the new key: {err}")))?;
        let next = next_path(&self.key_file);
        write_private(&next, pem.as_bytes())
            .map_err(|err| ours(format!("writing {}: {err}", next.display())))?;
        let appended = self
            .ledger
            .rotate_key(signer, Some(by))
            .map_err(|err| RotationFailure {
                status: StatusCode::CONFLICT,
                code: match err {
                    RotateError::InProgress => "rotation_in_progress",
                    RotateError::SameKey => "same_key",
                },
                message: err.to_string(),
            });
        let acked = match appended {
            Ok(appended) => runtime.block_on(appended).map_err(|err| RotationFailure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "ledger_unavailable",
                message: format!("key_rotated could not be recorded; the key is unchanged: {err}"),
            }),
            Err(failure) => Err(failure),
        };
        let ack = match acked {
            Ok(ack) => ack,
            Err(failure) => {
                let _ = std::fs::remove_file(&next);
                return Err(failure);
            }
        };
        // The entry is durable and the ledger signs with the new key: the
        // key file follows.
        std::fs::rename(&next, &self.key_file)
            .and_then(|()| sync_dir(&self.key_file))
            .map_err(|err| {
                ours(format!(
                    "the ledger signs with the new key, but it could not be moved from {} to {}: \
                     {err}; move it there before the next start",
                    next.display(),
                    self.key_file.display()
                ))
            })?;
        let public_key = key.verifying_key().to_bytes();
        *self
            .history_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = public_key;
        let recorded = history::current(self.store.as_ref(), &public_key, &self.origin, Vec::new())
            .and_then(|record| match record {
                Some(record) => history::save(&history::record_path(&self.key_file), &record),
                None => Ok(()),
            });
        if let Err(err) = recorded {
            // Rewritten again within the keeper's interval.
            tracing::warn!(error = %err, "the new key's history record not written yet");
        }
        tracing::info!(seq = ?ack.seq, %new_vkey, "ledger signing key rotated");
        Ok(serde_json::json!({
            "seq": ack.seq,
            "old_vkey": old_vkey,
            "new_vkey": new_vkey,
            "key_file": self.key_file.display().to_string(),
        }))
    }
}
