//! The figures behind the console's overview, on the admin API:
//! `GET /admin/decisions/summary` (decisions of the last hour and day by
//! outcome and model, from the in-memory tally: no ledger read) and
//! `GET /admin/risks/breaches` (the risk register's indicators breached
//! now, as the risk task records them: the same state as the
//! `govgate_risk_indicator_breached` gauge and the ledger's open
//! `risk_indicator_breached` entries), and `GET /admin/risks` (the
//! register in force, as its `risk_register_set` entry records it).
//! Roles: auditor, admin, reviewer, approver.

use super::auth::Tokens;
use super::json_response;
use crate::config::RiskRegister;
use crate::ledger::tally::OutcomeTally;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use prometheus::proto::MetricFamily;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

const READERS: &[&str] = &["auditor", "admin", "reviewer", "approver"];

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    tally: Arc<OutcomeTally>,
    registry: prometheus::Registry,
    /// The register in force (the fleet's, in a fleet).
    register: tokio::sync::watch::Receiver<Arc<RiskRegister>>,
}

/// The routes over the gateway's `tally`, metrics `registry` (where the
/// risk task publishes breaches) and risk `register` in force.
pub fn routes(
    tokens: Tokens,
    tally: Arc<OutcomeTally>,
    registry: prometheus::Registry,
    register: tokio::sync::watch::Receiver<Arc<RiskRegister>>,
) -> Router {
    Router::new()
        .route("/admin/decisions/summary", get(summary))
        .route("/admin/risks", get(risk_register))
        .route("/admin/risks/breaches", get(breaches))
        .with_state(Api {
            tokens,
            tally,
            registry,
            register,
        })
}

async fn allowed(api: &Api, headers: &HeaderMap) -> Result<(), Response> {
    let caller = api
        .tokens
        .authenticate(headers)
        .await
        .map_err(IntoResponse::into_response)?;
    caller.require(READERS).map_err(IntoResponse::into_response)
}

async fn summary(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    let now = SystemTime::now();
    let mut body = api.tally.summary(now);
    body["now"] = json!(crate::ledger::entry::rfc3339_millis(now));
    json_response(StatusCode::OK, &body)
}

async fn risk_register(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    let register = api.register.borrow().clone();
    match crate::risk::register_json(&register) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => {
            tracing::error!(error = %err, "the risk register cannot be shown");
            super::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the risk register cannot be shown",
                None,
            )
        }
    }
}

async fn breaches(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    let families = api.registry.gather();
    let register = api.register.borrow().clone();
    json_response(StatusCode::OK, &breached(&register, &families))
}

/// A gauge's values by its (risk, indicator, model) labels.
fn by_labels(families: &[MetricFamily], name: &str) -> HashMap<[String; 3], f64> {
    let mut values = HashMap::new();
    for family in families.iter().filter(|f| f.name() == name) {
        for metric in family.get_metric() {
            let label = |wanted: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == wanted)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            values.insert(
                [label("risk"), label("indicator"), label("model")],
                metric.get_gauge().get_value(),
            );
        }
    }
    values
}

/// The register's indicators whose breach gauge is 1, in register order,
/// each with its threshold and its value at the last evaluation.
pub(crate) fn breached(register: &RiskRegister, families: &[MetricFamily]) -> Value {
    let states = by_labels(families, "govgate_risk_indicator_breached");
    let values = by_labels(families, "govgate_risk_indicator_value");
    let mut out = Vec::new();
    let mut watched = 0;
    for risk in &register.risks {
        for (index, indicator) in risk.indicators.iter().enumerate() {
            let kpi = indicator.kpi.name();
            let subject = indicator.kpi.attribute().or(indicator.kpi.feature());
            let label = crate::risk::indicator_label(index, indicator);
            for model in &risk.models {
                watched += 1;
                let key = [risk.id.clone(), label.clone(), model.to_string()];
                if states.get(&key).copied() != Some(1.0) {
                    continue;
                }
                let value = values.get(&key).copied().filter(|v| v.is_finite());
                out.push(json!({
                    "risk": risk.id,
                    "title": risk.title,
                    "owner": risk.owner,
                    "indicator": label,
                    "kpi": kpi,
                    "subject": subject,
                    "threshold": indicator.threshold,
                    "direction": indicator.direction.as_str(),
                    "model": model.model,
                    "version": model.version,
                    "value": value,
                }));
            }
        }
    }
    json!({ "breaches": out, "indicators": watched })
}
