//! What a `govgate-bundle/2` bundle carries besides its entries
//! (docs/audit-format.md section 8.1), checked: the manifest's file list,
//! the batch checkpoints with the consistency proofs between them, the
//! context entries with their inclusion proofs; and what they let a
//! verifier say: where a change lies, which signatures and payloads must
//! be there.

use super::context::Context;
use super::keys::KeySchedule;
use super::lines::{BundleEntry, base64_exact, split_jsonl};
use super::{BundleError, bad, bad_seq, open_checkpoint, read_file};
use crate::ledger::canonical::parse_strict;
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::tree::{Frontier, Hash, leaf_hash, verify_consistency};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The files a bundle may hold besides its manifest.
pub(super) const FILES: &[&str] = &[
    "entries.jsonl",
    "checkpoint.txt",
    "checkpoints.jsonl",
    "context.jsonl",
    "proofs.jsonl",
    "signatures.jsonl",
    "payloads.jsonl",
];

/// One line of `checkpoints.jsonl`.
pub(super) struct CheckpointLine {
    pub(super) size: u64,
    pub(super) note: String,
    consistency: Vec<Hash>,
}

pub(super) fn hashes(value: &Value) -> Option<Vec<Hash>> {
    value
        .as_array()?
        .iter()
        .map(|item| Hash::try_from(base64_exact(item.as_str()?)?).ok())
        .collect()
}

/// `checkpoints.jsonl`: sizes strictly increasing, one of them `to` with
/// the note of `checkpoint.txt`.
pub(super) fn read_checkpoints(
    dir: &Path,
    to: u64,
    note: &str,
) -> Result<Vec<CheckpointLine>, BundleError> {
    const FILE: &str = "checkpoints.jsonl";
    let bytes =
        read_file(dir, FILE)?.ok_or_else(|| bad("checkpoints", format!("{FILE} is missing")))?;
    let mut lines: Vec<CheckpointLine> = Vec::new();
    for (i, raw) in split_jsonl(&bytes).into_iter().enumerate() {
        lines.push(checkpoint_line(
            i + 1,
            raw,
            lines.last().map(|last| last.size),
        )?);
    }
    let of_to = lines.iter().find(|line| line.size == to);
    checkpoint_of_to(of_to.map(|line| line.note.as_str()), to, note)?;
    Ok(lines)
}

/// Line `number` of `checkpoints.jsonl`, after a line of size `previous`.
pub(super) fn checkpoint_line(
    number: usize,
    raw: &[u8],
    previous: Option<u64>,
) -> Result<CheckpointLine, BundleError> {
    let item = format!("checkpoints.jsonl line {number}");
    let value = std::str::from_utf8(raw)
        .ok()
        .and_then(|text| parse_strict(text).ok())
        .ok_or_else(|| bad(&item, "not JSON"))?;
    let (Some(size), Some(note), Some(consistency)) = (
        value["size"].as_u64(),
        value["checkpoint"].as_str(),
        hashes(&value["consistency"]),
    ) else {
        return Err(bad(
            &item,
            "needs size, checkpoint (a note) and consistency (base64 hashes)",
        ));
    };
    if previous.is_some_and(|last| last >= size) {
        return Err(bad(&item, "sizes do not increase"));
    }
    Ok(CheckpointLine {
        size,
        note: note.to_owned(),
        consistency,
    })
}

/// The line of size `to` (`found`, its note) is there, with the note of
/// `checkpoint.txt`.
pub(super) fn checkpoint_of_to(
    found: Option<&str>,
    to: u64,
    note: &str,
) -> Result<(), BundleError> {
    match found {
        Some(found) if found == note => Ok(()),
        Some(_) => Err(bad(
            "checkpoints",
            format!("the checkpoint of size {to} is not the note of checkpoint.txt"),
        )),
        None => Err(bad(
            "checkpoints",
            format!("no checkpoint of size {to} (the bundle's to)"),
        )),
    }
}

/// Opens every checkpoint line with the key the schedule names and checks
/// the consistency proof from the line before; each rotation's own
/// checkpoint (size seq + 1) must be there, signed by its old key; every
/// context entry's path must lead to the root of the last checkpoint.
/// Returns the opened checkpoints by size.
pub(super) fn check_checkpoints(
    lines: &[CheckpointLine],
    schedule: &KeySchedule,
    context: &Context,
) -> Result<BTreeMap<u64, Checkpoint>, BundleError> {
    let mut opened: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    let mut previous: Option<(u64, Hash)> = None;
    for line in lines {
        let checkpoint = open_checkpoint(schedule, &line.note, line.size)?;
        link_checkpoint(line, &checkpoint, previous)?;
        previous = Some((checkpoint.size, checkpoint.root));
        opened.insert(line.size, checkpoint);
    }
    let last = lines.last().map_or(0, |line| line.size);
    for seq in schedule.rotation_seqs() {
        rotation_checkpoint(seq, last, opened.contains_key(&(seq + 1)))?;
    }
    let last_root = opened.get(&last).map(|checkpoint| checkpoint.root);
    context
        .proven(last, last_root.as_ref())
        .map_err(|(_, err)| err)?;
    Ok(opened)
}

/// An opened carried checkpoint (`line`) says its line's size and is
/// consistent with the line before (`previous`: its size and root).
pub(super) fn link_checkpoint(
    line: &CheckpointLine,
    checkpoint: &Checkpoint,
    previous: Option<(u64, Hash)>,
) -> Result<(), BundleError> {
    if checkpoint.size != line.size {
        return Err(bad(
            &format!("checkpoint of size {}", line.size),
            format!("its note says size {}", checkpoint.size),
        ));
    }
    if let Some((old_size, old_root)) = previous
        && !verify_consistency(
            old_size,
            checkpoint.size,
            &old_root,
            &checkpoint.root,
            &line.consistency,
        )
    {
        return Err(bad(
            &format!("checkpoint of size {}", line.size),
            format!(
                "the consistency proof from size {old_size} does not verify: the two \
                     checkpoints are not of one append-only log"
            ),
        ));
    }
    Ok(())
}

/// The rotation at `seq` has its own checkpoint (`carried`), unless it
/// is at or after the last carried one (`last`, its size).
pub(super) fn rotation_checkpoint(seq: u64, last: u64, carried: bool) -> Result<(), BundleError> {
    if seq < last && !carried {
        return Err(bad_seq(
            seq,
            format!(
                "key_rotated: the bundle lacks its own checkpoint (size {}), signed by \
                 its old key",
                seq + 1
            ),
        ));
    }
    Ok(())
}

/// Compares the root of the tree after each carried checkpoint's size
/// inside the range with that checkpoint. The first that differs, with the
/// last that matched, bounds where the bundle's entries first differ from
/// the signed log: that is all the bundle proves, and all it says.
pub(super) fn locate_change(
    mut frontier: Frontier,
    entries: &[BundleEntry],
    opened: &BTreeMap<u64, Checkpoint>,
) -> Result<(), BundleError> {
    let from = frontier.size();
    let mut last_match = from;
    for entry in entries {
        frontier.push(leaf_hash(&entry.bytes));
        let size = frontier.size();
        let Some(checkpoint) = opened.get(&size) else {
            continue;
        };
        if frontier.root() == checkpoint.root {
            last_match = size;
            continue;
        }
        return Err(changed(from, last_match, size));
    }
    Ok(())
}

/// The root of the first `size` entries is not the signed one, while the
/// first `last_match` matched (`from`: none was checked yet).
pub(super) fn changed(from: u64, last_match: u64, size: u64) -> BundleError {
    let (a, b) = (last_match, size - 1);
    let matched = if last_match > from {
        format!("the checkpoint of size {last_match} matches the first {last_match} entries")
    } else if from == 0 {
        "the bundle carries no smaller checkpoint".to_owned()
    } else {
        format!("the bundle starts at {from} from unsigned prefix hashes")
    };
    let prefix = if last_match == from && from > 0 {
        " (or in the prefix hashes)"
    } else {
        ""
    };
    let why = format!(
        "the hash chain is intact, but the Merkle root of the first {size} entries is not \
         the signed root of the checkpoint of size {size}, while {matched}"
    );
    if a == b && prefix.is_empty() {
        bad_seq(a, format!("entry altered: {why}"))
    } else {
        bad(
            "root",
            format!(
                "changed within seqs {a}..{b}{prefix}; cannot be located more precisely: {why}"
            ),
        )
    }
}

/// The `entry_signatures` setting in force at each entry, from the
/// `entry_signatures_set` entries of the bundle and its context.
fn settings(entries: &[BundleEntry], context: &Context) -> BTreeMap<u64, bool> {
    context
        .entries
        .iter()
        .chain(entries)
        .filter(|e| e.value["kind"] == crate::ledger::export::SIGNATURES_KIND)
        .map(|e| (e.seq, e.value["entry_signatures"] == "on"))
        .collect()
}

/// With the setting `on` (recorded at or before an entry), the entry's
/// signature must be in the bundle.
pub(super) fn check_signatures_present(
    entries: &[BundleEntry],
    context: &Context,
    signed: &BTreeSet<u64>,
) -> Result<(), BundleError> {
    let settings = settings(entries, context);
    for entry in entries {
        if let Some((at, true)) = settings.range(..=entry.seq).next_back()
            && !signed.contains(&entry.seq)
        {
            return Err(bad_seq(
                entry.seq,
                format!(
                    "per-entry signature missing: entry_signatures is on here \
                         (recorded at seq {at})"
                ),
            ));
        }
    }
    Ok(())
}

/// Every entry whose payload the log keeps (a decision or `stream_ended`
/// in mode `full`) has its payload line, unless a `payload_erased` entry of
/// the bundle or its context names it.
pub(super) fn check_payloads_present(
    entries: &[BundleEntry],
    context: &Context,
    present: &BTreeSet<u64>,
) -> Result<(), BundleError> {
    let mut erased = context.erased.clone();
    for seq in entries
        .iter()
        .filter(|e| e.value["kind"] == "payload_erased")
        .filter_map(|e| e.value["erased_seq"].as_u64())
    {
        erased.insert(seq);
    }
    for entry in entries {
        let kept = matches!(
            entry.value["kind"].as_str(),
            Some("decision" | "stream_ended")
        ) && entry.value["payload_mode"] == "full";
        if kept && !present.contains(&entry.seq) && !erased.contains(entry.seq) {
            return Err(bad_seq(
                entry.seq,
                "payload missing: the entry's payload is kept (payload_mode full) and no \
                 payload_erased entry in the bundle names it",
            ));
        }
    }
    Ok(())
}

/// What a forger does after editing a bundle: the manifest's file list
/// made to match the files again (tests of the checks behind it).
#[cfg(test)]
pub(super) fn refresh_file_list(dir: &Path) {
    use sha2::Digest;
    let path = dir.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    if !manifest["files"].is_object() {
        return;
    }
    let mut files = serde_json::Map::new();
    for name in FILES {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            let lines = bytes.iter().filter(|b| **b == b'\n').count();
            let sha = crate::ledger::entry::hex(&sha2::Sha256::digest(&bytes));
            files.insert(
                (*name).to_owned(),
                serde_json::json!({ "lines": lines, "sha256": sha }),
            );
        }
    }
    manifest["files"] = Value::Object(files);
    std::fs::write(&path, format!("{manifest:#}\n")).unwrap();
}
