//! The risk register in the period: the register in force (the last
//! `risk_register_set` of the period), each risk with its indicators, and
//! for each indicator the breaches and recoveries the period recorded,
//! the breaches still open at its end and the time spent breached in it.
//!
//! The report reads the period's entries only: a register recorded
//! before the period is not seen (the section says so and names the
//! register `sha256` the period's breach and recovery entries cite, which
//! finds that entry); a breach recorded before the period shows through
//! its recovery's `breach_seq`, and counts as breached from the period's
//! start.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many `risk_register_set` entries are listed (all counted).
const MAX_REGISTERS: usize = 100;
/// At most this many (risk, indicator) pairs are followed; a register
/// has far fewer.
const MAX_INDICATORS: usize = 1_000;
/// At most this many breaches and recoveries are listed one by one (all
/// are counted, and timed while their breach is followed).
const MAX_LISTED: usize = 10_000;
/// At most this many breaches are followed until their recovery.
const MAX_OPEN: usize = 10_000;
/// At most this many register digests cited by breaches are named.
const MAX_DIGESTS: usize = 16;
/// Arrays of a breach's `counts` keep at most this many items.
const MAX_COUNT_ITEMS: usize = 16;

/// A `risk_register_set` of the period.
#[derive(Debug, Clone)]
struct Register {
    seq: u64,
    time: String,
    sha256: Value,
    /// As `registers_set` lists it ([`register_listed`]).
    listed: Value,
    eval_every_secs: Value,
    window_secs: Value,
    risks: Vec<Value>,
}

/// A `risk_register_set` as `registers_set` lists it: its seq, time and
/// SHA-256, and on a fleet's replica the `control_seq` of the fleet's
/// change it records.
pub(super) fn register_listed(entry: &Entry) -> Value {
    let mut listed = json!({
        "seq": entry.seq,
        "time": entry.time_text(),
        "sha256": entry.value("sha256"),
    });
    if let Some(control_seq) = entry.get("control_seq") {
        listed["control_seq"] = control_seq.clone();
    }
    listed
}

/// What the period recorded of one indicator of one risk.
#[derive(Debug, Default)]
struct Followed {
    /// `kpi`, `subject`, `threshold`, `direction` as the first breach or
    /// recovery entry gave them (for an indicator the register shown
    /// does not hold).
    seen_as: Option<Value>,
    breaches: Vec<Value>,
    recoveries: Vec<Value>,
    breach_count: u64,
    recovery_count: u64,
    /// Milliseconds breached, of breaches begun and ended in the period.
    breached_ms: i64,
    /// Recoveries of breaches recorded before the period: their count
    /// and the sum of their times (timed from the period's start).
    early_recoveries: (i64, i64),
}

/// The risks section.
#[derive(Debug, Default)]
pub(super) struct Risks {
    registers: Vec<Register>,
    registers_count: u64,
    last_register: Option<Register>,
    followed: BTreeMap<(String, u64), Followed>,
    indicators_left_off: u64,
    /// Breaches not yet recovered: seq -> (indicator, time in ms).
    open: BTreeMap<u64, ((String, u64), i64)>,
    open_left_off: u64,
    listed: usize,
    listed_left_off: u64,
    breaches_total: u64,
    recoveries_total: u64,
    digests: BTreeSet<String>,
    first_seq: Option<u64>,
    last_ms: i64,
    evidence: Evidence,
}

/// The indicator's subject: its `attribute` (fairness) or `feature`
/// (drift), null for the KPIs that have none.
fn subject(object: &Value) -> Value {
    object
        .get("attribute")
        .or_else(|| object.get("feature"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The members of an indicator the report shows.
fn indicator_of(object: &Value) -> Value {
    json!({
        "kpi": object.get("kpi").cloned().unwrap_or(Value::Null),
        "subject": subject(object),
        "threshold": object.get("threshold").cloned().unwrap_or(Value::Null),
        "direction": object.get("direction").cloned().unwrap_or(Value::Null),
    })
}

/// A breach's `counts`, its arrays cut to [`MAX_COUNT_ITEMS`] items (the
/// entry holds them all).
fn counts_summary(counts: Value) -> Value {
    let Value::Object(members) = counts else {
        return counts;
    };
    let mut summary = Map::new();
    for (name, member) in members {
        match member {
            Value::Array(items) if items.len() > MAX_COUNT_ITEMS => {
                summary.insert(
                    format!("{name}_left_off"),
                    json!(items.len() - MAX_COUNT_ITEMS),
                );
                summary.insert(
                    name,
                    Value::Array(items.into_iter().take(MAX_COUNT_ITEMS).collect()),
                );
            }
            other => {
                summary.insert(name, other);
            }
        }
    }
    Value::Object(summary)
}

impl Risks {
    /// The indicator an entry is about (`None`: not followed, past the cap).
    fn followed<'a>(
        map: &'a mut BTreeMap<(String, u64), Followed>,
        left_off: &mut u64,
        entry: &Entry,
    ) -> Option<((String, u64), &'a mut Followed)> {
        let key = (
            entry.str("risk").unwrap_or_default().to_owned(),
            entry.u64("indicator").unwrap_or(0),
        );
        if map.len() >= MAX_INDICATORS && !map.contains_key(&key) {
            *left_off += 1;
            return None;
        }
        let followed = map.entry(key.clone()).or_default();
        if followed.seen_as.is_none() {
            followed.seen_as = Some(indicator_of(&Value::Object(
                ["kpi", "attribute", "feature", "threshold", "direction"]
                    .iter()
                    .filter_map(|name| Some(((*name).to_owned(), entry.get(name)?.clone())))
                    .collect(),
            )));
        }
        Some((key, followed))
    }

    /// Whether one more breach or recovery is listed (counted when not).
    fn may_list(listed: &mut usize, left_off: &mut u64) -> bool {
        if *listed < MAX_LISTED {
            *listed += 1;
            true
        } else {
            *left_off += 1;
            false
        }
    }

    fn cite(&mut self, entry: &Entry) {
        self.evidence.add(entry.seq);
        if let Some(digest) = entry.str("register_sha256")
            && self.digests.len() < MAX_DIGESTS
        {
            self.digests.insert(digest.to_owned());
        }
    }

    fn register(&mut self, entry: &Entry) {
        self.evidence.add(entry.seq);
        self.registers_count += 1;
        let register = Register {
            seq: entry.seq,
            time: entry.time_text().to_owned(),
            sha256: entry.value("sha256"),
            listed: register_listed(entry),
            eval_every_secs: entry.value("eval_every_secs"),
            window_secs: entry.value("window_secs"),
            risks: entry
                .get("risks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        };
        if self.registers.len() < MAX_REGISTERS {
            self.registers.push(Register {
                risks: Vec::new(),
                ..register.clone()
            });
        }
        self.last_register = Some(register);
    }

    fn breached(&mut self, entry: &Entry) {
        self.cite(entry);
        self.breaches_total += 1;
        let Some((key, followed)) =
            Self::followed(&mut self.followed, &mut self.indicators_left_off, entry)
        else {
            return;
        };
        followed.breach_count += 1;
        let listed = Self::may_list(&mut self.listed, &mut self.listed_left_off);
        if listed {
            let mut item = json!({
                "seq": entry.seq,
                "time": entry.time_text(),
                "model": entry.value("model"),
                "value": entry.value("value"),
                "counts": counts_summary(entry.value("counts")),
            });
            if let Some(version) = entry.get("version") {
                item["version"] = version.clone();
            }
            followed.breaches.push(item);
        }
        if self.open.len() < MAX_OPEN {
            self.open.insert(entry.seq, (key, entry.time_ms));
        } else {
            self.open_left_off += 1;
        }
    }

    fn recovered(&mut self, entry: &Entry) {
        self.cite(entry);
        self.recoveries_total += 1;
        let breach_seq = entry.u64("breach_seq");
        let opened = breach_seq.and_then(|seq| self.open.remove(&seq));
        // A breach of the period that was not followed (past the cap) is
        // not timed; one before the period is, from the period's start.
        let before = breach_seq.is_some_and(|seq| self.first_seq.is_none_or(|first| seq < first));
        let Some((_, followed)) =
            Self::followed(&mut self.followed, &mut self.indicators_left_off, entry)
        else {
            return;
        };
        followed.recovery_count += 1;
        let duration = match opened {
            Some((_, at)) => {
                let ms = entry.time_ms - at;
                followed.breached_ms += ms;
                json!(ms)
            }
            None => {
                if before {
                    // Added at the end, from the period's start.
                    followed.early_recoveries.0 += 1;
                    followed.early_recoveries.1 += entry.time_ms;
                }
                Value::Null
            }
        };
        let listed = Self::may_list(&mut self.listed, &mut self.listed_left_off);
        if listed {
            followed.recoveries.push(json!({
                "seq": entry.seq,
                "time": entry.time_text(),
                "model": entry.value("model"),
                "breach_seq": breach_seq,
                "value": entry.value("value"),
                "breached_secs": entry.value("breached_secs"),
                "duration_ms": duration,
            }));
        }
    }

    /// One indicator's figures.
    fn indicator(
        index: u64,
        shown: Value,
        followed: Option<Followed>,
        open: &[(u64, i64)],
        (start_ms, end_ms): (i64, i64),
    ) -> Value {
        let followed = followed.unwrap_or_default();
        let mut breached_ms = followed.breached_ms
            + (followed.early_recoveries.1 - followed.early_recoveries.0 * start_ms);
        let mut open_seqs = Vec::new();
        for (seq, at) in open {
            open_seqs.push(*seq);
            breached_ms += (end_ms - at).max(0);
        }
        let mut object = shown.as_object().cloned().unwrap_or_default();
        object.insert("index".to_owned(), json!(index));
        object.insert("breach_count".to_owned(), json!(followed.breach_count));
        object.insert("recovery_count".to_owned(), json!(followed.recovery_count));
        object.insert("breaches".to_owned(), Value::Array(followed.breaches));
        object.insert("recoveries".to_owned(), Value::Array(followed.recoveries));
        object.insert("open_at_end".to_owned(), json!(open_seqs));
        object.insert("breached_ms_in_period".to_owned(), json!(breached_ms));
        Value::Object(object)
    }
}

impl Section for Risks {
    fn name(&self) -> &'static str {
        "risks"
    }

    fn observe(&mut self, entry: &Entry) {
        self.first_seq.get_or_insert(entry.seq);
        self.last_ms = entry.time_ms;
        match entry.kind() {
            "risk_register_set" => self.register(entry),
            "risk_indicator_breached" => self.breached(entry),
            "risk_indicator_recovered" => self.recovered(entry),
            _ => {}
        }
    }

    fn finish(mut self: Box<Self>, facts: &Facts<'_>) -> Value {
        let start_ms = (facts.period.start().unix_seconds() * 1000.0).round() as i64;
        let bounds = (start_ms, self.last_ms);
        let mut open: BTreeMap<(String, u64), Vec<(u64, i64)>> = BTreeMap::new();
        for (seq, (key, at)) in &self.open {
            open.entry(key.clone()).or_default().push((*seq, *at));
        }
        let open_total: usize = self.open.len();
        let mut risks = Vec::new();
        let register = self.last_register.take();
        for risk in register.iter().flat_map(|register| &register.risks) {
            let id = risk["id"].as_str().unwrap_or_default().to_owned();
            let mut indicators = Vec::new();
            for (index, shown) in risk["indicators"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let key = (id.clone(), index as u64);
                indicators.push(Self::indicator(
                    index as u64,
                    indicator_of(shown),
                    self.followed.remove(&key),
                    open.get(&key).map_or(&[][..], Vec::as_slice),
                    bounds,
                ));
            }
            risks.push(json!({
                "id": id,
                "title": risk["title"],
                "owner": risk["owner"],
                "models": risk["models"],
                "controls": risk["controls"],
                "in_register": true,
                "indicators": indicators,
            }));
        }
        // Indicators the period's breaches name that the register shown
        // does not hold (it was recorded before the period, or changed).
        let mut others: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for ((id, index), mut followed) in std::mem::take(&mut self.followed) {
            let shown = followed.seen_as.take().unwrap_or(Value::Null);
            let key = (id.clone(), index);
            others.entry(id).or_default().push(Self::indicator(
                index,
                shown,
                Some(followed),
                open.get(&key).map_or(&[][..], Vec::as_slice),
                bounds,
            ));
        }
        for (id, indicators) in others {
            risks.push(json!({
                "id": id,
                "title": null,
                "owner": null,
                "models": null,
                "controls": null,
                "in_register": false,
                "indicators": indicators,
            }));
        }
        let registers: Vec<Value> = self.registers.iter().map(|r| r.listed.clone()).collect();
        let mut object = Map::new();
        object.insert(
            "register".to_owned(),
            match &register {
                Some(r) => json!({
                    "seq": r.seq,
                    "time": r.time,
                    "sha256": r.sha256,
                    "eval_every_secs": r.eval_every_secs,
                    "window_secs": r.window_secs,
                }),
                None => Value::Null,
            },
        );
        object.insert("registers_set".to_owned(), Value::Array(registers));
        object.insert(
            "registers_set_count".to_owned(),
            json!(self.registers_count),
        );
        object.insert("register_sha256_cited".to_owned(), json!(self.digests));
        object.insert("risks".to_owned(), Value::Array(risks));
        object.insert("breaches".to_owned(), json!(self.breaches_total));
        object.insert("recoveries".to_owned(), json!(self.recoveries_total));
        object.insert("open_at_end".to_owned(), json!(open_total));
        object.insert("listed_left_off".to_owned(), json!(self.listed_left_off));
        object.insert(
            "indicators_left_off".to_owned(),
            json!(self.indicators_left_off),
        );
        object.insert("open_left_off".to_owned(), json!(self.open_left_off));
        object.insert(
            "note".to_owned(),
            json!("register is the last risk_register_set of the period, null when it was recorded before the period (find it by a sha256 of register_sha256_cited); a breach recorded before the period counts as breached from the period's start; open breaches count as breached until the period's last entry"),
        );
        self.evidence.put(&mut object);
        Value::Object(object)
    }
}
