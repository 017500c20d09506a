//! Scope: the log, the period, its seqs, the signed checkpoint covering
//! its end, and whether its entries verified.

use super::{Entry, Facts, Section};
use serde_json::{Value, json};

/// The scope section (it reads facts only; it counts the entries).
#[derive(Debug, Default)]
pub(super) struct Scope {
    entries: u64,
}

impl Section for Scope {
    fn name(&self) -> &'static str {
        "scope"
    }

    fn observe(&mut self, _entry: &Entry) {
        self.entries += 1;
    }

    fn finish(self: Box<Self>, facts: &Facts<'_>) -> Value {
        let (size, note) = &facts.outside.checkpoint;
        let root = note.lines().nth(2).unwrap_or_default();
        json!({
            "origin": facts.origin,
            "made_from": facts.outside.made_from,
            "period": {"from": facts.period.from, "to": facts.period.to},
            "first_seq": facts.first_seq,
            "last_seq": facts.last_seq,
            "entries": self.entries,
            "checkpoint": {"size": size, "root": root, "note": note},
            "verification": {
                "result": if facts.outside.verified { "ok" } else { "failed" },
                "checked": "chain, Merkle tree and signed checkpoints of every entry of the period",
            },
            "seqs": [facts.first_seq, facts.last_seq],
            "seqs_left_off": 0,
        })
    }
}
