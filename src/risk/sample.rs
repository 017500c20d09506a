//! Rates and latency over the last `risk_register.window_secs` of traffic, from
//! the gateway's own Prometheus counters: each round reads the cumulative
//! counts an indicator needs, and the window is the difference between
//! the newest reading and the one at (or just before) the window's start.

use crate::config::{RiskKpi, RiskModel};
use prometheus::proto::MetricFamily;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests by route, model, version and outcome (proxy).
pub(super) const REQUESTS: &str = "govgate_requests_total";
/// Policy verdicts by model, stage and action (review).
pub(super) const POLICY_VERDICTS: &str = "govgate_policy_verdicts_total";
/// Review verdicts by model, kind and verdict (review).
pub(super) const REVIEW_VERDICTS: &str = "govgate_review_verdicts_total";
/// The upstream's time to its response head, by model (proxy).
pub(super) const UPSTREAM_HEAD: &str = "govgate_upstream_head_seconds";

/// Cumulative counts behind one rate or latency indicator.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cumulative {
    /// `part` of `whole` (errors of requests, holds of verdicts, ...).
    Ratio {
        /// The counted part.
        part: f64,
        /// The whole it is a share of.
        whole: f64,
    },
    /// A histogram: cumulative counts at each finite upper bound, and all.
    Buckets {
        /// Upper bounds, seconds.
        bounds: Vec<f64>,
        /// Observations at or below each bound.
        counts: Vec<u64>,
        /// Every observation.
        total: u64,
    },
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|pair| pair.name() == name)
        .map_or("", |pair| pair.value())
}

/// Reads what `kpi` on `model` needs from `families`; `None` for the
/// KPIs that do not come from counters (fairness and drift).
pub(super) fn read(
    families: &[MetricFamily],
    kpi: &RiskKpi,
    model: &RiskModel,
) -> Option<Cumulative> {
    let family = |name: &str| families.iter().find(|f| f.name() == name);
    let of_model = |metric: &&prometheus::proto::Metric| label(metric, "model") == model.model;
    let ratio = |name: &str,
                 whole: &dyn Fn(&prometheus::proto::Metric) -> bool,
                 part: &dyn Fn(&prometheus::proto::Metric) -> bool| {
        let (mut p, mut w) = (0.0, 0.0);
        for metric in family(name)
            .map_or(&[][..], |f| f.get_metric())
            .iter()
            .filter(of_model)
        {
            let value = metric.get_counter().get_value();
            if whole(metric) {
                w += value;
                if part(metric) {
                    p += value;
                }
            }
        }
        Cumulative::Ratio { part: p, whole: w }
    };
    match kpi {
        // A pinned version counts only its own requests.
        RiskKpi::ErrorRate => Some(ratio(
            REQUESTS,
            &|m| {
                model
                    .version
                    .as_deref()
                    .is_none_or(|v| label(m, "version") == v)
            },
            &|m| label(m, "outcome") == "error",
        )),
        // Each request is judged once at the request stage; a hold may
        // come at either stage.
        RiskKpi::HoldRate => {
            let Cumulative::Ratio { whole, .. } = ratio(
                POLICY_VERDICTS,
                &|m| label(m, "stage") == "request",
                &|_| false,
            ) else {
                return None;
            };
            let Cumulative::Ratio { part, .. } = ratio(POLICY_VERDICTS, &|_| true, &|m| {
                label(m, "action") == "hold"
            }) else {
                return None;
            };
            Some(Cumulative::Ratio { part, whole })
        }
        RiskKpi::OverrideRate => Some(ratio(
            REVIEW_VERDICTS,
            &|m| label(m, "kind") == "hold",
            &|m| label(m, "verdict") == "override",
        )),
        RiskKpi::LatencyP95Ms => {
            // No series yet (no answer so far): nothing observed.
            let metric = family(UPSTREAM_HEAD).and_then(|f| {
                f.get_metric()
                    .iter()
                    .find(|m| label(m, "model") == model.model)
            });
            let Some(metric) = metric else {
                return Some(Cumulative::Buckets {
                    bounds: Vec::new(),
                    counts: Vec::new(),
                    total: 0,
                });
            };
            let histogram = metric.get_histogram();
            let buckets = histogram.get_bucket();
            Some(Cumulative::Buckets {
                bounds: buckets.iter().map(|b| b.upper_bound()).collect(),
                counts: buckets.iter().map(|b| b.cumulative_count()).collect(),
                total: histogram.get_sample_count(),
            })
        }
        _ => None,
    }
}

/// The readings of one indicator over the last window.
#[derive(Debug, Default)]
pub(super) struct Window {
    samples: VecDeque<(Instant, Cumulative)>,
}

/// Most readings one window keeps (config bounds window / interval lower).
const MAX_SAMPLES: usize = 1_100;

impl Window {
    /// Adds the reading taken at `now` and gives the counts since the
    /// oldest reading within `span` (the first reading: nothing yet).
    pub(super) fn push(&mut self, now: Instant, reading: Cumulative, span: Duration) -> Cumulative {
        let start = now.checked_sub(span);
        // Keep one reading at or before the window's start.
        while self.samples.len() >= 2 && start.is_some_and(|start| self.samples[1].0 <= start) {
            self.samples.pop_front();
        }
        while self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        let delta = match self.samples.front() {
            Some((_, oldest)) => difference(&reading, oldest),
            None => zero(&reading),
        };
        self.samples.push_back((now, reading));
        delta
    }
}

fn zero(like: &Cumulative) -> Cumulative {
    match like {
        Cumulative::Ratio { .. } => Cumulative::Ratio {
            part: 0.0,
            whole: 0.0,
        },
        Cumulative::Buckets { bounds, .. } => Cumulative::Buckets {
            bounds: bounds.clone(),
            counts: vec![0; bounds.len()],
            total: 0,
        },
    }
}

fn difference(new: &Cumulative, old: &Cumulative) -> Cumulative {
    match (new, old) {
        (
            Cumulative::Ratio { part, whole },
            Cumulative::Ratio {
                part: p0,
                whole: w0,
            },
        ) => Cumulative::Ratio {
            part: (part - p0).max(0.0),
            whole: (whole - w0).max(0.0),
        },
        (
            Cumulative::Buckets {
                bounds,
                counts,
                total,
            },
            Cumulative::Buckets {
                bounds: b0,
                counts: c0,
                total: t0,
            },
        ) if bounds == b0 => Cumulative::Buckets {
            bounds: bounds.clone(),
            counts: counts
                .iter()
                .zip(c0)
                .map(|(c, c0)| c.saturating_sub(*c0))
                .collect(),
            total: total.saturating_sub(*t0),
        },
        // The series appeared since the oldest reading: all of it is new.
        (new, _) => new.clone(),
    }
}

/// The value and the counts it comes from, or `None` with fewer than
/// `min_count` requests (verdicts, observations) in the window.
pub(super) fn value(kpi: &RiskKpi, delta: &Cumulative, min_count: u64) -> (Option<f64>, Value) {
    match delta {
        Cumulative::Ratio { part, whole } => {
            let (part_name, whole_name) = match kpi {
                RiskKpi::HoldRate => ("holds", "request_verdicts"),
                RiskKpi::OverrideRate => ("overridden", "decided_holds"),
                _ => ("errors", "requests"),
            };
            let counts = json!({ part_name: *part as u64, whole_name: *whole as u64 });
            let known = *whole >= min_count.max(1) as f64;
            (known.then(|| part / whole), counts)
        }
        Cumulative::Buckets {
            bounds,
            counts,
            total,
        } => {
            let json = json!({ "observations": total });
            if *total < min_count.max(1) {
                return (None, json);
            }
            (
                quantile(0.95, bounds, counts, *total).map(|s| s * 1_000.0),
                json,
            )
        }
    }
}

/// The `q` quantile of a histogram, interpolated linearly inside its
/// bucket as Prometheus' `histogram_quantile` does (the largest finite
/// bound when it falls beyond it).
pub(super) fn quantile(q: f64, bounds: &[f64], counts: &[u64], total: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut low, mut below) = (0.0, 0.0);
    for (bound, count) in bounds.iter().zip(counts) {
        let count = *count as f64;
        if count >= rank && count > below {
            return Some(low + (bound - low) * (rank - below) / (count - below));
        }
        low = *bound;
        below = count;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 100 observations: 50 at most 0.1 s, 100 at most 0.2 s.
        let p95 = quantile(0.95, &[0.1, 0.2], &[50, 100], 100).unwrap();
        assert!((p95 - 0.19).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(0.95, &[0.1], &[0], 10), Some(0.1));
        assert_eq!(quantile(0.95, &[0.1], &[0], 0), None);
    }

    /// The gateway's families as the proxy and review modules name them.
    fn families() -> Vec<MetricFamily> {
        use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
        let registry = Registry::new();
        let counter = |name: &str, labels: &[&str]| {
            let family = IntCounterVec::new(Opts::new(name, "x"), labels).unwrap();
            registry.register(Box::new(family.clone())).unwrap();
            family
        };
        let requests = counter(REQUESTS, &["route", "model", "version", "outcome"]);
        requests
            .with_label_values(&["http", "m", "1", "error"])
            .inc_by(2);
        requests
            .with_label_values(&["http", "m", "1", "served"])
            .inc_by(6);
        requests
            .with_label_values(&["http", "m", "2", "served"])
            .inc_by(8);
        requests
            .with_label_values(&["http", "other", "1", "error"])
            .inc_by(50);
        let verdicts = counter(POLICY_VERDICTS, &["model", "stage", "action"]);
        verdicts
            .with_label_values(&["m", "request", "allow"])
            .inc_by(9);
        verdicts
            .with_label_values(&["m", "request", "hold"])
            .inc_by(1);
        verdicts
            .with_label_values(&["m", "response", "hold"])
            .inc_by(2);
        verdicts
            .with_label_values(&["m", "response", "allow"])
            .inc_by(7);
        let reviews = counter(REVIEW_VERDICTS, &["model", "kind", "verdict"]);
        reviews
            .with_label_values(&["m", "hold", "override"])
            .inc_by(1);
        reviews
            .with_label_values(&["m", "hold", "approve"])
            .inc_by(3);
        reviews
            .with_label_values(&["m", "flag", "override"])
            .inc_by(5);
        let head = HistogramVec::new(
            HistogramOpts::new(UPSTREAM_HEAD, "x").buckets(vec![0.1, 0.2]),
            &["model"],
        )
        .unwrap();
        registry.register(Box::new(head.clone())).unwrap();
        for seconds in [0.05; 10].into_iter().chain([0.15; 10]) {
            head.with_label_values(&["m"]).observe(seconds);
        }
        registry.gather()
    }

    #[test]
    fn each_rate_reads_its_counters() {
        let families = families();
        let model = |text: &str| match text.split_once('@') {
            Some((model, version)) => RiskModel {
                model: model.into(),
                version: Some(version.into()),
            },
            None => RiskModel {
                model: text.into(),
                version: None,
            },
        };
        let ratio = |part, whole| Some(Cumulative::Ratio { part, whole });
        assert_eq!(
            read(&families, &RiskKpi::ErrorRate, &model("m")),
            ratio(2.0, 16.0)
        );
        assert_eq!(
            read(&families, &RiskKpi::ErrorRate, &model("m@1")),
            ratio(2.0, 8.0)
        );
        // Holds at either stage among the request-stage verdicts.
        assert_eq!(
            read(&families, &RiskKpi::HoldRate, &model("m")),
            ratio(3.0, 10.0)
        );
        // Overridden holds among decided holds; flags do not count.
        assert_eq!(
            read(&families, &RiskKpi::OverrideRate, &model("m")),
            ratio(1.0, 4.0)
        );
        assert_eq!(
            read(&families, &RiskKpi::ErrorRate, &model("none")),
            ratio(0.0, 0.0)
        );
        let latency = read(&families, &RiskKpi::LatencyP95Ms, &model("m")).unwrap();
        let (p95, counts) = value(&RiskKpi::LatencyP95Ms, &latency, 10);
        // Rank 19 of 20: 9 tenths into the (0.1, 0.2] bucket.
        assert!((p95.unwrap() - 190.0).abs() < 1e-6, "{p95:?}");
        assert_eq!(counts, json!({"observations": 20}));
        let psi = RiskKpi::Psi {
            feature: "x".into(),
        };
        assert_eq!(read(&families, &psi, &model("m")), None);
    }

    #[test]
    fn a_window_counts_only_its_span() {
        let mut window = Window::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let ratio = |part, whole| Cumulative::Ratio { part, whole };
        let span = Duration::from_secs(10);
        assert_eq!(window.push(at(0), ratio(0.0, 0.0), span), ratio(0.0, 0.0));
        assert_eq!(window.push(at(5), ratio(4.0, 10.0), span), ratio(4.0, 10.0));
        // At 20 s the window starts at 10 s: the reading at 5 s is its base.
        assert_eq!(
            window.push(at(20), ratio(4.0, 30.0), span),
            ratio(0.0, 20.0)
        );
        let (value, counts) = value(&RiskKpi::ErrorRate, &ratio(0.0, 20.0), 10);
        assert_eq!(value, Some(0.0));
        assert_eq!(counts, json!({"errors": 0, "requests": 20}));
        assert_eq!(
            super::value(&RiskKpi::ErrorRate, &ratio(5.0, 9.0), 10).0,
            None
        );
    }
}
