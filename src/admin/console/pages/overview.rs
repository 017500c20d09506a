//! The overview page: alerts first, then models, decisions by outcome,
//! holds waiting, indicator breaches and the ledger's state.

use super::{esc, seg, text};
use crate::admin::console::overview::{Alert, Overview, age, breaches, unix_ms};
use serde_json::Value;
use std::fmt::Write;

/// The outcomes a decision entry names, in the order rows show them.
const OUTCOMES: [&str; 7] = [
    "served",
    "denied",
    "held",
    "released",
    "blocked",
    "error",
    "streaming",
];

/// The overview of `overview` with its `alerts`.
pub(crate) fn overview(overview: &Overview, alerts: &[Alert]) -> String {
    let mut body = alerts_section(alerts);
    models_section(&mut body, &overview.models);
    if let Some(decided) = &overview.decided {
        decisions_section(&mut body, decided);
    }
    if let Some(reviews) = &overview.reviews {
        holds_section(&mut body, reviews, overview.now_ms);
    }
    if let Some(answer) = &overview.breaches {
        let watched = answer["indicators"].as_u64().unwrap_or(0);
        breaches_section(&mut body, breaches(overview), watched);
    }
    ledger_section(&mut body, overview);
    body
}

fn alerts_section(alerts: &[Alert]) -> String {
    let mut body = String::from("<section><h2>Alerts</h2>");
    if alerts.is_empty() {
        body.push_str("<p id=\"no-alerts\">No alerts: nothing the gateway watches needs attention.</p></section>");
        return body;
    }
    body.push_str(
        "<table id=\"alerts\"><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Alert</th><th scope=\"col\">What</th></tr></thead><tbody>",
    );
    for alert in alerts {
        let what = match &alert.link {
            Some(link) => format!("{} (<a href=\"{}\">see</a>)", esc(&alert.text), esc(link)),
            None => esc(&alert.text),
        };
        let _ = write!(
            body,
            "<tr class=\"alert {}\" data-alert=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            alert.severity.as_str(),
            esc(alert.name),
            alert.severity.as_str(),
            esc(alert.name),
            what
        );
    }
    body.push_str("</tbody></table></section>");
    body
}

fn models_section(body: &mut String, models: &Value) {
    body.push_str(
        "<section><h2>Models</h2><table><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">Active version</th><th scope=\"col\">Versions</th><th scope=\"col\">Waiting for approval</th></tr></thead><tbody>",
    );
    for model in models["models"].as_array().into_iter().flatten() {
        let name = model["name"].as_str().unwrap_or("");
        let versions = model["versions"].as_object();
        let waiting = versions
            .into_iter()
            .flatten()
            .filter(|(_, version)| version["state"] == "proposed")
            .count();
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/models/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(name),
            esc(name),
            esc(&text(&model["active"])),
            versions.map_or(0, |v| v.len()),
            waiting
        );
    }
    body.push_str("</tbody></table></section>");
}

fn count(window: &Value, outcome: &str) -> u64 {
    window["outcomes"][outcome].as_u64().unwrap_or(0)
}

/// "served 2 · denied 1" (outcomes with a count only).
fn breakdown(outcomes: &Value) -> String {
    let parts: Vec<String> = OUTCOMES
        .iter()
        .filter_map(|o| {
            let n = outcomes[*o].as_u64().unwrap_or(0);
            (n > 0).then(|| format!("{o} {n}"))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" · ")
    }
}

fn decisions_section(body: &mut String, decided: &Value) {
    let (hour, day) = (&decided["hour"], &decided["day"]);
    body.push_str(
        "<section><h2>Requests and outcomes</h2><table id=\"outcomes\"><thead><tr><th scope=\"col\">Outcome</th><th scope=\"col\">Last hour</th><th scope=\"col\">Last day</th></tr></thead><tbody>",
    );
    for outcome in OUTCOMES {
        let _ = write!(
            body,
            "<tr><td>{outcome}</td><td id=\"outcomes-hour-{outcome}\">{}</td><td id=\"outcomes-day-{outcome}\">{}</td></tr>",
            count(hour, outcome),
            count(day, outcome)
        );
    }
    let _ = write!(
        body,
        "<tr><td>all decisions</td><td id=\"outcomes-hour-total\">{}</td><td id=\"outcomes-day-total\">{}</td></tr></tbody></table>",
        hour["total"].as_u64().unwrap_or(0),
        day["total"].as_u64().unwrap_or(0)
    );
    body.push_str(
        "<table id=\"outcomes-by-model\"><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">Last hour</th><th scope=\"col\">Last day</th></tr></thead><tbody>",
    );
    let mut rows: Vec<(String, &Value, &Value)> = day["models"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, day)| (name.clone(), &hour["models"][name], day))
        .collect();
    rows.push((
        "other model names".to_owned(),
        &hour["other_models"],
        &day["other_models"],
    ));
    for (name, hour, day) in rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            esc(&breakdown(hour)),
            esc(&breakdown(day))
        );
    }
    body.push_str("</tbody></table>");
    let since = decided["counted_since"].as_str();
    let note = match (decided["priming"].as_bool(), since) {
        (Some(true), Some(since)) => format!(
            "Counted since {since} (the gateway's start); the ledger's earlier entries of the day are still being counted."
        ),
        (_, Some(since)) => format!(
            "Counted since {since}: the ledger's first entry (it is younger than a day), the gateway's start (its ledger was empty), or the oldest of the newest {} entries counted at start.",
            crate::ledger::tally::PRIME_CAP
        ),
        _ => "Counted over the whole last day, to the minute.".to_owned(),
    };
    let _ = write!(
        body,
        "<p class=\"hint\" id=\"counted-since\">{}</p></section>",
        esc(&note)
    );
}

fn holds_section(body: &mut String, reviews: &Value, now_ms: u64) {
    let items: Vec<&Value> = reviews["reviews"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let holds = items.iter().filter(|r| r["review_kind"] == "hold").count();
    let _ = write!(
        body,
        "<section><h2>Reviews waiting</h2><p id=\"waiting\">{} waiting ({} held answers, whose clients wait)</p>",
        items.len(),
        holds
    );
    body.push_str(
        "<table id=\"queue\"><thead><tr><th scope=\"col\">Review</th><th scope=\"col\">Kind</th><th scope=\"col\">Model</th><th scope=\"col\">Waiting</th><th scope=\"col\">Deadline</th><th scope=\"col\">Time left</th></tr></thead><tbody>",
    );
    // The API lists them oldest first.
    for item in items {
        let id = item["review_id"].as_str().unwrap_or("");
        let left = match item["deadline"].as_str().and_then(unix_ms) {
            Some(deadline) if deadline > now_ms => format!("{} s", (deadline - now_ms) / 1000),
            Some(_) => "due now".to_owned(),
            None => "no deadline".to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/reviews/{}\">{}</a></td><td>{}</td><td>{} {}</td><td>{} s</td><td>{}</td><td>{}</td></tr>",
            seg(id),
            esc(&id[..id.len().min(12)]),
            esc(&text(&item["review_kind"])),
            esc(&text(&item["model"])),
            esc(&text(&item["version"])),
            esc(&text(&item["age_seconds"])),
            esc(&text(&item["deadline"])),
            esc(&left)
        );
    }
    body.push_str("</tbody></table></section>");
}

fn breaches_section(body: &mut String, breaches: &[Value], watched: u64) {
    body.push_str("<section><h2>Indicator breaches</h2>");
    if watched == 0 {
        body.push_str("<p id=\"no-breaches\">The risk register watches no indicator (<code>[[risks]]</code>, docs/risks.md).</p></section>");
        return;
    }
    if breaches.is_empty() {
        let _ = write!(
            body,
            "<p id=\"no-breaches\">Indicators beyond their threshold: none (the risk register watches {watched}).</p></section>"
        );
        return;
    }
    body.push_str(
        "<table id=\"breaches\"><thead><tr><th scope=\"col\">Risk</th><th scope=\"col\">Indicator</th><th scope=\"col\">Model</th><th scope=\"col\">Value</th><th scope=\"col\">Threshold</th></tr></thead><tbody>",
    );
    for breach in breaches {
        let model = breach["model"].as_str().unwrap_or("");
        let model_shown = match breach["version"].as_str() {
            Some(version) => format!("{model} {version}"),
            None => model.to_owned(),
        };
        let value = breach["value"]
            .as_f64()
            .map_or_else(|| "unknown".to_owned(), |v| format!("{v:.4}"));
        let _ = write!(
            body,
            "<tr><td>{} ({})</td><td>{}</td><td><a href=\"/console/kpis/{}\">{}</a></td><td>{}</td><td>{} {}</td></tr>",
            esc(&text(&breach["risk"])),
            esc(&text(&breach["title"])),
            esc(&text(&breach["indicator"])),
            seg(model),
            esc(&model_shown),
            esc(&value),
            esc(&text(&breach["direction"])),
            esc(&text(&breach["threshold"]))
        );
    }
    body.push_str("</tbody></table></section>");
}

fn ledger_section(body: &mut String, overview: &Overview) {
    let Some(note) = &overview.checkpoint else {
        return;
    };
    let mut lines = note.lines();
    let origin = lines.next().unwrap_or("");
    let size = lines.next().unwrap_or("");
    let _ = write!(
        body,
        "<section><h2>Ledger</h2><dl class=\"facts\"><dt>Origin</dt><dd>{}</dd><dt>Entries under the latest signed checkpoint</dt><dd id=\"ledger-size\">{}</dd>",
        esc(origin),
        esc(size)
    );
    if let Some(at) = overview.checkpoint_ms {
        let time = crate::ledger::entry::rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(at),
        );
        let _ = write!(
            body,
            "<dt>Latest checkpoint signed</dt><dd><span id=\"checkpoint-age\">{}</span> (<time id=\"checkpoint-time\">{}</time>)</dd>",
            esc(&age(overview.now_ms, at)),
            esc(&time)
        );
    }
    for (label, count) in &overview.recent {
        let _ = write!(
            body,
            "<dt>Entries recorded in the last {}</dt><dd id=\"recent-{}\">{}</dd>",
            esc(label),
            esc(label),
            count
        );
    }
    if let Some(verification) = &overview.verification {
        let last = &verification["last"];
        let shown = if last.is_null() {
            "none yet".to_owned()
        } else {
            format!(
                "{} ({} of entries {}..{}, finished {})",
                text(&last["result"]),
                text(&last["mode"]),
                text(&last["from_seq"]),
                text(&last["to_size"]),
                text(&last["finished_at"])
            )
        };
        let _ = write!(
            body,
            "<dt>Last verification in the background</dt><dd id=\"last-verification\">{}</dd>",
            esc(&shown)
        );
    }
    body.push_str("</dl>");
    if let Some(witnesses) = &overview.witnesses {
        witnesses_table(body, witnesses, overview.now_ms);
    }
    body.push_str("</section>");
}

fn witnesses_table(body: &mut String, witnesses: &Value, now_ms: u64) {
    let _ = write!(
        body,
        "<h3>Witness cosignatures</h3><p class=\"hint\">Checkpoint served as cosigned: <span id=\"cosigned-size\">{}</span> entries (needs {} cosignatures).</p>",
        esc(&text(&witnesses["cosigned_size"])),
        esc(&text(&witnesses["threshold"]))
    );
    body.push_str(
        "<table id=\"witnesses\"><thead><tr><th scope=\"col\">Witness</th><th scope=\"col\">Latest checkpoint cosigned</th><th scope=\"col\">Cosigned</th><th scope=\"col\">Last round</th></tr></thead><tbody>",
    );
    for witness in witnesses["witnesses"].as_array().into_iter().flatten() {
        let when = match witness["cosigned_time"].as_u64() {
            Some(secs) => format!(
                "{} ({})",
                age(now_ms, secs * 1000),
                crate::ledger::entry::rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
                )
            ),
            None => "never".to_owned(),
        };
        let size = match witness["cosigned_size"].as_u64() {
            Some(size) => format!("{size} entries"),
            None => "none".to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&witness["name"])),
            esc(&size),
            esc(&when),
            esc(&text(&witness["last"]["result"]))
        );
    }
    body.push_str("</tbody></table>");
}
