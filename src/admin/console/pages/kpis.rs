//! The KPI pages: the models with KPIs; a model's charts over a time
//! range of the ledger (drawn by the period report's code, thresholds
//! included) and its current window as tables, every member of `GET
//! /admin/kpis/{model}` shown, the answer itself behind a disclosure.

use super::{esc, seg, text};
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

/// What the KPI page of a model shows over time.
pub(crate) struct Over<'a> {
    /// The model.
    pub model: &'a str,
    /// The range's start asked for (RFC 3339).
    pub from: &'a str,
    /// The range's end asked for (RFC 3339; empty: until now).
    pub to: &'a str,
    /// `GET /admin/kpis/{model}/history?from=&to=`, or why it failed.
    pub history: Result<&'a Value, String>,
    /// The charts, already drawn.
    pub charts: &'a str,
}

/// A model's KPI charts over a range and its current window.
pub(crate) fn kpi_model(over: &Over<'_>, current: &Value) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"charts\" id=\"charts\"><h2>Over time</h2>\
         <form method=\"get\" action=\"/console/kpis/{}\" class=\"filters\" id=\"kpi-range\">\
         <label for=\"from\">From (RFC 3339, UTC)</label>\
         <input id=\"from\" name=\"from\" value=\"{}\">\
         <label for=\"to\">To (empty: now)</label>\
         <input id=\"to\" name=\"to\" value=\"{}\" placeholder=\"now\">\
         <button type=\"submit\">Show</button></form>",
        seg(over.model),
        esc(over.from),
        esc(over.to)
    );
    match &over.history {
        Ok(history) => history_note(&mut body, history),
        Err(problem) => {
            let _ = write!(
                body,
                "<p class=\"notice problem\" role=\"alert\" id=\"history-problem\">{}</p>",
                esc(problem)
            );
        }
    }
    if over.charts.contains("<svg") {
        body.push_str(over.charts);
    } else {
        body.push_str("<p id=\"no-snapshots\">No snapshot in this range.</p>");
    }
    body.push_str("</section>");
    current_window(&mut body, current);
    body
}

/// What the history read: the range, and the bound that stopped it.
fn history_note(body: &mut String, history: &Value) {
    let snapshots = history["snapshots"].as_array().map_or(0, Vec::len);
    let registers = history["registers"].as_array().map_or(0, Vec::len);
    let _ = write!(
        body,
        "<p class=\"hint\" id=\"history-read\">The <code>kpi_snapshot</code> entries of the \
         ledger in this range (seqs {} to {}): {} snapshots, {} of them written since the \
         gateway started, the earlier ones found by reading {} entries of the ledger, newest \
         first. Checked against {} <code>risk_register_set</code> entries (the register in \
         force at the first snapshot and those recorded after it), as the period report draws \
         them; each point names its ledger entry.</p>",
        esc(&text(&history["range"]["from_seq"])),
        esc(&text(&history["range"]["to_seq"])),
        snapshots,
        esc(&text(&history["from_memory"])),
        esc(&text(&history["read"])),
        registers,
    );
    let bound = match history["limited_by"].as_str() {
        Some("points") => Some(format!(
            "Only the latest {} snapshots of the range are charted (the earlier ones, before \
             seq {}, are left out): narrow the range, or make a period report, which reads \
             every one.",
            text(&history["max_snapshots"]),
            text(&history["read_from_seq"]),
        )),
        Some("read_budget") => Some(format!(
            "Only {} entries of the range were read, below the snapshots written since the \
             gateway started (from seq {} on), so that the page stays fast: snapshots before \
             are left out. Narrow the range, or make a period report, which reads every entry.",
            text(&history["read_budget"]),
            text(&history["read_from_seq"]),
        )),
        _ => None,
    };
    if history["register_in_force"] == "not_found_within_budget" {
        let _ = write!(
            body,
            "<p class=\"notice problem\" id=\"register-not-found\">The risk register in force \
             at the first snapshot was not found among the {} governance entries read before it: \
             its thresholds are not drawn. The period report checks every snapshot against \
             its register.</p>",
            crate::admin::kpi_history::REGISTER_BUDGET
        );
    }
    if let Some(bound) = bound {
        let _ = write!(
            body,
            "<p class=\"notice problem\" id=\"history-bound\">{}</p>",
            esc(&bound)
        );
    }
}

/// A table's header row.
fn header(body: &mut String, columns: &[&str]) {
    body.push_str("<thead><tr>");
    for column in columns {
        let _ = write!(body, "<th scope=\"col\">{}</th>", esc(column));
    }
    body.push_str("</tr></thead>");
}

/// A two-column table of `(label, value)` rows, labels as row headers.
fn facts(body: &mut String, class: &str, rows: &[(&str, &Value)]) {
    let _ = write!(body, "<table class=\"{class}\">");
    header(body, &["", "value"]);
    body.push_str("<tbody>");
    for (label, value) in rows {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>",
            esc(label),
            esc(&text(value))
        );
    }
    body.push_str("</tbody></table>");
}

/// A row of cells, the first as the row's header.
fn row(body: &mut String, first: &str, cells: &[&Value]) {
    let _ = write!(body, "<tr><th scope=\"row\">{}</th>", esc(first));
    for cell in cells {
        let _ = write!(body, "<td class=\"n\">{}</td>", esc(&text(cell)));
    }
    body.push_str("</tr>");
}

/// The current window: settings, fairness per attribute, drift per
/// version and feature, and the answer as JSON.
fn current_window(body: &mut String, current: &Value) {
    body.push_str("<section id=\"current-window\"><h2>The current window</h2>");
    let settings = &current["settings"];
    facts(
        body,
        "kpi-settings",
        &[
            ("window (rows)", &settings["window"]),
            ("minimum group size", &settings["min_group_size"]),
            ("groups tracked per attribute", &settings["max_groups"]),
            ("reference rows", &settings["reference_rows"]),
        ],
    );
    fairness(body, &current["fairness"]);
    drift(body, &current["drift"]);
    let _ = write!(
        body,
        "<details id=\"current-json\"><summary>The admin API's answer \
         (<code>GET /admin/kpis/{{model}}</code>)</summary><pre id=\"current\" tabindex=\"0\">{}</pre></details>\
         </section>",
        esc(&serde_json::to_string_pretty(current).unwrap_or_default())
    );
}

const AGGREGATES: [(&str, &str); 4] = [
    (
        "demographic_parity_difference",
        "demographic parity difference",
    ),
    ("demographic_parity_ratio", "demographic parity ratio"),
    (
        "equal_opportunity_difference",
        "equal opportunity difference",
    ),
    ("equalized_odds_difference", "equalized odds difference"),
];

fn fairness(body: &mut String, fairness: &Value) {
    let _ = write!(
        body,
        "<h3>Fairness</h3><p id=\"fairness-rows\">{} rows in the window, {} since the gateway \
         started.</p>",
        esc(&text(&fairness["rows_in_window"])),
        esc(&text(&fairness["rows_total"]))
    );
    for attribute in fairness["attributes"].as_array().into_iter().flatten() {
        let name = text(&attribute["name"]);
        let _ = write!(
            body,
            "<h4>Attribute {}</h4><table class=\"fairness-groups\" data-attribute=\"{}\">",
            esc(&name),
            esc(&name)
        );
        header(
            body,
            &[
                "group",
                "rows",
                "selected",
                "labeled",
                "TP",
                "FP",
                "TN",
                "FN",
                "eligible",
                "selection rate",
                "TPR",
                "FPR",
            ],
        );
        body.push_str("<tbody>");
        for group in attribute["groups"].as_array().into_iter().flatten() {
            row(
                body,
                &text(&group["group"]),
                &[
                    &group["rows"],
                    &group["selected"],
                    &group["labeled"],
                    &group["tp"],
                    &group["fp"],
                    &group["tn"],
                    &group["fn"],
                    &group["eligible"],
                    &group["selection_rate"],
                    &group["tpr"],
                    &group["fpr"],
                ],
            );
        }
        body.push_str("</tbody></table>");
        let mut rows: Vec<(&str, &Value)> = AGGREGATES
            .iter()
            .map(|(member, label)| (*label, &attribute[*member]))
            .collect();
        rows.push(("rows without a value", &attribute["missing_rows"]));
        rows.push((
            "rows beyond the groups tracked",
            &attribute["overflow_rows"],
        ));
        facts(body, "fairness-aggregates", &rows);
    }
}

fn drift(body: &mut String, drift: &Value) {
    body.push_str("<h3>Drift</h3>");
    let versions = drift.as_array().map_or(&[][..], Vec::as_slice);
    if versions.is_empty() {
        body.push_str("<p class=\"hint\">No version served since the gateway started.</p>");
    }
    for version in versions {
        let _ = write!(body, "<h4>Version {}</h4>", esc(&text(&version["version"])));
        facts(
            body,
            "drift-reference",
            &[
                ("reference", &version["reference_state"]),
                ("reference from", &version["reference_source"]),
                ("reference rows", &version["reference_rows"]),
                ("reference SHA-256", &version["reference_sha256"]),
                ("reference entry (seq)", &version["reference_seq"]),
                ("rows in the window", &version["rows_in_window"]),
                ("rows since the reference", &version["rows_total"]),
            ],
        );
        let features = version["features"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if features.is_empty() {
            continue;
        }
        body.push_str("<table class=\"drift-features\">");
        header(
            body,
            &[
                "feature",
                "kind",
                "PSI",
                "JS distance",
                "KS",
                "KS at edge",
                "reference values",
                "window values",
                "window missing",
            ],
        );
        body.push_str("<tbody>");
        for feature in features {
            let sum = |member: &str| -> Value {
                feature[member]
                    .as_array()
                    .map(|counts| counts.iter().filter_map(Value::as_u64).sum::<u64>())
                    .into()
            };
            row(
                body,
                &text(&feature["name"]),
                &[
                    &feature["kind"],
                    &feature["psi"],
                    &feature["js_distance"],
                    &feature["ks"]["statistic"],
                    &feature["ks"]["at_edge"],
                    &sum("reference_counts"),
                    &sum("window_counts"),
                    &feature["window_missing"],
                ],
            );
        }
        body.push_str("</tbody></table>");
        for feature in features {
            bins(body, feature);
        }
    }
}

/// A feature's bins (PSI/JS, and KS for a numeric one), behind a
/// disclosure: the counts every figure recomputes from.
fn bins(body: &mut String, feature: &Value) {
    let _ = write!(
        body,
        "<details class=\"drift-bins\"><summary>Bins of {}</summary>",
        esc(&text(&feature["name"]))
    );
    let labels = bin_labels(feature["edges"].as_array(), feature["buckets"].as_array());
    counts_table(
        body,
        "PSI and JS bins",
        &labels,
        &feature["reference_counts"],
        &feature["window_counts"],
    );
    let ks = &feature["ks"];
    if ks.is_object() {
        let labels = bin_labels(ks["edges"].as_array(), None);
        counts_table(
            body,
            "KS bins",
            &labels,
            &ks["reference_counts"],
            &ks["window_counts"],
        );
    }
    body.push_str("</details>");
}

/// Names of bins: a bucket's name, or the values a numeric bin holds
/// (above the edge before it, at most its own).
fn bin_labels(edges: Option<&Vec<Value>>, buckets: Option<&Vec<Value>>) -> Vec<String> {
    if let Some(buckets) = buckets {
        return buckets.iter().map(text).collect();
    }
    let edges: Vec<String> = edges.into_iter().flatten().map(text).collect();
    (0..=edges.len())
        .map(
            |i| match (i.checked_sub(1).map(|p| &edges[p]), edges.get(i)) {
                (None, Some(hi)) => format!("≤ {hi}"),
                (Some(lo), Some(hi)) => format!("> {lo}, ≤ {hi}"),
                (Some(lo), None) => format!("> {lo}"),
                (None, None) => "all".to_owned(),
            },
        )
        .collect()
}

fn counts_table(
    body: &mut String,
    title: &str,
    labels: &[String],
    reference: &Value,
    window: &Value,
) {
    let _ = write!(
        body,
        "<table class=\"bins\"><caption>{}</caption>",
        esc(title)
    );
    header(body, &["bin", "reference", "window"]);
    body.push_str("<tbody>");
    for (index, label) in labels.iter().enumerate() {
        row(body, label, &[&reference[index], &window[index]]);
    }
    body.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests;
