//! `govgate report --fleet DIR --vkey VKEY... --from --to --out OUT`: the
//! period report of a whole fleet from its fleet bundle (`govgate export
//! --fleet`). The fleet bundle is verified first (as `govgate verify
//! --fleet`); then each replica's report is made from its own bundle (as
//! `govgate report --bundle`), each one checkable alone with `govgate
//! verify --report`, and `fleet-report.json` adds them up:
//!
//! - traffic: each decision is in exactly one replica's log, so the
//!   replicas' counts are summed;
//! - changes: every replica records every change of the fleet's registry
//!   and policy sets, so they are counted once per `control_seq`;
//! - human oversight: a review is recorded only by the replica that held
//!   it, so the counts are summed.

use super::fleet_verify;
use crate::report::{self, Period};
use anyhow::Context;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

/// The fleet summary's file name and format.
const FLEET_REPORT: &str = "fleet-report.json";
const FLEET_REPORT_FORMAT: &str = "govgate-fleet-report/1";

/// One replica's report, as the summary needs it.
struct ReplicaReport {
    id: String,
    origin: String,
    /// `None`: the replica's log has no entry in the period.
    report: Option<Value>,
}

/// Runs `govgate report --fleet`.
pub(super) fn run(
    fleet: &Path,
    vkeys: &[String],
    period: (&str, &str),
    controls: &report::controls::ControlMap,
    out: &Path,
) -> anyhow::Result<()> {
    let (from, to) = period;
    anyhow::ensure!(
        fleet_verify::verify(fleet, vkeys, 0) == ExitCode::SUCCESS,
        "the fleet bundle does not verify, so no report"
    );
    let replicas = fleet_verify::replicas(fleet).map_err(|problem| anyhow::anyhow!(problem))?;
    let mut reports = Vec::new();
    for (id, origin) in replicas {
        let bundle = fleet.join("replicas").join(&id);
        let period = Period::new(from, to).map_err(|err| super::usage(err.to_string()))?;
        let made = report::from_bundle(
            &bundle,
            period,
            controls.clone(),
            true,
            None,
            report::MADE_FROM_BUNDLE,
        );
        let report = match made {
            Ok(report) => Some(report),
            Err(report::ReportError::EmptyPeriod { .. }) => None,
            Err(err) => return Err(anyhow::Error::new(err).context(format!("replica {id}"))),
        };
        reports.push(ReplicaReport { id, origin, report });
    }
    anyhow::ensure!(
        reports.iter().any(|r| r.report.is_some()),
        "no replica's log has an entry between {from} and {to}"
    );
    let staging = super::staging::Staging::begin(out)?;
    let dir = staging.bundle();
    let written = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(dir.join("replicas"))
            .with_context(|| format!("creating {}", dir.display()))?;
        for replica in &reports {
            if let Some(report) = &replica.report {
                let bundle = fleet.join("replicas").join(&replica.id);
                super::report::write_from_bundle(
                    report,
                    &bundle,
                    &dir.join("replicas").join(&replica.id),
                    to,
                )?;
            }
        }
        let summary = summary(&reports, from, to);
        let bytes = serde_json::to_vec_pretty(&summary).context("writing the fleet report")?;
        std::fs::write(dir.join(FLEET_REPORT), bytes)
            .with_context(|| format!("writing {FLEET_REPORT}"))
    })();
    staging.settle(written)?;
    let reported = reports.iter().filter(|r| r.report.is_some()).count();
    super::print_out(&format!(
        "fleet report of {from} .. {to} written to {}: {reported} of {} replicas had entries in \
         the period (each report in replicas/<id>, checkable with govgate verify --report; the \
         fleet's figures in {FLEET_REPORT})\n",
        out.display(),
        reports.len()
    ));
    Ok(())
}

/// `fleet-report.json`: each replica's report named, the fleet's figures.
fn summary(reports: &[ReplicaReport], from: &str, to: &str) -> Value {
    let mut decisions = 0;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut holds = 0;
    let mut flags = 0;
    let mut changes: BTreeMap<u64, String> = BTreeMap::new();
    let mut local_changes = 0;
    // Changes a report did not list (beyond its cap): not counted here.
    let mut changes_left_off = 0;
    let mut listed = Vec::new();
    for replica in reports {
        let Some(report) = &replica.report else {
            listed.push(json!({
                "replica_id": replica.id,
                "origin": replica.origin,
                "report": null,
                "note": "no entry of this replica's log lies in the period",
            }));
            continue;
        };
        let traffic = &report["traffic"];
        decisions += traffic["decisions"].as_u64().unwrap_or(0);
        add_counts(&mut outcomes, &traffic["by_outcome"]);
        let oversight = &report["human_oversight"];
        holds += oversight["holds"].as_u64().unwrap_or(0);
        flags += oversight["flags"].as_u64().unwrap_or(0);
        changes_left_off += report["changes"]["entries_left_off"].as_u64().unwrap_or(0);
        for change in report["changes"]["entries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let kind = change["kind"].as_str().unwrap_or_default().to_owned();
            match change["control_seq"].as_u64() {
                Some(control_seq) => {
                    changes.insert(control_seq, kind);
                }
                None => local_changes += 1,
            }
        }
        listed.push(json!({
            "replica_id": replica.id,
            "origin": replica.origin,
            "report": format!("replicas/{}/report.json", replica.id),
            "first_seq": report["scope"]["first_seq"],
            "last_seq": report["scope"]["last_seq"],
            "decisions": traffic["decisions"],
        }));
    }
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for kind in changes.values() {
        *by_kind.entry(kind.as_str()).or_default() += 1;
    }
    let control_seqs: BTreeSet<u64> = changes.keys().copied().collect();
    json!({
        "format": FLEET_REPORT_FORMAT,
        "period": {"from": from, "to": to},
        "replicas": listed,
        "traffic": {"decisions": decisions, "by_outcome": outcomes},
        "changes": {
            "fleet_changes": control_seqs.len(),
            "by_kind": by_kind,
            "control_seqs": control_seqs,
            "local_changes": local_changes,
            "left_off": changes_left_off,
        },
        "human_oversight": {"holds": holds, "flags": flags},
    })
}

/// Adds a report's `{"counts": {key: n}, "others": n}` to `into`.
fn add_counts(into: &mut BTreeMap<String, u64>, counts: &Value) {
    let empty = Map::new();
    for (key, count) in counts["counts"].as_object().unwrap_or(&empty) {
        *into.entry(key.clone()).or_default() += count.as_u64().unwrap_or(0);
    }
    if let Some(others) = counts["others"].as_u64().filter(|n| *n > 0) {
        *into.entry("others".to_owned()).or_default() += others;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: &str, decisions: u64, changes: Value) -> ReplicaReport {
        ReplicaReport {
            id: id.to_owned(),
            origin: format!("gw.example/{id}"),
            report: Some(json!({
                "scope": {"first_seq": 0, "last_seq": 9},
                "traffic": {"decisions": decisions, "by_outcome": {"counts": {"served": decisions}, "others": 0}},
                "human_oversight": {"holds": 1, "flags": 0},
                "changes": {"entries": changes, "entries_left_off": 0},
            })),
        }
    }

    #[test]
    fn decisions_and_reviews_add_up_and_a_change_counts_once_per_control_seq() {
        let changes = json!([
            {"kind": "version_proposed", "control_seq": 1},
            {"kind": "version_approved", "control_seq": 2},
        ]);
        let mut reports = vec![replica("r1", 5, changes.clone()), replica("r2", 7, changes)];
        reports.push(ReplicaReport {
            id: "r3".into(),
            origin: "gw.example/r3".into(),
            report: None,
        });
        let summary = summary(&reports, "a", "b");
        assert_eq!(summary["traffic"]["decisions"], 12);
        assert_eq!(summary["traffic"]["by_outcome"]["served"], 12);
        assert_eq!(summary["human_oversight"]["holds"], 2);
        assert_eq!(summary["changes"]["fleet_changes"], 2);
        assert_eq!(summary["changes"]["by_kind"]["version_approved"], 1);
        assert_eq!(summary["replicas"][2]["report"], Value::Null);
        assert_eq!(summary["replicas"][1]["report"], "replicas/r2/report.json");
    }
}
