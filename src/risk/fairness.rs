//! Fairness and drift indicators: the value the KPI aggregator holds now
//! for the model's window (fairness, all versions together) or for a
//! version's drift window, with the counts it comes from.

use crate::config::{RiskKpi, RiskModel};
use crate::kpi::{KpiReport, ReferenceState};
use serde_json::{Value, json};

/// One reading: the value (`None`: unknown), the version it is about
/// when it is one version's, and the counts behind it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub(super) value: Option<f64>,
    pub(super) version: Option<String>,
    pub(super) counts: Value,
}

/// A fairness or drift KPI's reading from `report`.
pub(super) fn read(
    report: &KpiReport,
    kpi: &RiskKpi,
    model: &RiskModel,
    min_count: u64,
) -> Reading {
    match kpi {
        RiskKpi::DemographicParityDifference { attribute }
        | RiskKpi::EqualOpportunityDifference { attribute } => {
            let parity = matches!(kpi, RiskKpi::DemographicParityDifference { .. });
            let rows = report.fairness.rows_in_window;
            let Some(found) = report
                .fairness
                .attributes
                .iter()
                .find(|a| &a.name == attribute)
            else {
                return unknown(json!({ "rows_in_window": rows }));
            };
            let groups: Vec<Value> = found
                .groups
                .iter()
                .filter(|g| g.eligible)
                .map(|g| {
                    if parity {
                        json!({ "group": g.group, "rows": g.rows, "selected": g.selected })
                    } else {
                        json!({ "group": g.group, "rows": g.rows, "tp": g.tp, "fn": g.fn_ })
                    }
                })
                .collect();
            let value = if parity {
                found.demographic_parity_difference
            } else {
                found.equal_opportunity_difference
            };
            // The fairness window holds every version's rows.
            Reading {
                value: value.filter(|_| rows >= min_count),
                version: None,
                counts: json!({ "rows_in_window": rows, "eligible_groups": groups }),
            }
        }
        RiskKpi::Psi { feature } | RiskKpi::Js { feature } | RiskKpi::Ks { feature } => {
            // Unpinned: the version drifting most speaks for the model.
            let mut best: Option<Reading> = None;
            for drift in &report.drift {
                if drift.reference_state != ReferenceState::Ready
                    || model.version.as_ref().is_some_and(|v| v != &drift.version)
                    || drift.rows_in_window < min_count
                {
                    continue;
                }
                let Some(found) = drift.features.iter().find(|f| &f.name == feature) else {
                    continue;
                };
                let value = match kpi {
                    RiskKpi::Psi { .. } => found.psi,
                    RiskKpi::Js { .. } => found.js_distance,
                    _ => found.ks.as_ref().and_then(|ks| ks.statistic),
                };
                let Some(value) = value else { continue };
                if best
                    .as_ref()
                    .and_then(|b| b.value)
                    .is_some_and(|b| b >= value)
                {
                    continue;
                }
                best = Some(Reading {
                    value: Some(value),
                    version: Some(drift.version.clone()),
                    counts: json!({
                        "reference_rows": drift.reference_rows,
                        "rows_in_window": drift.rows_in_window,
                        "window_missing": found.window_missing,
                    }),
                });
            }
            best.unwrap_or_else(|| unknown(json!({})))
        }
        _ => unknown(json!({})),
    }
}

fn unknown(counts: Value) -> Reading {
    Reading {
        value: None,
        version: None,
        counts,
    }
}
