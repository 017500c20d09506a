//! Reading the KPIs with the counts behind them: `GET /admin/kpis` (the
//! models with `[models.kpi]`), `GET /admin/kpis/{model}` (fairness per
//! attribute and group, drift per version and feature, as JSON) and `GET
//! /admin/kpis/{model}/history` (the `kpi_snapshot` entries written since
//! the gateway started, the latest 500; with `from` or `to`, those of that
//! time range read from the ledger, with the risk registers in force:
//! [`super::kpi_history`]). Any valid admin token may read them, as it may
//! read the models. With `[cluster]`, `GET /admin/kpis/{model}?scope=fleet`
//! answers the fleet's windows (every replica's rows) in the same shape.
//!
//! The aggregator builds the answer from its windows in its own task (as it
//! does for `/metrics`), after every exchange handed to it before; the
//! handler only waits for it and serialises a bounded report.

use super::auth::Tokens;
use super::kpi_history::{HistoryError, read_history};
use super::{error_response, json_response};
use crate::kpi::{Covered, KpiHistory, KpiRecorder};
use crate::ledger::store::LedgerStore;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    /// `None` when no model has `[models.kpi]`.
    recorder: Option<KpiRecorder>,
    /// The snapshots written since start (`None` as `recorder`).
    history: Option<KpiHistory>,
    /// The ledger, for the history of a time range.
    store: Arc<dyn LedgerStore>,
    /// Whether this gateway is a replica of a fleet with KPIs to share.
    fleet: bool,
}

/// The KPI read routes, on the admin listener (mounted whether or not a
/// model has KPIs, so that the answer says so).
pub fn routes(
    tokens: Tokens,
    recorder: Option<KpiRecorder>,
    history: Option<KpiHistory>,
    store: Arc<dyn LedgerStore>,
    fleet: bool,
) -> Router {
    Router::new()
        .route("/admin/kpis", get(list))
        .route("/admin/kpis/{model}", get(show))
        .route("/admin/kpis/{model}/history", get(history_of))
        .with_state(Api {
            tokens,
            recorder,
            history,
            store,
            fleet,
        })
}

/// The time range of a history read from the ledger (RFC 3339; `from`
/// inclusive, `to` exclusive).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

/// `{"model", "snapshots": [entry, ...]}`, oldest first: without a range
/// those kept since start, with one those of the ledger (`kpi_history`).
async fn history_of(
    State(api): State<Api>,
    Path(model): Path<String>,
    headers: HeaderMap,
    range: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(err) = api.tokens.authenticate(&headers).await {
        return err.into_response();
    }
    let known = api
        .recorder
        .as_ref()
        .is_some_and(|recorder| recorder.models().contains(&model));
    if !known {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_model",
            &format!("model `{model}` has no [models.kpi]"),
            None,
        );
    }
    let Ok(Query(range)) = range else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "from and to (RFC 3339) only",
            None,
        );
    };
    if range.from.is_some() || range.to.is_some() {
        return ledger_history(&api, model, range).await;
    }
    let snapshots = api
        .history
        .as_ref()
        .map(|history| history.of(&model))
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({ "model": model, "snapshots": snapshots }),
    )
}

/// The history of `range`, read from the ledger off the async workers.
async fn ledger_history(api: &Api, model: String, range: Range) -> Response {
    let store = api.store.clone();
    // Held in memory: the snapshots since start (none held: read all).
    let recent = match &api.history {
        Some(history) => history.covered(&model),
        None => Covered {
            since: u64::MAX,
            snapshots: Vec::new(),
        },
    };
    let read = tokio::task::spawn_blocking(move || {
        read_history(
            store.as_ref(),
            &model,
            range.from.as_deref(),
            range.to.as_deref(),
            recent,
        )
    })
    .await;
    match read {
        Ok(Ok(history)) => json_response(StatusCode::OK, &history),
        Ok(Err(HistoryError::Time(why))) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_query", &why, None)
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "KPI history not read");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the ledger could not be read",
                None,
            )
        }
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the history read failed",
            None,
        ),
    }
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(err) = api.tokens.authenticate(&headers).await {
        return err.into_response();
    }
    let models = api.recorder.as_ref().map_or(&[][..], KpiRecorder::models);
    json_response(StatusCode::OK, &json!({ "models": models }))
}

/// Whose rows `GET /admin/kpis/{model}` covers: `replica` (default: this
/// gateway's) or `fleet` (every replica's, `[cluster]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    scope: Option<String>,
}

async fn show(
    State(api): State<Api>,
    Path(model): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(err) = api.tokens.authenticate(&headers).await {
        return err.into_response();
    }
    let fleet = match query.as_ref().map(|Query(q)| q.scope.as_deref()) {
        Ok(None | Some("replica")) => false,
        Ok(Some("fleet")) if api.fleet => true,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                if api.fleet {
                    "scope is `replica` (default) or `fleet`"
                } else {
                    "scope is `replica` (default); `fleet` needs [cluster]"
                },
                None,
            );
        }
    };
    let unknown = || {
        let served = api.recorder.as_ref().map_or(&[][..], KpiRecorder::models);
        error_response(
            StatusCode::NOT_FOUND,
            "unknown_model",
            &format!("model `{model}` has no [models.kpi]"),
            Some(("kpi_models", json!(served))),
        )
    };
    let Some(recorder) = &api.recorder else {
        return unknown();
    };
    if !recorder.models().contains(&model) {
        return unknown();
    }
    let report = if fleet {
        recorder.fleet_report(&model).await
    } else {
        recorder.report(&model).await
    };
    match report {
        // Serialised as the struct declares it (not through a `Value`,
        // which would sort the keys): model, settings, fairness, drift.
        Some(report) => match serde_json::to_string(&report) {
            Ok(text) => (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                text,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(error = %err, "KPI report not serialised");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the KPI report could not be written",
                    None,
                )
            }
        },
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "kpi_unavailable",
            "the KPI aggregator has stopped",
            None,
        ),
    }
}
