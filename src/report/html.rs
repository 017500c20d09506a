//! report.html: rendered from report.json alone, byte for byte the same
//! for the same report (a verifier renders it again and compares). One
//! file, inline CSS, bar charts as inline SVG, no script, nothing fetched.
//! Every figure of report.json appears in it; sections it has no special
//! layout for are rendered as their figures, so a new section needs no
//! change here. The KPI trends get line charts (`trends`).

use serde_json::{Map, Value};
use std::fmt::Write;

mod trends;

/// Headings of the known sections, in report order.
const TITLES: &[(&str, &str)] = &[
    ("scope", "Scope"),
    ("inventory", "Inventory: models and versions served"),
    ("changes", "Changes and four-eyes compliance"),
    ("incidents", "Incidents and nonconformities"),
    ("risks", "Risk register and indicator breaches"),
    ("kpi_trends", "Fairness and drift: KPI trends"),
    ("rollback_performance", "Rollback performance"),
    ("human_oversight", "Human oversight"),
    ("traffic", "Traffic"),
    ("retention", "Retention and erasure"),
    ("control_map", "Control map"),
];

const STYLE: &str = "section{overflow-x:auto}body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top;font-size:.9em}\
th{background:#f4f4f4}.k{color:#555}.n{text-align:right;font-variant-numeric:tabular-nums}\
code{font-size:.85em;word-break:break-all}svg text{font-size:12px;font-family:system-ui,sans-serif}\
.ok{color:#0a6d2c;font-weight:bold}.bad{color:#a40000;font-weight:bold}";

/// The charts of a `kpi_trends` section alone (inline SVG), as the
/// report draws them.
pub fn trends_charts(section: &Value) -> String {
    let mut out = String::new();
    trends::render(&mut out, section);
    out
}

/// The HTML page of `report`.
pub fn render(report: &Value) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let scope = &report["scope"];
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<title>govgate report {} {} .. {}</title>",
        esc(scope["origin"].as_str().unwrap_or_default()),
        esc(scope["period"]["from"].as_str().unwrap_or_default()),
        esc(scope["period"]["to"].as_str().unwrap_or_default())
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(
        out,
        "<h1>Period report of {}</h1>\n<p>From {} to {} (entries {}..={}), checkpoint of size {}. \
         Verification: <span class=\"{}\">{}</span>. Every figure below recomputes from the \
         bundle beside this file (<code>govgate verify --report</code>); seqs name the ledger \
         entries it comes from.</p>",
        esc(scope["origin"].as_str().unwrap_or_default()),
        esc(scope["period"]["from"].as_str().unwrap_or_default()),
        esc(scope["period"]["to"].as_str().unwrap_or_default()),
        scope["first_seq"],
        scope["last_seq"],
        scope["checkpoint"]["size"],
        if scope["verification"]["result"] == "ok" {
            "ok"
        } else {
            "bad"
        },
        esc(scope["verification"]["result"].as_str().unwrap_or_default())
    );
    let Some(sections) = report.as_object() else {
        out.push_str("</body>\n</html>\n");
        return out;
    };
    let mut names: Vec<&String> = sections.keys().filter(|name| *name != "format").collect();
    let rank = |name: &str| {
        TITLES
            .iter()
            .position(|(known, _)| *known == name)
            .unwrap_or(TITLES.len())
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    for name in names {
        let title = TITLES
            .iter()
            .find(|(known, _)| known == name)
            .map_or(name.as_str(), |(_, title)| title);
        let _ = writeln!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>",
            esc(name),
            esc(title)
        );
        if name == "control_map" {
            controls(&mut out, &sections[name]);
        } else if name == "risks" {
            risks(&mut out, &sections[name]);
            value(&mut out, &sections[name]);
        } else if name == "kpi_trends" {
            trends::render(&mut out, &sections[name]);
            value(&mut out, &sections[name]);
        } else {
            charts(&mut out, name, &sections[name]);
            value(&mut out, &sections[name]);
        }
        out.push_str("</section>\n");
    }
    let _ = writeln!(
        out,
        "<p class=\"k\">report format {}</p>\n</body>\n</html>",
        esc(report["format"].as_str().unwrap_or_default())
    );
    out
}

/// The control map as one table: control, sections, seqs.
fn controls(out: &mut String, map: &Value) {
    out.push_str("<table>\n<tr><th>framework</th><th>control</th><th>title</th><th>evidence (section: seqs)</th></tr>\n");
    for control in map["controls"].as_array().into_iter().flatten() {
        let mut evidence = String::new();
        for section in control["sections"].as_array().into_iter().flatten() {
            let name = section["section"].as_str().unwrap_or_default();
            let seqs: Vec<String> = section["seqs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            let _ = write!(
                evidence,
                "<a href=\"#{}\">{}</a>: {}<br>",
                esc(name),
                esc(name),
                if section["in_report"] == true {
                    if seqs.is_empty() {
                        "none in the period".to_owned()
                    } else {
                        seqs.join(", ")
                    }
                } else {
                    "not in this report".to_owned()
                }
            );
        }
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(control["framework"].as_str().unwrap_or_default()),
            esc(control["id"].as_str().unwrap_or_default()),
            esc(control["title"].as_str().unwrap_or_default()),
            evidence
        );
    }
    out.push_str("</table>\n");
    if let Some(note) = map["note"].as_str() {
        let _ = writeln!(out, "<p class=\"k\">{}</p>", esc(note));
    }
}

/// The risk register at a glance: one row per indicator of each risk,
/// then (below, by `value`) every figure.
fn risks(out: &mut String, section: &Value) {
    out.push_str("<table>\n<tr><th>risk</th><th>owner</th><th>indicator</th><th>threshold</th><th>breaches</th><th>recoveries</th><th>open at end</th><th>breached in period (ms)</th></tr>\n");
    for risk in section["risks"].as_array().into_iter().flatten() {
        for indicator in risk["indicators"].as_array().into_iter().flatten() {
            let open = indicator["open_at_end"].as_array().map_or(0, Vec::len);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} {} {}</td><td>{} {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&text(&risk["id"])),
                esc(&text(&risk["owner"])),
                esc(&text(&indicator["index"])),
                esc(&text(&indicator["kpi"])),
                esc(&text(&indicator["subject"])),
                esc(&text(&indicator["direction"])),
                esc(&text(&indicator["threshold"])),
                esc(&text(&indicator["breach_count"])),
                esc(&text(&indicator["recovery_count"])),
                if open > 0 { " bad" } else { "" },
                open,
                esc(&text(&indicator["breached_ms_in_period"])),
            );
        }
    }
    out.push_str("</table>\n");
}

/// Bar charts of a section's count tables (members with `counts`), and of
/// verdicts by reviewer.
fn charts(out: &mut String, section: &str, value: &Value) {
    let Some(members) = value.as_object() else {
        return;
    };
    for (name, member) in members {
        if let Some(counts) = member["counts"].as_object() {
            let mut bars: Vec<(String, u64)> = counts
                .iter()
                .map(|(key, count)| (key.clone(), count.as_u64().unwrap_or(0)))
                .collect();
            if let Some(others) = member["others"].as_u64().filter(|others| *others > 0) {
                bars.push(("others".to_owned(), others));
            }
            bar_chart(out, &format!("{section} {name}"), &bars);
        }
    }
    if let Some(reviewers) = value["verdicts_by_reviewer"].as_object() {
        let bars: Vec<(String, u64)> = reviewers
            .iter()
            .flat_map(|(reviewer, verdicts)| {
                ["approve", "reject", "override"]
                    .into_iter()
                    .map(move |verdict| {
                        (
                            format!("{reviewer} {verdict}"),
                            verdicts[verdict].as_u64().unwrap_or(0),
                        )
                    })
            })
            .collect();
        bar_chart(out, "verdicts by reviewer", &bars);
    }
}

/// One horizontal bar chart (at most 60 bars) in SVG.
fn bar_chart(out: &mut String, title: &str, bars: &[(String, u64)]) {
    if bars.is_empty() {
        return;
    }
    let bars = &bars[..bars.len().min(60)];
    let max = bars
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row) = (220u64, 420u64, 20u64);
    let height = row * bars.len() as u64 + 24;
    let _ = writeln!(
        out,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        label_w + bar_w + 80,
        esc(title)
    );
    let _ = writeln!(
        out,
        "<text x=\"0\" y=\"14\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    for (index, (label, count)) in bars.iter().enumerate() {
        let y = 24 + row * index as u64;
        let width = bar_w * count / max;
        let shown: String = label.chars().take(32).collect();
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{width}\" height=\"{}\" fill=\"#4a78b5\"/><text x=\"{}\" y=\"{}\">{count}</text>",
            y + 14,
            esc(&shown),
            y + 3,
            row - 6,
            label_w + width + 4,
            y + 14
        );
    }
    out.push_str("</svg></figure>\n");
}

/// A JSON value as HTML: objects as key/value tables, arrays of objects
/// as tables with a header row, scalars as text.
fn value(out: &mut String, value: &Value) {
    match value {
        Value::Object(members) => object(out, members),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                for key in item.as_object().into_iter().flat_map(Map::keys) {
                    if !columns.contains(&key) {
                        columns.push(key);
                    }
                }
            }
            out.push_str("<table>\n<tr>");
            for column in &columns {
                let _ = write!(out, "<th>{}</th>", esc(column));
            }
            out.push_str("</tr>\n");
            for item in items {
                out.push_str("<tr>");
                for column in &columns {
                    out.push_str("<td>");
                    scalar_or_value(out, &item[column.as_str()]);
                    out.push_str("</td>");
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        }
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().map(text).collect();
            out.push_str(&esc(&texts.join(", ")));
        }
        other => out.push_str(&esc(&text(other))),
    }
}

fn object(out: &mut String, members: &Map<String, Value>) {
    out.push_str("<table>\n");
    for (name, member) in members {
        let class = if member.is_number() {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(out, "<tr><th class=\"k\">{}</th><td{class}>", esc(name));
        scalar_or_value(out, member);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

fn scalar_or_value(out: &mut String, member: &Value) {
    match member {
        Value::String(text) if text.contains('\n') => {
            let _ = write!(out, "<pre><code>{}</code></pre>", esc(text));
        }
        other => value(out, other),
    }
}

/// A scalar as text (strings without quotes; null as a dash).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn renders_every_figure_escaped_and_the_same_twice() {
        let report = json!({
            "format": "govgate-report/1",
            "scope": {"origin": "o<x>", "period": {"from": "a", "to": "b"}, "first_seq": 1, "last_seq": 9,
                      "checkpoint": {"size": 10}, "verification": {"result": "ok"}},
            "traffic": {"by_outcome": {"counts": {"served": 7, "denied": 2}, "others": 0}},
        });
        let page = render(&report);
        assert_eq!(page, render(&report));
        assert!(page.contains("o&lt;x&gt;"));
        assert!(page.contains("<svg"));
        assert!(page.contains(">7<"));
        assert!(!page.contains("<script"));
        assert!(
            !page.contains("http://")
                || page.matches("http://").count()
                    == page.matches("http://www.w3.org/2000/svg").count()
        );
    }

    #[test]
    fn the_risks_get_one_row_per_indicator_before_their_figures() {
        let report = json!({
            "format": "govgate-report/2",
            "scope": {"origin": "o", "period": {"from": "a", "to": "b"}},
            "risks": {"risks": [{"id": "r<1>", "owner": "o", "indicators": [
                {"index": 0, "kpi": "error_rate", "subject": null, "direction": "above",
                 "threshold": 0.1, "breach_count": 2, "recovery_count": 1,
                 "open_at_end": [7], "breached_ms_in_period": 9000}]}]},
        });
        let page = render(&report);
        assert_eq!(page, render(&report));
        assert!(page.contains("<h2>Risk register and indicator breaches</h2>"));
        assert!(page.contains(
            "<tr><td>r&lt;1&gt;</td><td>o</td><td>0 error_rate -</td><td>above 0.1</td>\
             <td class=\"n\">2</td><td class=\"n\">1</td><td class=\"n bad\">1</td>\
             <td class=\"n\">9000</td></tr>"
        ));
    }
}
