//! Checks an export bundle offline, as docs/audit-format.md section 8
//! specifies: the contiguous form (`govgate-bundle/1`: entries `from..to`
//! continued from the prefix subtrees to the signed root) and the sparse
//! form (`govgate-bundle-sparse/1`: selected entries, each with an RFC 6962
//! inclusion proof against the signed checkpoint).
//!
//! Nothing in a bundle is trusted but what the verifier key vouches for:
//! the manifest is not signed, so its values are checked or only compared.
//! The key given by the caller is the trust anchor; the manifest's `vkey`
//! is never used to verify anything. The first problem found is returned,
//! named by the seq of the entry it concerns when there is one.

mod chunk_pass;
mod chunk_read;
mod chunks;
mod context;
#[cfg(test)]
mod context_tests;
mod digest;
mod evidence;
mod fields;
#[cfg(test)]
mod fields_tests;
mod first;
mod keys;
#[cfg(test)]
mod knowing_tests;
mod lines;
mod ordered;
mod parallel;
#[cfg(test)]
mod parallel_tests;
#[cfg(test)]
mod pass_tests;
mod payload_exact;
#[cfg(test)]
mod payload_exact_tests;
mod sparse;
mod sparse_stream;
#[cfg(test)]
mod sparse_stream_tests;
mod stream;
#[cfg(test)]
mod stream_tests;
mod streams;
#[cfg(test)]
mod tests;

use super::checkpoint::{Checkpoint, NoteVerifier};
use super::tree::{Frontier, Hash};
use keys::KeySchedule;
use lines::BundleEntry;
use serde_json::Value;
use std::path::Path;

/// `format` of a contiguous bundle written before bundles carried their
/// checkpoints, context entries and file list (still read).
pub const CONTIGUOUS_FORMAT: &str = "govgate-bundle/1";
/// `format` of a contiguous bundle with checkpoints, context and file list.
pub use super::export::CONTIGUOUS_FORMAT_2;
/// `format` of a contiguous bundle split into (compressed) chunks.
pub use super::export::CONTIGUOUS_FORMAT_3;
/// `format` of a sparse (filtered) bundle.
pub const SPARSE_FORMAT: &str = "govgate-bundle-sparse/1";

/// Why a bundle was not verified.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle does not verify: `item` is `seq N` for an entry, or the
    /// part of the bundle at fault (`manifest`, `checkpoint`, `keys`, ...).
    #[error("{item}: {reason}")]
    Bad {
        /// The seq of the first bad entry, when the problem is an entry's.
        seq: Option<u64>,
        /// What is at fault, for the message.
        item: String,
        /// Why.
        reason: String,
    },
    /// A bundle file exists but cannot be read (the bundle is not judged).
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `--chunk A` names no chunk of the bundle (or it has none).
    #[error("{0}")]
    NoChunk(String),
}

pub(crate) fn bad_seq(seq: u64, reason: impl Into<String>) -> BundleError {
    BundleError::Bad {
        seq: Some(seq),
        item: format!("seq {seq}"),
        reason: reason.into(),
    }
}

pub(crate) fn bad(item: &str, reason: impl Into<String>) -> BundleError {
    BundleError::Bad {
        seq: None,
        item: item.to_owned(),
        reason: reason.into(),
    }
}

/// Which of the two forms a bundle has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleForm {
    /// Every entry `from..to`, `to` the checkpoint's size.
    Contiguous,
    /// Selected entries with inclusion proofs.
    Sparse,
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    /// Contiguous or sparse.
    pub form: BundleForm,
    /// The log's origin.
    pub origin: String,
    /// The manifest's `from`.
    pub from: u64,
    /// The manifest's `to`.
    pub to: u64,
    /// The signed checkpoint's tree size.
    pub size: u64,
    /// Entries checked.
    pub entries: u64,
    /// Payloads checked against their commitments.
    pub payloads: u64,
    /// Per-entry signatures checked.
    pub signatures: u64,
    /// `key_rotated` entries followed.
    pub rotations: u64,
    /// The log's keys the bundle proves: the key in force at `from`, then
    /// each rotation's new key (what may sign one of the log's
    /// checkpoints in the range, e.g. one published elsewhere).
    pub keys: Vec<NoteVerifier>,
    /// The sparse form's filter, as the manifest states it (`model=...`).
    pub filter: Option<String>,
    /// Things worth saying that do not fail the bundle.
    pub warnings: Vec<String>,
    /// Seqs of the streamed decisions whose `stream_ended` is not in the
    /// bundle (it comes after the bundle's end, or never came).
    pub open_streams: Vec<u64>,
}

/// The manifest members both forms share.
struct Manifest {
    form: BundleForm,
    /// 3 for `govgate-bundle/3`, 2 for `govgate-bundle/2`, else 1.
    version: u8,
    origin: Value,
    vkey: Value,
    from: u64,
    to: u64,
    payloads: bool,
    raw: serde_json::Map<String, Value>,
}

/// The bundle's `checkpoint.txt` and what it claims, unverified; its
/// origin must be the manifest's.
fn checkpoint_of(dir: &Path, manifest: &Manifest) -> Result<(String, Checkpoint), BundleError> {
    let note = read_text(dir, "checkpoint.txt")?
        .ok_or_else(|| bad("checkpoint", "checkpoint.txt is missing"))?;
    let claimed = peek_checkpoint(&note)?;
    if manifest.origin != claimed.origin.as_str() {
        return Err(bad(
            "manifest",
            format!(
                "origin {} is not the checkpoint origin {:?}",
                manifest.origin, claimed.origin
            ),
        ));
    }
    Ok((note, claimed))
}

/// Verifies the bundle in `dir`. `first` is the log's first key (the trust
/// anchor); `current` the key in force at the bundle's `from` when the log
/// rotated its key before it (default: `first`). Key rotations inside the
/// bundle are followed (section 11).
pub fn verify_bundle(
    dir: &Path,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
) -> Result<BundleReport, BundleError> {
    verify_bundle_on(dir, first, current, 0)
}

/// [`verify_bundle`] on `jobs` threads (0: every core). A chunked bundle's
/// chunks are checked in parallel (at most `jobs` at once); the outcome
/// does not depend on `jobs`.
pub fn verify_bundle_on(
    dir: &Path,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    jobs: usize,
) -> Result<BundleReport, BundleError> {
    let manifest = read_manifest(dir)?;
    let (note, claimed) = checkpoint_of(dir, &manifest)?;
    if manifest.version >= 2 && !manifest.raw.contains_key("files") {
        return Err(bad("manifest", "files is missing"));
    }
    let parallel = (manifest.form == BundleForm::Contiguous && manifest.version >= 3)
        .then(|| parallel::verify(dir, &manifest, &claimed, first, current, &note, jobs))
        .flatten();
    let streamed = match (parallel, manifest.form) {
        (Some(verified), _) => stream::Outcome::Verified(Box::new(verified)),
        (None, BundleForm::Contiguous) => {
            stream::contiguous(dir, &manifest, &claimed, first, current, &note, jobs)?
        }
        (None, BundleForm::Sparse) => {
            match sparse_stream::verify(dir, &manifest, &claimed, first, current, &note)? {
                Some(verified) => stream::Outcome::Verified(Box::new(verified)),
                None => stream::Outcome::InMemory,
            }
        }
    };
    let (report, schedule) = match streamed {
        stream::Outcome::Verified(verified) => *verified,
        stream::Outcome::InMemory if manifest.version >= 3 => {
            return Err(bad(
                "bundle",
                "signature or payload lines are not in increasing seq order",
            ));
        }
        stream::Outcome::InMemory => in_memory(dir, &manifest, &claimed, first, current, &note)?,
    };
    let mut warnings = Vec::new();
    check_key_chain(&manifest, first, &schedule, &mut warnings);
    let known = std::iter::once(first).chain(current).chain(schedule.keys());
    let manifest_key = manifest.vkey.as_str().unwrap_or_default();
    if !known.map(NoteVerifier::vkey).any(|key| key == manifest_key) {
        warnings.push(format!(
            "manifest: vkey {} is not the given key nor one the bundle's rotations name \
             (the given key was used; the manifest's is never trusted)",
            manifest.vkey
        ));
    }
    Ok(BundleReport { warnings, ..report })
}

pub use parallel::ChunkReport;

/// `govgate verify --bundle DIR --chunk A`: the chunk of the chunked bundle
/// in `dir` that starts at seq `at`, checked alone against the bundle's
/// carried checkpoints (docs/audit-format.md section 8.4), on `jobs`
/// threads (0: every core). The other chunks' files need not be there; the
/// checks that need them are listed in the report as not made.
pub fn verify_chunk(
    dir: &Path,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    at: u64,
    jobs: usize,
) -> Result<ChunkReport, BundleError> {
    let manifest = read_manifest(dir)?;
    if manifest.form != BundleForm::Contiguous || manifest.version < 3 {
        return Err(BundleError::NoChunk(format!(
            "--chunk needs a chunked bundle ({CONTIGUOUS_FORMAT_3}); this one is {}",
            manifest.raw.get("format").unwrap_or(&Value::Null)
        )));
    }
    let (note, claimed) = checkpoint_of(dir, &manifest)?;
    parallel::verify_chunk(dir, &manifest, &claimed, first, current, &note, (at, jobs))
}

/// The bundle's entries in memory (the signature and payload lines are
/// read one at a time): the sparse form, and a contiguous bundle whose
/// signature or payload lines are not in increasing seq order (which
/// `govgate export` never writes), so cannot be paired with their entries
/// in one pass.
fn in_memory(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
) -> Result<(BundleReport, KeySchedule), BundleError> {
    if let Some(files) = manifest.raw.get("files") {
        digest::check_listed(files, &mut |name| digest::digest_file(dir, name))?;
    }
    let mut lines = digest::Lines::open(dir, "entries.jsonl")?
        .ok_or_else(|| bad("entries", "entries.jsonl is missing"))?;
    let mut entries = Vec::new();
    while let Some((number, line)) = lines.next_line()? {
        entries.push(lines::read_entry_line(line, number - 1, &claimed.origin)?);
    }
    let (report, schedule, context) = match manifest.form {
        BundleForm::Contiguous => {
            contiguous(dir, manifest, claimed, &entries, first, current, note)?
        }
        BundleForm::Sparse => {
            let start_key = key_at_from(manifest.from, first, current)?;
            let (report, schedule) =
                sparse::check(dir, manifest, claimed, &entries, start_key, note)?;
            (report, schedule, context::Context::default())
        }
    };
    let open_streams = streams::check_streams(&entries)?;
    let signed = lines::check_signatures(dir, &entries, &schedule, manifest.from)?;
    let paid = lines::check_payloads(dir, &entries, manifest.payloads)?;
    if manifest.version >= 2 {
        // What the ledger records (the signature setting, the erasures)
        // turns an absent line into a provable omission.
        evidence::check_signatures_present(&entries, &context, &signed)?;
        if manifest.payloads {
            evidence::check_payloads_present(&entries, &context, &paid)?;
        }
    }
    let report = BundleReport {
        payloads: paid.len() as u64,
        signatures: signed.len() as u64,
        open_streams,
        ..report
    };
    Ok((report, schedule))
}

/// The key in force at `from`: the first key at 0, else the given current key.
fn key_at_from<'k>(
    from: u64,
    first: &'k NoteVerifier,
    current: Option<&'k NoteVerifier>,
) -> Result<&'k NoteVerifier, BundleError> {
    match current {
        Some(current) if from == 0 && current != first => Err(bad(
            "keys",
            format!(
                "from is 0, where the key in force is the first key {}, not the current key {}",
                first.vkey(),
                current.vkey()
            ),
        )),
        Some(current) => Ok(current),
        None => Ok(first),
    }
}

/// The manifest's `first_vkey` and `rotations` (unsigned) are compared
/// with the pinned first key and the rotations the bundle proves; a
/// difference is a warning (the manifest is never trusted).
fn check_key_chain(
    manifest: &Manifest,
    first: &NoteVerifier,
    schedule: &KeySchedule,
    warnings: &mut Vec<String>,
) {
    if let Some(named) = manifest.raw.get("first_vkey")
        && named.as_str() != Some(first.vkey().as_str())
    {
        warnings.push(format!(
            "manifest: first_vkey {named} is not the given first key {} (the given key was used)",
            first.vkey()
        ));
    }
    if let Some(Value::Array(chain)) = manifest.raw.get("rotations") {
        let named: std::collections::BTreeSet<u64> =
            chain.iter().filter_map(|r| r["seq"].as_u64()).collect();
        if let Some(seq) = schedule.rotation_seqs().find(|seq| !named.contains(seq)) {
            warnings.push(format!(
                "manifest: rotations does not list the key_rotated entry at seq {seq}"
            ));
        }
    }
}

/// The contiguous form: gap-free `from..to`, the chain, and the tree of
/// size `to` from the prefix subtrees; in `govgate-bundle/2` also the
/// carried checkpoints and context entries.
fn contiguous(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    entries: &[BundleEntry],
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
) -> Result<(BundleReport, KeySchedule, context::Context), BundleError> {
    let (from, to) = (manifest.from, manifest.to);
    let prefix = prefix_hashes(manifest.raw.get("prefix"), from)?;
    if claimed.size != to {
        return Err(bad(
            "checkpoint",
            format!("size {} is not the bundle's to {to}", claimed.size),
        ));
    }
    for (i, entry) in entries.iter().enumerate() {
        let seq = from + i as u64;
        if seq >= to {
            return Err(bad_seq(
                seq,
                format!("line {}: beyond the bundle's range (to is {to})", i + 1),
            ));
        }
        if entry.seq != seq {
            return Err(bad_seq(
                seq,
                format!(
                    "line {} holds seq {} instead (entries missing, duplicated or out of order)",
                    i + 1,
                    entry.seq
                ),
            ));
        }
    }
    if let Some(missing) = (from + entries.len() as u64..to).next() {
        return Err(bad_seq(
            missing,
            format!(
                "missing: the bundle covers seq {from}..{} but entries.jsonl ends after {} lines",
                to - 1,
                entries.len()
            ),
        ));
    }
    lines::check_chain(entries)?;
    let (schedule, opened, context) = if manifest.version >= 2 {
        // The rotations before `from` are proven context entries: the key
        // in force at `from` follows from the first key.
        let context = context::read_context(dir, &claimed.origin, from, to)?;
        let lines = evidence::read_checkpoints(dir, to, note)?;
        let schedule = KeySchedule::follow(
            first.clone(),
            context.before(from).chain(entries).chain(context.after(to)),
            &claimed.origin,
        )?;
        if let Some(current) = current {
            let at_from = schedule.entry_key(from);
            if at_from != current {
                return Err(bad(
                    "keys",
                    format!(
                        "--current-vkey {} is not the key in force at from, {} (from the first \
                         key and the bundle's rotations)",
                        current.vkey(),
                        at_from.vkey()
                    ),
                ));
            }
        }
        let opened = evidence::check_checkpoints(&lines, &schedule, &context)?;
        (schedule, opened, context)
    } else {
        let start_key = key_at_from(from, first, current)?;
        let schedule = KeySchedule::follow(start_key.clone(), entries, &claimed.origin)?;
        let checkpoint = open_checkpoint(&schedule, note, to)?;
        let opened = std::collections::BTreeMap::from([(to, checkpoint)]);
        (schedule, opened, context::Context::default())
    };
    evidence::locate_change(frontier_from_prefix(from, &prefix), entries, &opened)?;
    let Some(checkpoint) = opened.get(&to).cloned() else {
        return Err(bad("checkpoint", format!("no checkpoint of size {to}")));
    };
    let report = BundleReport {
        form: BundleForm::Contiguous,
        origin: checkpoint.origin,
        from,
        to,
        size: to,
        entries: entries.len() as u64,
        payloads: 0,
        signatures: 0,
        rotations: schedule.count(),
        keys: schedule.keys().cloned().collect(),
        filter: None,
        warnings: Vec::new(),
        open_streams: Vec::new(),
    };
    Ok((report, schedule, context))
}

/// Opens the checkpoint with the key the schedule says signs size `size`.
fn open_checkpoint(
    schedule: &KeySchedule,
    note: &str,
    size: u64,
) -> Result<Checkpoint, BundleError> {
    open_unhinted(schedule, note, size).map_err(|failed| failed.hinted(schedule))
}

/// Why a checkpoint did not open: its signature (for which the message
/// names the key that did sign it, once every key is known), or the rest.
enum Unopened {
    Signature {
        item: String,
        reason: String,
        note: String,
    },
    Other(BundleError),
}

impl Unopened {
    /// The error, naming a key of `schedule` that opens the note if any.
    fn hinted(self, schedule: &KeySchedule) -> BundleError {
        match self {
            Unopened::Signature {
                item,
                mut reason,
                note,
            } => {
                if let Some(other) = schedule.keys().find(|other| other.open(&note).is_ok()) {
                    reason.push_str(&format!("; it is signed by {} instead", other.vkey()));
                }
                bad(&item, reason)
            }
            Unopened::Other(err) => err,
        }
    }
}

/// [`open_checkpoint`] without the hint (the schedule may not be whole yet).
fn open_unhinted(schedule: &KeySchedule, note: &str, size: u64) -> Result<Checkpoint, Unopened> {
    let item = format!("checkpoint of size {size}");
    let (key, why) = schedule.checkpoint_key(size);
    let body = key.open(note).map_err(|err| Unopened::Signature {
        item: item.clone(),
        reason: format!("{err} ({why})"),
        note: note.to_owned(),
    })?;
    let checkpoint =
        Checkpoint::parse(body).map_err(|err| Unopened::Other(bad(&item, err.to_string())))?;
    if checkpoint.origin != key.name() {
        return Err(Unopened::Other(bad(
            &item,
            format!(
                "origin {:?} is not the key name {:?}",
                checkpoint.origin,
                key.name()
            ),
        )));
    }
    Ok(checkpoint)
}

/// The checkpoint a note claims, signature unchecked (the key that must
/// have signed it depends on the rotations in the entries).
fn peek_checkpoint(note: &str) -> Result<Checkpoint, BundleError> {
    let body = note
        .find("\n\n")
        .map(|split| &note[..split + 1])
        .ok_or_else(|| bad("checkpoint", "not a signed note (no blank line)"))?;
    Checkpoint::parse(body).map_err(|err| bad("checkpoint", err.to_string()))
}

/// A tree of `from` leaves known only by its complete subtrees.
fn frontier_from_prefix(from: u64, prefix: &[Hash]) -> Frontier {
    struct Peaks<'a>(u64, &'a [Hash]);
    impl super::tree::NodeSource for Peaks<'_> {
        type Error = std::convert::Infallible;
        fn node(&self, level: u8, _index: u64) -> Result<Hash, Self::Error> {
            // INVARIANT: `Frontier::load` asks for one node per set bit of
            // the size, largest first, and `prefix_hashes` checked there is
            // exactly one hash per set bit.
            let rank = (self.0 >> level).count_ones() as usize - 1;
            Ok(self.1[rank])
        }
    }
    match Frontier::load(&Peaks(from, prefix), from) {
        Ok(frontier) => frontier,
        Err(never) => match never {},
    }
}

/// The manifest's `prefix`: one SHA-256 hash per set bit of `from`.
fn prefix_hashes(value: Option<&Value>, from: u64) -> Result<Vec<Hash>, BundleError> {
    let Some(Value::Array(items)) = value else {
        return Err(bad("manifest", "prefix is not a list of base64 strings"));
    };
    if items.len() != from.count_ones() as usize {
        return Err(bad(
            "manifest",
            format!(
                "prefix has {} hashes but from {from} needs {} (one per set bit)",
                items.len(),
                from.count_ones()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .and_then(lines::base64_exact)
                .and_then(|raw| Hash::try_from(raw).ok())
                .ok_or_else(|| {
                    bad(
                        "manifest",
                        format!("prefix hash {i} is not canonical base64 of 32 bytes"),
                    )
                })
        })
        .collect()
}

fn read_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    let text = read_text(dir, "manifest.json")?
        .ok_or_else(|| bad("manifest", "manifest.json is missing"))?;
    let Ok(Value::Object(raw)) = super::canonical::parse_strict(&text) else {
        return Err(bad("manifest", "not a JSON object"));
    };
    let (form, version) = match raw.get("format").and_then(Value::as_str) {
        Some(CONTIGUOUS_FORMAT) => (BundleForm::Contiguous, 1),
        Some(CONTIGUOUS_FORMAT_2) => (BundleForm::Contiguous, 2),
        Some(CONTIGUOUS_FORMAT_3) => (BundleForm::Contiguous, 3),
        Some(SPARSE_FORMAT) => (BundleForm::Sparse, 1),
        other => {
            return Err(bad(
                "manifest",
                format!(
                    "format {other:?} is not {CONTIGUOUS_FORMAT_3}, {CONTIGUOUS_FORMAT_2}, {CONTIGUOUS_FORMAT} nor {SPARSE_FORMAT}"
                ),
            ));
        }
    };
    let number = |name: &str| {
        raw.get(name).and_then(Value::as_u64).ok_or_else(|| {
            bad(
                "manifest",
                format!("{name} is missing or not a non-negative integer"),
            )
        })
    };
    let (from, to) = (number("from")?, number("to")?);
    if from > to {
        return Err(bad(
            "manifest",
            format!("from {from} is larger than to {to}"),
        ));
    }
    let Some(payloads) = raw.get("payloads").and_then(Value::as_bool) else {
        return Err(bad("manifest", "payloads is not true or false"));
    };
    Ok(Manifest {
        form,
        version,
        origin: raw.get("origin").cloned().unwrap_or(Value::Null),
        vkey: raw.get("vkey").cloned().unwrap_or(Value::Null),
        from,
        to,
        payloads,
        raw,
    })
}

/// A bundle file's bytes, or `None` when it does not exist.
fn read_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, BundleError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BundleError::Unreadable {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn read_text(dir: &Path, name: &str) -> Result<Option<String>, BundleError> {
    read_file(dir, name)?
        .map(|bytes| String::from_utf8(bytes).map_err(|_| bad(name, "not UTF-8 text")))
        .transpose()
}
