//! The KPI pages.

use super::{esc, seg};
use serde_json::Value;
use std::fmt::Write;

/// The models with KPIs.
pub(crate) fn kpi_models(list: &Value) -> String {
    let mut body = String::from("<ul id=\"kpi-models\">");
    for model in list["models"].as_array().into_iter().flatten() {
        let name = model.as_str().unwrap_or("");
        let _ = write!(
            body,
            "<li><a href=\"/console/kpis/{}\">{}</a></li>",
            seg(name),
            esc(name)
        );
    }
    body.push_str("</ul>");
    if list["models"].as_array().is_none_or(Vec::is_empty) {
        body.push_str("<p class=\"hint\">No model has <code>[models.kpi]</code>.</p>");
    }
    body
}

/// A model's KPI charts (already drawn) and its current window.
pub(crate) fn kpi_model(charts: &str, current: &Value) -> String {
    let mut body = String::from(
        "<section class=\"charts\" id=\"charts\"><h2>Over time</h2><p class=\"hint\">Every \
         <code>kpi_snapshot</code> entry written since the gateway started (the latest 500), \
         each point with its ledger entry; the period report charts the whole ledger.</p>",
    );
    if charts.contains("<svg") {
        body.push_str(charts);
    } else {
        body.push_str("<p id=\"no-snapshots\">No snapshot written yet.</p>");
    }
    let _ = write!(
        body,
        "</section><section><h2>The current window</h2><pre id=\"current\" tabindex=\"0\">{}</pre></section>",
        esc(&serde_json::to_string_pretty(current).unwrap_or_default())
    );
    body
}
