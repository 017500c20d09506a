//! The members of a `kpi_snapshot` ledger entry: one model's KPI report
//! (the same counts and figures as `GET /admin/kpis/{model}`), why it was
//! taken, and what the size bound left out. Pure: the snapshot task
//! (`snapshot_task.rs`) asks the aggregator for the report and appends.
//!
//! SPEC: docs/audit-format.md, "KPI snapshots" (members, the bound, the
//! rule that recomputes every rate and aggregate from the counts).
//!
//! A ledger entry must stay below 65,536 bytes to fit a C2SP entry bundle,
//! so the members are bounded to [`MAX_MEMBERS_BYTES`] (canonical JSON),
//! leaving room for the ledger's own members. What does not fit is left
//! out in this order, each step only if the one before did not suffice,
//! and named in `omitted`:
//!
//! 1. `ks_bins`: the KS edges and bin counts (the statistic stays);
//! 2. `groups`: per attribute, the groups beyond a cap (lowered until the
//!    members fit), the ineligible and smallest first; the attribute then
//!    says how many groups, rows and eligible groups were left out. Only
//!    if leaving groups out makes the members fit; else after step 3;
//! 3. `drift_bins`: the PSI/JS edges, buckets and bin counts (the values
//!    stay);
//! 4. `figures`: the attributes and the drift (the row counts stay).
//!
//! A replica of a fleet adds the fleet's figures as a `fleet` member
//! (`fairness`, `drift`, `omitted`): the replica's own members and the
//! fleet's are then bounded to half the bytes each, the same way.

use super::report::KpiReport;
use crate::ledger::canonical::to_canonical;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Most bytes of a snapshot's members in canonical JSON: the whole entry
/// (with `seq`, `time`, `origin`, `prev_hash` and `kind`) stays below the
/// 65,536 bytes of a C2SP entry bundle.
pub const MAX_MEMBERS_BYTES: usize = 60_000;

/// Why a snapshot is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `snapshot_every_secs` passed.
    Interval,
    /// The model's serving version changed.
    VersionChange {
        /// Seq of the registry entry that changed it.
        cause_seq: u64,
        /// The version that served before (`None`: none did).
        previous: Option<String>,
    },
    /// The gateway stops cleanly.
    Stop,
}

impl Trigger {
    /// The `trigger` member.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Interval => "interval",
            Trigger::VersionChange { .. } => "version_change",
            Trigger::Stop => "stop",
        }
    }
}

/// The members of one `kpi_snapshot` entry, bounded to `max_bytes`
/// ([`MAX_MEMBERS_BYTES`] in the gateway).
pub(super) fn members(
    report: &KpiReport,
    trigger: &Trigger,
    serving: Option<&str>,
    every: Option<Duration>,
    max_bytes: usize,
) -> Map<String, Value> {
    let mut members = Map::new();
    members.insert("model".into(), json!(report.model));
    members.insert("trigger".into(), json!(trigger.as_str()));
    if let Trigger::VersionChange {
        cause_seq,
        previous,
    } = trigger
    {
        members.insert("cause_seq".into(), json!(cause_seq));
        members.insert("previous_version".into(), json!(previous));
    }
    members.insert("serving_version".into(), json!(serving));
    let mut settings = to_object(&report.settings);
    settings.insert(
        "snapshot_every_secs".into(),
        json!(every.map_or(0, |every| every.as_secs())),
    );
    members.insert("settings".into(), Value::Object(settings));
    members.insert("fairness".into(), json!(report.fairness));
    members.insert("drift".into(), json!(report.drift));
    members.insert("omitted".into(), json!([]));
    bound(members, max_bytes)
}

/// [`members`] of a replica's snapshot, with the fleet's figures of the
/// model (`fleet`, its fleet report) when there are any: then the
/// replica's members and the `fleet` member get half of `max_bytes` each.
pub(super) fn members_with_fleet(
    report: &KpiReport,
    fleet: Option<&KpiReport>,
    trigger: &Trigger,
    serving: Option<&str>,
    every: Option<Duration>,
    max_bytes: usize,
) -> Map<String, Value> {
    let Some(fleet) = fleet else {
        return members(report, trigger, serving, every, max_bytes);
    };
    let half = max_bytes / 2;
    let mut members = members(report, trigger, serving, every, half);
    // Room for the member's name beside the part.
    let part = fleet_part(fleet, max_bytes - half - 16);
    members.insert("fleet".into(), Value::Object(part));
    members
}

/// The `fleet` member of a replica's snapshot (`[cluster]`): the fleet's
/// windows of the same model (`report`, its fleet report) as `fairness`,
/// `drift` and `omitted`, of the same shape as the replica's own and
/// bounded to `max_bytes` the same way.
fn fleet_part(report: &KpiReport, max_bytes: usize) -> Map<String, Value> {
    let mut part = Map::new();
    part.insert("fairness".into(), json!(report.fairness));
    part.insert("drift".into(), json!(report.drift));
    part.insert("omitted".into(), json!([]));
    bound(part, max_bytes)
}

/// The figures of a snapshot (`fairness`, `drift`, and the fleet's), to
/// tell whether anything changed since the last one.
pub(super) fn figures(members: &Map<String, Value>) -> [Option<&Value>; 3] {
    [
        members.get("fairness"),
        members.get("drift"),
        members.get("fleet"),
    ]
}

fn to_object(value: &impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Canonical size; a value that does not serialise counts as too large.
fn size(members: &Map<String, Value>) -> usize {
    to_canonical(&Value::Object(members.clone())).map_or(usize::MAX, |bytes| bytes.len())
}

fn omit(members: &mut Map<String, Value>, what: &str) {
    if let Some(Value::Array(list)) = members.get_mut("omitted") {
        list.push(json!(what));
    }
}

/// Every feature object of the drift part.
fn features(members: &mut Map<String, Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    members
        .get_mut("drift")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|version| version.get_mut("features")?.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Every attribute object of the fairness part.
fn attributes(members: &mut Map<String, Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    members
        .get_mut("fairness")
        .and_then(|f| f.get_mut("attributes"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn bound(mut members: Map<String, Value>, max_bytes: usize) -> Map<String, Value> {
    if size(&members) <= max_bytes {
        return members;
    }
    // 1. KS bins.
    for feature in features(&mut members) {
        if let Some(Value::Object(ks)) = feature.get_mut("ks") {
            for name in ["edges", "reference_counts", "window_counts"] {
                ks.remove(name);
            }
        }
    }
    omit(&mut members, "ks_bins");
    if size(&members) <= max_bytes {
        return members;
    }
    // 2. Groups beyond a cap, if that is enough.
    if let Some(capped) = cap_to_fit(&members, max_bytes) {
        return capped;
    }
    // 3. PSI/JS bins.
    for feature in features(&mut members) {
        for name in ["edges", "buckets", "reference_counts", "window_counts"] {
            feature.remove(name);
        }
    }
    omit(&mut members, "drift_bins");
    if size(&members) <= max_bytes {
        return members;
    }
    // 2 again, without the drift bins.
    if let Some(capped) = cap_to_fit(&members, max_bytes) {
        return capped;
    }
    // 4. The figures themselves.
    if let Some(Value::Object(fairness)) = members.get_mut("fairness") {
        fairness.insert("attributes".into(), json!([]));
    }
    members.insert("drift".into(), json!([]));
    omit(&mut members, "figures");
    members
}

/// The members with every attribute's groups capped, the cap as high as
/// lets them fit (guessed from the groups' average size, then lowered);
/// `None` if they do not fit even without any group.
fn cap_to_fit(members: &Map<String, Value>, max_bytes: usize) -> Option<Map<String, Value>> {
    let mut members = members.clone();
    let now = size(&members);
    let counts: Vec<usize> = attributes(&mut members)
        .filter_map(|a| a.get("groups")?.as_array().map(Vec::len))
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0);
    let total: usize = counts.iter().sum();
    let with_groups = counts.iter().filter(|n| **n > 0).count().max(1);
    omit(&mut members, "groups");
    let capped = |cap: usize| {
        let mut trial = members.clone();
        for attribute in attributes(&mut trial) {
            cap_groups(attribute, cap);
        }
        trial
    };
    let bare = capped(0);
    let bare_size = size(&bare);
    if bare_size > max_bytes {
        return None;
    }
    let per_group = (now.saturating_sub(bare_size) / total.max(1)).max(1);
    let mut cap = (max_bytes.saturating_sub(bare_size) / per_group / with_groups).min(most);
    loop {
        if cap == 0 {
            return Some(bare);
        }
        let trial = capped(cap);
        if size(&trial) <= max_bytes {
            return Some(trial);
        }
        cap = cap * 3 / 4;
    }
}

/// Keeps at most `cap` groups of an attribute: eligible before ineligible,
/// then the most rows, then byte order; the kept ones stay in byte order.
/// Says what was left out (`groups_omitted`, `rows_omitted`,
/// `eligible_groups_omitted`).
fn cap_groups(attribute: &mut Map<String, Value>, cap: usize) {
    let Some(Value::Array(groups)) = attribute.get_mut("groups") else {
        return;
    };
    if groups.len() <= cap {
        attribute.insert("groups_omitted".into(), json!(0));
        attribute.insert("rows_omitted".into(), json!(0));
        attribute.insert("eligible_groups_omitted".into(), json!(0));
        return;
    }
    let key = |g: &Value| {
        (
            !g["eligible"].as_bool().unwrap_or(false),
            std::cmp::Reverse(g["rows"].as_u64().unwrap_or(0)),
            g["group"].as_str().unwrap_or("").to_owned(),
        )
    };
    let mut ranked = std::mem::take(groups);
    ranked.sort_by_cached_key(key);
    let dropped = ranked.split_off(cap);
    ranked.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
    *groups = ranked;
    let rows: u64 = dropped.iter().filter_map(|g| g["rows"].as_u64()).sum();
    let eligible = dropped
        .iter()
        .filter(|g| g["eligible"].as_bool() == Some(true))
        .count();
    attribute.insert("groups_omitted".into(), json!(dropped.len()));
    attribute.insert("rows_omitted".into(), json!(rows));
    attribute.insert("eligible_groups_omitted".into(), json!(eligible));
}

#[cfg(test)]
mod tests;
