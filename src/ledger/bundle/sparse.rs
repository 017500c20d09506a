//! The sparse form (`govgate-bundle-sparse/1`): entries selected by a
//! filter, each with an RFC 6962 inclusion proof against the signed
//! checkpoint of tree size `size`, plus every `key_rotated` entry in
//! `from..size` so the checkpoint's key can be worked out. A model filter
//! selects the model's decisions and the ends of their streams
//! (`stream_ended`) in `from..to` and its model-version
//! entries anywhere in `0..size`; every decision's `approval_seq` must then
//! lead to its `version_approved` entry in the bundle.
//!
//! What it proves: every entry in it is in the signed log at its seq, and
//! with no model filter, that `from..to` is complete (gap-free, chained).
//! What it cannot prove: that a model-filtered bundle left no matching
//! entry out; only the contiguous form (or the whole log) shows that.

use super::keys::KeySchedule;
use super::lines::{BundleEntry, base64_exact, check_chain, split_jsonl};
use super::{
    BundleError, BundleForm, BundleReport, Manifest, bad, bad_seq, open_checkpoint, read_file,
};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::tree::{Hash, leaf_hash, verify_inclusion};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest's `filter`: each member a string or null.
pub(super) struct Filter {
    pub(super) model: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl Filter {
    fn parse(value: Option<&Value>) -> Result<Self, BundleError> {
        let Some(Value::Object(filter)) = value else {
            return Err(bad("manifest", "filter is not an object"));
        };
        if let Some(unknown) = filter
            .keys()
            .find(|k| !["model", "since", "until"].contains(&k.as_str()))
        {
            return Err(bad(
                "manifest",
                format!("filter has an unknown member {unknown}"),
            ));
        }
        let member = |name: &str| match filter.get(name) {
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(bad(
                "manifest",
                format!("filter.{name} is not a string or null"),
            )),
        };
        Ok(Self {
            model: member("model")?,
            since: member("since")?,
            until: member("until")?,
        })
    }

    /// For messages: `model=M since=S until=U`, the members given.
    pub(super) fn describe(&self) -> String {
        [
            ("model", &self.model),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// The manifest's `size` and `filter`, checked against the checkpoint.
pub(super) fn header(
    manifest: &Manifest,
    claimed: &Checkpoint,
) -> Result<(u64, Filter), BundleError> {
    let to = manifest.to;
    let size = manifest
        .raw
        .get("size")
        .and_then(Value::as_u64)
        .filter(|size| *size >= to)
        .ok_or_else(|| {
            bad(
                "manifest",
                format!("size is not an integer at least to ({to})"),
            )
        })?;
    let filter = Filter::parse(manifest.raw.get("filter"))?;
    if claimed.size != size {
        return Err(bad(
            "checkpoint",
            format!("size {} is not the bundle's size {size}", claimed.size),
        ));
    }
    Ok((size, filter))
}

/// Checks a sparse bundle's own rules; returns its report and key schedule.
pub(super) fn check(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    entries: &[BundleEntry],
    start_key: &NoteVerifier,
    note: &str,
) -> Result<(BundleReport, KeySchedule), BundleError> {
    let (from, to) = (manifest.from, manifest.to);
    let (size, filter) = header(manifest, claimed)?;
    check_selection(entries, from, to, size, filter.model.as_deref())?;
    check_proofs(dir, entries, size, &claimed.root)?;
    check_chain(entries)?;
    if let Some(model) = filter.model.as_deref() {
        check_approvals(entries, model)?;
    }
    let schedule = KeySchedule::follow(start_key.clone(), entries, &claimed.origin)?;
    let checkpoint = open_checkpoint(&schedule, note, size)?;
    let report = BundleReport {
        form: BundleForm::Sparse,
        origin: checkpoint.origin,
        from,
        to,
        size,
        entries: entries.len() as u64,
        payloads: 0,
        signatures: 0,
        rotations: schedule.count(),
        keys: schedule.keys().cloned().collect(),
        filter: Some(filter.describe()),
        warnings: Vec::new(),
        open_streams: Vec::new(),
    };
    Ok((report, schedule))
}

/// Entries in increasing seq order; `key_rotated` ones anywhere in
/// `from..size`. Without a model filter, every seq of `from..to` present
/// (and nothing else but rotations). With one, the model's decisions and
/// `stream_ended` entries in `from..to` and its model-version entries
/// (`version_*`) anywhere in `0..size`.
fn check_selection(
    entries: &[BundleEntry],
    from: u64,
    to: u64,
    size: u64,
    model: Option<&str>,
) -> Result<(), BundleError> {
    let mut selection = Selection::new(from, to, size, model);
    for (i, entry) in entries.iter().enumerate() {
        selection.next(i + 1, entry.seq, &entry.value)?;
    }
    selection.end()
}

/// [`check_selection`] one entry at a time.
pub(super) struct Selection<'m> {
    from: u64,
    to: u64,
    size: u64,
    model: Option<&'m str>,
    /// The lowest seq the next entry may have.
    expected: u64,
}

impl<'m> Selection<'m> {
    pub(super) fn new(from: u64, to: u64, size: u64, model: Option<&'m str>) -> Self {
        Self {
            from,
            to,
            size,
            model,
            // With a model filter, version entries may come before `from`.
            expected: if model.is_some() { 0 } else { from },
        }
    }

    /// The entry on line `line` (from 1) of `entries.jsonl`.
    pub(super) fn next(&mut self, line: usize, seq: u64, value: &Value) -> Result<(), BundleError> {
        let (from, to, size, model, expected) =
            (self.from, self.to, self.size, self.model, self.expected);
        if seq < expected {
            return Err(bad_seq(
                seq,
                format!("entries.jsonl line {line}: out of order or repeated (seqs must increase)"),
            ));
        }
        let kind = value["kind"].as_str().unwrap_or_default();
        let rotation = kind == "key_rotated";
        if model.is_none() && seq > expected && expected < to {
            return Err(bad_seq(
                expected,
                format!(
                    "missing: the bundle has no model filter, so it holds every seq of {from}..{}, \
                     but entries.jsonl goes from seq {} to seq {seq}",
                    to - 1,
                    expected.saturating_sub(1)
                ),
            ));
        }
        let (low, limit) = match model {
            _ if rotation => (from, size),
            Some(model) if value["model"] == model && kind.starts_with("version_") => (0, size),
            Some(model)
                if value["model"] == model && (kind == "decision" || kind == "stream_ended") =>
            {
                (from, to)
            }
            Some(model) => {
                return Err(bad_seq(
                    seq,
                    format!(
                        "entries.jsonl line {line}: not a decision, stream_ended nor \
                         model-version entry of model {model:?}, which the filter selects"
                    ),
                ));
            }
            None => (from, to),
        };
        if seq < low || seq >= limit {
            return Err(bad_seq(
                seq,
                format!("entries.jsonl line {line}: outside the bundle's range {low}..{limit}"),
            ));
        }
        self.expected = seq + 1;
        Ok(())
    }

    /// After the last entry.
    pub(super) fn end(&self) -> Result<(), BundleError> {
        let (from, to, expected) = (self.from, self.to, self.expected);
        if self.model.is_none() && expected < to {
            return Err(bad_seq(
                expected,
                format!(
                    "missing: entries.jsonl ends before seq {expected}, the bundle covers {from}..{}",
                    to - 1
                ),
            ));
        }
        Ok(())
    }
}

/// With a model filter: every decision's non-null `approval_seq` is the
/// seq of an entry in the bundle that is a `version_approved` of the same
/// model and version with `state` `approved`. A failure names the
/// decision's seq.
fn check_approvals(entries: &[BundleEntry], model: &str) -> Result<(), BundleError> {
    let present: BTreeMap<u64, &Value> = entries.iter().map(|e| (e.seq, &e.value)).collect();
    for entry in entries.iter().filter(|e| e.value["kind"] == "decision") {
        let Some(approval_seq) = approval_seq_of(entry.seq, &entry.value)? else {
            continue;
        };
        let approval = present.get(&approval_seq).copied();
        if let Some(problem) =
            approval_problem(entry.seq, &entry.value, approval_seq, approval, model)
        {
            return Err(problem);
        }
    }
    Ok(())
}

/// A decision's (at `seq`) `approval_seq`: `None` when null.
pub(super) fn approval_seq_of(seq: u64, decision: &Value) -> Result<Option<u64>, BundleError> {
    match &decision["approval_seq"] {
        Value::Null => Ok(None),
        value => value.as_u64().map(Some).ok_or_else(|| {
            bad_seq(
                seq,
                format!("approval_seq {value} is not a seq (a non-negative integer) or null"),
            )
        }),
    }
}

/// Why `approval` (the bundle's entry at `approval_seq`, `None` when it
/// has none) is not the approval the decision at `seq` names. Only its
/// `kind`, `model`, `version` and `state` are looked at.
pub(super) fn approval_problem(
    seq: u64,
    decision: &Value,
    approval_seq: u64,
    approval: Option<&Value>,
    model: &str,
) -> Option<BundleError> {
    let Some(approval) = approval else {
        return Some(bad_seq(
            seq,
            format!(
                "approval_seq {approval_seq} is not in the bundle, which holds every \
                 model-version entry of model {model:?} (removed?)"
            ),
        ));
    };
    let mut wrong = Vec::new();
    if approval["kind"] != "version_approved" {
        wrong.push(format!("its kind is {}", approval["kind"]));
    }
    if approval["model"] != decision["model"] {
        wrong.push(format!(
            "its model is {}, the decision's {}",
            approval["model"], decision["model"]
        ));
    }
    if approval["version"] != decision["version"] {
        wrong.push(format!(
            "its version is {}, the decision's {}",
            approval["version"], decision["version"]
        ));
    }
    if approval["state"] != "approved" {
        wrong.push(format!("its state is {}", approval["state"]));
    }
    (!wrong.is_empty()).then(|| {
        bad_seq(
            seq,
            format!(
                "approval_seq {approval_seq} is not a version_approved entry with state \
                 approved of the decision's model and version: {}",
                wrong.join("; ")
            ),
        )
    })
}

/// `proofs.jsonl`: one `{"seq":N,"path":[base64,...]}` line per entry, in
/// the same order, each proving its entry's leaf at index `seq` in the
/// tree of `size` leaves with the signed root.
fn check_proofs(
    dir: &Path,
    entries: &[BundleEntry],
    size: u64,
    root: &Hash,
) -> Result<(), BundleError> {
    let bytes = read_file(dir, PROOFS)?.ok_or_else(proofs_missing)?;
    let mut proofs = BTreeMap::new();
    for (i, raw) in split_jsonl(&bytes).into_iter().enumerate() {
        let number = i + 1;
        let (seq, path) = proof_line(raw).ok_or_else(|| proof_malformed(number))?;
        if proofs.insert(seq, (number, path)).is_some() {
            return Err(proof_repeated(seq, number));
        }
    }
    let present: BTreeMap<u64, &BundleEntry> = entries.iter().map(|e| (e.seq, e)).collect();
    // In seq order, so the first bad seq is the one named.
    let seqs: std::collections::BTreeSet<u64> =
        present.keys().chain(proofs.keys()).copied().collect();
    for seq in seqs {
        match (present.get(&seq), proofs.get(&seq)) {
            (Some(entry), Some((number, path))) => {
                check_inclusion(&entry.bytes, seq, *number, path, size, root)?;
            }
            (Some(_), None) => return Err(proof_absent(seq)),
            (None, Some((number, _))) => return Err(proof_orphan(seq, *number)),
            (None, None) => {}
        }
    }
    Ok(())
}

pub(super) const PROOFS: &str = "proofs.jsonl";

pub(super) fn proofs_missing() -> BundleError {
    bad("proofs", "proofs.jsonl is missing")
}

pub(super) fn proof_malformed(number: usize) -> BundleError {
    bad(
        &format!("{PROOFS} line {number}"),
        "not {\"seq\":N,\"path\":[base64 of 32 bytes, ...]}",
    )
}

pub(super) fn proof_repeated(seq: u64, number: usize) -> BundleError {
    bad_seq(
        seq,
        format!("{PROOFS} line {number}: a second proof for this seq"),
    )
}

pub(super) fn proof_absent(seq: u64) -> BundleError {
    bad_seq(
        seq,
        format!("no inclusion proof for this entry in {PROOFS}"),
    )
}

pub(super) fn proof_orphan(seq: u64, number: usize) -> BundleError {
    bad_seq(
        seq,
        format!(
            "{PROOFS} line {number} proves this seq but entries.jsonl has no such entry (removed?)"
        ),
    )
}

/// The proof on line `number` leads from the entry `bytes` at `seq` to `root`.
pub(super) fn check_inclusion(
    bytes: &[u8],
    seq: u64,
    number: usize,
    path: &[Hash],
    size: u64,
    root: &Hash,
) -> Result<(), BundleError> {
    if verify_inclusion(&leaf_hash(bytes), seq, size, path, root) {
        return Ok(());
    }
    Err(bad_seq(
        seq,
        format!(
            "inclusion proof ({PROOFS} line {number}) does not lead from this entry \
             to the checkpoint's root: the entry or its proof was altered"
        ),
    ))
}

pub(super) fn proof_line(raw: &[u8]) -> Option<(u64, Vec<Hash>)> {
    let value = crate::ledger::canonical::parse_strict(std::str::from_utf8(raw).ok()?).ok()?;
    let object = value.as_object()?;
    if object.len() != 2 {
        return None;
    }
    let seq = object.get("seq")?.as_u64()?;
    let path = object
        .get("path")?
        .as_array()?
        .iter()
        .map(|item| Hash::try_from(base64_exact(item.as_str()?)?).ok())
        .collect::<Option<Vec<Hash>>>()?;
    Some((seq, path))
}
