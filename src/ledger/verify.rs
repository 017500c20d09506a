//! Full verification of a stored ledger: every entry canonical, seqs gap
//! free, the BLAKE3 chain unbroken, every stored tree node and every signed
//! checkpoint matching the tree recomputed from the entries, the decision
//! index pointing at the right entries, every `stream_ended` linked to its
//! streamed decision. The first problem found is named by its seq.
//!
//! Layout: `scan` checks canonical form in one pass over the bytes; `facts`
//! checks what one entry shows on its own (falling back to parsing and
//! re-serializing to name a reason); `pass` runs those on every core and
//! the ordered checks (chain, tree nodes, checkpoints, `streams`) on the way.

use super::checkpoint::NoteVerifier;
use super::entry::key_rotation;
use super::store::{LedgerStore, StoreError};
use pass::Keys;
pub use pass::Limits;

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The latest checkpoint's tree size.
    pub latest_checkpoint_size: u64,
    /// Seqs of the streamed decisions with no `stream_ended` (the gateway
    /// stopped before their streams ended): not a failure, but how those
    /// answers ended is not recorded.
    pub open_streams: Vec<u64>,
    /// The previous log this one continues (its entry 0 cites that log's
    /// last checkpoint, signed by this log's first key under the old
    /// origin): that checkpoint.
    pub continues: Option<super::checkpoint::Checkpoint>,
    /// The seqs of the log's `key_rotated` entries (none when it never
    /// rotated its key), ascending.
    pub rotation_seqs: Vec<u64>,
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Entry `seq` (or the checkpoint at size `seq + 1`) is wrong.
    #[error("seq {seq}: {reason}")]
    Bad {
        /// The first bad seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stopped before the end on request ([`Limits::stop`]): nothing concluded.
    #[error("verification stopped before the end")]
    Stopped,
}

fn bad(seq: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Bad {
        seq,
        reason: reason.into(),
    }
}

/// The keys a log was signed with, oldest first, and the seqs of the
/// `key_rotated` entries between them; the last key must be `current`.
/// `progress` hears how far the scan is every [`KEY_SCAN_STEP`] entries
/// (a paced caller rests there: the scan reads the whole log).
fn key_history(
    store: &dyn LedgerStore,
    size: u64,
    current: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<NoteVerifier>, Vec<u64>), VerifyError> {
    let mut rotations = Vec::new();
    store.entries_in(0, size, &mut |seq, bytes| {
        if (seq + 1).is_multiple_of(KEY_SCAN_STEP) {
            progress(seq + 1, size);
        }
        // A cheap pre-filter: parse only entries that can be rotations.
        if facts::may_be_rotation(bytes)
            && let Some(rotation) = key_rotation(bytes)
        {
            rotations.push((seq, rotation));
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let Some((first_seq, (first_old, _))) = rotations.first() else {
        return Ok((vec![current.clone()], Vec::new()));
    };
    let parse = |seq: u64, vkey: &str| {
        NoteVerifier::parse(vkey)
            .map_err(|err| bad(seq, format!("key_rotated names an invalid key: {err}")))
    };
    let mut keys = vec![parse(*first_seq, first_old)?];
    for (seq, (old_vkey, new_vkey)) in &rotations {
        if keys.last().map(NoteVerifier::vkey).as_deref() != Some(old_vkey.as_str()) {
            return Err(bad(*seq, "key_rotated: old_vkey is not the key in force"));
        }
        keys.push(parse(*seq, new_vkey)?);
    }
    if keys.last().map(NoteVerifier::vkey) != Some(current.vkey()) {
        return Err(bad(
            size.saturating_sub(1),
            "the log's last key rotation does not end at the configured key",
        ));
    }
    Ok((keys, rotations.into_iter().map(|(seq, _)| seq).collect()))
}

/// Entries the key scan reads between two progress calls.
const KEY_SCAN_STEP: u64 = 4096;

/// Which key signed the batch holding each seq.
struct KeyTimeline {
    keys: Vec<NoteVerifier>,
    rotation_seqs: Vec<u64>,
    checkpoint_sizes: Vec<u64>,
    /// The `entry_signatures_set` entries: (seq, whether `on`), by seq.
    signature_settings: Vec<(u64, bool)>,
}

impl KeyTimeline {
    /// When the log records `entry_signatures` `on` at `seq` (its last
    /// `entry_signatures_set` at or before it says so), that record's seq:
    /// the entry's own signature must be there.
    fn must_sign(&self, seq: u64) -> Option<u64> {
        match self
            .signature_settings
            .partition_point(|(at, _)| *at <= seq)
        {
            0 => None,
            i => Some(self.signature_settings[i - 1]).and_then(|(at, on)| on.then_some(at)),
        }
    }

    /// The key of the batch holding `seq`: the key in force when the batch
    /// began (a rotation switches keys for the batches after its own).
    fn key_at(&self, seq: u64) -> &NoteVerifier {
        let batch_start = match self.checkpoint_sizes.partition_point(|size| *size <= seq) {
            0 => 0,
            i => self.checkpoint_sizes[i - 1],
        };
        let rotations_before = self
            .rotation_seqs
            .partition_point(|rotation| *rotation < batch_start);
        &self.keys[rotations_before.min(self.keys.len() - 1)]
    }
}

/// Verifies the whole store against `verifier`: the log's current key and
/// origin. Key rotations are followed: each batch is checked with the key
/// in force when it began. The per-entry work (canonical form, hashes,
/// signatures, index) runs on every core; the chain, the tree and the
/// checkpoints are checked in order, so the first bad seq is named.
pub fn verify_store(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
) -> Result<Verified, VerifyError> {
    verify_store_with_progress(store, verifier, &mut |_, _| {})
}

/// [`verify_store`], calling `progress` with (entries checked, entries in
/// the log) as it goes, about every few thousand entries. A log that
/// rotated its key is read again from the start, and counted again (once
/// for its key history, once for the checks).
pub fn verify_store_with_progress(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verified, VerifyError> {
    verify_store_limited(store, verifier, &Limits::default(), progress)
}

/// [`verify_store_with_progress`] within `limits`: on fewer threads (a
/// running gateway keeps its cores for requests), and stopping early.
pub fn verify_store_limited(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    limits: &Limits<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verified, VerifyError> {
    let size = store.size()?;
    let mut checkpoints = store.checkpoints()?;
    // A running gateway keeps committing between the two reads: checkpoints
    // past `size` that the store now holds entries for came after it, and
    // this pass verifies the log as it was at `size`. Past what the store
    // holds even now, they stay, and the pass reports the truncation.
    if checkpoints.last().is_some_and(|(latest, _)| *latest > size)
        && store.size()? >= checkpoints.last().map_or(0, |(latest, _)| *latest)
    {
        checkpoints.retain(|(covered, _)| *covered <= size);
    }
    let checkpoint_sizes: Vec<u64> = checkpoints.iter().map(|(size, _)| *size).collect();
    let signature_settings = signature_settings(store)?;
    // Most logs never rotate their key. Finding the rotations first costs a
    // whole extra read of the log, so first assume there are none; the pass
    // stops at any entry that may be a rotation. Any problem is also
    // re-checked the careful way below, so the reason reported is the one a
    // full key history gives (its errors come before any entry's).
    let unrotated = KeyTimeline {
        keys: vec![verifier.clone()],
        rotation_seqs: Vec::new(),
        checkpoint_sizes: checkpoint_sizes.clone(),
        signature_settings: signature_settings.clone(),
    };
    let assumed = pass::check_log(
        store,
        verifier.name(),
        &unrotated,
        &checkpoints,
        size,
        Keys::AssumedUnrotated,
        limits,
        progress,
    );
    match assumed {
        Ok(Some(mut verified)) => {
            verified.continues = predecessor(store, verifier)?;
            return Ok(verified);
        }
        Err(VerifyError::Stopped) => return Err(VerifyError::Stopped),
        _ => {}
    }
    let (keys, rotation_seqs) = key_history(store, size, verifier, progress)?;
    let first_key = keys.first().cloned().unwrap_or_else(|| verifier.clone());
    let timeline = KeyTimeline {
        keys,
        rotation_seqs: rotation_seqs.clone(),
        checkpoint_sizes,
        signature_settings,
    };
    let mut verified = pass::check_log(
        store,
        verifier.name(),
        &timeline,
        &checkpoints,
        size,
        Keys::Known,
        limits,
        progress,
    )?
    // Cannot happen: only a pass that assumes no rotation stops early.
    .ok_or_else(|| bad(0, "verification stopped before the end"))?;
    verified.continues = predecessor(store, &first_key)?;
    verified.rotation_seqs = rotation_seqs;
    Ok(verified)
}

/// The `entry_signatures_set` entries (governance entries: the store's
/// index finds them without a scan), by seq.
fn signature_settings(store: &dyn LedgerStore) -> Result<Vec<(u64, bool)>, VerifyError> {
    let mut settings = Vec::new();
    for seq in store.governance_seqs()? {
        let Some(bytes) = store.entry(seq)? else {
            continue; // the pass names a missing entry
        };
        if let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && entry["kind"] == super::export::SIGNATURES_KIND
        {
            settings.push((seq, entry["entry_signatures"] == "on"));
        }
    }
    Ok(settings)
}

/// The previous log's checkpoint cited by entry 0 (`ledger_restarted`
/// with `previous_checkpoint`), checked: a signed note by the log's first
/// key under another origin (the key signs one history per origin).
fn predecessor(
    store: &dyn LedgerStore,
    first_key: &NoteVerifier,
) -> Result<Option<super::checkpoint::Checkpoint>, VerifyError> {
    let Some(bytes) = store.entry(0)? else {
        return Ok(None);
    };
    let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None);
    };
    if entry["kind"] != "ledger_restarted" {
        return Ok(None);
    }
    let Some(note) = entry.get("previous_checkpoint") else {
        return Ok(None);
    };
    let why = |what: String| bad(0, format!("previous_checkpoint: {what}"));
    let note = note
        .as_str()
        .ok_or_else(|| why("not a string".to_owned()))?;
    let origin = note.split('\n').next().unwrap_or_default();
    if origin == first_key.name() {
        return Err(why(format!(
            "cites a checkpoint of this log's own origin `{origin}`"
        )));
    }
    let verifier = first_key
        .renamed(origin)
        .map_err(|err| why(format!("origin `{origin}`: {err}")))?;
    let body = verifier.open(note).map_err(|err| {
        why(format!(
            "not signed by this log's first key under `{origin}`: {err}"
        ))
    })?;
    super::checkpoint::Checkpoint::parse(body)
        .map(Some)
        .map_err(|err| why(err.to_string()))
}

/// Whether `text` is vouched to be RFC 8785 canonical JSON by one scan
/// (no parse, no re-serialization): `false` means "not vouched for", and
/// the caller parses and re-serializes to decide. Every text vouched for
/// here is one `canonical::parse_strict` accepts and `to_canonical`
/// writes back byte for byte.
pub(crate) fn vouched_canonical(text: &str) -> bool {
    scan::scan(text).is_some()
}

/// The one-pass scan of canonical JSON, which bundle verification reads
/// entries and lines with too.
pub(crate) use scan::{Capture, Members, Slot, scan, scan_top, small_u64};

mod facts;
mod index;
mod pass;
mod scan;
mod streams;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
