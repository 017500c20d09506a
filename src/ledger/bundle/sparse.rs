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
struct Filter {
    model: Option<String>,
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
    fn describe(&self) -> String {
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
    // With a model filter, version entries may come before `from`.
    let mut expected = if model.is_some() { 0 } else { from };
    for (i, entry) in entries.iter().enumerate() {
        let seq = entry.seq;
        let line = i + 1;
        if seq < expected {
            return Err(bad_seq(
                seq,
                format!("entries.jsonl line {line}: out of order or repeated (seqs must increase)"),
            ));
        }
        let kind = entry.value["kind"].as_str().unwrap_or_default();
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
            Some(model) if entry.value["model"] == model && kind.starts_with("version_") => {
                (0, size)
            }
            Some(model)
                if entry.value["model"] == model
                    && (kind == "decision" || kind == "stream_ended") =>
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
        expected = seq + 1;
    }
    if model.is_none() && expected < to {
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

/// With a model filter: every decision's non-null `approval_seq` is the
/// seq of an entry in the bundle that is a `version_approved` of the same
/// model and version with `state` `approved`. A failure names the
/// decision's seq.
fn check_approvals(entries: &[BundleEntry], model: &str) -> Result<(), BundleError> {
    let present: BTreeMap<u64, &Value> = entries.iter().map(|e| (e.seq, &e.value)).collect();
    for entry in entries.iter().filter(|e| e.value["kind"] == "decision") {
        let (seq, decision) = (entry.seq, &entry.value);
        let approval_seq = match &decision["approval_seq"] {
            Value::Null => continue,
            value => value.as_u64().ok_or_else(|| {
                bad_seq(
                    seq,
                    format!("approval_seq {value} is not a seq (a non-negative integer) or null"),
                )
            })?,
        };
        let Some(approval) = present.get(&approval_seq) else {
            return Err(bad_seq(
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
        if !wrong.is_empty() {
            return Err(bad_seq(
                seq,
                format!(
                    "approval_seq {approval_seq} is not a version_approved entry with state \
                     approved of the decision's model and version: {}",
                    wrong.join("; ")
                ),
            ));
        }
    }
    Ok(())
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
    const FILE: &str = "proofs.jsonl";
    let bytes = read_file(dir, FILE)?.ok_or_else(|| bad("proofs", "proofs.jsonl is missing"))?;
    let mut proofs = BTreeMap::new();
    for (i, raw) in split_jsonl(&bytes).into_iter().enumerate() {
        let number = i + 1;
        let (seq, path) = proof_line(raw).ok_or_else(|| {
            bad(
                &format!("{FILE} line {number}"),
                "not {\"seq\":N,\"path\":[base64 of 32 bytes, ...]}",
            )
        })?;
        if proofs.insert(seq, (number, path)).is_some() {
            return Err(bad_seq(
                seq,
                format!("{FILE} line {number}: a second proof for this seq"),
            ));
        }
    }
    let present: BTreeMap<u64, &BundleEntry> = entries.iter().map(|e| (e.seq, e)).collect();
    // In seq order, so the first bad seq is the one named.
    let seqs: std::collections::BTreeSet<u64> =
        present.keys().chain(proofs.keys()).copied().collect();
    for seq in seqs {
        match (present.get(&seq), proofs.get(&seq)) {
            (Some(entry), Some((number, path))) => {
                if !verify_inclusion(&leaf_hash(&entry.bytes), seq, size, path, root) {
                    return Err(bad_seq(
                        seq,
                        format!(
                            "inclusion proof ({FILE} line {number}) does not lead from this entry \
                             to the checkpoint's root: the entry or its proof was altered"
                        ),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(bad_seq(
                    seq,
                    format!("no inclusion proof for this entry in {FILE}"),
                ));
            }
            (None, Some((number, _))) => {
                return Err(bad_seq(
                    seq,
                    format!(
                        "{FILE} line {number} proves this seq but entries.jsonl has no such entry (removed?)"
                    ),
                ));
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn proof_line(raw: &[u8]) -> Option<(u64, Vec<Hash>)> {
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
