//! Pages over the ledger: KPI charts, decision look-up and search with the
//! receipt checked in the browser, and evidence (period reports, bundles).

use super::access::{SignedIn, change_session};
use super::api;
use super::pages::{self, Notice, seg};
use super::{Console, NoticeQuery, api_problem, back, change, html, read};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

pub(super) async fn kpis(State(console): State<Console>, SignedIn(session): SignedIn) -> Response {
    let answer = read(&console, &session, "/admin/kpis").await;
    if !answer.status.is_success() {
        return api_problem(&session, "KPIs", &answer);
    }
    let body = pages::kpi_models(&answer.json);
    html(
        StatusCode::OK,
        pages::page("KPIs", Some(&session), None, &body),
    )
}

/// The range of a model's KPI page (RFC 3339; empty `from`: the last
/// [`DEFAULT_DAYS`] days, empty `to`: until now).
#[derive(Deserialize, Default)]
pub(super) struct KpiRange {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Days the KPI page charts when no range is asked for.
const DEFAULT_DAYS: u64 = 7;

/// A model's fairness and drift: the charts of its `kpi_snapshot`
/// entries over a time range of the ledger, drawn as the period report
/// draws them (the risk register's thresholds in them), and the current
/// window's figures with their counts.
pub(super) async fn kpi_model(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(model): Path<String>,
    Query(range): Query<KpiRange>,
) -> Response {
    let current = read(&console, &session, &format!("/admin/kpis/{}", seg(&model))).await;
    if !current.status.is_success() {
        return api_problem(&session, &model, &current);
    }
    let from = match range.from.trim() {
        "" => crate::ledger::entry::rfc3339_millis(
            std::time::SystemTime::now() - std::time::Duration::from_secs(DEFAULT_DAYS * 24 * 3600),
        ),
        from => from.to_owned(),
    };
    let to = range.to.trim().to_owned();
    let mut pairs = vec![("from", from.clone())];
    if !to.is_empty() {
        pairs.push(("to", to.clone()));
    }
    let history = read(
        &console,
        &session,
        &format!(
            "/admin/kpis/{}/history?{}",
            seg(&model),
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        ),
    )
    .await;
    let mut entries: Vec<serde_json::Value> = ["snapshots", "registers"]
        .iter()
        .flat_map(|member| history.json[member].as_array().cloned().unwrap_or_default())
        .collect();
    entries.sort_by_key(|entry| entry["seq"].as_u64().unwrap_or_default());
    // Computing the series of up to 500 snapshots is CPU work: off the
    // async workers.
    let charts = tokio::task::spawn_blocking(move || {
        crate::report::html::trends_charts(&crate::report::trends_of(&entries))
    })
    .await
    .unwrap_or_default();
    let problem = history.problem();
    let over = pages::Over {
        model: &model,
        from: &from,
        to: &to,
        history: if history.status.is_success() {
            Ok(&history.json)
        } else {
            Err(problem)
        },
        charts: &charts,
    };
    let body = pages::kpi_model(&over, &current.json);
    html(
        StatusCode::OK,
        pages::page(&format!("KPIs of {model}"), Some(&session), None, &body),
    )
}

#[derive(Deserialize, Default)]
pub(super) struct FindQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<u64>,
}

impl FindQuery {
    /// The search's members that are set, as query pairs.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = [
            ("model", &self.model),
            ("version", &self.version),
            ("caller", &self.caller),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name, value.trim().to_owned()))
        .collect();
        if let Some(before) = self.before {
            pairs.push(("before", before.to_string()));
        }
        pairs
    }
}

/// The look-up and search forms; with `?id=`, to that decision's page;
/// with search members, the newest matching decisions a page at a time.
pub(super) async fn find_decision(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<FindQuery>,
) -> Response {
    let id = query.id.trim();
    if !id.is_empty() {
        return Redirect::to(&format!("/console/decisions/{}", seg(id))).into_response();
    }
    let pairs = query.pairs();
    let mut body = pages::find_decision(&pairs);
    if !pairs.is_empty() {
        let path = format!(
            "/admin/decisions?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        );
        let answer = read(&console, &session, &path).await;
        if !answer.status.is_success() {
            return api_problem(&session, "Decisions", &answer);
        }
        let mut next = pairs.clone();
        next.retain(|(name, _)| *name != "before");
        let more = answer.json["more_before"].as_u64().map(|before| {
            next.push(("before", before.to_string()));
            format!(
                "/console/decisions?{}",
                serde_urlencoded::to_string(&next).unwrap_or_default()
            )
        });
        body.push_str(&pages::found_decisions(&answer.json, more.as_deref()));
    }
    html(
        StatusCode::OK,
        pages::page("Decisions", Some(&session), None, &body),
    )
}

/// A decision: its entry, what it cites, and its receipt with the check
/// the browser makes itself.
pub(super) async fn decision(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(decision_id): Path<String>,
) -> Response {
    let id = seg(&decision_id);
    let entry = api::call(
        &console.receipts,
        &session.credential,
        Method::GET,
        &format!("/govgate/receipts/{id}/entry"),
        None,
    )
    .await;
    if !entry.status.is_success() {
        return api_problem(&session, "Decision", &entry);
    }
    let proof = api::call(
        &console.receipts,
        &session.credential,
        Method::GET,
        &format!("/govgate/receipts/{id}"),
        None,
    )
    .await;
    let key = read(&console, &session, "/ledger/key").await;
    let body = pages::decision(
        &decision_id,
        &entry.text,
        &entry.json,
        proof.status.is_success().then_some(proof.text.as_str()),
        key.text.trim(),
    );
    html(
        StatusCode::OK,
        pages::page("Decision", Some(&session), None, &body),
    )
}

/// Any ledger entry by its seq, with links to what it cites: where the
/// history of a version, a decision and a review lead.
pub(super) async fn entry(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(seq): Path<u64>,
) -> Response {
    let answer = read(
        &console,
        &session,
        &format!("/ledger/entries?from={seq}&count=1"),
    )
    .await;
    if !answer.status.is_success() {
        return api_problem(&session, "Ledger entry", &answer);
    }
    let Some(entry) = answer
        .text
        .lines()
        .next()
        .and_then(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    else {
        let notice = Notice::Problem(format!("The ledger holds no entry {seq} yet."));
        return html(
            StatusCode::NOT_FOUND,
            pages::page("Ledger entry", Some(&session), Some(&notice), ""),
        );
    };
    html(
        StatusCode::OK,
        pages::page(
            &format!("Ledger entry {seq}"),
            Some(&session),
            None,
            &pages::entry(seq, &entry),
        ),
    )
}

/// Evidence: the period reports made on this gateway, forms to make one
/// and to export a bundle.
pub(super) async fn evidence(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let jobs = read(&console, &session, "/admin/reports").await;
    let body = pages::evidence(
        &session,
        jobs.status.is_success().then_some(&jobs.json),
        (!jobs.status.is_success())
            .then(|| jobs.problem())
            .as_deref(),
    );
    html(
        StatusCode::OK,
        pages::page("Evidence", Some(&session), query.notice().as_ref(), &body),
    )
}

#[derive(Deserialize)]
pub(super) struct PeriodForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Starts a period report (`POST /admin/reports`) and goes to its job.
pub(super) async fn start_report(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<PeriodForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let body = json!({ "from": form.from.trim(), "to": form.to.trim() });
    let answer = change(&console, &session, "/admin/reports", &body).await;
    match answer.json["id"].as_u64() {
        Some(id) if answer.status.is_success() => {
            Redirect::to(&format!("/console/evidence/reports/{id}")).into_response()
        }
        _ => back("/console/evidence", Notice::Problem(answer.problem())),
    }
}

/// A report job: its progress (the page reloads itself while it runs)
/// and, once done, its files and bundle to download.
pub(super) async fn report_job(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(id): Path<u64>,
) -> Response {
    let answer = read(&console, &session, &format!("/admin/reports/{id}")).await;
    if !answer.status.is_success() {
        return api_problem(&session, "Report", &answer);
    }
    let body = pages::report_job(&answer.json);
    html(
        StatusCode::OK,
        pages::page(&format!("Report {id}"), Some(&session), None, &body),
    )
}

pub(super) async fn report_file(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path((id, name)): Path<(u64, String)>,
) -> Response {
    let path = format!("/admin/reports/{id}/files/{}", seg(&name));
    api::download(&console.api, &session.credential, &path, &seg(&name)).await
}

pub(super) async fn report_bundle(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(id): Path<u64>,
) -> Response {
    let path = format!("/admin/reports/{id}/bundle");
    let file = format!("report-{id}-bundle.tar");
    api::download(&console.api, &session.credential, &path, &file).await
}

#[derive(Deserialize, Default)]
pub(super) struct ExportQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    payloads: Option<String>,
}

/// A bundle of the ledger (`GET /admin/ledger/export`), downloaded.
pub(super) async fn export_bundle(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<ExportQuery>,
) -> Response {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("from", &query.from),
        ("to", &query.to),
        ("model", &query.model),
    ] {
        if !value.trim().is_empty() {
            pairs.push((name, value.trim().to_owned()));
        }
    }
    if query.payloads.is_some() {
        pairs.push(("payloads", "true".to_owned()));
    }
    let path = format!(
        "/admin/ledger/export?{}",
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    );
    api::download(&console.api, &session.credential, &path, "bundle.tar").await
}
