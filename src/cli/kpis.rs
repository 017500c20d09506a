//! `govgate kpis [MODEL]`: a model's fairness and drift KPIs on a running
//! gateway, from `GET /admin/kpis/{model}`, as a summary a person reads
//! (per group its counts and rates, per version and feature its drift);
//! `--json` prints the answer as it came; `--fleet` asks a replica of a
//! fleet for the fleet's KPIs (`?scope=fleet`). Without a model, the
//! models with KPIs. Token and exit codes as for `govgate models`.

use super::reviews::exchange::{self, AdminOptions};
use http::Method;
use serde_json::Value;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Options of `govgate kpis`.
#[derive(Debug, clap::Args)]
pub(crate) struct KpisArgs {
    #[command(flatten)]
    admin: AdminOptions,
    /// The model (default: list the models with `[models.kpi]`).
    model: Option<String>,
    /// The fleet's KPIs, over every replica's rows (a replica of a fleet
    /// only), instead of this gateway's own.
    #[arg(long, requires = "model")]
    fleet: bool,
}

/// Runs `govgate kpis`; see the module docs for exit codes.
pub(crate) fn run(args: KpisArgs) -> ExitCode {
    let path = match &args.model {
        Some(model) if args.fleet => {
            format!("/admin/kpis/{}?scope=fleet", percent_encoded(model))
        }
        Some(model) => format!("/admin/kpis/{}", percent_encoded(model)),
        None => "/admin/kpis".to_owned(),
    };
    let fleet = args.fleet;
    exchange::exit_code(exchange::perform(
        &args.admin,
        &Method::GET,
        &path,
        None,
        |answer| match &args.model {
            Some(model) if fleet => {
                // Named as the fleet's in the first line.
                let mut answer = answer.clone();
                answer["model"] = Value::String(format!("{model} (fleet)"));
                render(&answer)
            }
            Some(_) => render(answer),
            None => render_list(answer),
        },
    ))
}

/// A model name as one path segment.
fn percent_encoded(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn render_list(answer: &Value) -> String {
    let models: Vec<&str> = answer["models"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if models.is_empty() {
        return "no model has [models.kpi]\n".to_owned();
    }
    let mut out = String::from("models with KPIs (show one with: govgate kpis MODEL)\n");
    for model in models {
        let _ = writeln!(out, "  {}", clean(model));
    }
    out
}

/// Control characters out of what a gateway sent, so a terminal shows text.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(x) if value.is_f64() => format!("{x:.4}"),
        Some(_) => value.to_string(),
        None => "-".to_owned(),
    }
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn string(value: &Value) -> String {
    clean(value.as_str().unwrap_or("?"))
}

/// A table: columns padded to their widest cell, two spaces apart.
fn table(out: &mut String, indent: &str, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = indent.to_owned();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The summary of one model's answer.
fn render(answer: &Value) -> String {
    let mut out = String::new();
    let settings = &answer["settings"];
    let fairness = &answer["fairness"];
    let _ = writeln!(
        out,
        "{}: fairness over the last {} rows (window {}, {} since start); groups of at least {} rows are compared",
        string(&answer["model"]),
        count(&fairness["rows_in_window"]),
        count(&settings["window"]),
        count(&fairness["rows_total"]),
        count(&settings["min_group_size"]),
    );
    for attribute in fairness["attributes"].as_array().into_iter().flatten() {
        let mut rows = vec![
            [
                "group",
                "rows",
                "selected",
                "labeled",
                "tp",
                "fp",
                "tn",
                "fn",
                "selection",
                "tpr",
                "fpr",
                "eligible",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for group in attribute["groups"].as_array().into_iter().flatten() {
            rows.push(vec![
                string(&group["group"]),
                count(&group["rows"]).to_string(),
                count(&group["selected"]).to_string(),
                count(&group["labeled"]).to_string(),
                count(&group["tp"]).to_string(),
                count(&group["fp"]).to_string(),
                count(&group["tn"]).to_string(),
                count(&group["fn"]).to_string(),
                number(&group["selection_rate"]),
                number(&group["tpr"]),
                number(&group["fpr"]),
                if group["eligible"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]);
        }
        let _ = writeln!(out, "\n  attribute {}", string(&attribute["name"]));
        table(&mut out, "    ", &rows);
        let unassigned = count(&attribute["missing_rows"]) + count(&attribute["overflow_rows"]);
        if unassigned > 0 {
            let _ = writeln!(
                out,
                "    rows without a tracked group: {} missing, {} beyond max_groups",
                count(&attribute["missing_rows"]),
                count(&attribute["overflow_rows"]),
            );
        }
        let _ = writeln!(
            out,
            "    demographic parity difference {}  ratio {}  equal opportunity difference {}  equalized odds difference {}",
            number(&attribute["demographic_parity_difference"]),
            number(&attribute["demographic_parity_ratio"]),
            number(&attribute["equal_opportunity_difference"]),
            number(&attribute["equalized_odds_difference"]),
        );
    }
    let versions = answer["drift"].as_array().map_or(&[][..], Vec::as_slice);
    if versions.is_empty() {
        out.push_str("\ndrift: no row served yet\n");
    }
    for version in versions {
        render_drift(&mut out, version, count(&settings["reference_rows"]));
    }
    out.push_str("\n(- : undefined, e.g. fewer than two eligible groups or no label yet)\n");
    out
}

fn render_drift(out: &mut String, version: &Value, reference_rows: u64) {
    let label = string(&version["version"]);
    let source = match version["reference_source"].as_str() {
        Some("upload") => "uploaded",
        _ => "the version's first rows",
    };
    match version["reference_state"].as_str() {
        Some("ready") => {
            let _ = writeln!(
                out,
                "\n  drift of version {label}: window of {} rows against a reference of {} rows ({source})",
                count(&version["rows_in_window"]),
                count(&version["reference_rows"]),
            );
            let mut rows = vec![
                ["feature", "psi", "js_distance", "ks"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for feature in version["features"].as_array().into_iter().flatten() {
                rows.push(vec![
                    string(&feature["name"]),
                    number(&feature["psi"]),
                    number(&feature["js_distance"]),
                    number(&feature["ks"]["statistic"]),
                ]);
            }
            table(out, "    ", &rows);
        }
        Some("collecting") => {
            let _ = writeln!(
                out,
                "\n  drift of version {label}: collecting its reference, {} of {reference_rows} rows",
                count(&version["reference_rows"]),
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "\n  drift of version {label}: no reference (some feature had no usable value)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_report_reads_as_tables_with_undefined_values_as_dashes() {
        let answer = json!({
            "model": "credit\u{1b}[31m",
            "settings": {"window": 100, "min_group_size": 2, "max_groups": 50, "reference_rows": 4},
            "fairness": {"rows_in_window": 3, "rows_total": 3, "attributes": [{
                "name": "sex", "missing_rows": 0, "overflow_rows": 0,
                "demographic_parity_difference": 0.5, "demographic_parity_ratio": 0.5,
                "equal_opportunity_difference": null, "equalized_odds_difference": null,
                "groups": [
                    {"group": "f", "rows": 2, "selected": 2, "labeled": 1, "tp": 1, "fp": 0,
                     "tn": 0, "fn": 0, "eligible": true, "selection_rate": 1.0, "tpr": 1.0, "fpr": null},
                    {"group": "m", "rows": 2, "selected": 1, "labeled": 0, "tp": 0, "fp": 0,
                     "tn": 0, "fn": 0, "eligible": true, "selection_rate": 0.5, "tpr": null, "fpr": null},
                ]}]},
            "drift": [
                {"version": "1", "reference_state": "ready", "reference_source": "first_rows",
                 "reference_rows": 4, "rows_in_window": 2, "rows_total": 2, "features": [
                    {"name": "amount", "kind": "numeric", "psi": 1.25, "js_distance": 0.5,
                     "ks": {"statistic": 0.75}}]},
                {"version": "2", "reference_state": "collecting", "reference_source": "first_rows",
                 "reference_rows": 1, "rows_in_window": 0, "rows_total": 0, "features": []},
            ],
        });
        let text = render(&answer);
        assert!(
            text.starts_with("credit?[31m: fairness over the last 3 rows"),
            "{text}"
        );
        assert!(
            text.contains(
                "    f      2     2         1        1   0   0   0   1.0000     1.0000  -    yes\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "demographic parity difference 0.5000  ratio 0.5000  equal opportunity difference -"
            ),
            "{text}"
        );
        assert!(
            text.contains("    amount   1.2500  0.5000       0.7500\n"),
            "{text}"
        );
        assert!(
            text.contains("version 2: collecting its reference, 1 of 4 rows"),
            "{text}"
        );
    }

    #[test]
    fn model_names_are_one_path_segment() {
        assert_eq!(percent_encoded("credit-scoring"), "credit-scoring");
        assert_eq!(percent_encoded("a/b c"), "a%2Fb%20c");
    }
}
