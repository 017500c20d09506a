//! Fairness and drift: the KPI trends of the period, read from its
//! `kpi_snapshot` entries (docs/audit-format.md section 17), set against
//! the thresholds of the risk register in force (section 16).
//!
//! Per model: its snapshots (seq, time, trigger, serving version), the
//! KPI settings they were taken with (window, minimum group size) and
//! each change of them, and one series per figure: per protected
//! attribute the four fairness aggregates, per version and feature the
//! PSI, the Jensen-Shannon distance and the KS statistic. A series gives
//! its points (seq, time, value, rows in the window), its minimum,
//! maximum and last value with the seqs they come from, and for each
//! indicator of the register in force that watches it the threshold and
//! how many of its points were beyond it.
//!
//! Values are copied from the entries, never recomputed: a figure of the
//! report is the very JSON number of the snapshot whose seq it names.
//! The register in force for a snapshot is the last `risk_register_set`
//! of the period before it; snapshots before any (the register was
//! recorded before the period) are checked against none, and the section
//! says so. Memory is bounded: at most [`MAX_SERIES`] series, each
//! listing its first [`MAX_POINTS`] points (its figures count every one).

use super::{CappedCounts, Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Points listed per series (the first ones); the rest are counted, and
/// still enter the series' minimum, maximum, last value and counts.
const MAX_POINTS: usize = 1_000;
/// Snapshots listed per model (the first ones); the rest are counted.
const MAX_SNAPSHOTS: usize = 1_000;
/// Series followed across all models; values of further series are counted.
const MAX_SERIES: usize = 128;
/// Models followed; snapshots of further models are counted.
const MAX_MODELS: usize = 64;
/// Settings changes listed per model.
const MAX_SETTINGS: usize = 100;
/// `risk_register_set` entries of the period listed (all counted).
const MAX_REGISTERS: usize = 100;
/// Triggers told apart per model (the gateway writes three); others are
/// counted together.
const MAX_TRIGGERS: usize = 8;
/// Indicators followed per series (over all registers of the period).
const MAX_WATCHES: usize = 32;
/// Seqs of points beyond a threshold listed per indicator.
const MAX_BEYOND_SEQS: usize = 100;

/// The fairness aggregates of an attribute, in report order.
const FAIRNESS_KPIS: [&str; 4] = [
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
];
/// The drift figures of a feature, in report order.
const DRIFT_KPIS: [&str; 3] = ["psi", "js_distance", "ks"];

/// Identifies a series within a model: fairness (0) or drift (1), the
/// version (drift; empty for fairness), the attribute or feature, and
/// the figure's index in [`FAIRNESS_KPIS`] or [`DRIFT_KPIS`].
type SeriesKey = (u8, String, String, usize);

/// An indicator of a register that may watch a series.
#[derive(Debug, Clone)]
struct Indicator {
    register_seq: u64,
    risk: String,
    index: u64,
    /// The risk's models: `credit` or `credit@v2`.
    models: Vec<String>,
    kpi: String,
    subject: String,
    threshold: Value,
    direction: Value,
    min_count: Value,
}

impl Indicator {
    /// Whether it watches series `key` of `model`: the KPI names the
    /// figure (`js` names `js_distance`), the subject is the series', and
    /// the risk names the model (fairness, all versions together) or the
    /// model or the series' version (drift), as the gateway reads them.
    fn watches(&self, model: &str, key: &SeriesKey) -> bool {
        let (kind, version, subject, figure) = key;
        let kpi = match (kind, self.kpi.as_str()) {
            (0, kpi) => kpi,
            (_, "js") => "js_distance",
            (_, kpi) => kpi,
        };
        let figures: &[&str] = if *kind == 0 {
            &FAIRNESS_KPIS
        } else {
            &DRIFT_KPIS
        };
        if figures.get(*figure) != Some(&kpi) || &self.subject != subject {
            return false;
        }
        self.models.iter().any(|named| match named.split_once('@') {
            None => named == model,
            Some((name, pinned)) => name == model && (*kind == 0 || pinned == version),
        })
    }

    /// Whether it is `other`: the same indicator of the same register.
    fn is(&self, other: &Indicator) -> bool {
        self.register_seq == other.register_seq
            && self.risk == other.risk
            && self.index == other.index
    }

    /// Whether `value` from a window of `rows` rows is beyond the
    /// threshold: the gateway's rule (a window with fewer than
    /// `min_count` rows is unknown, never beyond; equal is within).
    fn beyond(&self, value: f64, rows: u64) -> bool {
        let Some(threshold) = self.threshold.as_f64() else {
            return false;
        };
        if self.min_count.as_u64().is_some_and(|min| rows < min) {
            return false;
        }
        match self.direction.as_str() {
            Some("above") => value > threshold,
            Some("below") => value < threshold,
            _ => false,
        }
    }
}

/// What a series recorded against one indicator.
#[derive(Debug)]
struct Watch {
    indicator: Indicator,
    /// Points taken while its register was in force.
    checked: u64,
    beyond: u64,
    beyond_seqs: Vec<u64>,
}

/// One figure's series.
#[derive(Debug, Default)]
struct Series {
    points: u64,
    defined: u64,
    listed: Vec<Value>,
    /// (value, its JSON, seq) of the smallest and largest defined value.
    min: Option<(f64, Value, u64)>,
    max: Option<(f64, Value, u64)>,
    last: Option<(Value, u64)>,
    watches: Vec<Watch>,
    watches_left_off: u64,
}

impl Series {
    fn add(&mut self, entry: &Entry, value: &Value, rows: u64, watching: &[&Indicator]) {
        self.points += 1;
        if self.listed.len() < MAX_POINTS {
            self.listed.push(json!({
                "seq": entry.seq,
                "time": entry.time_text(),
                "value": value,
                "rows": rows,
            }));
        }
        self.last = Some((value.clone(), entry.seq));
        let number = value.as_f64();
        if let Some(number) = number {
            self.defined += 1;
            if self.min.as_ref().is_none_or(|(min, _, _)| number < *min) {
                self.min = Some((number, value.clone(), entry.seq));
            }
            if self.max.as_ref().is_none_or(|(max, _, _)| number > *max) {
                self.max = Some((number, value.clone(), entry.seq));
            }
        }
        for indicator in watching {
            let found = self
                .watches
                .iter()
                .position(|watch| watch.indicator.is(indicator));
            let at = match found {
                Some(at) => at,
                None if self.watches.len() < MAX_WATCHES => {
                    self.watches.push(Watch {
                        indicator: (*indicator).clone(),
                        checked: 0,
                        beyond: 0,
                        beyond_seqs: Vec::new(),
                    });
                    self.watches.len() - 1
                }
                None => {
                    self.watches_left_off += 1;
                    continue;
                }
            };
            let watch = &mut self.watches[at];
            watch.checked += 1;
            if number.is_some_and(|number| watch.indicator.beyond(number, rows)) {
                watch.beyond += 1;
                if watch.beyond_seqs.len() < MAX_BEYOND_SEQS {
                    watch.beyond_seqs.push(entry.seq);
                }
            }
        }
    }

    fn to_json(&self, key: &SeriesKey) -> Value {
        let (kind, version, subject, figure) = key;
        let (kind, kpi, version) = if *kind == 0 {
            ("fairness", FAIRNESS_KPIS[*figure], Value::Null)
        } else {
            ("drift", DRIFT_KPIS[*figure], json!(version))
        };
        let extreme = |found: &Option<(f64, Value, u64)>| match found {
            Some((_, value, seq)) => (value.clone(), json!(seq)),
            None => (Value::Null, Value::Null),
        };
        let (min, min_seq) = extreme(&self.min);
        let (max, max_seq) = extreme(&self.max);
        let (last, last_seq) = match &self.last {
            Some((value, seq)) => (value.clone(), json!(seq)),
            None => (Value::Null, Value::Null),
        };
        let indicators: Vec<Value> = self
            .watches
            .iter()
            .map(|watch| {
                let indicator = &watch.indicator;
                json!({
                    "register_seq": indicator.register_seq,
                    "risk": indicator.risk,
                    "indicator": indicator.index,
                    "kpi": indicator.kpi,
                    "threshold": indicator.threshold,
                    "direction": indicator.direction,
                    "min_count": indicator.min_count,
                    "checked": watch.checked,
                    "beyond": watch.beyond,
                    "beyond_seqs": watch.beyond_seqs,
                    "beyond_seqs_left_off": watch.beyond - watch.beyond_seqs.len() as u64,
                })
            })
            .collect();
        json!({
            "kind": kind,
            "kpi": kpi,
            "subject": subject,
            "version": version,
            "points": self.points,
            "defined": self.defined,
            "min": min,
            "min_seq": min_seq,
            "max": max,
            "max_seq": max_seq,
            "last": last,
            "last_seq": last_seq,
            "listed": self.listed,
            "listed_left_off": self.points - self.listed.len() as u64,
            "indicators": indicators,
            "indicators_left_off": self.watches_left_off,
        })
    }
}

/// One model's snapshots.
#[derive(Debug)]
struct Model {
    count: u64,
    by_trigger: CappedCounts,
    listed: Vec<Value>,
    settings: Vec<Value>,
    settings_left_off: u64,
    last_settings: Option<Value>,
    with_omitted: u64,
    before_register: u64,
    series: BTreeMap<SeriesKey, Series>,
}

impl Model {
    fn new() -> Self {
        Self {
            count: 0,
            by_trigger: CappedCounts::new(MAX_TRIGGERS),
            listed: Vec::new(),
            settings: Vec::new(),
            settings_left_off: 0,
            last_settings: None,
            with_omitted: 0,
            before_register: 0,
            series: BTreeMap::new(),
        }
    }
}

/// The fairness and drift trends section.
#[derive(Debug, Default)]
pub(super) struct KpiTrends {
    models: BTreeMap<String, Model>,
    models_left_off: u64,
    series_count: usize,
    values_left_off: u64,
    registers: Vec<Value>,
    registers_count: u64,
    /// The indicators of the register in force (`None`: none seen yet).
    in_force: Option<Vec<Indicator>>,
    evidence: Evidence,
}

/// A string member of a JSON object (empty when absent).
fn text<'a>(object: &'a Value, name: &str) -> &'a str {
    object[name].as_str().unwrap_or_default()
}

impl KpiTrends {
    /// Whether some series checked a point against `indicator`.
    fn checked_against(&self, indicator: &Indicator) -> bool {
        self.models.values().any(|model| {
            model.series.values().any(|series| {
                series
                    .watches
                    .iter()
                    .any(|watch| watch.indicator.is(indicator))
            })
        })
    }

    fn register(&mut self, entry: &Entry) {
        self.evidence.add(entry.seq);
        self.registers_count += 1;
        if self.registers.len() < MAX_REGISTERS {
            self.registers.push(super::risks::register_listed(entry));
        }
        let mut indicators = Vec::new();
        for risk in entry
            .get("risks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let models: Vec<String> = risk["models"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            for (index, indicator) in risk["indicators"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let subject = indicator
                    .get("attribute")
                    .or_else(|| indicator.get("feature"))
                    .and_then(Value::as_str);
                // Only the fairness and drift KPIs have a subject: the
                // others (rates, latency) are not in snapshots.
                let Some(subject) = subject else { continue };
                indicators.push(Indicator {
                    register_seq: entry.seq,
                    risk: text(risk, "id").to_owned(),
                    index: index as u64,
                    models: models.clone(),
                    kpi: text(indicator, "kpi").to_owned(),
                    subject: subject.to_owned(),
                    threshold: indicator["threshold"].clone(),
                    direction: indicator["direction"].clone(),
                    min_count: indicator["min_count"].clone(),
                });
            }
        }
        self.in_force = Some(indicators);
    }

    fn snapshot(&mut self, entry: &Entry) {
        let name = entry.str("model").unwrap_or_default();
        if !self.models.contains_key(name) && self.models.len() >= MAX_MODELS {
            self.models_left_off += 1;
            return;
        }
        self.evidence.add(entry.seq);
        let model = self
            .models
            .entry(name.to_owned())
            .or_insert_with(Model::new);
        model.count += 1;
        let trigger = entry.str("trigger").unwrap_or_default();
        model.by_trigger.add(trigger);
        if model.listed.len() < MAX_SNAPSHOTS {
            model.listed.push(json!({
                "seq": entry.seq,
                "time": entry.time_text(),
                "trigger": trigger,
                "serving_version": entry.value("serving_version"),
            }));
        }
        let settings = entry.value("settings");
        if model.last_settings.as_ref() != Some(&settings) {
            if model.settings.len() < MAX_SETTINGS {
                model.settings.push(json!({
                    "seq": entry.seq,
                    "time": entry.time_text(),
                    "settings": settings,
                }));
            } else {
                model.settings_left_off += 1;
            }
            model.last_settings = Some(settings);
        }
        if entry
            .get("omitted")
            .and_then(Value::as_array)
            .is_some_and(|omitted| !omitted.is_empty())
        {
            model.with_omitted += 1;
        }
        if self.in_force.is_none() {
            model.before_register += 1;
        }
        let in_force: &[Indicator] = self.in_force.as_deref().unwrap_or_default();
        let mut figures: Vec<(SeriesKey, &Value, u64)> = Vec::new();
        let fairness = entry.get("fairness").unwrap_or(&Value::Null);
        let rows = fairness["rows_in_window"].as_u64().unwrap_or(0);
        for attribute in fairness["attributes"].as_array().into_iter().flatten() {
            for (figure, kpi) in FAIRNESS_KPIS.iter().enumerate() {
                if let Some(value) = attribute.get(*kpi) {
                    let key = (0, String::new(), text(attribute, "name").to_owned(), figure);
                    figures.push((key, value, rows));
                }
            }
        }
        for drift in entry
            .get("drift")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let version = text(drift, "version");
            let rows = drift["rows_in_window"].as_u64().unwrap_or(0);
            for feature in drift["features"].as_array().into_iter().flatten() {
                for (figure, kpi) in DRIFT_KPIS.iter().enumerate() {
                    let value = match *kpi {
                        "ks" => feature.get("ks").and_then(|ks| ks.get("statistic")),
                        kpi => feature.get(kpi),
                    };
                    if let Some(value) = value {
                        let key = (
                            1,
                            version.to_owned(),
                            text(feature, "name").to_owned(),
                            figure,
                        );
                        figures.push((key, value, rows));
                    }
                }
            }
        }
        for (key, value, rows) in figures {
            if !model.series.contains_key(&key) {
                if self.series_count >= MAX_SERIES {
                    self.values_left_off += 1;
                    continue;
                }
                self.series_count += 1;
            }
            let watching: Vec<&Indicator> = in_force
                .iter()
                .filter(|indicator| indicator.watches(name, &key))
                .collect();
            let series = model.series.entry(key).or_default();
            series.add(entry, value, rows, &watching);
        }
    }
}

impl Section for KpiTrends {
    fn name(&self) -> &'static str {
        "kpi_trends"
    }

    fn observe(&mut self, entry: &Entry) {
        match entry.kind() {
            "risk_register_set" => self.register(entry),
            "kpi_snapshot" => self.snapshot(entry),
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let models: Vec<Value> = self
            .models
            .iter()
            .map(|(name, model)| {
                let series: Vec<Value> = model
                    .series
                    .iter()
                    .map(|(key, series)| series.to_json(key))
                    .collect();
                json!({
                    "model": name,
                    "snapshots": model.count,
                    "by_trigger": model.by_trigger.to_json(MAX_TRIGGERS),
                    "listed": model.listed,
                    "listed_left_off": model.count - model.listed.len() as u64,
                    "settings": model.settings,
                    "settings_left_off": model.settings_left_off,
                    "with_omitted": model.with_omitted,
                    "before_register": model.before_register,
                    "series": series,
                })
            })
            .collect();
        // The last register's indicators that no point was checked
        // against: an auditor sees a threshold with no trend behind it.
        let unwatched: Vec<Value> = self
            .in_force
            .iter()
            .flatten()
            .filter(|indicator| !self.checked_against(indicator))
            .map(|indicator| {
                json!({
                    "register_seq": indicator.register_seq,
                    "risk": indicator.risk,
                    "indicator": indicator.index,
                    "kpi": indicator.kpi,
                    "subject": indicator.subject,
                    "models": indicator.models,
                    "threshold": indicator.threshold,
                    "direction": indicator.direction,
                })
            })
            .collect();
        let mut object = Map::new();
        object.insert("models".to_owned(), Value::Array(models));
        object.insert(
            "indicators_without_points".to_owned(),
            Value::Array(unwatched),
        );
        object.insert("models_left_off".to_owned(), json!(self.models_left_off));
        object.insert("values_left_off".to_owned(), json!(self.values_left_off));
        object.insert("registers_set".to_owned(), Value::Array(self.registers));
        object.insert(
            "registers_set_count".to_owned(),
            json!(self.registers_count),
        );
        object.insert(
            "note".to_owned(),
            json!(if self.registers_count == 0 {
                "no risk_register_set in the period: the register in force was recorded before it (risks.register_sha256_cited finds it), so no snapshot is checked against a threshold here; values are those of the kpi_snapshot entries named by seq"
            } else {
                "values are those of the kpi_snapshot entries named by seq; a snapshot is checked against the indicators of the last risk_register_set of the period before it (none: before_register), beyond as the gateway reads it (value beyond the threshold, rows in the window at least min_count, without for_secs); listed are a series' first points, its figures count them all"
            }),
        );
        self.evidence.put(&mut object);
        Value::Object(object)
    }
}

/// The `kpi_trends` section of `entries` alone (`kpi_snapshot` and
/// `risk_register_set` entries as JSON objects, in seq order), as a
/// report over them computes it: for charts of a running gateway's recent
/// snapshots (the console). Entries that do not read are skipped.
pub fn trends_of(entries: &[Value]) -> Value {
    let mut section = Box::new(KpiTrends::default());
    let (mut first, mut last) = (None, 0);
    for value in entries {
        let seq = value["seq"].as_u64().unwrap_or_default();
        let Ok(bytes) = serde_json::to_vec(value) else {
            continue;
        };
        if let Ok(entry) = Entry::parse(seq, &bytes) {
            first.get_or_insert(seq);
            last = seq;
            section.observe(&entry);
        }
    }
    let Ok(period) = super::Period::new("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z") else {
        return Value::Null;
    };
    let outside = super::Outside {
        checkpoint: (0, String::new()),
        verified: false,
        made_from: super::MADE_FROM_LEDGER,
    };
    section.finish(&Facts {
        period: &period,
        origin: "",
        first_seq: first.unwrap_or_default(),
        last_seq: last,
        outside: &outside,
    })
}

#[cfg(test)]
mod tests;
