//! Finding a decision and a decision's page.

use super::{entry_link, esc, seg, text};
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
        "<dl class=\"facts\"><dt>Decision</dt><dd id=\"decision-id\">{}</dd><dt>Ledger entry</dt><dd>{}</dd>\
         <dt>Time</dt><dd>{}</dd><dt>Caller</dt><dd>{}</dd><dt>Model</dt><dd>{}</dd><dt>Outcome</dt><dd id=\"outcome\">{} ({})</dd>",
        esc(id),
        entry_link(&entry["seq"]),
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
        entry_link(&entry["approval_seq"]),
        entry_link(&entry["policy"]["set_seq"]),
    );
    let _ = write!(
        body,
        "<h2>The entry</h2><pre tabindex=\"0\">{}</pre>",
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

/// Members of an entry that name another entry by its seq (bounds of a
/// range, like `from_seq` or `through_seq`, are not links).
fn cited_seqs(entry: &Value) -> Vec<(String, u64)> {
    let mut cited = Vec::new();
    let mut visit = |path: String, value: &Value| {
        if let Some(seq) = value.as_u64()
            && path.ends_with("_seq")
            && !["from_seq", "through_seq"]
                .iter()
                .any(|b| path.ends_with(b))
        {
            cited.push((path, seq));
        }
    };
    for (name, value) in entry.as_object().into_iter().flatten() {
        match value {
            Value::Object(inner) => {
                for (inner_name, inner_value) in inner {
                    visit(format!("{name}.{inner_name}"), inner_value);
                }
            }
            _ if name != "seq" => visit(name.clone(), value),
            _ => {}
        }
    }
    cited
}

/// Any ledger entry by its seq: its kind and time, links to the entries
/// it cites and to the decision or version it is about, and its JSON.
pub(crate) fn entry(seq: u64, entry: &Value) -> String {
    let kind = entry["kind"].as_str().unwrap_or("");
    let mut body = String::new();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Seq</dt><dd id=\"entry-seq\">{seq}</dd><dt>Kind</dt><dd id=\"entry-kind\">{}</dd>\
         <dt>Time</dt><dd>{}</dd>",
        esc(kind),
        esc(&text(&entry["time"]))
    );
    if let Some(principal) = entry["principal"].as_str() {
        let _ = write!(body, "<dt>Who</dt><dd>{}</dd>", esc(principal));
    }
    if let Some(id) = entry["decision_id"].as_str() {
        let _ = write!(
            body,
            "<dt>Decision</dt><dd><a id=\"entry-decision\" href=\"/console/decisions/{}\">{}</a></dd>",
            seg(id),
            esc(id)
        );
    }
    if let (Some(model), Some(version)) = (entry["model"].as_str(), entry["version"].as_str()) {
        let _ = write!(
            body,
            "<dt>Version</dt><dd><a href=\"/console/models/{}/versions/{}\">{} {}</a></dd>",
            seg(model),
            seg(version),
            esc(model),
            esc(version)
        );
    }
    for (member, cited) in cited_seqs(entry) {
        let _ = write!(
            body,
            "<dt>{}</dt><dd><a class=\"cites\" href=\"/console/ledger/{cited}\">ledger entry {cited}</a></dd>",
            esc(&member)
        );
    }
    let _ = write!(
        body,
        "</dl><p>{}<a href=\"/console/ledger/{}\">next entry</a></p><h2>The entry</h2><pre id=\"entry-json\" tabindex=\"0\">{}</pre>",
        match seq.checked_sub(1) {
            Some(previous) =>
                format!("<a href=\"/console/ledger/{previous}\">previous entry</a> · "),
            None => String::new(),
        },
        seq + 1,
        esc(&serde_json::to_string_pretty(entry).unwrap_or_default())
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_links_the_entries_it_cites_but_not_range_bounds() {
        let cited = cited_seqs(&json!({
            "seq": 9, "kind": "decision", "approval_seq": 4, "policy": {"set_seq": 2},
            "from_seq": 0, "through_seq": 8, "opened_seq": null}));
        assert_eq!(
            cited,
            vec![
                ("approval_seq".to_owned(), 4),
                ("policy.set_seq".to_owned(), 2)
            ]
        );
        let page = entry(
            9,
            &json!({"seq": 9, "kind": "version_approved", "model": "m<", "version": "2",
            "activation_seq": 3}),
        );
        assert!(page.contains("href=\"/console/ledger/3\""), "{page}");
        assert!(page.contains("href=\"/console/models/m%3C/versions/2\">m&lt; 2</a>"));
        assert!(page.contains("href=\"/console/ledger/8\">previous entry"));
    }
}
