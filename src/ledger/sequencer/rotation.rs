//! Key rotation on a running ledger: the handle parks the new signer here
//! and appends `key_rotated`; the sealer, having sealed the batch holding
//! that entry (signed by the old key), takes the new signer for every later
//! batch. The key in force is kept here too, for whoever verifies or shows
//! the log's key while it runs.

use crate::ledger::checkpoint::{NoteSigner, NoteVerifier};
use std::sync::{Mutex, PoisonError, RwLock};

/// Shared by the appending half and the sealer.
pub(super) struct KeySwitch {
    /// The signer a pending `key_rotated` entry switches to.
    pending: Mutex<Option<NoteSigner>>,
    /// The key signing the batches being sealed now.
    in_force: RwLock<NoteVerifier>,
}

impl KeySwitch {
    pub(super) fn new(in_force: NoteVerifier) -> Self {
        Self {
            pending: Mutex::new(None),
            in_force: RwLock::new(in_force),
        }
    }

    /// The key signing the batches being sealed now (a rotation shows once
    /// its batch is sealed, a few milliseconds before it is durable; a
    /// failed commit puts the old key back).
    pub(super) fn in_force(&self) -> NoteVerifier {
        self.in_force
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_in_force(&self, key: NoteVerifier) {
        *self
            .in_force
            .write()
            .unwrap_or_else(PoisonError::into_inner) = key;
    }

    /// Parks `signer` for the next `key_rotated` entry; `false` if another
    /// rotation is pending.
    pub(super) fn park(&self, signer: NoteSigner) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.is_some() {
            return false;
        }
        *pending = Some(signer);
        true
    }

    /// Takes the parked signer if it is the one `new_vkey` names.
    pub(super) fn take(&self, new_vkey: &str) -> Option<NoteSigner> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending
            .as_ref()
            .map(|signer| signer.verifier().vkey())
            .as_deref()
            == Some(new_vkey)
        {
            return pending.take();
        }
        None
    }

    /// Forgets a parked signer (its entry was refused or failed).
    pub(super) fn clear(&self) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A read-only view of the key in force, for whoever shows or checks the
/// log's key while it runs (it holds no ledger handle); cheap to clone.
#[derive(Clone)]
pub struct KeyInForce(pub(super) std::sync::Arc<KeySwitch>);

impl KeyInForce {
    /// The key signing the log now.
    pub fn get(&self) -> NoteVerifier {
        self.0.in_force()
    }
}
