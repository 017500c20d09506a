//! Incidents and nonconformities: rollbacks and revocations with their
//! reasons, times the ledger did not commit, answers the gateway refused
//! through its own fault (ledger unavailable or overloaded, upstream
//! failures, holds that could not be stored), restarts on a new ledger,
//! failed self-verifications, review timeouts and breaches of the risk
//! register's indicators.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// At most this many incidents are listed one by one (all are counted).
const MAX_LISTED: usize = 10_000;

/// Error codes of decisions refused through no fault of the caller
/// (docs/errors.md: whose fault "gateway" or "upstream"). The list is part
/// of the report's form: a code added here needs a new report format
/// (`review_queue_full`, newer than format 3, is not counted yet).
pub(super) const REFUSAL_CODES: &[&str] = &[
    "ledger_unavailable",
    "ledger_overloaded",
    "overloaded",
    "hold_failed",
    "held_answer_too_large",
    "internal_error",
    "upstream_unreachable",
    "upstream_failed",
    "upstream_timeout",
];

/// The incidents section.
#[derive(Debug, Default)]
pub(super) struct Incidents {
    listed: Vec<Value>,
    left_off: u64,
    by_kind: BTreeMap<String, u64>,
    refused: BTreeMap<String, (u64, u64, u64)>,
    evidence: Evidence,
    /// Whether indicator breaches are listed (not in reports of format 1).
    risks: bool,
}

impl Incidents {
    /// The section; `risks`: list indicator breaches.
    pub(super) fn new(risks: bool) -> Self {
        Self {
            risks,
            ..Self::default()
        }
    }

    fn list(&mut self, entry: &Entry, what: &str, members: &[&str]) {
        *self.by_kind.entry(what.to_owned()).or_default() += 1;
        self.evidence.add(entry.seq);
        if self.listed.len() >= MAX_LISTED {
            self.left_off += 1;
            return;
        }
        let mut item = Map::new();
        item.insert("seq".to_owned(), json!(entry.seq));
        item.insert("time".to_owned(), json!(entry.time_text()));
        item.insert("incident".to_owned(), json!(what));
        for name in members {
            if let Some(value) = entry.get(name) {
                item.insert((*name).to_owned(), value.clone());
            }
        }
        self.listed.push(Value::Object(item));
    }
}

impl Section for Incidents {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn observe(&mut self, entry: &Entry) {
        match entry.kind() {
            "version_rolled_back" => self.list(
                entry,
                "rollback",
                &["model", "version", "deactivated", "reason", "principal"],
            ),
            "policy_set_rolled_back" => self.list(
                entry,
                "policy_set_rollback",
                &["proposal_seq", "deactivated", "reason", "principal"],
            ),
            "version_revoked" => self.list(
                entry,
                "revocation",
                &["model", "version", "reason", "principal"],
            ),
            "ledger_outage" => self.list(
                entry,
                "ledger_outage",
                &["since", "until", "duration_ms", "reason"],
            ),
            "ledger_restarted" => {
                self.list(entry, "ledger_restarted", &["reason", "damaged_store"])
            }
            "ledger_verified" if entry.str("result") != Some("ok") => self.list(
                entry,
                "ledger_verification_failed",
                &["mode", "from_seq", "to_size", "bad_seq", "reason"],
            ),
            "review_timed_out" => self.list(
                entry,
                "review_timeout",
                &["review_id", "decision_seq", "outcome", "waited_ms"],
            ),
            "risk_indicator_breached" if self.risks => self.list(
                entry,
                "risk_indicator_breach",
                &[
                    "risk",
                    "indicator",
                    "model",
                    "version",
                    "kpi",
                    "value",
                    "threshold",
                    "direction",
                ],
            ),
            "decision" => {
                let Some(code) = entry.str("error_code") else {
                    return;
                };
                if !REFUSAL_CODES.contains(&code) {
                    return;
                }
                self.evidence.add(entry.seq);
                let counted = self
                    .refused
                    .entry(code.to_owned())
                    .or_insert((0, entry.seq, entry.seq));
                counted.0 += 1;
                counted.2 = entry.seq;
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let refused: Map<String, Value> = self
            .refused
            .iter()
            .map(|(code, (count, first, last))| {
                (
                    code.clone(),
                    json!({"decisions": count, "first_seq": first, "last_seq": last}),
                )
            })
            .collect();
        let total: u64 = self.refused.values().map(|(count, _, _)| count).sum();
        let mut object = Map::new();
        object.insert("listed".to_owned(), Value::Array(self.listed));
        object.insert("listed_left_off".to_owned(), json!(self.left_off));
        object.insert("by_kind".to_owned(), json!(self.by_kind));
        object.insert(
            "refused_answers".to_owned(),
            json!({"total": total, "by_error_code": refused, "codes": REFUSAL_CODES}),
        );
        object.insert(
            "not_recorded".to_owned(),
            json!("a policy reload that fails changes nothing and is not a ledger entry; the gateway's logs hold it"),
        );
        self.evidence.put(&mut object);
        Value::Object(object)
    }
}
