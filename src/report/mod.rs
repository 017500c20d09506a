//! The period report (`govgate report`): what a management review or an
//! audit reads instead of raw entries, every figure with the seqs it
//! comes from.
//!
//! Each section is a module of its own: a pure fold over the period's
//! entries, fed one entry at a time in seq order ([`Section::observe`]),
//! then turned into its JSON ([`Section::finish`]). The same fold runs on
//! a store and on a bundle, so `govgate verify --report` recomputes every
//! figure from the bundle with this very code. Memory is bounded: sections
//! keep counts and small maps, each with a cap it reports when reached,
//! never the entries. A new section is one new module and one line in
//! [`sections`].

mod changes;
mod compare;
pub mod controls;
mod entry;
pub mod html;
mod incidents;
mod inventory;
pub mod issued;
mod kpi_trends;
pub mod oscal;
mod oversight;
mod retention;
mod risks;
mod rollbacks;
mod scope;
mod source;
#[cfg(test)]
mod tests;
mod traffic;

pub use compare::first_difference;
pub use entry::Entry;
pub use kpi_trends::trends_of;
pub use source::{
    BundleEntries, StoreReportError, VerifiedReport, from_bundle, from_bundle_in_format,
    from_store, from_verified_store,
};

use crate::ledger::export::UtcTime;
use serde_json::{Map, Value, json};

/// `format` of report.json.
pub const FORMAT: &str = "govgate-report/3";

/// The format before the fairness and drift trends came into the report
/// (no `kpi_trends` section): `verify --report` recomputes a report of
/// this format as it was made.
pub const FORMAT_2: &str = "govgate-report/2";

/// The format before the risk register came into the report (no `risks`
/// section, no `linked_risks` in the inventory, no indicator breaches
/// among the incidents): `verify --report` recomputes a report of this
/// format as it was made.
pub const FORMAT_1: &str = "govgate-report/1";

/// Kind of the entry that records an issued report.
pub const REPORT_ISSUED: &str = "report_issued";

/// At most this many seqs are listed as a section's evidence; the rest
/// are counted (`seqs_left_off`).
pub const MAX_EVIDENCE_SEQS: usize = 1000;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An entry is not the JSON object the audit format says.
    #[error("entry {seq}: {why}")]
    Entry {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// No entry lies in the period.
    #[error("no entry of the ledger lies in the period {from} .. {to}")]
    EmptyPeriod {
        /// The period's start.
        from: String,
        /// Its end.
        to: String,
    },
    /// The period is not two RFC 3339 times in order.
    #[error("{0}")]
    Period(String),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::ledger::store::StoreError),
    /// report.json's `format` is none this version computes.
    #[error(
        "report format {0:?} is not one this govgate computes ({FORMAT_1}, {FORMAT_2}, {FORMAT})"
    )]
    Format(String),
    /// A bundle's file could not be read, or is not what a report's
    /// bundle holds.
    #[error("{0}")]
    Bundle(String),
}

/// The reporting period: entries with `from <= time < to`.
#[derive(Debug, Clone)]
pub struct Period {
    /// The start as given (RFC 3339).
    pub from: String,
    /// The end as given.
    pub to: String,
    from_at: UtcTime,
    to_at: UtcTime,
}

impl Period {
    /// Parses both ends; `from` must be before `to`.
    pub fn new(from: &str, to: &str) -> Result<Self, ReportError> {
        let parse = |flag: &str, text: &str| {
            UtcTime::parse(text).map_err(|err| ReportError::Period(format!("{flag}: {err}")))
        };
        let (from_at, to_at) = (parse("--from", from)?, parse("--to", to)?);
        if from_at >= to_at {
            return Err(ReportError::Period(format!(
                "--from {from} is not before --to {to}"
            )));
        }
        Ok(Self {
            from: from.to_owned(),
            to: to.to_owned(),
            from_at,
            to_at,
        })
    }

    /// The start, as an instant.
    pub fn start(&self) -> UtcTime {
        self.from_at
    }
}

/// What a report states that is not read from the period's entries: the
/// checkpoint covering the period's end and the verification of the
/// period's entries (by the store's verifier, or the bundle's).
#[derive(Debug, Clone)]
pub struct Outside {
    /// The first checkpoint whose tree holds the period's last entry:
    /// `(size, signed note)`.
    pub checkpoint: (u64, String),
    /// The period's entries verified (chain, tree, checkpoints).
    pub verified: bool,
    /// What the report was made from: [`MADE_FROM_LEDGER`] (and recorded
    /// by a `report_issued` entry) or [`MADE_FROM_BUNDLE`] (recorded
    /// nowhere).
    pub made_from: &'static str,
}

/// `scope.made_from` of a report made on a ledger.
pub const MADE_FROM_LEDGER: &str = "ledger";
/// `scope.made_from` of a report made from a bundle.
pub const MADE_FROM_BUNDLE: &str = "bundle";

/// What the sections' `finish` may read besides their own state.
pub struct Facts<'a> {
    /// The period.
    pub period: &'a Period,
    /// The log's origin (from the entries).
    pub origin: &'a str,
    /// First and last seq of the period.
    pub first_seq: u64,
    /// Last seq of the period.
    pub last_seq: u64,
    /// Checkpoint and verification.
    pub outside: &'a Outside,
}

/// One section of the report.
pub trait Section {
    /// Its key in report.json.
    fn name(&self) -> &'static str;
    /// Takes the next entry of the period (in seq order).
    fn observe(&mut self, entry: &Entry);
    /// Its figures. Every section's object has `seqs` (the evidence, at
    /// most [`MAX_EVIDENCE_SEQS`]) and `seqs_left_off`.
    fn finish(self: Box<Self>, facts: &Facts<'_>) -> Value;
}

/// Every section of a report in `format`, in report order. The control
/// map comes last: it links controls to the others' evidence.
fn sections(format: &str) -> Vec<Box<dyn Section>> {
    let risks = format != FORMAT_1;
    let trends = format != FORMAT_1 && format != FORMAT_2;
    let mut sections: Vec<Box<dyn Section>> = vec![
        Box::new(scope::Scope::default()),
        Box::new(inventory::Inventory::new(risks)),
        Box::new(changes::Changes::default()),
        Box::new(incidents::Incidents::new(risks)),
        Box::new(rollbacks::Rollbacks::default()),
        Box::new(oversight::Oversight::default()),
        Box::new(traffic::Traffic::default()),
        Box::new(retention::Retention::default()),
    ];
    if risks {
        sections.push(Box::new(risks::Risks::default()));
    }
    if trends {
        sections.push(Box::new(kpi_trends::KpiTrends::default()));
    }
    sections
}

/// Whether the run takes more entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Give the next one.
    More,
    /// The period has ended (this entry is past it): stop.
    Done,
}

/// A report being computed: feed it the log's entries in seq order from
/// (at or before) the period's start; it stops at the first entry at or
/// after the period's end.
pub struct Run {
    format: &'static str,
    period: Period,
    controls: controls::ControlMap,
    sections: Vec<Box<dyn Section>>,
    origin: Option<String>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    until_seq: Option<u64>,
}

impl Run {
    /// A run over `period`, linking the controls of `controls`.
    pub fn new(period: Period, controls: controls::ControlMap) -> Self {
        Self {
            format: FORMAT,
            period,
            controls,
            sections: sections(FORMAT),
            origin: None,
            first_seq: None,
            last_seq: None,
            until_seq: None,
        }
    }

    /// Computes a report of `format` ([`FORMAT`] or an older one still
    /// recomputed, [`FORMAT_2`], [`FORMAT_1`]) instead of the current one.
    pub fn in_format(mut self, format: &str) -> Result<Self, ReportError> {
        self.format = match format {
            FORMAT => FORMAT,
            FORMAT_2 => FORMAT_2,
            FORMAT_1 => FORMAT_1,
            other => return Err(ReportError::Format(other.to_owned())),
        };
        self.sections = sections(self.format);
        Ok(self)
    }

    /// Ends the period at seq `last` too: a period that runs into the
    /// future ends where the log ended when the report was made (its
    /// `report_issued` entry records that seq).
    pub fn until(mut self, last: Option<u64>) -> Self {
        self.until_seq = last;
        self
    }

    /// Takes entry `seq`'s canonical bytes.
    pub fn feed(&mut self, seq: u64, bytes: &[u8]) -> Result<Fed, ReportError> {
        let entry = Entry::parse(seq, bytes)?;
        if entry.time < self.period.from_at {
            // Before the period (a bundle that starts earlier).
            return Ok(Fed::More);
        }
        if entry.time >= self.period.to_at || self.until_seq.is_some_and(|last| seq > last) {
            return Ok(Fed::Done);
        }
        if self.origin.is_none() {
            self.origin = Some(entry.str("origin").unwrap_or_default().to_owned());
        }
        self.first_seq.get_or_insert(seq);
        self.last_seq = Some(seq);
        for section in &mut self.sections {
            section.observe(&entry);
        }
        Ok(Fed::More)
    }

    /// The period's last seq, once fed (`None`: no entry in the period).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The report (report.json's value).
    pub fn finish(self, outside: &Outside) -> Result<Value, ReportError> {
        let (Some(first_seq), Some(last_seq)) = (self.first_seq, self.last_seq) else {
            return Err(ReportError::EmptyPeriod {
                from: self.period.from.clone(),
                to: self.period.to.clone(),
            });
        };
        let origin = self.origin.clone().unwrap_or_default();
        let facts = Facts {
            period: &self.period,
            origin: &origin,
            first_seq,
            last_seq,
            outside,
        };
        let mut report = Map::new();
        report.insert("format".to_owned(), json!(self.format));
        for section in self.sections {
            let name = section.name();
            report.insert(name.to_owned(), section.finish(&facts));
        }
        let map = self.controls.link(&report);
        report.insert("control_map".to_owned(), map);
        Ok(Value::Object(report))
    }
}

/// report.json's bytes: pretty JSON, members sorted, one final LF.
pub fn to_bytes(report: &Value) -> Vec<u8> {
    format!("{report:#}\n").into_bytes()
}

/// Lists seqs as evidence: at most [`MAX_EVIDENCE_SEQS`], the rest counted.
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    seqs: Vec<u64>,
    left_off: u64,
}

impl Evidence {
    /// Adds one seq.
    pub fn add(&mut self, seq: u64) {
        if self.seqs.len() < MAX_EVIDENCE_SEQS {
            self.seqs.push(seq);
        } else {
            self.left_off += 1;
        }
    }

    /// Puts `seqs` and `seqs_left_off` into a section's object.
    pub fn put(self, object: &mut Map<String, Value>) {
        object.insert("seqs".to_owned(), json!(self.seqs));
        object.insert("seqs_left_off".to_owned(), json!(self.left_off));
    }
}

/// Counts by key, at most `cap` keys; entries of other keys are counted
/// under `others` (so memory stays bounded whatever the log holds).
#[derive(Debug, Clone)]
pub struct CappedCounts {
    cap: usize,
    counts: std::collections::BTreeMap<String, u64>,
    others: u64,
}

impl CappedCounts {
    /// Counts for at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            counts: std::collections::BTreeMap::new(),
            others: 0,
        }
    }

    /// Counts one for `key`.
    pub fn add(&mut self, key: &str) {
        if let Some(count) = self.counts.get_mut(key) {
            *count += 1;
        } else if self.counts.len() < self.cap {
            self.counts.insert(key.to_owned(), 1);
        } else {
            self.others += 1;
        }
    }

    /// `{"counts": {key: n}, "others": n}`, at most `top` keys (the
    /// largest counts, ties by key), the rest added to `others`.
    pub fn to_json(&self, top: usize) -> Value {
        let mut ranked: Vec<(&String, &u64)> = self.counts.iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let mut others = self.others;
        let mut counts = Map::new();
        for (index, (key, count)) in ranked.into_iter().enumerate() {
            if index < top {
                counts.insert(key.clone(), json!(count));
            } else {
                others += count;
            }
        }
        json!({ "counts": counts, "others": others })
    }
}
