//! The evaluation task: every `risk_register.eval_every_secs` each indicator of each
//! model a risk names is read; a value beyond its threshold for `for_secs`
//! is recorded as `risk_indicator_breached`, a value back within it as
//! `risk_indicator_recovered` citing the breach. An unknown value (too
//! little data) changes nothing. One entry per transition: the state is
//! what the ledger says, restored from it at start.
//!
//! In a fleet the register in force changes at run time (the fleet's
//! control log, `fleet.rs`), and the fairness and drift indicators read
//! the fleet's KPI windows: their breaches are the same on every replica.

use super::fairness::{self, Reading};
use super::metrics::RiskMetrics;
use super::register::{
    BREACHED, IndicatorKey, OpenBreach, RECOVERED, Recorded, identity_of, indicator_json,
    indicator_label, register_sha256,
};
use super::sample::{self, Window};
use super::{RiskError, Scope};
use crate::config::{Indicator, RiskModel, RiskRegister};
use crate::kpi::{KpiRecorder, KpiReport};
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One indicator on one model.
struct Watched {
    key: IndicatorKey,
    /// The metric labels: risk, indicator, model.
    labels: [String; 3],
    indicator: Indicator,
    model: RiskModel,
    window: Window,
    /// Since when the value has been beyond the threshold (this run).
    beyond_since: Option<Instant>,
    /// The breach the ledger records as open.
    open: Option<OpenBreach>,
}

/// The task's state; [`RiskTask::run`] drives it.
pub struct RiskTask {
    watched: Vec<Watched>,
    /// Breaches the ledger records as open that no indicator of the
    /// register in force matches (the register changed): kept so that an
    /// indicator matching one again takes it up, as a restart would.
    /// Bounded by the ledger's open breaches, read at start in full.
    unwatched: BTreeMap<IndicatorKey, OpenBreach>,
    every: Duration,
    span: Duration,
    register_sha256: String,
    /// The register in force: changed at run time in a fleet.
    register: watch::Receiver<Arc<RiskRegister>>,
    scope: Scope,
    ledger: Ledger,
    metrics: crate::metrics::Metrics,
    kpi: Option<KpiRecorder>,
    families: RiskMetrics,
}

fn labels_of(key: &IndicatorKey, indicator: &Indicator) -> [String; 3] {
    [
        key.risk.clone(),
        indicator_label(key.indicator, indicator),
        key.model.clone(),
    ]
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RiskTask {
    /// The task for the register `register` holds, its open breaches as
    /// the ledger recorded them.
    pub(super) fn new(
        mut register: watch::Receiver<Arc<RiskRegister>>,
        recorded: Recorded,
        ledger: Ledger,
        metrics: &crate::metrics::Metrics,
        kpi: Option<KpiRecorder>,
        scope: Scope,
    ) -> Result<Self, RiskError> {
        let families = RiskMetrics::register(metrics.registry())?;
        let in_force = register.borrow_and_update().clone();
        let mut task = Self {
            watched: Vec::new(),
            unwatched: recorded.open,
            every: in_force.eval_every,
            span: in_force.window,
            register_sha256: String::new(),
            register,
            scope,
            ledger,
            metrics: metrics.clone(),
            kpi,
            families,
        };
        task.watch(&in_force)?;
        Ok(task)
    }

    /// Watches the indicators of `register` from now on. An indicator
    /// that is the same as before (risk id, index, model and every
    /// setting) goes on with its window and breach; a breach stays open
    /// for the indicator of the same risk id, index, model and KPI (with
    /// its attribute or feature), as across a restart; the series of
    /// indicators no longer watched are removed from the metrics.
    fn watch(&mut self, register: &RiskRegister) -> Result<(), RiskError> {
        let mut wanted = Vec::new();
        for risk in &register.risks {
            for (index, indicator) in risk.indicators.iter().enumerate() {
                for model in &risk.models {
                    let key = IndicatorKey {
                        risk: risk.id.clone(),
                        indicator: index,
                        model: model.to_string(),
                    };
                    wanted.push((key, indicator, model));
                }
            }
        }
        let mut kept: HashMap<IndicatorKey, Watched> = HashMap::new();
        let labels_wanted: HashSet<[String; 3]> = wanted
            .iter()
            .map(|(key, indicator, _)| labels_of(key, indicator))
            .collect();
        for watched in std::mem::take(&mut self.watched) {
            let same = wanted.iter().any(|(key, indicator, model)| {
                *key == watched.key && **indicator == watched.indicator && **model == watched.model
            });
            if same {
                kept.insert(watched.key.clone(), watched);
                continue;
            }
            if !labels_wanted.contains(&watched.labels) {
                self.families
                    .forget(&watched.labels.each_ref().map(String::as_str));
            }
            if let Some(open) = watched.open {
                self.unwatched.insert(watched.key, open);
            }
        }
        for (key, indicator, model) in wanted {
            if let Some(watched) = kept.remove(&key) {
                self.watched.push(watched);
                continue;
            }
            // A breach of what is now another KPI is not this one's.
            let open = match self.unwatched.remove(&key) {
                Some(open) if open.kpi == identity_of(indicator) => Some(open),
                Some(other) => {
                    self.unwatched.insert(key.clone(), other);
                    None
                }
                None => None,
            };
            let labels = labels_of(&key, indicator);
            self.families
                .expose(&labels.each_ref().map(String::as_str), open.is_some());
            self.watched.push(Watched {
                key,
                labels,
                indicator: indicator.clone(),
                model: model.clone(),
                window: Window::default(),
                beyond_since: None,
                open,
            });
        }
        self.every = register.eval_every;
        self.span = register.window;
        self.register_sha256 = register_sha256(register)?;
        Ok(())
    }

    /// Evaluates every interval (the first round at once) until `stop`
    /// resolves, taking up each new register in force; a round in
    /// progress finishes first (its appends are acknowledged before the
    /// ledger closes).
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut ticks = ticks(self.every);
        let mut register = self.register.clone();
        // Without a fleet the register never changes: its sender is gone.
        let mut following = true;
        tokio::pin!(stop);
        loop {
            // A new register is taken up before the next round.
            tokio::select! {
                biased;
                () = &mut stop => return,
                changed = register.changed(), if following => {
                    if changed.is_err() {
                        following = false;
                        continue;
                    }
                    let in_force = register.borrow_and_update().clone();
                    let every = self.every;
                    if let Err(err) = self.watch(&in_force) {
                        tracing::error!(error = %err, "the new risk register cannot be evaluated");
                    }
                    if self.every != every {
                        ticks = self::ticks(self.every);
                    }
                }
                _ = ticks.tick(), if !self.watched.is_empty() => self.round().await,
            }
        }
    }

    async fn round(&mut self) {
        let families = self.metrics.registry().gather();
        let mut reports: HashMap<String, Option<KpiReport>> = HashMap::new();
        let now = Instant::now();
        for index in 0..self.watched.len() {
            let watched = &mut self.watched[index];
            let kpi = &watched.indicator.kpi;
            let reading = match sample::read(&families, kpi, &watched.model) {
                Some(cumulative) => {
                    let delta = watched.window.push(now, cumulative, self.span);
                    let (value, counts) = sample::value(kpi, &delta, watched.indicator.min_count);
                    // Only the error rate counts a pinned version's
                    // requests alone; the others are the model's.
                    let version = match kpi {
                        crate::config::RiskKpi::ErrorRate => watched.model.version.clone(),
                        _ => None,
                    };
                    Reading {
                        value,
                        version,
                        counts,
                    }
                }
                None => {
                    let model = watched.model.model.clone();
                    if !reports.contains_key(&model) {
                        let report = match (&self.kpi, self.scope) {
                            (Some(kpi), Scope::Fleet) => kpi.fleet_report(&model).await,
                            (Some(kpi), Scope::Own) => kpi.report(&model).await,
                            (None, _) => None,
                        };
                        reports.insert(model.clone(), report);
                    }
                    let watched = &self.watched[index];
                    match reports.get(&model).and_then(Option::as_ref) {
                        Some(report) => fairness::read(
                            report,
                            &watched.indicator.kpi,
                            &watched.model,
                            watched.indicator.min_count,
                        ),
                        None => Reading {
                            value: None,
                            version: None,
                            counts: json!({}),
                        },
                    }
                }
            };
            self.judge(index, now, reading).await;
        }
    }

    /// Records a transition, if the reading makes one.
    async fn judge(&mut self, index: usize, now: Instant, reading: Reading) {
        let labels = self.watched[index].labels.clone();
        let labels = labels.each_ref().map(String::as_str);
        self.families.value(&labels, reading.value);
        let watched = &mut self.watched[index];
        let Some(value) = reading.value else {
            // Unknown: neither a breach nor a recovery; a sustained
            // breach must be seen again from its start.
            watched.beyond_since = None;
            return;
        };
        let indicator = &watched.indicator;
        if !indicator.direction.beyond(value, indicator.threshold) {
            watched.beyond_since = None;
            if let Some(open) = watched.open.clone() {
                self.recover(index, value, &reading, open, &labels).await;
            }
            return;
        }
        let since = *watched.beyond_since.get_or_insert(now);
        let beyond = now.duration_since(since);
        if watched.open.is_some() || beyond < Duration::from_secs(indicator.for_secs) {
            return;
        }
        let mut members = self.members(index, value, &reading);
        members.insert("beyond_secs".into(), json!(beyond.as_secs()));
        let appended = self.ledger.append(governance(BREACHED, members)).await;
        let watched = &mut self.watched[index];
        match appended {
            Ok(ack) => {
                let at = ack
                    .time
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or_else(unix_now, |d| d.as_secs_f64());
                tracing::warn!(risk = %watched.key.risk, indicator = watched.key.indicator, model = %watched.key.model, value, threshold = watched.indicator.threshold, seq = ?ack.seq, "risk indicator breached");
                watched.open = Some(OpenBreach {
                    seq: ack.seq.unwrap_or_default(),
                    unix_seconds: at,
                    kpi: identity_of(&watched.indicator),
                });
                self.families.breached(&labels);
            }
            Err(err) => {
                tracing::error!(error = %err, risk = %watched.key.risk, "risk indicator breach not recorded; tried again next round");
            }
        }
    }

    async fn recover(
        &mut self,
        index: usize,
        value: f64,
        reading: &Reading,
        open: OpenBreach,
        labels: &[&str; 3],
    ) {
        let mut members = self.members(index, value, reading);
        members.insert("breach_seq".into(), json!(open.seq));
        members.insert(
            "breached_secs".into(),
            json!((unix_now() - open.unix_seconds).max(0.0).round() as u64),
        );
        let appended = self.ledger.append(governance(RECOVERED, members)).await;
        let watched = &mut self.watched[index];
        match appended {
            Ok(ack) => {
                tracing::info!(risk = %watched.key.risk, indicator = watched.key.indicator, model = %watched.key.model, value, breach_seq = open.seq, seq = ?ack.seq, "risk indicator recovered");
                watched.open = None;
                self.families.recovered(labels);
            }
            Err(err) => {
                tracing::error!(error = %err, risk = %watched.key.risk, "risk indicator recovery not recorded; tried again next round");
            }
        }
    }

    /// The members both transitions record.
    fn members(&self, index: usize, value: f64, reading: &Reading) -> Map<String, Value> {
        let watched = &self.watched[index];
        let mut members = Map::new();
        members.insert("risk".into(), json!(watched.key.risk));
        members.insert("indicator".into(), json!(watched.key.indicator));
        // As the register names it (`credit` or `credit@v2`), as in the
        // metric labels; `version` is the version the value is about.
        members.insert("model".into(), json!(watched.key.model));
        if let Some(version) = &reading.version {
            members.insert("version".into(), json!(version));
        }
        members.extend(indicator_json(&watched.indicator));
        members.insert("value".into(), json!(value));
        members.insert("counts".into(), reading.counts.clone());
        members.insert(
            "window_secs".into(),
            json!(self.window_secs(&watched.indicator)),
        );
        members.insert("register_sha256".into(), json!(self.register_sha256));
        members
    }

    /// The span of traffic the value covers: the rate window, or 0 for
    /// the KPI windows (counted in rows, not seconds).
    fn window_secs(&self, indicator: &Indicator) -> u64 {
        if indicator.kpi.attribute().is_some() || indicator.kpi.feature().is_some() {
            0
        } else {
            self.span.as_secs()
        }
    }
}

fn ticks(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

fn governance(kind: &'static str, members: Map<String, Value>) -> EntryBody {
    EntryBody::Governance { kind, members }
}

#[cfg(test)]
mod tests;
