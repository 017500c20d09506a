//! The `kpi_trends` section's line charts: one inline SVG per series,
//! the points placed by time, the thresholds of the indicators watching
//! it drawn as dashed lines, points beyond one marked. Drawn from
//! report.json alone with plain `f64` arithmetic and fixed-precision
//! formatting, so the same report always gives the same bytes.

use super::esc;
use crate::ledger::export::UtcTime;
use serde_json::Value;
use std::fmt::Write;

/// The chart's size and the plot area inside it (pixels).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 700.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 190.0;
/// Tick labels on the value axis.
const Y_TICKS: u32 = 4;

/// Charts of every series of every model, each model under its heading
/// with the KPI settings its snapshots were taken with.
pub(super) fn render(out: &mut String, section: &Value) {
    if let Some(note) = section["note"].as_str() {
        let _ = writeln!(out, "<p class=\"k\">{}</p>", esc(note));
    }
    for model in section["models"].as_array().into_iter().flatten() {
        let name = super::text(&model["model"]);
        let _ = writeln!(
            out,
            "<h3>Model {}: {} snapshots</h3>",
            esc(&name),
            esc(&super::text(&model["snapshots"]))
        );
        let settings: Vec<String> = model["settings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let s = &item["settings"];
                format!(
                    "from seq {}: window {} rows, minimum group size {}, reference {} rows, snapshot every {} s",
                    super::text(&item["seq"]),
                    super::text(&s["window"]),
                    super::text(&s["min_group_size"]),
                    super::text(&s["reference_rows"]),
                    super::text(&s["snapshot_every_secs"]),
                )
            })
            .collect();
        if !settings.is_empty() {
            let _ = writeln!(out, "<p>Settings {}.</p>", esc(&settings.join("; ")));
        }
        for series in model["series"].as_array().into_iter().flatten() {
            chart(out, &name, series);
        }
    }
}

/// A point of a series: seq, time in ms (when it reads), value.
struct Point {
    seq: u64,
    time: String,
    ms: Option<f64>,
    value: Option<f64>,
    beyond: bool,
}

/// One threshold line: its value, its JSON text and who sets it.
struct Threshold {
    value: f64,
    label: String,
}

fn chart(out: &mut String, model: &str, series: &Value) {
    let subject = match series["version"].as_str() {
        Some(version) => format!("{} of version {version}", super::text(&series["subject"])),
        None => super::text(&series["subject"]),
    };
    let title = format!("{model}: {} of {subject}", super::text(&series["kpi"]));
    let mut beyond_seqs: Vec<u64> = Vec::new();
    let mut thresholds: Vec<Threshold> = Vec::new();
    for indicator in series["indicators"].as_array().into_iter().flatten() {
        beyond_seqs.extend(
            indicator["beyond_seqs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
        let Some(value) = indicator["threshold"].as_f64() else {
            continue;
        };
        let label = format!(
            "{} {} (risk {} #{}, register seq {})",
            super::text(&indicator["direction"]),
            indicator["threshold"],
            super::text(&indicator["risk"]),
            super::text(&indicator["indicator"]),
            super::text(&indicator["register_seq"]),
        );
        thresholds.push(Threshold { value, label });
    }
    let points: Vec<Point> = series["listed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|point| {
            let seq = point["seq"].as_u64().unwrap_or(0);
            let time = super::text(&point["time"]);
            Point {
                seq,
                ms: UtcTime::parse(&time)
                    .ok()
                    .map(|at| (at.unix_seconds() * 1000.0).round()),
                time,
                value: point["value"].as_f64(),
                beyond: beyond_seqs.contains(&seq),
            }
        })
        .collect();
    let values = points
        .iter()
        .filter_map(|p| p.value)
        .chain(thresholds.iter().map(|t| t.value));
    let Some((low, high)) = values.fold(None, |range: Option<(f64, f64)>, v| match range {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    }) else {
        let _ = writeln!(
            out,
            "<p>{}: no value in the period's snapshots.</p>",
            esc(&title)
        );
        return;
    };
    let (low, high) = padded(low, high);
    let y_of = |v: f64| BOTTOM - (v - low) / (high - low) * (BOTTOM - TOP);
    let times: Option<Vec<f64>> = points.iter().map(|p| p.ms).collect();
    let x_of = x_positions(&points, times.as_deref());

    let _ = writeln!(
        out,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        esc(&title)
    );
    let _ = writeln!(
        out,
        "<text x=\"0\" y=\"16\" font-weight=\"bold\">{}</text>",
        esc(&title)
    );
    // Value axis: gridlines and labels.
    for tick in 0..=Y_TICKS {
        let v = low + (high - low) * f64::from(tick) / f64::from(Y_TICKS);
        let y = y_of(v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            number(v)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{BOTTOM}\" stroke=\"#555\"/><line x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{RIGHT}\" y2=\"{BOTTOM}\" stroke=\"#555\"/>"
    );
    // Time axis: the first and last point's time and seq.
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let axis = if times.is_some() { "time" } else { "snapshot" };
        let _ = writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.1}\">{} (seq {})</text><text x=\"{RIGHT}\" y=\"{:.1}\" text-anchor=\"end\">{} (seq {})</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"k\">{axis}</text>",
            BOTTOM + 18.0,
            esc(&first.time),
            first.seq,
            BOTTOM + 18.0,
            esc(&last.time),
            last.seq,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 36.0,
        );
    }
    for threshold in &thresholds {
        let y = y_of(threshold.value);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#a40000\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#a40000\">threshold {}</text>",
            RIGHT - 2.0,
            y - 4.0,
            esc(&threshold.label)
        );
    }
    // The line, broken where a snapshot had no value.
    let mut run: Vec<String> = Vec::new();
    let mut lines: Vec<Vec<String>> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        match point.value {
            Some(v) => run.push(format!("{:.1},{:.1}", x_of(index), y_of(v))),
            None => lines.push(std::mem::take(&mut run)),
        }
    }
    lines.push(run);
    for line in lines.iter().filter(|line| line.len() > 1) {
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"#4a78b5\" stroke-width=\"1.5\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    for (index, point) in points.iter().enumerate() {
        let Some(v) = point.value else { continue };
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>seq {} at {}: {}{}</title></circle>",
            x_of(index),
            y_of(v),
            if point.beyond { "#a40000" } else { "#4a78b5" },
            point.seq,
            esc(&point.time),
            number(v),
            if point.beyond {
                " (beyond a threshold)"
            } else {
                ""
            }
        );
    }
    out.push_str("</svg>\n");
    let _ = writeln!(
        out,
        "<figcaption>{} points ({} listed), {} with a value; min {} (seq {}), max {} (seq {}), last {} (seq {}).</figcaption></figure>",
        esc(&super::text(&series["points"])),
        points.len(),
        esc(&super::text(&series["defined"])),
        esc(&super::text(&series["min"])),
        esc(&super::text(&series["min_seq"])),
        esc(&super::text(&series["max"])),
        esc(&super::text(&series["max_seq"])),
        esc(&super::text(&series["last"])),
        esc(&super::text(&series["last_seq"])),
    );
}

/// The value range shown: the data's and thresholds' range with a
/// margin, or a unit around a single value.
fn padded(low: f64, high: f64) -> (f64, f64) {
    if high > low {
        let margin = (high - low) * 0.05;
        (low - margin, high + margin)
    } else {
        let margin = if low == 0.0 { 0.5 } else { low.abs() * 0.1 };
        (low - margin, high + margin)
    }
}

/// Each point's x: by time when every time reads and they span some
/// time, else evenly by position.
fn x_positions<'a>(points: &'a [Point], times: Option<&'a [f64]>) -> impl Fn(usize) -> f64 + 'a {
    let span = times.and_then(|times| {
        let (first, last) = (*times.first()?, *times.last()?);
        (last > first).then_some((times, first, last))
    });
    let count = points.len();
    move |index| match span {
        Some((times, first, last)) => {
            LEFT + (times[index] - first) / (last - first) * (RIGHT - LEFT)
        }
        None if count > 1 => LEFT + index as f64 / (count - 1) as f64 * (RIGHT - LEFT),
        None => (LEFT + RIGHT) / 2.0,
    }
}

/// An axis label: at most 4 decimals, trailing zeros cut.
fn number(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::number;
    use serde_json::json;

    #[test]
    fn a_series_is_a_line_chart_with_its_threshold_broken_at_a_missing_value() {
        let report = json!({
            "format": "govgate-report/3",
            "scope": {"origin": "o", "period": {"from": "a", "to": "b"}},
            "kpi_trends": {"note": "n", "models": [{"model": "m<1>", "snapshots": 4,
                "settings": [{"seq": 3, "settings": {"window": 8, "min_group_size": 2,
                              "reference_rows": 2, "snapshot_every_secs": 60}}],
                "series": [{"kind": "fairness", "kpi": "demographic_parity_difference",
                    "subject": "sex", "version": null, "points": 4, "defined": 3,
                    "min": 0, "min_seq": 9, "max": 1, "max_seq": 5, "last": 0, "last_seq": 9,
                    "listed": [
                        {"seq": 3, "time": "2026-12-06T10:00:00.000Z", "value": 0.5, "rows": 8},
                        {"seq": 5, "time": "2026-12-06T10:00:10.000Z", "value": 1, "rows": 8},
                        {"seq": 7, "time": "2026-12-06T10:00:20.000Z", "value": null, "rows": 1},
                        {"seq": 9, "time": "2026-12-06T10:00:40.000Z", "value": 0, "rows": 8}],
                    "indicators": [{"register_seq": 2, "risk": "bias", "indicator": 0,
                        "threshold": 0.3, "direction": "above", "beyond_seqs": [3, 5]}]}]}]},
        });
        let page = crate::report::html::render(&report);
        assert_eq!(page, crate::report::html::render(&report));
        assert!(page.contains("<h2>Fairness and drift: KPI trends</h2>"));
        assert!(page.contains("<h3>Model m&lt;1&gt;: 4 snapshots</h3>"));
        assert!(page.contains("from seq 3: window 8 rows, minimum group size 2"));
        // Values 0..1 and the threshold: the axis runs from -0.05 to 1.05
        // over 150 px (y 190 to 40); x by time, 40 s over 80 to 700 px.
        assert!(
            page.contains(
                "<line x1=\"80\" y1=\"142.3\" x2=\"700\" y2=\"142.3\" stroke=\"#a40000\" \
             stroke-dasharray=\"6 4\"/><text x=\"698.0\" y=\"138.3\" text-anchor=\"end\" \
             fill=\"#a40000\">threshold above 0.3 (risk bias #0, register seq 2)</text>"
            ),
            "{page}"
        );
        // The line breaks at the snapshot without a value: one segment of
        // two points, the last point alone.
        assert_eq!(page.matches("<polyline").count(), 1);
        assert!(page.contains("points=\"80.0,115.0 235.0,46.8\""), "{page}");
        assert!(page.contains("<circle cx=\"235.0\" cy=\"46.8\" r=\"3\" fill=\"#a40000\"><title>seq 5 at 2026-12-06T10:00:10.000Z: 1 (beyond a threshold)</title></circle>"));
        assert!(page.contains("<circle cx=\"700.0\" cy=\"183.2\" r=\"3\" fill=\"#4a78b5\">"));
        assert!(page.contains("2026-12-06T10:00:00.000Z (seq 3)</text>"));
        assert!(page.contains("min 0 (seq 9), max 1 (seq 5), last 0 (seq 9)."));
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(number(0.33333333), "0.3333");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(0.25), "0.25");
    }
}
