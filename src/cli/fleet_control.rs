//! The fleet's changes across its replicas' logs, for `govgate verify
//! --fleet` (as `tools/govgate_verify.py fleet` checks them): every
//! replica records every change of the fleet once, in the fleet's order
//! (docs/fleet.md), so each replica's `control_seq`s are 1, 2, 3, ... in
//! log order, and a control event is of the same kind on every replica
//! that recorded it.

use crate::registry::shared::CONTROL_SEQ_MEMBER;
use crate::report::BundleEntries;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One entry recording a control event: its seq, kind and `control_seq`
/// (as written).
pub(super) type ControlRecord = (u64, String, Value);

/// The entries of the (verified) contiguous bundle in `dir` that record
/// a control event, in log order: one per change of the fleet.
pub(super) fn control_records(dir: &Path) -> Result<Vec<ControlRecord>, String> {
    let mut entries = BundleEntries::open(dir).map_err(|err| err.to_string())?;
    let marker = format!("\"{CONTROL_SEQ_MEMBER}\":");
    let finder = memchr::memmem::Finder::new(marker.as_bytes());
    let mut records = Vec::new();
    while let Some((seq, line)) = entries.next_line().map_err(|err| err.to_string())? {
        // Decisions, the bulk of a log, never hold the member: not parsed.
        if finder.find(&line).is_none() {
            continue;
        }
        let entry: Value =
            serde_json::from_slice(&line).map_err(|err| format!("seq {seq}: {err}"))?;
        if let Some(control_seq) = entry.get(CONTROL_SEQ_MEMBER) {
            let kind = entry["kind"].as_str().unwrap_or_default().to_owned();
            records.push((seq, kind, control_seq.clone()));
        }
    }
    Ok(records)
}

/// The problems of the replicas' `records` (replica id, its records), and
/// the last control seq any of them recorded.
pub(super) fn control_problems(records: &[(String, Vec<ControlRecord>)]) -> (Vec<String>, u64) {
    let mut problems = Vec::new();
    // Control seq -> (kind, replica) as first seen.
    let mut kinds: BTreeMap<u64, (&str, &str)> = BTreeMap::new();
    let mut last = 0;
    for (replica, items) in records {
        for (expected, (seq, kind, control_seq)) in (1..).zip(items) {
            let Some(number) = control_seq.as_u64().filter(|n| *n > 0) else {
                problems.push(format!(
                    "replica {replica}: seq {seq}: control_seq {control_seq} is not a positive integer"
                ));
                break;
            };
            if number != expected {
                problems.push(format!(
                    "replica {replica}: seq {seq} records control event {number} where control \
                     event {expected} was due: every replica records every change of the fleet \
                     once, in the fleet's order"
                ));
                break;
            }
            last = last.max(number);
            let (first_kind, first_replica) = *kinds.entry(number).or_insert((kind, replica));
            if first_kind != kind {
                problems.push(format!(
                    "control event {number} is {first_kind:?} on replica {first_replica} and \
                     {kind:?} on replica {replica} (seq {seq}): the replicas do not record the \
                     same change"
                ));
            }
        }
    }
    (problems, last)
}

/// How the OK line says what `last` control events were checked.
pub(super) fn recorded(last: u64) -> String {
    if last == 0 {
        "no control event recorded".to_owned()
    } else {
        format!("control events 1..{last} recorded alike, in order, by each replica up to its last")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(kinds: &[&str]) -> Vec<ControlRecord> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| (10 + i as u64, (*kind).to_owned(), json!(i + 1)))
            .collect()
    }

    #[test]
    fn every_replica_records_every_control_event_once_in_order_and_alike() {
        let alike = [
            (
                "r1".to_owned(),
                records(&["version_proposed", "version_approved"]),
            ),
            ("r2".to_owned(), records(&["version_proposed"])),
        ];
        assert_eq!(control_problems(&alike), (vec![], 2));
        let gap = [(
            "r1".to_owned(),
            vec![
                (10, "version_proposed".to_owned(), json!(1)),
                (11, "version_approved".to_owned(), json!(3)),
            ],
        )];
        assert_eq!(
            control_problems(&gap).0,
            [
                "replica r1: seq 11 records control event 3 where control event 2 was due: every \
              replica records every change of the fleet once, in the fleet's order"
            ]
        );
        let other = [
            ("r1".to_owned(), records(&["version_proposed"])),
            ("r2".to_owned(), records(&["kpi_reference_set"])),
        ];
        assert_eq!(
            control_problems(&other).0,
            [
                "control event 1 is \"version_proposed\" on replica r1 and \"kpi_reference_set\" on \
              replica r2 (seq 10): the replicas do not record the same change"
            ]
        );
        let bad = [(
            "r1".to_owned(),
            vec![(10, "version_proposed".to_owned(), json!("1"))],
        )];
        assert_eq!(
            control_problems(&bad).0,
            ["replica r1: seq 10: control_seq \"1\" is not a positive integer"]
        );
        assert_eq!(recorded(0), "no control event recorded");
    }
}
