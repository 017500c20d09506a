//! `govgate verify --fleet DIR --vkey VKEY...`: a fleet bundle
//! (`govgate export --fleet`, docs/audit-format.md section 8.5) checked
//! as `tools/govgate_verify.py fleet` checks it: every replica's bundle
//! (as `verify --bundle`, with the caller's key named after the
//! replica's log), the checkpoint each published (signed by its log's
//! key, consistent with its bundle), distinct replica ids and log names,
//! no listed replica missing and no bundle unlisted, and the fleet's
//! changes recorded alike and in order by every replica
//! (`super::fleet_control`). Every problem is
//! named with its replica. Exit 0: verifies, 1: does not, 2: cannot check.

use super::fleet_export::{FLEET_FORMAT, FLEET_MANIFEST, is_replica_id};
use super::print_out;
use crate::ledger::bundle::{BundleError, verify_bundle_on};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::tree::{Hash, verify_consistency};
use base64::Engine;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// One replica as `fleet.json` lists it.
struct Listed {
    id: String,
    origin: String,
    size: u64,
    published_size: u64,
    note: String,
    published_at: String,
    consistency: Vec<String>,
}

/// Runs `govgate verify --fleet`.
pub(super) fn verify(dir: &Path, vkeys: &[String], jobs: usize) -> ExitCode {
    let keys = match read_keys(dir, vkeys) {
        Ok(keys) => keys,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let mut problems = Vec::new();
    let mut oks = Vec::new();
    let last = check(dir, &keys, jobs, &mut problems, &mut oks);
    if problems.is_empty() {
        oks.push(format!(
            "fleet ok: {} replicas, each log verified and consistent with the checkpoint it \
             published; {}\n",
            oks.len(),
            super::fleet_control::recorded(last)
        ));
        print_out(&oks.concat());
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        eprintln!("govgate: fleet bundle does NOT verify: {problem}");
    }
    ExitCode::FAILURE
}

fn read_keys(dir: &Path, vkeys: &[String]) -> anyhow::Result<Vec<NoteVerifier>> {
    let mut keys: Vec<NoteVerifier> = Vec::new();
    for vkey in vkeys {
        let key = super::ledger::read_vkey(vkey)?;
        anyhow::ensure!(
            !keys.iter().any(|other| other.name() == key.name()),
            "two --vkey name the log {:?}: give each replica's first key once",
            key.name()
        );
        keys.push(key);
    }
    if let Some(why) = super::staging::unfinished(dir) {
        anyhow::bail!(why);
    }
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    Ok(keys)
}

/// Every check; each problem names its replica (or the file at fault).
/// The last control event the replicas recorded.
fn check(
    dir: &Path,
    keys: &[NoteVerifier],
    jobs: usize,
    problems: &mut Vec<String>,
    oks: &mut Vec<String>,
) -> u64 {
    let listed = match listed(dir) {
        Ok(listed) => listed,
        Err(problem) => {
            problems.push(problem);
            return 0;
        }
    };
    let mut replicas: Vec<Listed> = Vec::new();
    for replica in listed {
        match replica {
            Err(problem) => problems.push(problem),
            Ok(replica) => {
                if replicas.iter().any(|r| r.id == replica.id) {
                    problems.push(format!(
                        "replica {}: listed twice in {FLEET_MANIFEST}",
                        replica.id
                    ));
                } else if let Some(twin) = replicas.iter().find(|r| r.origin == replica.origin) {
                    problems.push(format!(
                        "replica {}: its log's origin {:?} is replica {}'s too: each replica \
                         signs its own log, under its own name",
                        replica.id, replica.origin, twin.id
                    ));
                } else {
                    replicas.push(replica);
                }
            }
        }
    }
    let replicas_dir = dir.join("replicas");
    let mut present: Vec<String> = std::fs::read_dir(&replicas_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    present.sort();
    for name in present {
        if !replicas.iter().any(|r| r.id == name) {
            problems.push(format!(
                "replicas/{name}: a bundle that {FLEET_MANIFEST} does not list"
            ));
        }
    }
    // The changes each replica recorded, once its bundle verified.
    let mut control = Vec::new();
    for replica in &replicas {
        let checked = check_replica(&replicas_dir, replica, keys, jobs).and_then(|ok| {
            let records = super::fleet_control::control_records(&replicas_dir.join(&replica.id))
                .map_err(|err| format!("bundle: {err}"))?;
            control.push((replica.id.clone(), records));
            Ok(ok)
        });
        match checked {
            Ok(ok) => oks.push(ok),
            Err(problem) => problems.push(format!("replica {}: {problem}", replica.id)),
        }
    }
    let (control_problems, last) = super::fleet_control::control_problems(&control);
    problems.extend(control_problems);
    last
}

/// The replicas `fleet.json` lists, as (replica id, its log's origin), in
/// its order; for a fleet bundle that verified.
pub(super) fn replicas(dir: &Path) -> Result<Vec<(String, String)>, String> {
    listed(dir)?
        .into_iter()
        .map(|replica| replica.map(|r| (r.id, r.origin)))
        .collect()
}

/// The replicas `fleet.json` lists, each parsed or its problem.
fn listed(dir: &Path) -> Result<Vec<Result<Listed, String>>, String> {
    let path = dir.join(FLEET_MANIFEST);
    let text = std::fs::read(&path).map_err(|err| {
        format!(
            "{FLEET_MANIFEST}: cannot read it ({err}): {} is not a fleet bundle (govgate \
             export --fleet)",
            dir.display()
        )
    })?;
    let manifest: Value =
        serde_json::from_slice(&text).map_err(|err| format!("{FLEET_MANIFEST}: {err}"))?;
    if manifest["format"] != FLEET_FORMAT {
        return Err(format!(
            "{FLEET_MANIFEST}: format {} is not {FLEET_FORMAT:?}",
            manifest["format"]
        ));
    }
    let Some(replicas) = manifest["replicas"].as_array().filter(|r| !r.is_empty()) else {
        return Err(format!(
            "{FLEET_MANIFEST}: replicas is not a non-empty list"
        ));
    };
    Ok(replicas
        .iter()
        .enumerate()
        .map(|(at, r)| parse(at, r))
        .collect())
}

fn parse(at: usize, value: &Value) -> Result<Listed, String> {
    let id = value["replica_id"]
        .as_str()
        .filter(|id| is_replica_id(id))
        .ok_or_else(|| {
            format!(
                "{FLEET_MANIFEST}: replicas[{at}]: replica_id {} is not a replica id (1-63 of \
                 a-z 0-9 -)",
                value["replica_id"]
            )
        })?;
    let bad = |what: &str| format!("replica {id}: {FLEET_MANIFEST}: {what}");
    let text = |v: &Value, what: &str| v.as_str().map(str::to_owned).ok_or_else(|| bad(what));
    let number = |v: &Value, what: &str| v.as_u64().ok_or_else(|| bad(what));
    if value["bundle"] != format!("replicas/{id}").as_str() {
        return Err(bad(&format!(
            "bundle {} is not replicas/{id}",
            value["bundle"]
        )));
    }
    let published = &value["published"];
    Ok(Listed {
        id: id.to_owned(),
        origin: text(&value["origin"], "origin is not a string")?,
        size: number(&value["size"], "size is not a whole number")?,
        published_size: number(&published["size"], "published.size is not a whole number")?,
        note: text(&published["note"], "published.note is not a string")?,
        published_at: published["published_at"].as_str().unwrap_or("?").to_owned(),
        consistency: value["consistency"]
            .as_array()
            .and_then(|hashes| {
                hashes
                    .iter()
                    .map(|h| h.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| bad("consistency is not a list of base64 hashes"))?,
    })
}

/// One replica: its bundle, then its published checkpoint against it.
fn check_replica(
    replicas_dir: &Path,
    replica: &Listed,
    keys: &[NoteVerifier],
    jobs: usize,
) -> Result<String, String> {
    let dir = replicas_dir.join(&replica.id);
    if !dir.is_dir() {
        return Err(format!(
            "missing: no replicas/{} in the fleet bundle",
            replica.id
        ));
    }
    let first = keys
        .iter()
        .find(|key| key.name() == replica.origin)
        .ok_or_else(|| {
            format!(
                "no --vkey given for its log {:?}: pass the replica's first verifier key \
                 (govgate vkey on the replica, checked with its operator)",
                replica.origin
            )
        })?;
    let report = verify_bundle_on(&dir, first, None, jobs).map_err(|err| match err {
        BundleError::Bad { seq, item, reason } => {
            let first = seq.map_or(String::new(), |seq| format!("first bad seq {seq}: "));
            format!("bundle: {first}{item}: {reason}")
        }
        other => format!("bundle: {other}"),
    })?;
    if report.size != replica.size {
        return Err(format!(
            "{FLEET_MANIFEST} says its bundle is of size {}, its checkpoint says {}",
            replica.size, report.size
        ));
    }
    let published = open_any(&replica.note, &report.keys).ok_or_else(|| {
        format!(
            "the checkpoint it published is not signed by the log's key ({})",
            report
                .keys
                .iter()
                .map(NoteVerifier::vkey)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if published.origin != replica.origin || published.size != replica.published_size {
        return Err(format!(
            "the checkpoint it published is of {:?} size {}, {FLEET_MANIFEST} says {:?} size {}",
            published.origin, published.size, replica.origin, replica.published_size
        ));
    }
    if report.size < published.size {
        return Err(format!(
            "its bundle holds {} entries, fewer than the checkpoint it published (size {}): \
             the bundle is not of the log it published",
            report.size, published.size
        ));
    }
    let bundle_note = std::fs::read_to_string(dir.join("checkpoint.txt"))
        .map_err(|err| format!("checkpoint.txt: {err}"))?;
    let bundle = open_any(&bundle_note, &report.keys)
        .ok_or_else(|| "checkpoint.txt is not signed by the log's key".to_owned())?;
    let proof: Option<Vec<Hash>> = replica
        .consistency
        .iter()
        .map(|line| {
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        })
        .collect();
    let consistent = proof.is_some_and(|proof| {
        verify_consistency(
            published.size,
            bundle.size,
            &published.root,
            &bundle.root,
            &proof,
        )
    });
    if !consistent {
        return Err(format!(
            "the checkpoint it published (size {}) and its bundle's (size {}) are not \
             consistent: the consistency proof in {FLEET_MANIFEST} does not verify",
            published.size, bundle.size
        ));
    }
    Ok(format!(
        "replica {} ok: bundle of origin {}, entries {}..{} ({} checked), {} payloads, {} \
         signatures, {} key rotations; consistent with the checkpoint it published at {} \
         (size {})\n",
        replica.id,
        report.origin,
        report.from,
        report.to,
        report.entries,
        report.payloads,
        report.signatures,
        report.rotations,
        replica.published_at,
        published.size
    ))
}

/// The checkpoint in `note` if one of `keys` signed it.
fn open_any(note: &str, keys: &[NoteVerifier]) -> Option<Checkpoint> {
    keys.iter()
        .find_map(|key| key.open(note).ok())
        .and_then(|body| Checkpoint::parse(body).ok())
}
