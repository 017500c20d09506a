//! Finding a decision and a decision's page.

use super::{esc, seg, text};
use serde_json::Value;
use std::fmt::Write;

/// The decision look-up form and the search form (`pairs`: the search
/// as asked).
pub(crate) fn find_decision(pairs: &[(&str, String)]) -> String {
    let asked = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(String::new(), |(_, v)| esc(v))
    };
    let mut body = String::from(
        "<div class=\"actions\"><form method=\"get\" action=\"/console/decisions\" class=\"card\">\
         <label for=\"decision-id\">Decision id (the <code>govgate-decision-id</code> header of an answer)</label>\
         <input id=\"decision-id\" name=\"id\" required pattern=\"[0-9a-f]{32}\">\
         <button type=\"submit\" id=\"find\">Look up</button></form>",
    );
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/decisions\" class=\"card\" id=\"search\">\
         <label for=\"s-model\">Model</label><input id=\"s-model\" name=\"model\" value=\"{}\">\
         <label for=\"s-version\">Version</label><input id=\"s-version\" name=\"version\" value=\"{}\">\
         <label for=\"s-caller\">Caller</label><input id=\"s-caller\" name=\"caller\" value=\"{}\">\
         <label for=\"s-outcome\">Outcome</label><input id=\"s-outcome\" name=\"outcome\" value=\"{}\" placeholder=\"served, denied, held, error\">\
         <label for=\"s-from\">From (RFC 3339, UTC)</label><input id=\"s-from\" name=\"from\" value=\"{}\" placeholder=\"2026-12-01T00:00:00Z\">\
         <label for=\"s-to\">To</label><input id=\"s-to\" name=\"to\" value=\"{}\">\
         <button type=\"submit\" id=\"do-search\">Search</button></form></div>",
        asked("model"),
        asked("version"),
        asked("caller"),
        asked("outcome"),
        asked("from"),
        asked("to"),
    );
    body
}

/// A page of found decisions, newest first, and the link to older ones.
pub(crate) fn found_decisions(page: &Value, more: Option<&str>) -> String {
    let rows = page["decisions"].as_array().cloned().unwrap_or_default();
    let mut body = format!(
        "<h2>Found</h2><p class=\"hint\" id=\"found\">{} decisions, newest first (entries {}..{} searched, {} read).</p>",
        rows.len(),
        esc(&text(&page["range"]["from_seq"])),
        esc(&text(&page["range"]["to_seq"])),
        esc(&text(&page["read"]))
    );
    body.push_str("<table id=\"decisions\"><thead><tr><th scope=\"col\">Seq</th><th scope=\"col\">Time</th><th scope=\"col\">Decision</th><th scope=\"col\">Caller</th><th scope=\"col\">Model</th><th scope=\"col\">Outcome</th></tr></thead><tbody>");
    for row in &rows {
        let id = row["decision_id"].as_str().unwrap_or("");
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><a href=\"/console/decisions/{}\">{}</a></td><td>{}</td><td>{} {}</td><td>{} ({})</td></tr>",
            esc(&text(&row["seq"])),
            esc(&text(&row["time"])),
            seg(id),
            esc(id),
            esc(&text(&row["caller"])),
            esc(&text(&row["model"])),
            esc(&text(&row["version"])),
            esc(&text(&row["outcome"])),
            esc(&text(&row["status"]))
        );
    }
    body.push_str("</tbody></table>");
    if let Some(more) = more {
        let _ = write!(
            body,
            "<p><a id=\"older\" href=\"{}\">Older decisions</a></p>",
            esc(more)
        );
    }
    body
}

/// A decision: the entry's members, links to what it cites, and the
/// receipt, entry and key in fields the page's own script checks
/// (`verify in this browser`): the signature of the checkpoint with the
/// key, the entry's inclusion under the checkpoint's root.
pub(crate) fn decision(
    id: &str,
    raw: &str,
    entry: &Value,
    proof: Option<&str>,
    vkey: &str,
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Decision</dt><dd id=\"decision-id\">{}</dd><dt>Ledger entry</dt><dd>seq {}</dd>\
         <dt>Time</dt><dd>{}</dd><dt>Caller</dt><dd>{}</dd><dt>Model</dt><dd>{}</dd><dt>Outcome</dt><dd id=\"outcome\">{} ({})</dd>",
        esc(id),
        esc(&text(&entry["seq"])),
        esc(&text(&entry["time"])),
        esc(&text(&entry["caller"])),
        match (entry["model"].as_str(), entry["version"].as_str()) {
            (Some(model), Some(version)) => format!(
                "<a href=\"/console/models/{}/versions/{}\">{} {}</a>",
                seg(model),
                seg(version),
                esc(model),
                esc(version)
            ),
            _ => esc(&text(&entry["model"])),
        },
        esc(&text(&entry["outcome"])),
        esc(&text(&entry["status"])),
    );
    let _ = write!(
        body,
        "<dt>Approval that let it serve</dt><dd>{}</dd><dt>Policy set in force</dt><dd>{}</dd></dl>",
        match entry["approval_seq"].as_u64() {
            Some(seq) => format!("ledger entry {seq}"),
            None => "-".to_owned(),
        },
        esc(&text(&entry["policy"]["set_seq"])),
    );
    let _ = write!(
        body,
        "<h2>The entry</h2><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(entry).unwrap_or_default())
    );
    body.push_str(
        "<h2>Verify in this browser</h2><p class=\"hint\">This page's own script checks the \
         receipt with the browser's WebCrypto (SHA-256, Ed25519): the checkpoint's signature \
         with the key below, the entry's inclusion under the checkpoint's root, and that the \
         entry is this decision at the receipt's index. Paste the log's key as you got it from \
         its owner to depend on nothing the gateway says; the fields can be edited to check \
         any receipt.</p>",
    );
    let _ = write!(
        body,
        "<form class=\"card\" id=\"verify-form\"><label for=\"vkey\">The log's verifier key</label>\
         <input id=\"vkey\" value=\"{}\" spellcheck=\"false\">\
         <label for=\"entry-bytes\">The entry (its canonical bytes)</label>\
         <textarea id=\"entry-bytes\" rows=\"4\" spellcheck=\"false\">{}</textarea>\
         <label for=\"receipt\">The receipt (C2SP tlog-proof)</label>\
         <textarea id=\"receipt\" rows=\"10\" spellcheck=\"false\">{}</textarea>\
         <input type=\"hidden\" id=\"expected-id\" value=\"{}\">\
         <button type=\"button\" id=\"verify\">Verify in this browser</button></form>\
         <p id=\"verify-result\" role=\"status\" aria-live=\"polite\"></p>",
        esc(vkey),
        esc(raw),
        esc(proof.unwrap_or("")),
        esc(id)
    );
    body
}
